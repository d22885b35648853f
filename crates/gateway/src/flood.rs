//! Requests outside dialogs per source address on the PBX listeners (issue 31 §6; anchor:
//! Kamailio's `pike`). The PBX listener faces the whole internet by default, and every new
//! request costs a parse, a routing lookup and maybe a transaction: a token bucket per source
//! lets [`FloodGuard::rate`] a second through with bursts of twice that; the rest is dropped
//! unanswered (an answer would feed an amplification). A source that keeps going past its
//! bucket, more than [`BAN_AFTER`] times its rate in drops within [`BAN_WINDOW`], is banned
//! for [`BAN_FOR`]: nothing of it is even parsed further. In-dialog requests and responses
//! are not counted: a busy PBX's calls must never lose a BYE.
//!
//! The table is bounded: past [`TRACKED`] sources, the idle ones are forgotten, and new
//! sources share one overflow bucket, so spoofed floods cost no memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const BAN_WINDOW: Duration = Duration::from_secs(10);
pub const BAN_AFTER: u32 = 5;
pub const BAN_FOR: Duration = Duration::from_secs(60);
const TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodVerdict {
    Pass,
    /// Over the source's rate: dropped.
    Drop,
    /// The source is banned; `newly` on the request that got it banned.
    Banned {
        newly: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    window: Instant,
    dropped: u32,
    banned_until: Option<Instant>,
}

impl Bucket {
    fn new(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
            window: now,
            dropped: 0,
            banned_until: None,
        }
    }
}

#[derive(Debug)]
pub struct FloodGuard {
    rate: f64,
    burst: f64,
    sources: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
    /// When a full table was last pruned (at most once a second: pruning is O(table)).
    pruned: Option<Instant>,
}

impl FloodGuard {
    /// `rate` requests a second per source (`pbx.max_requests_per_second_per_source`).
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            burst: 2.0 * rate,
            sources: HashMap::new(),
            overflow: None,
            pruned: None,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether a request outside any dialog from `source` goes on.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> FloodVerdict {
        let (rate, burst) = (self.rate, self.burst);
        if !self.sources.contains_key(&source)
            && self.sources.len() >= TRACKED
            && self
                .pruned
                .is_none_or(|p| now.duration_since(p) >= Duration::from_secs(1))
        {
            self.pruned = Some(now);
            self.sources.retain(|_, b| {
                now.duration_since(b.last) < BAN_WINDOW || b.banned_until.is_some_and(|u| now < u)
            });
        }
        let bucket = if self.sources.len() < TRACKED || self.sources.contains_key(&source) {
            self.sources
                .entry(source)
                .or_insert_with(|| Bucket::new(burst, now))
        } else {
            self.overflow.get_or_insert_with(|| Bucket::new(burst, now))
        };
        if let Some(until) = bucket.banned_until {
            if now < until {
                return FloodVerdict::Banned { newly: false };
            }
            *bucket = Bucket::new(burst, now);
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return FloodVerdict::Pass;
        }
        if now.duration_since(bucket.window) >= BAN_WINDOW {
            bucket.window = now;
            bucket.dropped = 0;
        }
        bucket.dropped += 1;
        if f64::from(bucket.dropped) > f64::from(BAN_AFTER) * rate {
            bucket.banned_until = Some(now + BAN_FOR);
            return FloodVerdict::Banned { newly: true };
        }
        FloodVerdict::Drop
    }

    /// Sources tracked (bounded by [`TRACKED`]).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_source_gets_its_rate_with_bursts_of_twice_that_and_the_rest_is_dropped() {
        let mut g = FloodGuard::new(50);
        let t0 = Instant::now();
        let passed = (0..150)
            .filter(|_| g.check(ip(1), t0) == FloodVerdict::Pass)
            .count();
        assert_eq!(passed, 100, "the burst");
        // Another source is not affected.
        assert_eq!(g.check(ip(2), t0), FloodVerdict::Pass);
        // A second later 50 more tokens.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..100)
            .filter(|_| g.check(ip(1), t1) == FloodVerdict::Pass)
            .count();
        assert_eq!(passed, 50);
    }

    #[test]
    fn sustained_abuse_bans_the_source_for_a_while_then_it_starts_over() {
        let mut g = FloodGuard::new(50);
        let t0 = Instant::now();
        let mut banned_at = None;
        for i in 0..2_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            if let FloodVerdict::Banned { newly: true } = g.check(ip(9), now) {
                banned_at = Some(now);
                break;
            }
        }
        let banned_at = banned_at.expect("banned");
        assert_eq!(
            g.check(ip(9), banned_at + Duration::from_secs(59)),
            FloodVerdict::Banned { newly: false }
        );
        assert_eq!(g.check(ip(9), banned_at + BAN_FOR), FloodVerdict::Pass);
    }

    #[test]
    fn the_table_stays_bounded_under_a_spoofed_flood() {
        let mut g = FloodGuard::new(50);
        let t0 = Instant::now();
        for n in 0..(TRACKED as u32 + 10_000) {
            g.check(ip(n), t0);
        }
        assert!(g.tracked() <= TRACKED);
        // A long-known source keeps its own bucket.
        assert_eq!(g.check(ip(1), t0), FloodVerdict::Pass);
    }
}
