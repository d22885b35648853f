//! Comfort noise towards Teams (issue 37 §4; teams-direct-routing.md §4.4: Teams' core
//! networks require comfort-noise support). A PBX phone with voice activity detection sends
//! nothing while its user is silent, and a silent stream can look like a dead call. Once the
//! PBX's stream has been quiet for [`SILENCE`], the relay sends an RFC 3389 CN packet in that
//! stream every [`INTERVAL`] until it speaks again.
//!
//! The packets we insert take sequence numbers in the PBX's stream, so every later packet of
//! that stream is renumbered after them: Teams sees one stream with neither gaps nor repeats
//! (RFC 3550 §5.1). The timestamps follow the clock (8 kHz: every relayed codec uses it).
//! This module only decides and writes bytes in place; the relay encrypts and sends.

use std::time::{Duration, Instant};

/// Quiet this long, the PBX's stream gets comfort noise.
pub const SILENCE: Duration = Duration::from_millis(200);

/// One CN packet per this much silence. RFC 3389 leaves the rate to the sender (a new packet
/// when the noise changes); ours never changes, so this only keeps the stream alive.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The noise level we describe: -70 dBov (RFC 3389 §3.1), quiet room noise.
const NOISE_LEVEL: u8 = 70;

/// A CN packet: an RTP header and the noise-level byte.
pub const PACKET_LEN: usize = 13;

/// The PBX's stream as last forwarded to Teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stream {
    ssrc: u32,
    /// The last sequence number Teams got (after renumbering).
    seq: u16,
    /// The last real packet's timestamp and when it was forwarded.
    timestamp: u32,
    at: Instant,
}

/// One call's comfort-noise state for the PBX-to-Teams direction.
#[derive(Debug, Default)]
pub struct ComfortNoise {
    stream: Option<Stream>,
    /// Packets we inserted into the current stream: added to its later sequence numbers.
    inserted: u16,
    /// When the next CN packet is due, during silence.
    next: Option<Instant>,
}

impl ComfortNoise {
    /// A PBX RTP packet on its way to Teams (after the payload-type map, before SRTP):
    /// renumbered after the packets we inserted, and remembered. A new SSRC is a new stream
    /// and starts with no offset.
    pub fn forwarded(&mut self, packet: &mut [u8], now: Instant) {
        let Some(header) = packet.get_mut(..12) else {
            return;
        };
        let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if self.stream.is_some_and(|s| s.ssrc != ssrc) {
            self.inserted = 0;
        }
        let seq = u16::from_be_bytes([header[2], header[3]]).wrapping_add(self.inserted);
        header[2..4].copy_from_slice(&seq.to_be_bytes());
        let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        self.stream = Some(Stream {
            ssrc,
            seq,
            timestamp,
            at: now,
        });
        self.next = None;
    }

    /// When [`ComfortNoise::poll`] has something to send next, if the stream exists.
    pub fn deadline(&self) -> Option<Instant> {
        let s = self.stream?;
        Some(self.next.unwrap_or(s.at + SILENCE))
    }

    /// A CN packet with payload type `pt` written into `buf` when one is due at `now`; its
    /// length. The caller sends it only on a call that is not on hold.
    pub fn poll(&mut self, now: Instant, pt: u8, buf: &mut [u8]) -> Option<usize> {
        let due = self.deadline()?;
        let stream = self.stream.as_mut()?;
        if now < due || buf.len() < PACKET_LEN {
            return None;
        }
        stream.seq = stream.seq.wrapping_add(1);
        self.inserted = self.inserted.wrapping_add(1);
        // 8 kHz units since the last real packet; a silence of days still fits (wrapping).
        let elapsed = now.saturating_duration_since(stream.at).as_micros() / 125;
        let timestamp = stream.timestamp.wrapping_add(elapsed as u32);
        buf[0] = 0x80;
        buf[1] = pt & 0x7f;
        buf[2..4].copy_from_slice(&stream.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&stream.ssrc.to_be_bytes());
        buf[12] = NOISE_LEVEL;
        self.next = Some(now + INTERVAL);
        Some(PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, timestamp: u32, ssrc: u32) -> [u8; 172] {
        let mut p = [0u8; 172];
        p[0] = 0x80;
        p[1] = 8;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&timestamp.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    fn seq(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[2], p[3]])
    }

    fn timestamp(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[4], p[5], p[6], p[7]])
    }

    #[test]
    fn silence_gets_cn_in_the_stream_and_speech_resumes_without_gaps_or_repeats() {
        let t0 = Instant::now();
        let mut cn = ComfortNoise::default();
        let mut buf = [0u8; 64];
        assert_eq!(cn.poll(t0, 13, &mut buf), None, "no stream yet");
        let mut p = rtp(100, 8000, 7);
        cn.forwarded(&mut p, t0);
        assert_eq!(seq(&p), 100);
        // Within the silence threshold: nothing.
        assert_eq!(cn.poll(t0 + SILENCE / 2, 13, &mut buf), None);
        assert_eq!(cn.deadline(), Some(t0 + SILENCE));
        // At the threshold: one CN packet (RFC 3389: one byte of noise level), next in the
        // stream, its timestamp 200 ms (1,600 units) on.
        let len = cn.poll(t0 + SILENCE, 13, &mut buf).unwrap();
        assert_eq!(len, PACKET_LEN);
        let first = buf;
        assert_eq!((first[0], first[1], seq(&first)), (0x80, 13, 101));
        assert_eq!(timestamp(&first), 8000 + 1600);
        assert_eq!(&first[8..12], &7u32.to_be_bytes());
        assert_eq!(first[12], NOISE_LEVEL);
        // Then one per interval, not more.
        assert_eq!(cn.poll(t0 + SILENCE + INTERVAL / 2, 13, &mut buf), None);
        cn.poll(t0 + SILENCE + INTERVAL, 13, &mut buf).unwrap();
        assert_eq!(seq(&buf), 102);
        // The PBX speaks again with its own next number: renumbered after ours.
        let mut p = rtp(101, 8000 + 4000, 7);
        cn.forwarded(&mut p, t0 + Duration::from_millis(500));
        assert_eq!(seq(&p), 103);
        assert_eq!(cn.poll(t0 + Duration::from_millis(600), 13, &mut buf), None);
    }

    #[test]
    fn a_new_ssrc_starts_without_an_offset_and_wraps_cleanly() {
        let t0 = Instant::now();
        let mut cn = ComfortNoise::default();
        let mut buf = [0u8; 64];
        let mut p = rtp(u16::MAX, u32::MAX - 100, 7);
        cn.forwarded(&mut p, t0);
        cn.poll(t0 + SILENCE, 13, &mut buf).unwrap();
        assert_eq!(seq(&buf), 0, "sequence numbers wrap (RFC 3550 §5.1)");
        assert_eq!(timestamp(&buf), (u32::MAX - 100).wrapping_add(1600));
        // Music on hold from the same PBX: a new SSRC, its numbers as they are.
        let mut p = rtp(5000, 0, 8);
        cn.forwarded(&mut p, t0 + Duration::from_secs(1));
        assert_eq!(seq(&p), 5000);
    }
}
