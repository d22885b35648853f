//! Graceful shutdown: once draining starts no new work is accepted, and shutdown waits (up to
//! `daemon.drain_seconds`) for the work in flight to finish. Work is anything that holds a
//! [`WorkGuard`]: a call, a transaction, an API request that writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

/// Keeps the daemon from finishing its drain while alive.
#[derive(Debug)]
pub struct WorkGuard(Arc<Drain>);

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// A guard for new work, or `None` once draining (the caller refuses the work, e.g. 503).
    pub fn start_work(self: &Arc<Self>) -> Option<WorkGuard> {
        self.active.fetch_add(1, Ordering::AcqRel);
        let guard = WorkGuard(Arc::clone(self));
        if self.draining.load(Ordering::Acquire) {
            return None; // dropping the guard undoes the increment
        }
        Some(guard)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Stops new work and waits for the rest, at most `limit`. Returns the work left behind.
    pub async fn drain(&self, limit: Duration) -> usize {
        self.draining.store(true, Ordering::Release);
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_work_then_refuses_new_work() {
        let drain = Arc::new(Drain::default());
        let guard = drain.start_work().unwrap();
        let d = Arc::clone(&drain);
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(guard);
        });
        let started = tokio::time::Instant::now();
        let left = drain.drain(Duration::from_secs(10)).await;
        assert_eq!(left, 0);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(d.start_work().is_none());
        assert_eq!(d.active(), 0);
        release.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_limit() {
        let drain = Arc::new(Drain::default());
        let _stuck = drain.start_work().unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(drain.drain(Duration::from_secs(3)).await, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
