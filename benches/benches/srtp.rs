//! SRTP benchmark (issue: media): protect and unprotect a 172-byte G.711 RTP packet
//! (AES_CM_128_HMAC_SHA1_80) in place, time and heap allocations per packet, against
//! webrtc-srtp in the same run.
//!
//! `cargo bench -p teamsgw-benches --bench srtp`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use teamsgw_benches::{CountingAllocator, count_allocations};
use teamsgw_media::srtp::{Context, MasterKey, Suite};
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const N: u32 = 1_000_000;

fn packet(seq: u16) -> [u8; 172] {
    let mut p = [0xd5u8; 172];
    p[..12].copy_from_slice(&[0x80, 0x08, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]);
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p
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

fn main() {
    let raw: Vec<u8> = (0..30u8).collect();
    let master = MasterKey::from_bytes(&raw).unwrap();

    // Ours: protect then unprotect in one reused buffer.
    let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
    let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
    let mut buf = [0u8; 1500];
    let mut protected = Vec::with_capacity(1024);
    for seq in 0..1024u16 {
        buf[..172].copy_from_slice(&packet(seq));
        let n = tx.protect_rtp(&mut buf, 172).unwrap();
        protected.push(buf[..n].to_vec());
    }
    let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
    let start = Instant::now();
    let (_, protect_allocs) = count_allocations(|| {
        for i in 0..N {
            buf[..172].copy_from_slice(&packet(i as u16));
            black_box(tx.protect_rtp(&mut buf, 172).unwrap());
        }
    });
    let ours_protect = start.elapsed().as_nanos() as f64 / f64::from(N);
    let start = Instant::now();
    let mut seq_base = 0u32;
    let (_, unprotect_allocs) = count_allocations(|| {
        // Re-protect on the fly so every unprotect sees a fresh, in-window index.
        let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &master, None);
        for i in 0..N {
            buf[..172].copy_from_slice(&packet(i as u16));
            let n = tx.protect_rtp(&mut buf, 172).unwrap();
            black_box(rx.unprotect_rtp(&mut buf, n).unwrap());
            seq_base += 1;
        }
    });
    let ours_round_trip = start.elapsed().as_nanos() as f64 / f64::from(N);
    let ours_unprotect = ours_round_trip - ours_protect;

    // webrtc-srtp: allocating API (returns Bytes).
    let mut otx = oracle(&raw);
    let mut orx = oracle(&raw);
    let start = Instant::now();
    let (_, oracle_protect_allocs) = count_allocations(|| {
        for i in 0..N {
            black_box(otx.encrypt_rtp(&packet(i as u16)).unwrap());
        }
    });
    let theirs_protect = start.elapsed().as_nanos() as f64 / f64::from(N);
    let mut otx = oracle(&raw);
    let start = Instant::now();
    let (_, oracle_rt_allocs) = count_allocations(|| {
        for i in 0..N {
            let p = otx.encrypt_rtp(&packet(i as u16)).unwrap();
            black_box(orx.decrypt_rtp(&p).unwrap());
        }
    });
    let theirs_unprotect = start.elapsed().as_nanos() as f64 / f64::from(N) - theirs_protect;

    let per = |a: u64| a as f64 / f64::from(N);
    println!("172-byte RTP, AES_CM_128_HMAC_SHA1_80, {N} packets, one thread:");
    println!(
        "  teamsgw   protect {ours_protect:6.0} ns  unprotect {ours_unprotect:6.0} ns  allocations/packet {:.2} / {:.2}",
        per(protect_allocs),
        per(unprotect_allocs)
    );
    println!(
        "  webrtc-srtp protect {theirs_protect:6.0} ns  unprotect {theirs_unprotect:6.0} ns  allocations/packet {:.2} / {:.2}",
        per(oracle_protect_allocs),
        per(oracle_rt_allocs) - per(oracle_protect_allocs)
    );
    println!(
        "  ratio webrtc/teamsgw: protect {:.2}x, unprotect {:.2}x",
        theirs_protect / ours_protect,
        theirs_unprotect / ours_unprotect
    );
    black_box(protected);
}
