//! Differential test: our in-place SRTP against webrtc-srtp (dev-dependency only) over 120,000
//! packets per direction and suite, starting near the sequence wrap so the rollover counter
//! increments; SRTCP likewise. Outputs must be byte-equal and each side must read the other's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use teamsgw_media::srtp::{Context, MasterKey, Suite};
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;

const PACKETS: u32 = 120_000;

fn keys() -> (Vec<u8>, MasterKey) {
    let bytes: Vec<u8> = (0..30u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    (bytes.clone(), MasterKey::from_bytes(&bytes).unwrap())
}

fn rtp(seq: u16, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(n.wrapping_mul(160)).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    // Payload length varies so partial AES blocks are covered.
    p.extend((0..(100 + n % 80)).map(|i| (i as u8) ^ (n as u8)));
    p
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

#[test]
fn srtp_matches_webrtc_srtp_both_directions_across_rollovers() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let (raw, master) = keys();
        let mut ours_tx = Context::new(suite, &master, None);
        let mut ours_rx = Context::new(suite, &master, None);
        let mut oracle_tx =
            Oracle::new(&raw[..16], &raw[16..], profile(suite), None, None).unwrap();
        let mut oracle_rx =
            Oracle::new(&raw[..16], &raw[16..], profile(suite), None, None).unwrap();
        let mut seq: u16 = 60_000;
        let mut buf = [0u8; 512];
        for n in 0..PACKETS {
            let plain = rtp(seq, n);
            // ours -> oracle
            buf[..plain.len()].copy_from_slice(&plain);
            let len = ours_tx.protect_rtp(&mut buf, plain.len()).unwrap();
            let theirs = oracle_tx.encrypt_rtp(&plain).unwrap();
            assert_eq!(
                &buf[..len],
                &theirs[..],
                "{suite:?} packet {n} (seq {seq}) differs"
            );
            let decrypted = oracle_rx.decrypt_rtp(&buf[..len]).unwrap();
            assert_eq!(&decrypted[..], &plain[..]);
            // oracle -> ours
            buf[..theirs.len()].copy_from_slice(&theirs);
            let plain_len = ours_rx.unprotect_rtp(&mut buf, theirs.len()).unwrap();
            assert_eq!(&buf[..plain_len], &plain[..]);
            seq = seq.wrapping_add(1);
        }
        // 120,000 packets from 60,000 cross the 16-bit wrap twice.
    }
}

/// A webrtc-srtp context for AES_CM_128_HMAC_SHA1_80 with key||salt `raw`.
fn oracle(raw: &[u8]) -> Oracle {
    Oracle::new(
        &raw[..16],
        &raw[16..],
        ProtectionProfile::Aes128CmHmacSha1_80,
        None,
        None,
    )
    .unwrap()
}

#[test]
fn srtcp_matches_webrtc_srtp_both_directions() {
    let (raw, master) = keys();
    let mut ours_tx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
    let mut ours_rx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
    let mut oracle_tx = oracle(&raw);
    let mut oracle_rx = oracle(&raw);
    let mut buf = [0u8; 256];
    for n in 0..5_000u32 {
        // Sender report: V=2, PT=200, length 6 words, SSRC, 20 bytes of sender info.
        let mut plain = vec![0x80, 200, 0, 6, 0x12, 0x34, 0x56, 0x78];
        plain.extend((0..20).map(|i| (i as u8) ^ (n as u8)));
        buf[..plain.len()].copy_from_slice(&plain);
        let len = ours_tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        let theirs = oracle_tx.encrypt_rtcp(&plain).unwrap();
        assert_eq!(&buf[..len], &theirs[..], "SRTCP packet {n} differs");
        assert_eq!(
            &oracle_rx.decrypt_rtcp(&buf[..len]).unwrap()[..],
            &plain[..]
        );
        buf[..theirs.len()].copy_from_slice(&theirs);
        let plain_len = ours_rx.unprotect_rtcp(&mut buf, theirs.len()).unwrap();
        assert_eq!(&buf[..plain_len], &plain[..]);
    }
}
