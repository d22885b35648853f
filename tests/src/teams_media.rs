//! A Teams media processor for tests, on loopback: SDES-SRTP with its own key, answering every
//! audio packet teamsgw sends with a packet of its own tone ([`TEAMS_MEDIA_TONE`], never the
//! phone's), and every RFC 4733 event with the next event ([`answering_event`]). A phone that
//! hears that tone or those events heard both SRTP directions; a relay that looped the phone's
//! media back would be caught. It records the G.711 audio it decrypted and the event codes at
//! its telephone-event payload type.
//!
//! Nothing here is teamsgw's: SRTP is webrtc-srtp (differential-tested against ours in
//! `crates/media/tests`), and SDP is read by [`SdpFacts`] below, not by `teamsgw-sdp`.

use std::f64::consts::PI;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Teams answers with AES_CM_128_HMAC_SHA1_80 (teams-direct-routing.md §0).
const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// What the stand-in sends: a tone no phone in the tests uses.
pub const TEAMS_MEDIA_TONE: u32 = 1000;

/// The facts of an SDP description the stand-in needs, read line by line (RFC 8866 §5): the
/// audio formats and the `a=crypto` lines of the first audio stream (RFC 4568 §9.1).
#[derive(Debug, Default)]
pub struct SdpFacts {
    pub formats: Vec<String>,
    /// (tag, suite, key||salt) of each crypto line.
    pub cryptos: Vec<(u32, String, Vec<u8>)>,
}

impl SdpFacts {
    pub fn read(sdp: &str) -> SdpFacts {
        let mut facts = SdpFacts::default();
        let mut in_audio = false;
        for line in sdp.lines().map(str::trim_end) {
            if let Some(m) = line.strip_prefix("m=") {
                if in_audio {
                    break;
                }
                let fields: Vec<&str> = m.split_whitespace().collect();
                in_audio = fields.first() == Some(&"audio");
                if in_audio {
                    facts.formats = fields.iter().skip(3).map(|f| (*f).to_owned()).collect();
                }
            } else if let Some(c) = line.strip_prefix("a=crypto:").filter(|_| in_audio) {
                let fields: Vec<&str> = c.split_whitespace().collect();
                let key = fields
                    .get(2)
                    .and_then(|k| k.strip_prefix("inline:"))
                    .map(|k| k.split('|').next().unwrap_or(k))
                    .and_then(|k| STANDARD.decode(k).ok());
                if let (Some(tag), Some(suite), Some(key)) = (
                    fields.first().and_then(|t| t.parse().ok()),
                    fields.get(1),
                    key,
                ) {
                    facts.cryptos.push((tag, (*suite).to_owned(), key));
                }
            }
        }
        facts
    }

    /// The crypto line with Teams' suite, if the description offers it.
    fn ours(&self) -> Option<&(u32, String, Vec<u8>)> {
        self.cryptos.iter().find(|(_, suite, _)| suite == SUITE)
    }
}

/// One RTP packet the stand-in decrypted: what a Teams media processor saw of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub at: Instant,
    pub payload_type: u8,
    pub seq: u16,
    pub ssrc: u32,
}

pub struct TeamsMedia {
    socket: UdpSocket,
    key: Vec<u8>,
    events: Arc<Mutex<Vec<u8>>>,
    heard: Arc<Mutex<Vec<f64>>>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    event_pt: u8,
}

impl TeamsMedia {
    /// A stand-in bound on loopback, not yet started; `events` collects telephone-event codes.
    pub fn bind(events: Arc<Mutex<Vec<u8>>>) -> Option<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let key = (0..30u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        Some(Self {
            socket,
            key,
            events,
            heard: Arc::default(),
            arrivals: Arc::default(),
            event_pt: 101,
        })
    }

    /// Every RTP packet decrypted from now on is appended to `arrivals`.
    pub fn record_arrivals(mut self, arrivals: Arc<Mutex<Vec<Arrival>>>) -> Self {
        self.arrivals = arrivals;
        self
    }

    /// The payload type our descriptions give telephone-event (101 by default).
    pub fn event_payload_type(mut self, pt: u8) -> Self {
        self.event_pt = pt;
        self
    }

    /// The 8 kHz samples of the PCMU or PCMA audio the stand-in decrypted, as it arrives.
    pub fn heard(&self) -> Arc<Mutex<Vec<f64>>> {
        Arc::clone(&self.heard)
    }

    /// Our description with `formats` (payload type numbers, telephone-event added)
    /// and our key under crypto `tag`; version `version` of session `id`.
    pub fn sdp(&self, formats: &str, tag: u32, id: u32, version: u32) -> String {
        let port = self.socket.local_addr().map(|a| a.port()).unwrap_or(0);
        format!(
            "v=0\r\no=- {id} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/SAVP {formats} {pt}\r\na=rtpmap:{pt} telephone-event/8000\r\n\
             a=crypto:{tag} {SUITE} inline:{}\r\na=rtcp-mux\r\na=sendrecv\r\n",
            STANDARD.encode(&self.key),
            pt = self.event_pt
        )
    }

    /// Answers an SDES offer: starts the media and returns our answer, with the offer's first
    /// codec and comfort noise (13) when offered, as Teams supports it (§4.4).
    pub fn answer(self, offer: &[u8]) -> Option<String> {
        let offer = SdpFacts::read(std::str::from_utf8(offer).ok()?);
        // Wherever an offer lists our suite (rtpengine offers a dozen, AEAD first).
        let (tag, _, theirs) = offer.ours()?.clone();
        let mut formats = offer.formats.first()?.clone();
        if formats != "13" && offer.formats.iter().any(|f| f == "13") {
            formats.push_str(" 13");
        }
        let answer = self.sdp(&formats, tag, 1, 1);
        self.start(&theirs)?;
        Some(answer)
    }

    /// Takes the answer to our offer (from [`TeamsMedia::sdp`]) and starts the media.
    pub fn answered(self, answer: &[u8]) -> Option<()> {
        let answer = SdpFacts::read(std::str::from_utf8(answer).ok()?);
        let (_, _, theirs) = answer.ours()?.clone();
        self.start(&theirs)
    }

    fn start(self, theirs: &[u8]) -> Option<()> {
        let profile = ProtectionProfile::Aes128CmHmacSha1_80;
        let (their_key, their_salt) = (theirs.get(..16)?, theirs.get(16..30)?);
        let mut rx = Context::new(their_key, their_salt, profile, None, None).ok()?;
        let mut tx = Context::new(&self.key[..16], &self.key[16..], profile, None, None).ok()?;
        let Self {
            socket,
            events,
            heard,
            arrivals,
            event_pt,
            ..
        } = self;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let packet = &buf[..n];
                // RTCP shares the port (rtcp-mux, RFC 5761 §4): checked, not answered.
                if n > 1 && (200..=204).contains(&packet[1]) {
                    let _ = rx.decrypt_rtcp(packet);
                    continue;
                }
                let Ok(plain) = rx.decrypt_rtp(packet) else {
                    continue;
                };
                let Some(start) = payload_offset(&plain) else {
                    continue;
                };
                let pt = plain[1] & 0x7f;
                arrivals.lock().unwrap().push(Arrival {
                    at: Instant::now(),
                    payload_type: pt,
                    seq: u16::from_be_bytes([plain[2], plain[3]]),
                    ssrc: u32::from_be_bytes([plain[8], plain[9], plain[10], plain[11]]),
                });
                let reply = match pt {
                    pt if pt == event_pt => {
                        events.lock().unwrap().push(plain[start]);
                        event_packet(&plain, start)
                    }
                    0 | 8 => {
                        let law = if pt == 0 { Law::Mu } else { Law::A };
                        heard
                            .lock()
                            .unwrap()
                            .extend(plain[start..].iter().map(|&b| law.decode(b)));
                        tone_packet(&plain[..start], plain.len() - start, law)
                    }
                    _ => continue,
                };
                if let Ok(out) = tx.encrypt_rtp(&reply) {
                    let _ = socket.send_to(&out, from);
                }
            }
        });
        Some(())
    }
}

/// Where an RTP packet's payload starts (RFC 3550 §5.1, §5.3.1: CSRCs and a header extension
/// come first), if it has one.
fn payload_offset(p: &[u8]) -> Option<usize> {
    let mut start = 12 + 4 * usize::from(*p.first()? & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(start + 2)?, *p.get(start + 3)?]);
        start += 4 + 4 * usize::from(words);
    }
    (p.len() > start).then_some(start)
}

/// The event the stand-in answers RFC 4733 event `code` with: the next of the twelve keypad
/// events (§3.2: 0-9, then `*` 10 and `#` 11, then 0 again), so keypad digits that come back
/// unchanged came from a loop. Other events are answered as they came.
pub fn answering_event(code: u8) -> u8 {
    if code < 12 { (code + 1) % 12 } else { code }
}

/// `packet` (an RFC 4733 event at `start`) as the stand-in's own: another SSRC, and the event
/// [`answering_event`] gives.
fn event_packet(packet: &[u8], start: usize) -> Vec<u8> {
    let mut p = packet.to_vec();
    for b in &mut p[8..12] {
        *b ^= 0x5a;
    }
    p[start] = answering_event(p[start]);
    p
}

/// A packet with `header`'s sequence number and timestamp, another SSRC (so the phone does not
/// take it for a loop of its own stream), and `len` samples of [`TEAMS_MEDIA_TONE`] at the
/// samples that timestamp names, so consecutive packets continue one tone.
fn tone_packet(header: &[u8], len: usize, law: Law) -> Vec<u8> {
    let mut p = header.to_vec();
    for b in &mut p[8..12] {
        *b ^= 0x5a;
    }
    let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let step = 2.0 * PI * f64::from(TEAMS_MEDIA_TONE) / 8000.0;
    p.extend((0..len).map(|i| {
        let t = f64::from(timestamp.wrapping_add(i as u32) % 8000);
        law.encode((8000.0 * (step * t).sin()) as i16)
    }));
    p
}

#[derive(Clone, Copy)]
enum Law {
    Mu,
    A,
}

impl Law {
    /// G.711 to linear (ITU-T G.711 §3 for μ-law, §2 for A-law).
    fn decode(self, byte: u8) -> f64 {
        match self {
            Law::Mu => {
                let u = !byte;
                let exponent = (u >> 4) & 7;
                let magnitude = (((i32::from(u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
                f64::from(if u & 0x80 != 0 { -magnitude } else { magnitude })
            }
            Law::A => {
                let a = byte ^ 0x55;
                let exponent = (a >> 4) & 7;
                let mantissa = i32::from(a & 0x0f);
                let magnitude = match exponent {
                    0 => (mantissa << 4) + 8,
                    e => ((mantissa << 4) + 0x108) << (e - 1),
                };
                f64::from(if a & 0x80 != 0 { magnitude } else { -magnitude })
            }
        }
    }

    /// Linear to G.711 (the segment search of ITU-T G.711's reference encoder).
    fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => {
                let sign = if sample < 0 { 0x80 } else { 0 };
                let magnitude = (i32::from(sample).abs() + 0x84).min(0x7fff);
                let exponent = (7 - (magnitude.leading_zeros() as i32 - 17)).clamp(0, 7);
                let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
                !(sign | ((exponent as u8) << 4) | mantissa as u8)
            }
            Law::A => {
                let sign = if sample >= 0 { 0x80 } else { 0 };
                let magnitude = (i32::from(sample).abs() >> 3).min(0xfff);
                let (exponent, mantissa) = if magnitude < 32 {
                    (0, magnitude >> 1)
                } else {
                    let e = 31 - magnitude.leading_zeros() as i32 - 4;
                    (e, (magnitude >> e) & 0x0f)
                };
                (sign | ((exponent as u8) << 4) | mantissa as u8) ^ 0x55
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoders invert the decoders within G.711's quantisation (a tone survives them).
    #[test]
    fn g711_encoding_round_trips_within_a_quantisation_step() {
        for law in [Law::Mu, Law::A] {
            for s in (-32000i32..32000).step_by(37) {
                let back = law.decode(law.encode(s as i16));
                let step = (f64::from(s).abs() / 16.0).max(16.0);
                assert!(
                    (back - f64::from(s)).abs() <= step,
                    "{s} came back as {back}"
                );
            }
        }
    }

    #[test]
    fn sdp_facts_read_the_audio_stream_only() {
        let sdp = "v=0\r\nm=audio 4000 RTP/SAVP 0 8 101\r\n\
                   a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^31\r\n\
                   m=video 4002 RTP/SAVP 96\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n";
        let facts = SdpFacts::read(sdp);
        assert_eq!(facts.formats, ["0", "8", "101"]);
        assert_eq!(facts.cryptos.len(), 1);
        assert_eq!(facts.cryptos[0].0, 2);
        assert_eq!(facts.cryptos[0].2, (0..30).collect::<Vec<u8>>());
    }
}
