//! Where a PBX leg's media may come from: the RTP-bleed class (CVE-2017-14099). A relay that
//! latches onto the first packet it sees hands a call's audio to whoever sprays its port
//! first, and the real phone gets none. Anchors: Asterisk's `strictrtp`, rtpengine's
//! `strict-source`.
//!
//! - [`MediaSource::Sdp`] (the default): only the address in the PBX's SDP `c=` line, any port.
//! - [`MediaSource::Learn`], for PBXs behind NAT whose SDP names a private address: the SDP
//!   address, or a source that sent [`LEARN_PACKETS`] RTP packets in sequence within
//!   [`LEARN_WINDOW`] of the SDP; that source is kept until the next SDP.
//!
//! RTCP comes only from the accepted address. Sans-IO: the caller passes the clock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// `pbx.media_source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediaSource {
    #[default]
    Sdp,
    Learn,
}

impl MediaSource {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sdp" => Some(Self::Sdp),
            "learn" => Some(Self::Learn),
            _ => None,
        }
    }
}

/// RTP packets in sequence that make a source learned.
pub const LEARN_PACKETS: u8 = 4;
/// How long after an SDP a source may be learned.
pub const LEARN_WINDOW: Duration = Duration::from_secs(2);

/// The PBX leg's accepted source, from one SDP to the next.
#[derive(Debug)]
pub struct PbxSource {
    policy: MediaSource,
    sdp: Option<IpAddr>,
    learned: Option<SocketAddr>,
    learn_until: Option<Instant>,
    /// The source being learned, its last sequence number and its run so far.
    candidate: Option<(SocketAddr, u16, u8)>,
}

impl PbxSource {
    pub fn new(policy: MediaSource) -> Self {
        Self {
            policy,
            sdp: None,
            learned: None,
            learn_until: None,
            candidate: None,
        }
    }

    /// The PBX's SDP named `remote` (an answer, or an SDP change): start over.
    pub fn on_sdp(&mut self, remote: Option<SocketAddr>, now: Instant) {
        self.sdp = remote.map(|r| r.ip()).filter(|ip| !ip.is_unspecified());
        self.learned = None;
        self.candidate = None;
        self.learn_until = (self.policy == MediaSource::Learn).then(|| now + LEARN_WINDOW);
    }

    /// Whether an RTP packet with sequence number `seq` from `src` is the PBX's.
    pub fn accept_rtp(&mut self, src: SocketAddr, seq: u16, now: Instant) -> bool {
        if self.sdp == Some(src.ip()) || self.learned == Some(src) {
            return true;
        }
        if self.learned.is_some() || self.learn_until.is_none_or(|until| now > until) {
            return false;
        }
        let run = match self.candidate {
            Some((from, last, run)) if from == src && seq == last.wrapping_add(1) => run + 1,
            _ => 1,
        };
        self.candidate = Some((src, seq, run));
        if run >= LEARN_PACKETS {
            self.learned = Some(src);
            self.candidate = None;
            return true;
        }
        false
    }

    /// Whether RTCP from `src` is the PBX's: from the SDP address or the learned one.
    pub fn accept_rtcp(&self, src: SocketAddr) -> bool {
        self.sdp == Some(src.ip()) || self.learned.is_some_and(|l| l.ip() == src.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const SDP: &str = "192.0.2.20:30000";
    const NAT: &str = "198.51.100.7:61000";
    const EVIL: &str = "203.0.113.66:5000";

    #[test]
    fn sdp_policy_takes_the_sdp_address_on_any_port_and_nothing_else_cve_2017_14099() {
        let t0 = Instant::now();
        let mut s = PbxSource::new(MediaSource::Sdp);
        // Before any SDP nothing is the PBX's.
        assert!(!s.accept_rtp(a(SDP), 1, t0));
        s.on_sdp(Some(a(SDP)), t0);
        // A stranger first, in sequence, many times: never taken.
        for seq in 0..20 {
            assert!(!s.accept_rtp(a(EVIL), seq, t0));
        }
        assert!(!s.accept_rtcp(a(EVIL)));
        assert!(s.accept_rtp(a(SDP), 1, t0));
        assert!(s.accept_rtp(a("192.0.2.20:40000"), 2, t0), "any port");
        assert!(s.accept_rtcp(a("192.0.2.20:30001")));
        // Hold with c=0.0.0.0 names nobody.
        s.on_sdp(Some(a("0.0.0.0:30000")), t0);
        assert!(!s.accept_rtp(a("0.0.0.0:30000"), 3, t0));
    }

    #[test]
    fn learn_policy_locks_after_four_packets_in_sequence_within_two_seconds() {
        let t0 = Instant::now();
        let mut s = PbxSource::new(MediaSource::Learn);
        s.on_sdp(Some(a("10.0.0.5:30000")), t0);
        // Out of sequence, or interleaved with another source: no run.
        assert!(!s.accept_rtp(a(NAT), 10, t0));
        assert!(!s.accept_rtp(a(NAT), 12, t0));
        assert!(!s.accept_rtp(a(EVIL), 13, t0));
        assert!(!s.accept_rtp(a(NAT), 14, t0));
        assert!(!s.accept_rtp(a(NAT), 15, t0));
        assert!(!s.accept_rtp(a(NAT), 16, t0));
        assert!(s.accept_rtp(a(NAT), 17, t0), "the fourth in sequence");
        // Kept until the next SDP: the stranger's own run changes nothing now.
        for seq in 100..110 {
            assert!(!s.accept_rtp(a(EVIL), seq, t0));
        }
        assert!(s.accept_rtcp(a("198.51.100.7:61001")));
        assert!(!s.accept_rtcp(a(EVIL)));
        // The SDP address itself stays the PBX's.
        assert!(s.accept_rtp(a("10.0.0.5:30000"), 1, t0));
    }

    #[test]
    fn learning_closes_two_seconds_after_the_sdp_and_opens_again_with_the_next() {
        let t0 = Instant::now();
        let mut s = PbxSource::new(MediaSource::Learn);
        s.on_sdp(Some(a("10.0.0.5:30000")), t0);
        let late = t0 + LEARN_WINDOW + Duration::from_millis(1);
        for seq in 0..10 {
            assert!(!s.accept_rtp(a(NAT), seq, late));
        }
        s.on_sdp(Some(a("10.0.0.5:30002")), late);
        for seq in 0..3 {
            assert!(!s.accept_rtp(a(NAT), seq, late));
        }
        assert!(s.accept_rtp(a(NAT), 3, late));
    }
}
