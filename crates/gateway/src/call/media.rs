//! The call's view of the media relay: a small interface the driver implements over
//! `crates/media` (and tests over a fake), so the call core never holds a socket.
//!
//! Allocation is answered in the same turn (ports are a local resource, never a wait), so a
//! call knows at once whether it can proceed or must answer 503.

use std::net::SocketAddr;

pub use teamsgw_media::payload_map::PayloadMap;
pub use teamsgw_media::relay::{PbxParams, SessionParams, TeamsParams};
pub use teamsgw_media::srtp::{MasterKey, Suite};

/// What a call got from the relay: its ports and the SRTP key we send to Teams with.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub session: u64,
    pub teams_port: u16,
    pub pbx_port: u16,
    /// 30 bytes of key || salt from a cryptographic source (RFC 4568 §6.1).
    pub local_key: Vec<u8>,
}

/// One leg's counters at the end of a call (for the CDR).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LegCounters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    /// RFC 3550 interarrival jitter, in timestamp units.
    pub jitter: u64,
    pub srtp_auth_failures: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MediaCounters {
    pub teams: LegCounters,
    pub pbx: LegCounters,
}

/// The relay as the call core uses it.
pub trait MediaPlane {
    /// Two port pairs for a new call, or `None` when the pool is exhausted (answer 503).
    fn allocate(&mut self) -> Option<Allocation>;
    /// The negotiated parameters, initially and whenever a leg's offer/answer completes.
    fn apply(&mut self, session: u64, params: SessionParams);
    /// Ends forwarding, returns the ports, and reports the session's counters.
    fn release(&mut self, session: u64) -> MediaCounters;
}

/// A socket address from SDP text (an IP literal and a port); `None` for names or port 0,
/// which leaves the relay to latch on the first packet.
pub fn sdp_addr(address: &str, port: u16) -> Option<SocketAddr> {
    let ip = address.parse().ok()?;
    (port != 0).then(|| SocketAddr::new(ip, port))
}
