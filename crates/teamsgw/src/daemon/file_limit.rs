//! The open-file limit. Every call holds up to six media sockets (RTP and RTCP per leg plus a
//! connected twin per RTP socket) besides SIP connections, so the common soft limit of 1024
//! would cap a node at about 150 calls. The daemon raises its soft `RLIMIT_NOFILE` to the hard
//! limit at start (as Go's runtime does) and says when even that is short of what the media
//! port range can use.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Sockets a call may hold in the media relay.
pub const MEDIA_SOCKETS_PER_CALL: u64 = 6;
/// Left for SIP connections, the database, logs and the admin listener.
const RESERVE: u64 = 1024;

/// Raises the soft limit to the hard one; returns the soft limit in force afterwards
/// (`None`: unlimited).
pub fn raise() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

/// Calls the media port range can carry (two RTP/RTCP pairs each) and, when the open-file
/// limit allows fewer, how many it allows.
pub fn media_calls(port_min: u16, port_max: u16, limit: Option<u64>) -> (u64, Option<u64>) {
    let first = u64::from(port_min) + u64::from(port_min % 2);
    let pairs = (u64::from(port_max) + 1).saturating_sub(first) / 2;
    let by_ports = pairs / 2;
    let by_files = limit.map(|l| l.saturating_sub(RESERVE) / MEDIA_SOCKETS_PER_CALL);
    (by_ports, by_files.filter(|&f| f < by_ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_needs_more_than_the_usual_soft_limit() {
        // 20000..=29999: 5000 pairs, 2500 calls.
        assert_eq!(media_calls(20000, 29999, None), (2500, None));
        assert_eq!(media_calls(20000, 29999, Some(1024 * 1024)), (2500, None));
        assert_eq!(media_calls(20000, 29999, Some(1024)), (2500, Some(0)));
        assert_eq!(media_calls(20000, 29999, Some(7024)), (2500, Some(1000)));
        // An odd port_min starts at the next even port: pairs 20002, 20004, 20006 (20008 has
        // no odd partner in range), one call.
        assert_eq!(media_calls(20001, 20008, None), (1, None));
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(raise(), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}
