//! SRTP and SRTCP (RFC 3711) with `AES_CM_128_HMAC_SHA1_80` and `_32`, in place.
//!
//! Every operation works on the caller's `&mut [u8]` (the relay's receive buffer): no heap
//! allocation per packet. Keys are expanded once per context (AES key schedule, keyed HMAC
//! state cloned per packet). Per-SSRC state (rollover counter estimation §3.3.1, a 128-packet
//! replay window §3.3.2) lives in a small table allocated with the context.
//!
//! Key derivation uses a key derivation rate of 0 (SDES, RFC 4568 §6.1 default), so session
//! keys never change during a call.

// aes 0.8 / hmac 0.12 take generic-array 0.14 types, which that crate now marks deprecated in
// favour of its 1.x line; the RustCrypto releases that move over are not out of pre-release.
#![allow(deprecated)]

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// SRTP crypto suites we negotiate (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    /// SRTP tag length; SRTCP always uses 80 bits (RFC 3711 §5.2, RFC 4568 §6.2.2).
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

const RTCP_TAG_LEN: usize = 10;
const REPLAY_WINDOW: u64 = 128;
/// SSRCs tracked per context; an endpoint uses one, a few after re-INVITEs.
const MAX_STREAMS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short")]
    TooShort,
    #[error("not RTP version 2")]
    BadVersion,
    #[error("buffer has no room for the tag")]
    NoRoom,
    #[error("authentication tag mismatch")]
    AuthFailed,
    #[error("replayed packet")]
    Replay,
    #[error("packet older than the replay window")]
    TooOld,
    #[error("unknown MKI")]
    UnknownMki,
    #[error("every stream slot holds a stream we send")]
    TooManyStreams,
}

/// The SDES master key and salt (RFC 4568 §6.1: 16 + 14 bytes for these suites).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)") // never log key material
    }
}

impl MasterKey {
    /// From the 30 bytes of an SDES `inline:` key (key || salt).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 30 {
            return None;
        }
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        key.copy_from_slice(&bytes[..16]);
        salt.copy_from_slice(&bytes[16..]);
        Some(Self { key, salt })
    }
}

/// Session keys for one direction of SRTP or SRTCP.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; 14],
    auth: HmacSha1,
}

/// RFC 3711 §4.3.1 with KDR = 0: AES-CM of the master key over (label || 0) XOR salt.
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let cipher = Aes128::new(GenericArray::from_slice(&master.key));
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&master.salt);
    iv[7] ^= label; // key_id = label || index DIV kdr (0), aligned to the salt's low bytes
    keystream_xor(&cipher, &iv, out);
}

fn session_keys(master: &MasterKey, labels: (u8, u8, u8)) -> SessionKeys {
    let mut key = [0u8; 16];
    let mut auth = [0u8; 20];
    let mut salt = [0u8; 14];
    derive(master, labels.0, &mut key);
    derive(master, labels.1, &mut auth);
    derive(master, labels.2, &mut salt);
    SessionKeys {
        cipher: Aes128::new(GenericArray::from_slice(&key)),
        salt,
        // HMAC accepts any key length; 20 bytes never fails.
        auth: <HmacSha1 as Mac>::new_from_slice(&auth).unwrap_or_else(|_| unreachable_hmac()),
    }
}

#[cold]
fn unreachable_hmac() -> HmacSha1 {
    // `new_from_slice` only fails for fixed-size-key MACs; HMAC takes any length.
    <HmacSha1 as KeyInit>::new(&GenericArray::default())
}

/// XORs the AES counter-mode keystream starting at counter block `iv` into `data`.
/// Blocks are encrypted 8 at a time so AES-NI can pipeline them.
fn keystream_xor(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    let base = u128::from_be_bytes(*iv);
    let mut counter: u128 = 0;
    for chunk in data.chunks_mut(16 * 8) {
        let mut blocks = [GenericArray::<u8, aes::cipher::consts::U16>::default(); 8];
        let n = chunk.len().div_ceil(16);
        for block in blocks.iter_mut().take(n) {
            // The counter occupies the low 16 bits of the IV; it never carries out for
            // packets under 1 MiB (RFC 3711 §4.1.1).
            *block = GenericArray::from(base.wrapping_add(counter).to_be_bytes());
            counter += 1;
        }
        cipher.encrypt_blocks(&mut blocks[..n]);
        // Whole blocks as one 128-bit XOR each; the tail byte by byte.
        for (bytes, key) in chunk.chunks_mut(16).zip(&blocks) {
            if let Ok(whole) = <&mut [u8; 16]>::try_from(&mut *bytes) {
                let key: [u8; 16] = (*key).into();
                *whole = (u128::from_ne_bytes(*whole) ^ u128::from_ne_bytes(key)).to_ne_bytes();
            } else {
                bytes.iter_mut().zip(key.iter()).for_each(|(b, k)| *b ^= k);
            }
        }
    }
}

/// IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16) (RFC 3711 §4.1.1).
fn iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
        iv[4 + i] ^= b;
    }
    for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= b;
    }
    iv
}

/// A 128-entry sliding replay window over packet indices.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    highest: Option<u64>,
    bits: u128,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld);
        }
        if self.bits & (1u128 << behind) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    /// Only after the packet authenticated.
    fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => self.bits |= 1u128 << (highest - index),
            Some(highest) => {
                let shift = index - highest;
                self.bits = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.bits << shift
                };
                self.bits |= 1;
                self.highest = Some(index);
            }
            None => {
                self.bits = 1;
                self.highest = Some(index);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    ssrc: u32,
    used: bool,
    last_use: u64,
    /// RTP: rollover counter and highest sequence number seen (s_l).
    roc: u32,
    s_l: u16,
    started: bool,
    rtp_replay: ReplayWindow,
    /// SRTCP: our next index when sending, the window when receiving.
    rtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

impl Stream {
    /// RFC 3711 §3.3.1: the index v of a sequence number given ROC and s_l.
    fn estimate(&self, seq: u16) -> (u32, u64) {
        if !self.started {
            return (self.roc, u64::from(self.roc) << 16 | u64::from(seq));
        }
        let v = if self.s_l < 32768 {
            if i32::from(seq) - i32::from(self.s_l) > 32768 {
                self.roc.wrapping_sub(1)
            } else {
                self.roc
            }
        } else if i32::from(self.s_l) - 32768 > i32::from(seq) {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        };
        (v, u64::from(v) << 16 | u64::from(seq))
    }

    fn update(&mut self, v: u32, seq: u16) {
        if !self.started {
            self.started = true;
            self.roc = v;
            self.s_l = seq;
        } else if v == self.roc.wrapping_add(1) {
            self.roc = v;
            self.s_l = seq;
        } else if v == self.roc && seq > self.s_l {
            self.s_l = seq;
        }
    }
}

/// One SRTP/SRTCP crypto context (one direction: protect *or* unprotect).
pub struct Context {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    mki: Option<Box<[u8]>>,
    streams: [Stream; MAX_STREAMS],
    clock: u64,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The fixed RTP header length (with CSRCs and extension), or an error.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < 12 {
        return Err(SrtpError::TooShort);
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::BadVersion);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(len)
}

impl Context {
    /// `mki`: the MKI value when one was negotiated (RFC 3711 §3.1), else `None`.
    pub fn new(suite: Suite, master: &MasterKey, mki: Option<&[u8]>) -> Self {
        Self {
            suite,
            rtp: session_keys(master, (0x00, 0x01, 0x02)),
            rtcp: session_keys(master, (0x03, 0x04, 0x05)),
            mki: mki.map(Into::into),
            streams: [Stream::default(); MAX_STREAMS],
            clock: 0,
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Bytes SRTP adds to an RTP packet.
    pub fn rtp_overhead(&self) -> usize {
        self.suite.rtp_tag_len() + self.mki.as_ref().map_or(0, |m| m.len())
    }

    /// Bytes SRTCP adds to an RTCP packet.
    pub fn rtcp_overhead(&self) -> usize {
        4 + RTCP_TAG_LEN + self.mki.as_ref().map_or(0, |m| m.len())
    }

    /// The state of a stream we send. It is never evicted: a new one with its index at zero
    /// would encrypt with a keystream already used (RFC 3711 §9.1). A stream beyond
    /// [`MAX_STREAMS`] is refused instead.
    fn sending_stream(&mut self, ssrc: u32) -> Result<&mut Stream, SrtpError> {
        let known = self.streams.iter().any(|s| s.used && s.ssrc == ssrc);
        if !known && self.streams.iter().all(|s| s.used) {
            return Err(SrtpError::TooManyStreams);
        }
        Ok(self.stream(ssrc))
    }

    /// The state of an authenticated stream we receive: a new SSRC takes a free slot or the
    /// least recently used one (only the key holder can make one).
    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        self.clock += 1;
        let clock = self.clock;
        let slot = match self.streams.iter().position(|s| s.used && s.ssrc == ssrc) {
            Some(i) => i,
            None => {
                // A new SSRC takes a free slot or the least recently used one.
                let i = self
                    .streams
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| if s.used { s.last_use } else { 0 })
                    .map_or(0, |(i, _)| i);
                self.streams[i] = Stream {
                    ssrc,
                    used: true,
                    ..Stream::default()
                };
                i
            }
        };
        let s = &mut self.streams[slot];
        s.last_use = clock;
        s
    }

    /// The state of `ssrc` without creating it: unauthenticated packets must change nothing.
    fn peek(&self, ssrc: u32) -> Stream {
        self.streams
            .iter()
            .find(|s| s.used && s.ssrc == ssrc)
            .copied()
            .unwrap_or_default()
    }

    fn tag(keys: &SessionKeys, parts: &[&[u8]], out: &mut [u8]) {
        let mut mac = keys.auth.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        out.copy_from_slice(&full[..out.len()]);
    }

    /// Encrypts and authenticates the RTP packet in `buf[..len]` in place; returns the SRTP
    /// length. `buf` needs [`Context::rtp_overhead`] spare bytes after `len`.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.rtp_overhead();
        if buf.len() < len + overhead {
            return Err(SrtpError::NoRoom);
        }
        let header = rtp_header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let stream = self.sending_stream(ssrc)?;
        let (v, index) = stream.estimate(seq);
        stream.update(v, seq);
        let iv = iv(&self.rtp.salt, ssrc, index);
        keystream_xor(&self.rtp.cipher, &iv, &mut buf[header..len]);
        let mut end = len;
        if let Some(mki) = &self.mki {
            buf[end..end + mki.len()].copy_from_slice(mki);
        }
        let tag_len = self.suite.rtp_tag_len();
        let mki_len = self.mki.as_ref().map_or(0, |m| m.len());
        let (data, rest) = buf.split_at_mut(len);
        Self::tag(
            &self.rtp,
            &[data, &v.to_be_bytes()],
            &mut rest[mki_len..mki_len + tag_len],
        );
        end += mki_len + tag_len;
        Ok(end)
    }

    /// Verifies and decrypts the SRTP packet in `buf[..len]` in place; returns the RTP length.
    /// Nothing (replay window, rollover counter) changes unless the tag verifies.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let mki_len = self.mki.as_ref().map_or(0, |m| m.len());
        if len < 12 + tag_len + mki_len || len > buf.len() {
            return Err(SrtpError::TooShort);
        }
        let body_end = len - tag_len - mki_len;
        let header = rtp_header_len(&buf[..body_end])?;
        if let Some(mki) = &self.mki
            && &buf[body_end..body_end + mki_len] != mki.as_ref()
        {
            return Err(SrtpError::UnknownMki);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let stream = self.peek(ssrc);
        let (v, index) = stream.estimate(seq);
        stream.rtp_replay.check(index)?;
        let mut expected = [0u8; 10];
        Self::tag(
            &self.rtp,
            &[&buf[..body_end], &v.to_be_bytes()],
            &mut expected[..tag_len],
        );
        if !bool::from(expected[..tag_len].ct_eq(&buf[len - tag_len..len])) {
            return Err(SrtpError::AuthFailed);
        }
        let iv = iv(&self.rtp.salt, ssrc, index);
        keystream_xor(&self.rtp.cipher, &iv, &mut buf[header..body_end]);
        let s = self.stream(ssrc);
        s.rtp_replay.accept(index);
        s.update(v, seq);
        Ok(body_end)
    }

    /// Encrypts and authenticates the RTCP compound packet in `buf[..len]` (RFC 3711 §3.4);
    /// returns the SRTCP length. `buf` needs [`Context::rtcp_overhead`] spare bytes.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 {
            return Err(SrtpError::TooShort);
        }
        if buf.len() < len + self.rtcp_overhead() {
            return Err(SrtpError::NoRoom);
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let stream = self.sending_stream(ssrc)?;
        // Incremented before use, so the first SRTCP index is 1, as libsrtp and pion send it
        // (RFC 3711 §3.4 reads either way; receivers accept both).
        stream.rtcp_index = stream.rtcp_index.wrapping_add(1) & 0x7fff_ffff;
        let index = stream.rtcp_index;
        let iv = iv(&self.rtcp.salt, ssrc, u64::from(index));
        keystream_xor(&self.rtcp.cipher, &iv, &mut buf[8..len]);
        // E flag set: the payload is encrypted.
        buf[len..len + 4].copy_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let mut end = len + 4;
        let mki_len = self.mki.as_ref().map_or(0, |m| m.len());
        if let Some(mki) = &self.mki {
            buf[end..end + mki_len].copy_from_slice(mki);
        }
        let (data, rest) = buf.split_at_mut(end);
        Self::tag(
            &self.rtcp,
            &[data],
            &mut rest[mki_len..mki_len + RTCP_TAG_LEN],
        );
        end += mki_len + RTCP_TAG_LEN;
        Ok(end)
    }

    /// Verifies and decrypts an SRTCP packet in place; returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let mki_len = self.mki.as_ref().map_or(0, |m| m.len());
        if len < 8 + 4 + mki_len + RTCP_TAG_LEN || len > buf.len() {
            return Err(SrtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let tag_start = len - RTCP_TAG_LEN;
        let index_end = tag_start - mki_len;
        if let Some(mki) = &self.mki
            && &buf[index_end..tag_start] != mki.as_ref()
        {
            return Err(SrtpError::UnknownMki);
        }
        let mut expected = [0u8; RTCP_TAG_LEN];
        Self::tag(&self.rtcp, &[&buf[..index_end]], &mut expected);
        if !bool::from(expected.ct_eq(&buf[tag_start..len])) {
            return Err(SrtpError::AuthFailed);
        }
        let word = u32::from_be_bytes([
            buf[index_end - 4],
            buf[index_end - 3],
            buf[index_end - 2],
            buf[index_end - 1],
        ]);
        let (encrypted, index) = (word & 0x8000_0000 != 0, word & 0x7fff_ffff);
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        self.peek(ssrc).rtcp_replay.check(u64::from(index))?;
        self.stream(ssrc).rtcp_replay.accept(u64::from(index));
        let payload_end = index_end - 4;
        if encrypted {
            let iv = iv(&self.rtcp.salt, ssrc, u64::from(index));
            keystream_xor(&self.rtcp.cipher, &iv, &mut buf[8..payload_end]);
        }
        Ok(payload_end)
    }
}

#[cfg(test)]
mod tests;
