//! What `/readyz` answers: ready only once the listeners are up and a routing snapshot is loaded,
//! and not ready again once draining starts (so load balancers stop sending new work).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Readiness {
    listeners_up: AtomicBool,
    draining: AtomicBool,
    snapshot: Mutex<SnapshotState>,
}

#[derive(Debug, Default, Clone)]
struct SnapshotState {
    loaded: Option<String>,
    last_error: Option<String>,
}

impl Readiness {
    pub fn set_listeners_up(&self) {
        self.listeners_up.store(true, Ordering::Release);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn snapshot_loaded(&self, summary: String) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.loaded = Some(summary);
            s.last_error = None;
        }
    }

    /// A failed reload keeps a loaded snapshot serving; it only blocks readiness before the first.
    pub fn snapshot_failed(&self, error: String) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.last_error = Some(error);
        }
    }

    /// (ready, JSON body).
    pub fn report(&self) -> (bool, Value) {
        let listeners = self.listeners_up.load(Ordering::Acquire);
        let draining = self.draining.load(Ordering::Acquire);
        let snapshot = self.snapshot.lock().map(|s| s.clone()).unwrap_or_default();
        let reason = if draining {
            Some("draining: shutting down".to_owned())
        } else if !listeners {
            Some("listeners are not up yet".to_owned())
        } else if snapshot.loaded.is_none() {
            Some(match &snapshot.last_error {
                Some(e) => format!("provisioning snapshot not loaded: {e}"),
                None => "provisioning snapshot not loaded yet".to_owned(),
            })
        } else {
            None
        };
        let body = json!({
            "ready": reason.is_none(),
            "reason": reason,
            "listeners": if listeners { "up" } else { "down" },
            "snapshot": snapshot.loaded,
            "snapshot_last_error": snapshot.last_error,
            "draining": draining,
        });
        (reason.is_none(), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_listeners_and_snapshot_and_not_draining() {
        let r = Readiness::default();
        assert!(!r.report().0);
        r.set_listeners_up();
        r.snapshot_failed("db down".into());
        let (ready, body) = r.report();
        assert!(!ready);
        assert!(body["reason"].as_str().unwrap().contains("db down"));
        r.snapshot_loaded("0 direct routes".into());
        assert!(r.report().0);
        // A later failed reload keeps serving the loaded snapshot.
        r.snapshot_failed("db down again".into());
        let (ready, body) = r.report();
        assert!(ready);
        assert_eq!(body["snapshot_last_error"], "db down again");
        r.set_draining();
        assert!(!r.report().0);
    }
}
