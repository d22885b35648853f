//! Says which refusals to log: at most one line per peer address per minute, so a peer that
//! keeps failing its TLS handshake (a wrong certificate, a scanner) is visible at warn level
//! without flooding the log. The table is bounded: when full, it starts over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

const QUIET: Duration = Duration::from_secs(60);
const MAX_PEERS: usize = 4096;

#[derive(Debug, Default)]
pub struct RefusalLog(Mutex<HashMap<IpAddr, Instant>>);

impl RefusalLog {
    /// Whether a refusal of `peer` at `now` gets a log line.
    pub fn should_log(&self, peer: IpAddr, now: Instant) -> bool {
        let Ok(mut last) = self.0.lock() else {
            return true;
        };
        if let Some(at) = last.get(&peer)
            && now.saturating_duration_since(*at) < QUIET
        {
            return false;
        }
        if last.len() >= MAX_PEERS {
            last.retain(|_, at| now.saturating_duration_since(*at) < QUIET);
            if last.len() >= MAX_PEERS {
                last.clear();
            }
        }
        last.insert(peer, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_peer_per_minute() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(log.should_log(a, t0));
        assert!(!log.should_log(a, t0 + Duration::from_secs(59)));
        assert!(log.should_log(b, t0 + Duration::from_secs(1)));
        assert!(log.should_log(a, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_addresses() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..3 * MAX_PEERS as u32 {
            assert!(log.should_log(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert!(log.0.lock().unwrap().len() <= MAX_PEERS);
    }
}
