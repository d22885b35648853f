//! Telling running daemons that provisioning changed.
//!
//! On PostgreSQL the CLI (or another daemon's API) sends `NOTIFY teamsgw_provisioning` after a
//! committed change and every daemon `LISTEN`s, so several gateways sharing one database reload
//! within a second without anyone sending SIGHUP. SQLite has no such channel: it is a local
//! file of one host, where the admin reloads by SIGHUP (and the daemon's own API reloads itself).

use crate::{Backend, Store, StoreError};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "teamsgw_provisioning";

impl Store {
    /// Announces a committed change; best effort (a lost notification only delays the reload
    /// until the next SIGHUP or notification).
    pub async fn notify_changed(&self) {
        if self.backend == Backend::Postgres
            && let Err(e) = sqlx::query("SELECT pg_notify($1, 'changed')")
                .bind(CHANNEL)
                .execute(&self.pool)
                .await
        {
            tracing::warn!(error = %e, "could not notify daemons of the change; reload them with SIGHUP");
        }
    }
}

/// A dedicated connection listening for change notifications (PostgreSQL only).
pub struct ChangeListener {
    listener: sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// `Ok(None)` for backends without notifications.
    pub async fn connect(url: &str) -> Result<Option<Self>, StoreError> {
        if Backend::from_url(url) != Some(Backend::Postgres) {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(StoreError::Connect)?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Self { listener }))
    }

    /// Waits for the next change notification. The listener reconnects by itself after a
    /// lost connection (an error is returned once so the caller can reload to catch up).
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        self.listener.recv().await?;
        Ok(())
    }
}
