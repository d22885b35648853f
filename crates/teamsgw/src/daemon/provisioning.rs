//! The daemon's view of the provisioning database: the store connection, and the routing and
//! license snapshots in use. A reload builds both anew and swaps them in together; a failed
//! reload keeps the previous ones serving and is logged and counted
//! (`teamsgw_snapshot_reloads_total`). The license snapshot is counted once per reload, so a
//! console page never reads 100,000 user rows nor counts them.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use teamsgw_store::{ChangeListener, RoutingSnapshot, Store};
use tokio::sync::Mutex;

use crate::admin::metrics::Metrics;
use crate::config::Settings;
use crate::daemon::readiness::Readiness;
use crate::operations::license_report::CountedLicenses;

pub struct Provisioning {
    url: String,
    store: Mutex<Option<Store>>,
    snapshot: ArcSwapOption<RoutingSnapshot>,
    licenses: ArcSwapOption<CountedLicenses>,
    /// Whose `[license]` the license snapshot is counted under.
    settings: Arc<ArcSwap<Settings>>,
    /// Every new snapshot, for the components that follow provisioning (registration agent).
    published: tokio::sync::watch::Sender<Option<Arc<RoutingSnapshot>>>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl Provisioning {
    pub fn new(
        url: String,
        settings: Arc<ArcSwap<Settings>>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Self {
            url,
            settings,
            store: Mutex::new(None),
            snapshot: ArcSwapOption::empty(),
            licenses: ArcSwapOption::empty(),
            published: tokio::sync::watch::Sender::new(None),
            metrics,
            readiness,
        }
    }

    /// Sees every snapshot swapped in from now on (and the current one).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Arc<RoutingSnapshot>>> {
        self.published.subscribe()
    }

    /// The snapshot in use, if one was ever loaded.
    pub fn snapshot(&self) -> Option<Arc<RoutingSnapshot>> {
        self.snapshot.load_full()
    }

    /// The license snapshot loaded with the routing snapshot in use, counted.
    pub fn licenses(&self) -> Option<Arc<CountedLicenses>> {
        self.licenses.load_full()
    }

    /// Connects when not yet connected, loads a new snapshot and swaps it in.
    ///
    /// The counter moves last, after the log line and the swap, so whoever watches the metric
    /// (ops, the tests) sees a reload's effects once it is counted.
    pub async fn reload(&self) -> Result<(), String> {
        let result = match self.try_reload().await {
            Ok((snapshot, licenses)) => {
                let summary = format!("{} direct routes", snapshot.direct_routes());
                tracing::info!(
                    direct_routes = snapshot.direct_routes(),
                    "routing snapshot loaded"
                );
                self.metrics
                    .snapshot_direct_routes
                    .set(snapshot.direct_routes() as i64);
                self.readiness.snapshot_loaded(summary);
                self.licenses.store(Some(licenses));
                self.snapshot.store(Some(Arc::clone(&snapshot)));
                self.published.send_replace(Some(snapshot));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "routing snapshot reload failed; the previous snapshot stays in use");
                self.readiness.snapshot_failed(e.clone());
                Err(e)
            }
        };
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .snapshot_reloads
            .with_label_values(&[label])
            .inc();
        result
    }

    async fn try_reload(&self) -> Result<(Arc<RoutingSnapshot>, Arc<CountedLicenses>), String> {
        let store = self.store().await?;
        // Two connections of the pool, so the two reads overlap.
        let (routing, licenses) =
            tokio::join!(store.load_snapshot(), store.load_license_snapshot());
        let routing = routing.map_err(|e| e.to_string())?;
        let licenses = licenses.map_err(|e| format!("license snapshot: {e}"))?;
        let settings = self.settings.load_full();
        // Counting 100,000 users is a few hundred ms of CPU: off the runtime's workers.
        let counted = tokio::task::spawn_blocking(move || {
            CountedLicenses::count(Arc::new(licenses), &settings.license)
        })
        .await
        .map_err(|e| format!("license count: {e}"))?
        .map_err(|e| format!("license count: {e}"))?;
        Ok((Arc::new(routing), Arc::new(counted)))
    }

    /// The connected store (a cheap handle on the pool), connecting first when needed.
    pub async fn store(&self) -> Result<Store, String> {
        let mut store = self.store.lock().await;
        if let Some(store) = store.as_ref() {
            return Ok(store.clone());
        }
        let connected = Store::open(&self.url)
            .await
            .map_err(|e| format!("provisioning database: {e}"))?;
        *store = Some(connected.clone());
        Ok(connected)
    }

    /// Reloads whenever another process announces a change (PostgreSQL LISTEN/NOTIFY; see
    /// `teamsgw_store::ChangeListener`). Returns at once on SQLite, which has no such channel.
    pub async fn follow_changes(self: Arc<Self>) {
        let mut delay = Duration::from_secs(1);
        let mut listener = loop {
            match ChangeListener::connect(&self.url).await {
                Ok(Some(l)) => break l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for provisioning changes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        };
        tracing::info!("following provisioning changes (LISTEN teamsgw_provisioning)");
        loop {
            match listener.changed().await {
                Ok(()) => tracing::info!("provisioning changed; reloading the routing snapshot"),
                Err(e) => {
                    // The listener reconnects by itself; reload to catch up on what was missed.
                    tracing::warn!(error = %e, "provisioning change listener interrupted");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            let _ = self.reload().await;
        }
    }

    /// Retries the first load with backoff (1 s doubling to 30 s) until a snapshot exists,
    /// so a daemon started before its database becomes ready on its own.
    pub async fn load_until_ready(self: Arc<Self>) {
        let mut delay = Duration::from_secs(1);
        while self.snapshot().is_none() {
            if self.reload().await.is_ok() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    pub async fn close(&self) {
        if let Some(store) = self.store.lock().await.as_ref() {
            store.close().await;
        }
    }
}
