//! RFC 3711 vectors and the protection rules.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&hex(
        "E1F97A0D3E018BE0D64FA32C06DE41390EC675AD498AFEEBB6960B3AABE6",
    ))
    .unwrap()
}

#[test]
fn rfc3711_b3_key_derivation() {
    let m = master();
    let mut key = [0u8; 16];
    let mut salt = [0u8; 14];
    let mut auth = [0u8; 20];
    derive(&m, 0x00, &mut key);
    derive(&m, 0x02, &mut salt);
    derive(&m, 0x01, &mut auth);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        auth.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let cipher = Aes128::new(GenericArray::from_slice(&hex(
        "2B7E151628AED2A6ABF7158809CF4F3C",
    )));
    let mut salt = [0u8; 14];
    salt.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
    let iv = iv(&salt, 0, 0);
    let mut stream = vec![0u8; 16 * 0xff02];
    keystream_xor(&cipher, &iv, &mut stream);
    let block = |n: usize| stream[n * 16..(n + 1) * 16].to_vec();
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

/// A 172-byte G.711 RTP packet (12 header + 160 payload) in a buffer with room for a tag.
fn rtp(seq: u16, ssrc: u32, fill: u8) -> ([u8; 256], usize) {
    let mut buf = [0u8; 256];
    buf[0] = 0x80;
    buf[1] = 0x08;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in buf[12..172].iter_mut().enumerate() {
        *b = fill.wrapping_add(i as u8);
    }
    (buf, 172)
}

fn pair(suite: Suite, mki: Option<&[u8]>) -> (Context, Context) {
    (
        Context::new(suite, &master(), mki),
        Context::new(suite, &master(), mki),
    )
}

#[test]
fn round_trip_80_and_32_with_and_without_mki() {
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        for mki in [None, Some(&[0u8, 1, 2, 3][..])] {
            let (mut tx, mut rx) = pair(suite, mki);
            let (mut buf, len) = rtp(1, 0xdead_beef, 7);
            let plain = buf[..len].to_vec();
            let n = tx.protect_rtp(&mut buf, len).unwrap();
            assert_eq!(n, len + suite.rtp_tag_len() + mki.map_or(0, <[u8]>::len));
            assert_eq!(&buf[..12], &plain[..12], "the header stays in the clear");
            assert_ne!(&buf[12..len], &plain[12..], "the payload is encrypted");
            assert_eq!(rx.unprotect_rtp(&mut buf, n).unwrap(), len);
            assert_eq!(&buf[..len], &plain[..]);
        }
    }
}

#[test]
fn tampered_replayed_and_too_old_packets_are_rejected_rfc3711_3_3_2() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80, None);
    let mut sent = Vec::new();
    for seq in 0..300u16 {
        let (mut buf, len) = rtp(seq, 1, 0);
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        sent.push((buf, n));
    }
    // Tampered payload and tampered tag.
    let (mut bad, n) = sent[0];
    bad[20] ^= 1;
    assert_eq!(rx.unprotect_rtp(&mut bad, n), Err(SrtpError::AuthFailed));
    let (mut bad, n) = sent[0];
    bad[n - 1] ^= 1;
    assert_eq!(rx.unprotect_rtp(&mut bad, n), Err(SrtpError::AuthFailed));
    // A failed packet changes nothing: the genuine one still passes.
    let (mut ok, n) = sent[0];
    rx.unprotect_rtp(&mut ok, n).unwrap();
    let (mut again, n) = sent[0];
    assert_eq!(rx.unprotect_rtp(&mut again, n), Err(SrtpError::Replay));
    for (mut buf, n) in sent[200..].iter().copied() {
        rx.unprotect_rtp(&mut buf, n).unwrap();
    }
    // 299 is highest: 172 is inside the 128 window, 100 is not.
    let (mut late, n) = sent[172];
    rx.unprotect_rtp(&mut late, n).unwrap();
    let (mut late, n) = sent[172];
    assert_eq!(rx.unprotect_rtp(&mut late, n), Err(SrtpError::Replay));
    let (mut old, n) = sent[100];
    assert_eq!(rx.unprotect_rtp(&mut old, n), Err(SrtpError::TooOld));
}

#[test]
fn rollover_counter_follows_the_sequence_wrap_rfc3711_3_3_1() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80, None);
    let mut seq: u16 = 65_000;
    for i in 0..2_000u32 {
        let (mut buf, len) = rtp(seq, 42, i as u8);
        let plain = buf[..len].to_vec();
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        assert_eq!(rx.unprotect_rtp(&mut buf, n).unwrap(), len, "seq {seq}");
        assert_eq!(&buf[..len], &plain[..]);
        seq = seq.wrapping_add(1);
    }
    assert_eq!(rx.peek(42).roc, 1);
    // Reordering across the wrap: 65535 arriving after 0 still decrypts with ROC 0.
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80, None);
    let mut pkts = Vec::new();
    for seq in [65_534u16, 65_535, 0, 1] {
        let (mut buf, len) = rtp(seq, 9, 1);
        let n = tx.protect_rtp(&mut buf, len).unwrap();
        pkts.push((buf, n));
    }
    for i in [0, 2, 1, 3] {
        let (mut buf, n) = pkts[i];
        rx.unprotect_rtp(&mut buf, n).unwrap();
    }
}

#[test]
fn srtcp_round_trip_index_e_bit_and_replay_rfc3711_3_4() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_32, Some(&[9, 9]));
    let mut buf = [0u8; 128];
    // A receiver report: V=2, RC=0, PT=201, length=1, SSRC.
    buf[..8].copy_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 5]);
    buf[8..28].copy_from_slice(&[0xab; 20]);
    let plain = buf[..28].to_vec();
    let n = tx.protect_rtcp(&mut buf, 28).unwrap();
    assert_eq!(
        n,
        28 + 4 + 2 + 10,
        "E||index, MKI, 80-bit tag even for the _32 suite"
    );
    assert_eq!(buf[28] & 0x80, 0x80, "E bit set");
    let copy = buf;
    assert_eq!(rx.unprotect_rtcp(&mut buf, n).unwrap(), 28);
    assert_eq!(&buf[..28], &plain[..]);
    let mut replay = copy;
    assert_eq!(rx.unprotect_rtcp(&mut replay, n), Err(SrtpError::Replay));
    let mut tampered = copy;
    tampered[10] ^= 0xff;
    assert_eq!(
        rx.unprotect_rtcp(&mut tampered, n),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn wrong_mki_short_packets_and_no_room_are_errors() {
    let (mut tx, _) = pair(Suite::AesCm128HmacSha1_80, Some(&[1]));
    let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &master(), Some(&[2]));
    let (mut buf, len) = rtp(5, 1, 1);
    let n = tx.protect_rtp(&mut buf, len).unwrap();
    assert_eq!(rx.unprotect_rtp(&mut buf, n), Err(SrtpError::UnknownMki));
    assert_eq!(rx.unprotect_rtp(&mut [0u8; 8], 8), Err(SrtpError::TooShort));
    let mut tight = [0x80u8; 172];
    assert_eq!(tx.protect_rtp(&mut tight, 172), Err(SrtpError::NoRoom));
    let mut v1 = [0x40u8; 64];
    assert_eq!(tx.protect_rtp(&mut v1, 40), Err(SrtpError::BadVersion));
}

#[test]
fn forged_packets_from_new_ssrcs_do_not_evict_real_streams() {
    let (mut tx, mut rx) = pair(Suite::AesCm128HmacSha1_80, None);
    let (mut buf, len) = rtp(100, 7, 0);
    let n = tx.protect_rtp(&mut buf, len).unwrap();
    rx.unprotect_rtp(&mut buf, n).unwrap();
    for ssrc in 1000..1100u32 {
        let (mut forged, len) = rtp(1, ssrc, 0);
        let _ = rx.unprotect_rtp(&mut forged, len + 10);
    }
    assert!(rx.peek(7).started, "the real stream's state survived");
}

#[test]
fn a_stream_we_send_is_never_evicted_so_no_keystream_is_used_twice_rfc3711_9_1() {
    // Issue 31 §5: eight new SSRCs used to evict a sending stream, and its SRTCP index and
    // rollover counter started over: the same (SSRC, index) encrypted twice.
    let (mut tx, _) = pair(Suite::AesCm128HmacSha1_80, None);
    let mut rtcp = [0u8; 256];
    rtcp[0] = 0x80;
    rtcp[1] = 200;
    rtcp[4..8].copy_from_slice(&7u32.to_be_bytes());
    tx.protect_rtcp(&mut rtcp, 28).unwrap();
    let (mut buf, len) = rtp(65535, 7, 0);
    tx.protect_rtp(&mut buf, len).unwrap();
    let (mut buf, len) = rtp(0, 7, 0);
    tx.protect_rtp(&mut buf, len).unwrap();
    assert_eq!(tx.peek(7).roc, 1, "rolled over");
    for ssrc in 100..107u32 {
        let (mut buf, len) = rtp(1, ssrc, 0);
        tx.protect_rtp(&mut buf, len).unwrap();
    }
    let (mut ninth, len) = rtp(1, 999, 0);
    assert_eq!(
        tx.protect_rtp(&mut ninth, len),
        Err(SrtpError::TooManyStreams)
    );
    let mut rtcp9 = rtcp;
    rtcp9[4..8].copy_from_slice(&999u32.to_be_bytes());
    assert_eq!(
        tx.protect_rtcp(&mut rtcp9, 28),
        Err(SrtpError::TooManyStreams)
    );
    let kept = tx.peek(7);
    assert_eq!(
        (kept.roc, kept.rtcp_index),
        (1, 1),
        "stream 7 kept its state"
    );
}
