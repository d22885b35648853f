//! Supervised call shards (issue 31 §4). A call shard owns thousands of calls; a panic in it
//! (a bug reached by some input) must not take them down silently and leave the shard dead,
//! with every later call hashed to it failing. The shard's driver runs each step of its core
//! under [`guarded`]; a panic is counted (`teamsgw_internal_errors_total{task}`), logged with
//! the shard's call ids, and the core recovers ([`crate::call::CallCore::recover`]): every
//! call ends with BYE where its state allows and a record saying "internal error", and the
//! shard goes on with fresh tables. `/readyz` says "degraded" for [`DEGRADED_FOR`] after.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a restart shows in `/readyz`.
pub const DEGRADED_FOR: Duration = Duration::from_secs(60);

/// Runs `f`; a panic comes back as its message.
pub fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| message(p.as_ref()))
}

fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Recent restarts, for `/readyz`.
#[derive(Debug, Default)]
pub struct Restarts {
    recent: Mutex<VecDeque<(String, Instant)>>,
}

impl Restarts {
    pub fn record(&self, task: String, now: Instant) {
        if let Ok(mut r) = self.recent.lock() {
            r.retain(|(_, at)| now.duration_since(*at) < DEGRADED_FOR);
            r.push_back((task, now));
        }
    }

    /// What restarted within [`DEGRADED_FOR`] of `now`, and how long ago.
    pub fn degraded(&self, now: Instant) -> Vec<String> {
        let Ok(r) = self.recent.lock() else {
            return vec!["the restart record is unreadable".to_owned()];
        };
        r.iter()
            .filter(|(_, at)| now.duration_since(*at) < DEGRADED_FOR)
            .map(|(task, at)| {
                format!(
                    "{task} restarted after an internal error {} s ago",
                    now.duration_since(*at).as_secs()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message_and_a_restart_shows_for_a_minute() {
        assert_eq!(guarded(|| 7), Ok(7));
        #[allow(clippy::panic)]
        let caught = guarded(|| -> u8 { panic!("boom {}", 1) });
        assert_eq!(caught, Err("boom 1".to_owned()));
        let r = Restarts::default();
        let t0 = Instant::now();
        r.record("call shard 1".into(), t0);
        assert_eq!(
            r.degraded(t0 + Duration::from_secs(5)),
            ["call shard 1 restarted after an internal error 5 s ago"]
        );
        assert!(r.degraded(t0 + DEGRADED_FOR).is_empty());
    }
}
