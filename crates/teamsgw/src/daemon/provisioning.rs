//! The daemon's view of the provisioning database: the store connection, and the routing and
//! license snapshots in use. A reload builds a whole new routing snapshot and swaps it in; a
//! failed reload keeps the previous one serving and is logged and counted
//! (`teamsgw_snapshot_reloads_total`).
//!
//! The license snapshot (what the console counts from, so a page never reads 100,000 user
//! rows nor counts them) follows every routing reload in a task of its own
//! (`teamsgw_license_snapshot_loads_total`). It costs as much again as the routing snapshot,
//! and routing must not wait for it: an API change answers once routing has it, and a
//! console page waits for the license snapshot to catch up ([`Provisioning::licenses_current`]).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use teamsgw_store::{ChangeListener, RoutingSnapshot, Store};
use tokio::sync::Mutex;

use crate::admin::metrics::Metrics;
use crate::config::Settings;
use crate::daemon::readiness::Readiness;
use crate::operations::license_report::CountedLicenses;

/// Every enterprise's license facts, read and counted under `settings`.
async fn count_licenses(store: Store, settings: Arc<Settings>) -> Result<CountedLicenses, String> {
    let facts = store
        .load_license_snapshot()
        .await
        .map_err(|e| format!("license snapshot: {e}"))?;
    // Counting 100,000 users is a few hundred ms of CPU: off the runtime's workers.
    tokio::task::spawn_blocking(move || CountedLicenses::count(Arc::new(facts), &settings.license))
        .await
        .map_err(|e| format!("license count: {e}"))?
        .map_err(|e| format!("license count: {e}"))
}

pub struct Provisioning {
    url: String,
    store: Mutex<Option<Store>>,
    snapshot: ArcSwapOption<RoutingSnapshot>,
    /// One reload at a time (SIGHUP, the API, the change listener), so the outcome that
    /// /readyz reports is the latest attempt's: a reload that began during a database outage
    /// cannot finish after a later good one and report an error that no longer holds.
    reloading: Mutex<()>,
    licenses: ArcSwapOption<CountedLicenses>,
    /// Routing reloads so far, and the last one the license snapshot has followed (loaded, or
    /// failed to load).
    reloads: tokio::sync::watch::Sender<u64>,
    licenses_followed: tokio::sync::watch::Sender<u64>,
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
            reloading: Mutex::new(()),
            licenses: ArcSwapOption::empty(),
            reloads: tokio::sync::watch::Sender::new(0),
            licenses_followed: tokio::sync::watch::Sender::new(0),
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

    /// The counted license snapshot in use, as it is: it may trail the routing snapshot by
    /// the load in progress.
    pub fn licenses(&self) -> Option<Arc<CountedLicenses>> {
        self.licenses.load_full()
    }

    /// The counted license snapshot once it has followed every routing reload made so far
    /// (at most one load away; after 30 s, or a failed load, the one in use).
    pub async fn licenses_current(&self) -> Option<Arc<CountedLicenses>> {
        let wanted = *self.reloads.borrow();
        let mut followed = self.licenses_followed.subscribe();
        let caught_up = followed.wait_for(|&done| done >= wanted);
        let _ = tokio::time::timeout(Duration::from_secs(30), caught_up).await;
        self.licenses()
    }

    /// Loads and counts the license snapshot after each routing reload; reloads that come
    /// while one load runs are followed by one more load, not one each.
    pub async fn follow_reloads(self: Arc<Self>) {
        let mut reloads = self.reloads.subscribe();
        loop {
            let followed = *self.licenses_followed.borrow();
            if reloads.wait_for(|&n| n > followed).await.is_err() {
                return;
            }
            let target = *reloads.borrow_and_update();
            let result = match self.store().await {
                Ok(store) => count_licenses(store, self.settings.load_full()).await,
                Err(e) => Err(e),
            };
            let label = match result {
                Ok(counted) => {
                    self.licenses.store(Some(Arc::new(counted)));
                    "ok"
                }
                Err(e) => {
                    tracing::error!(error = %e, "license snapshot load failed; the previous one stays in use");
                    "error"
                }
            };
            self.licenses_followed.send_replace(target);
            self.metrics
                .license_snapshot_loads
                .with_label_values(&[label])
                .inc();
        }
    }

    /// Connects when not yet connected, loads a new snapshot and swaps it in.
    ///
    /// The counter moves last, after the log line and the swap, so whoever watches the metric
    /// (ops, the tests) sees a reload's effects once it is counted.
    pub async fn reload(&self) -> Result<(), String> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = match self.try_reload().await {
            Ok(snapshot) => {
                let summary = format!("{} direct routes", snapshot.direct_routes());
                tracing::info!(
                    direct_routes = snapshot.direct_routes(),
                    "routing snapshot loaded"
                );
                self.metrics
                    .snapshot_direct_routes
                    .set(snapshot.direct_routes() as i64);
                self.readiness.snapshot_loaded(summary);
                self.snapshot.store(Some(Arc::clone(&snapshot)));
                self.reloads.send_modify(|n| *n += 1);
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

    async fn try_reload(&self) -> Result<Arc<RoutingSnapshot>, String> {
        self.store()
            .await?
            .load_snapshot()
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "0e1b2c3d-1111-2222-3333-444455556666";

    fn names(p: &CountedLicenses) -> Vec<String> {
        p.facts
            .enterprises()
            .iter()
            .map(|f| f.enterprise.name.clone())
            .collect()
    }

    /// Reloads are followed by license loads (a burst by at most as many), and a page asking
    /// after them sees the last reload's data, never an older one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_license_snapshot_catches_up_with_every_reload_coalescing_bursts() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/teamsgw.db", dir.path().display());
        let settings = Arc::new(ArcSwap::from_pointee(Settings::default()));
        let metrics = Arc::new(Metrics::new().unwrap());
        let p = Arc::new(Provisioning::new(
            url,
            settings,
            Arc::clone(&metrics),
            Arc::default(),
        ));
        assert!(p.licenses_current().await.is_none(), "nothing loaded yet");
        tokio::spawn(Arc::clone(&p).follow_reloads());
        let store = p.store().await.unwrap();
        store.add_enterprise("Acme", TENANT, 5).await.unwrap();
        p.reload().await.unwrap();
        assert_eq!(names(&p.licenses_current().await.unwrap()), ["Acme"]);

        let other = "0e1b2c3d-1111-2222-3333-444455556667";
        store.add_enterprise("Bolt", other, 5).await.unwrap();
        for _ in 0..5 {
            p.reload().await.unwrap();
        }
        assert_eq!(
            names(&p.licenses_current().await.unwrap()),
            ["Acme", "Bolt"]
        );
        let loads = metrics
            .license_snapshot_loads
            .with_label_values(&["ok"])
            .get();
        assert!((2..=6).contains(&loads), "{loads} loads for 6 reloads");
        assert_eq!(
            metrics
                .license_snapshot_loads
                .with_label_values(&["error"])
                .get(),
            0
        );
    }
}
