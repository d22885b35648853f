//! Supervised tasks (issue 31 §4). A call shard owns thousands of calls and the client driver
//! every user's registration; a panic in either (a bug reached by some input) must not take
//! them down silently and leave the task dead.
//! - A call shard's driver runs each step of its core under [`guarded`]; after a panic the
//!   core recovers ([`crate::call::CallCore::recover`]): every call ends with BYE where its
//!   state allows and a record saying "internal error", and the shard goes on with fresh
//!   tables.
//! - The client driver runs as a task its supervisor restarts with fresh state and the last
//!   users it was given, who then register again (`crate::client`).
//!
//! Either way the panic is counted (`teamsgw_internal_errors_total{task}`) and logged, and
//! `/readyz` says "degraded" for [`DEGRADED_FOR`] after ([`Supervision`]).

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;

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

/// Runs the task `start` spawns until it ends. A panic is counted, logged and shown in
/// `/readyz`, and the task is started again (`start(true)`), at most once a second, so a task
/// that panics at every start cannot spin.
pub async fn restart_on_panic(
    supervision: Supervision,
    task: &'static str,
    who: &'static str,
    mut start: impl FnMut(bool) -> tokio::task::JoinHandle<()>,
) {
    let mut restarted = false;
    loop {
        let started = Instant::now();
        match start(restarted).await {
            Err(e) if e.is_panic() => {
                let panic = message(e.into_panic().as_ref());
                tracing::error!(task, %panic, "{who} panicked and starts again");
                supervision.restarted(task, who.to_owned(), Instant::now());
                restarted = true;
                let quiet = Duration::from_secs(1).saturating_sub(started.elapsed());
                tokio::time::sleep(quiet).await;
            }
            _ => return,
        }
    }
}

/// What every supervisor reports a caught panic to: the counter and the restarts `/readyz`
/// shows. One per daemon, shared by the call shards and the client driver.
#[derive(Debug, Clone)]
pub struct Supervision {
    errors: IntCounterVec,
    restarts: Arc<Restarts>,
}

impl Supervision {
    /// `errors` is `teamsgw_internal_errors_total{task}`.
    pub fn new(errors: IntCounterVec) -> Self {
        Self {
            errors,
            restarts: Arc::default(),
        }
    }

    /// Counts a panic in `task` (the metric label) and shows `who` as restarted.
    pub fn restarted(&self, task: &str, who: String, now: Instant) {
        self.errors.with_label_values(&[task]).inc();
        self.restarts.record(who, now);
    }

    /// What restarted within [`DEGRADED_FOR`] of `now` (`/readyz`).
    pub fn degraded(&self, now: Instant) -> Vec<String> {
        self.restarts.degraded(now)
    }
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
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_task_that_panics_starts_again_at_most_once_a_second_until_it_ends() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let errors =
            IntCounterVec::new(prometheus::Opts::new("errors", "errors"), &["task"]).unwrap();
        let supervision = Supervision::new(errors.clone());
        let starts = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&starts);
        let t0 = Instant::now();
        rt.block_on(restart_on_panic(
            supervision.clone(),
            "test",
            "the test task",
            move |restarted| {
                let n = {
                    let mut s = seen.lock().unwrap();
                    s.push(restarted);
                    s.len()
                };
                tokio::spawn(async move {
                    if n < 3 {
                        panic!("injected {n}");
                    }
                })
            },
        ));
        assert_eq!(*starts.lock().unwrap(), [false, true, true]);
        assert_eq!(errors.with_label_values(&["test"]).get(), 2);
        assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
        let degraded = supervision.degraded(Instant::now());
        assert_eq!(degraded.len(), 2, "{degraded:?}");
        assert!(
            degraded
                .iter()
                .all(|d| d.starts_with("the test task restarted after an internal error")),
            "{degraded:?}"
        );
    }

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
