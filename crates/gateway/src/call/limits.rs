//! A direct route's admission limits, shared by every call shard: concurrent calls
//! (`max_sessions`) and new calls per second (`max_cps`). Both count the two directions; the
//! caller exempts emergency calls. Time comes in as `now`, so the limits run on a test's clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Concurrent calls per direct route.
#[derive(Debug, Default)]
pub struct SessionCounts(Mutex<HashMap<String, u32>>);

impl SessionCounts {
    /// Takes a slot unless `limit` calls of `fqdn` are up.
    pub fn try_acquire(&self, fqdn: &str, limit: Option<u32>) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let n = map.entry(fqdn.to_owned()).or_insert(0);
        if limit.is_some_and(|l| *n >= l) {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, fqdn: &str) {
        if let Ok(mut map) = self.0.lock()
            && let Some(n) = map.get_mut(fqdn)
        {
            *n = n.saturating_sub(1);
        }
    }
}

/// The burst a rate limit allows: one second's worth of calls at once, then one per 1/N s.
const BURST: Duration = Duration::from_secs(1);

/// Routes whose bucket is full again are forgotten past this many entries.
const PRUNE_ABOVE: usize = 4096;

/// New calls per second per direct route, as a GCRA: each route keeps the time its bucket is
/// empty again (the "theoretical arrival time"); a call is admitted while that stays within
/// [`BURST`] of now. One `Instant` per route, no timer.
#[derive(Debug, Default)]
pub struct CallRates(Mutex<HashMap<String, Instant>>);

impl CallRates {
    /// Admits a new call of `fqdn` unless it is over `limit` calls per second.
    pub fn try_admit(&self, fqdn: &str, limit: Option<u32>, now: Instant) -> bool {
        let Some(limit) = limit.filter(|&l| l > 0) else {
            return true;
        };
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let interval = BURST / limit;
        let Some(tat) = map.get_mut(fqdn) else {
            if map.len() >= PRUNE_ABOVE {
                map.retain(|_, tat| *tat > now);
            }
            map.insert(fqdn.to_owned(), now + interval);
            return true;
        };
        let next = (*tat).max(now) + interval;
        if next > now + BURST {
            return false;
        }
        *tat = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(rates: &CallRates, limit: u32, now: Instant, n: u32) -> u32 {
        (0..n)
            .filter(|_| rates.try_admit("t.example.com", Some(limit), now))
            .count() as u32
    }

    #[test]
    fn a_burst_gets_one_seconds_worth_then_one_per_interval() {
        let rates = CallRates::default();
        let t0 = Instant::now();
        assert_eq!(admitted(&rates, 10, t0, 50), 10);
        // 100 ms later one more call's credit has come back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(admitted(&rates, 10, t1, 5), 1);
        // After a quiet second the full burst is back.
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(admitted(&rates, 10, t2, 50), 10);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_never_refused_and_above_it_is() {
        let rates = CallRates::default();
        let t0 = Instant::now();
        // 5 calls a second for 10 s against a limit of 5.
        let steady = (0..50)
            .filter(|i| rates.try_admit("a", Some(5), t0 + Duration::from_millis(200 * i)))
            .count();
        assert_eq!(steady, 50);
        // 20 a second against the same limit: the burst, then 5 a second.
        let rates = CallRates::default();
        let fast = (0..200)
            .filter(|i| rates.try_admit("a", Some(5), t0 + Duration::from_millis(50 * i)))
            .count();
        assert!((50..=56).contains(&fast), "{fast} admitted in 10 s at 5/s");
    }

    #[test]
    fn routes_and_unlimited_routes_are_independent() {
        let rates = CallRates::default();
        let now = Instant::now();
        assert_eq!(admitted(&rates, 1, now, 3), 1);
        assert!(rates.try_admit("other", Some(1), now));
        assert!((0..1000).all(|_| rates.try_admit("free", None, now)));
    }
}
