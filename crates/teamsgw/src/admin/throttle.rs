//! Sign-in throttling per source address (issue 31 §7): [`FAILURES`] wrong admin tokens
//! within [`WINDOW`], at the console's sign-in or as an API bearer token, lock the source out
//! for [`LOCKOUT`]. While locked out even the right token is refused, so guessing gains
//! nothing by being fast. Behind a reverse proxy every admin shares its address: a lockout
//! then affects them all for a minute, which is the price of not trusting forwarded headers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, Registry};

pub const FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Sources tracked at most; beyond it the stalest are forgotten first.
const TRACKED: usize = 4096;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

pub struct Throttle {
    sources: Mutex<HashMap<IpAddr, Record>>,
    refused: IntCounter,
}

impl Throttle {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let refused = IntCounter::new(
            "teamsgw_admin_locked_out_total",
            "Console sign-ins and API requests refused because their source sent 5 wrong \
             admin tokens within a minute (locked out for 60 s, whatever the token).",
        )?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self {
            sources: Mutex::new(HashMap::new()),
            refused,
        })
    }

    /// How long `source` stays locked out, if it is; a refusal is counted.
    pub fn locked(&self, source: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.sources.lock().ok()?;
        let until = map.get(&source)?.locked_until?;
        let left = (now < until).then(|| until - now)?;
        self.refused.inc();
        Some(left)
    }

    /// A wrong token from `source`.
    pub fn failed(&self, source: IpAddr, now: Instant) {
        let Ok(mut map) = self.sources.lock() else {
            return;
        };
        if map.len() >= TRACKED && !map.contains_key(&source) {
            map.retain(|_, r| {
                now.duration_since(r.first) < WINDOW || r.locked_until.is_some_and(|u| now < u)
            });
            if map.len() >= TRACKED
                && let Some(stalest) = map.iter().min_by_key(|(_, r)| r.first).map(|(k, _)| *k)
            {
                map.remove(&stalest);
            }
        }
        let r = map.entry(source).or_insert(Record {
            failures: 0,
            first: now,
            locked_until: None,
        });
        if now.duration_since(r.first) >= WINDOW || r.locked_until.is_some_and(|u| now >= u) {
            *r = Record {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        r.failures += 1;
        if r.failures >= FAILURES {
            r.locked_until = Some(now + LOCKOUT);
        }
    }

    /// The right token from `source`: its count starts over.
    pub fn succeeded(&self, source: IpAddr) {
        if let Ok(mut map) = self.sources.lock() {
            map.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn five_failures_in_a_minute_lock_the_source_out_for_sixty_seconds() {
        let t = Throttle::new(&Registry::new()).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..4 {
            t.failed(a, t0 + Duration::from_secs(i));
            assert!(t.locked(a, t0 + Duration::from_secs(i)).is_none());
        }
        t.failed(a, t0 + Duration::from_secs(10));
        assert_eq!(
            t.locked(a, t0 + Duration::from_secs(10)),
            Some(LOCKOUT),
            "the fifth failure locks"
        );
        assert!(t.locked(b, t0).is_none(), "per source");
        assert!(t.locked(a, t0 + Duration::from_secs(69)).is_some());
        assert!(t.locked(a, t0 + Duration::from_secs(70)).is_none());
        // Failures spread over more than a minute never lock.
        for i in 0..10 {
            t.failed(b, t0 + Duration::from_secs(20 * i));
        }
        assert!(t.locked(b, t0 + Duration::from_secs(181)).is_none());
        // A success starts the count over.
        for i in 0..4 {
            t.failed(a, t0 + Duration::from_secs(100 + i));
        }
        t.succeeded(a);
        t.failed(a, t0 + Duration::from_secs(105));
        assert!(t.locked(a, t0 + Duration::from_secs(105)).is_none());
    }
}
