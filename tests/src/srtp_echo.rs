//! An SRTP echo on loopback, standing for a Teams media processor: it decrypts what teamsgw
//! sends with teamsgw's key and sends it back encrypted with its own, from another SSRC, so
//! a phone hears its own tone through both SRTP directions. It records the RFC 4733 event
//! codes it decrypted (at its telephone-event payload type) and the G.711 audio it heard, decoded. It can answer an SDES offer (a Teams proxy's 2xx) or make one (a
//! Teams INVITE, such as one with Replaces).

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teamsgw_media::srtp::{Context, MasterKey, Suite};
use teamsgw_sdp::Crypto;

/// Teams answers with AES_CM_128_HMAC_SHA1_80 (teams-direct-routing.md §0).
const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

pub struct SrtpEcho {
    socket: UdpSocket,
    key: Vec<u8>,
    events: Arc<Mutex<Vec<u8>>>,
    heard: Arc<Mutex<Vec<f64>>>,
    event_pt: u8,
}

impl SrtpEcho {
    /// An echo bound on loopback, not yet started; `events` collects telephone-event codes.
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
            event_pt: 101,
        })
    }

    /// The payload type our descriptions give telephone-event (101 by default).
    pub fn event_payload_type(mut self, pt: u8) -> Self {
        self.event_pt = pt;
        self
    }

    /// The 8 kHz samples of the PCMU or PCMA audio the echo decrypted, as it arrives.
    pub fn heard(&self) -> Arc<Mutex<Vec<f64>>> {
        Arc::clone(&self.heard)
    }

    /// Our description with `formats` (payload type numbers, telephone-event added)
    /// and our key under crypto `tag`; version `version` of session `id`.
    pub fn sdp(&self, formats: &str, tag: u32, id: u32, version: u32) -> String {
        let port = self.socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let crypto = Crypto::inline(tag, SUITE, &self.key);
        format!(
            "v=0\r\no=- {id} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/SAVP {formats} {pt}\r\na=rtpmap:{pt} telephone-event/8000\r\n\
             a=crypto:{}\r\na=rtcp-mux\r\na=sendrecv\r\n",
            crypto.to_value(),
            pt = self.event_pt
        )
    }

    /// Answers an SDES offer: starts echoing and returns our answer.
    pub fn answer(self, offer: &[u8]) -> Option<String> {
        let offer = teamsgw_sdp::parse(std::str::from_utf8(offer).ok()?).ok()?;
        let audio = offer.audio()?;
        // Wherever an offer lists our suite (rtpengine offers a dozen, AEAD first).
        let crypto = audio.cryptos().into_iter().find(|c| c.suite == SUITE)?;
        let codec = audio.formats.first()?.clone();
        let answer = self.sdp(&codec, crypto.tag, 1, 1);
        self.start(&crypto.keys.first()?.key_salt)?;
        Some(answer)
    }

    /// Takes the answer to our offer (from [`SrtpEcho::sdp`]) and starts echoing.
    pub fn answered(self, answer: &[u8]) -> Option<()> {
        let answer = teamsgw_sdp::parse(std::str::from_utf8(answer).ok()?).ok()?;
        let audio = answer.audio()?;
        let crypto = audio.cryptos().into_iter().find(|c| c.suite == SUITE)?;
        self.start(&crypto.keys.first()?.key_salt)
    }

    fn start(self, theirs: &[u8]) -> Option<()> {
        let suite = Suite::from_name(SUITE)?;
        let theirs = MasterKey::from_bytes(theirs)?;
        let ours = MasterKey::from_bytes(&self.key)?;
        let Self {
            socket,
            events,
            heard,
            event_pt,
            ..
        } = self;
        std::thread::spawn(move || {
            let mut rx = Context::new(suite, &theirs, None);
            let mut tx = Context::new(suite, &ours, None);
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let rtcp = n > 1 && (200..=204).contains(&buf[1]);
                let plain = if rtcp {
                    rx.unprotect_rtcp(&mut buf, n)
                } else {
                    rx.unprotect_rtp(&mut buf, n)
                };
                let Ok(len) = plain else { continue };
                let start = 12 + 4 * usize::from(buf[0] & 0x0f);
                if !rtcp && len > start {
                    let payload = &buf[start..len];
                    match buf[1] & 0x7f {
                        pt if pt == event_pt => events.lock().unwrap().push(payload[0]),
                        0 => heard
                            .lock()
                            .unwrap()
                            .extend(payload.iter().map(|&b| ulaw(b))),
                        8 => heard
                            .lock()
                            .unwrap()
                            .extend(payload.iter().map(|&b| alaw(b))),
                        _ => {}
                    }
                }
                if !rtcp && len >= 12 {
                    // Another SSRC, so the phone does not take its echo for a loop.
                    for b in &mut buf[8..12] {
                        *b ^= 0x5a;
                    }
                }
                let out = if rtcp {
                    tx.protect_rtcp(&mut buf, len)
                } else {
                    tx.protect_rtp(&mut buf, len)
                };
                if let Ok(len) = out {
                    let _ = socket.send_to(&buf[..len], from);
                }
            }
        });
        Some(())
    }
}

/// G.711 μ-law to linear (ITU-T G.711 §3).
fn ulaw(byte: u8) -> f64 {
    let u = !byte;
    let exponent = (u >> 4) & 7;
    let magnitude = (((i32::from(u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    f64::from(if u & 0x80 != 0 { -magnitude } else { magnitude })
}

/// G.711 A-law to linear (ITU-T G.711 §2).
fn alaw(byte: u8) -> f64 {
    let a = byte ^ 0x55;
    let exponent = (a >> 4) & 7;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    f64::from(if a & 0x80 != 0 { magnitude } else { -magnitude })
}
