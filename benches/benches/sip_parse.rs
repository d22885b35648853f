//! SIP parse benchmark (issue: SIP perimeter): a 1.4 KB Teams-style INVITE with SDP, parsed
//! and read for top Via branch, From tag, Call-ID and CSeq — what every received message
//! costs before routing. Reports time and heap allocations per message for our parser and for
//! sipx-sip in the same run, and their ratio.
//!
//! `cargo bench -p teamsgw-benches --bench sip_parse`
//! For instruction counts: `valgrind --tool=callgrind target/release/deps/sip_parse-* ours 100000`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use teamsgw_benches::{CountingAllocator, best_per_iteration};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const INVITE: &[u8] = include_bytes!("../../crates/sip/tests/data/teams-invite.sip");

fn ours(buf: Bytes) -> usize {
    let m = teamsgw_sip::message::Message::parse(buf).unwrap();
    let via = m.top_via().unwrap().unwrap();
    via.branch().unwrap().len()
        + m.from_tag().unwrap().len()
        + m.call_id().unwrap().len()
        + m.cseq().unwrap().unwrap().seq as usize
}

fn sipx(buf: Bytes) -> usize {
    use sipx_sip::headers::{CSeq, CallId, From, Via};
    let m = sipx_sip::parse_datagram(buf, &sipx_sip::Limits::default()).unwrap();
    let h = m.headers();
    let via: Via = h.typed().unwrap().unwrap();
    let from: From = h.typed().unwrap().unwrap();
    let call_id: CallId = h.typed().unwrap().unwrap();
    let cseq: CSeq = h.typed().unwrap().unwrap();
    via.branch().unwrap().len()
        + from.tag().unwrap().len()
        + call_id.0.len()
        + cseq.sequence as usize
}

/// (best ns/message over `rounds`, allocations/message).
fn measure(f: fn(Bytes) -> usize, iters: u32, rounds: u32) -> (f64, f64) {
    best_per_iteration(rounds, iters, || {
        black_box(f(black_box(Bytes::from_static(INVITE))));
    })
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // `sip_parse ours N` / `sip_parse sipx N`: a fixed amount of work for callgrind.
    if let [which, n] = args.as_slice() {
        let f = if which == "sipx" { sipx } else { ours };
        let n: u32 = n.parse().unwrap();
        for _ in 0..n {
            black_box(f(black_box(Bytes::from_static(INVITE))));
        }
        return;
    }
    assert_eq!(
        ours(Bytes::from_static(INVITE)),
        sipx(Bytes::from_static(INVITE))
    );
    let (iters, rounds) = (100_000, 7);
    // Interleave so both see the same machine noise.
    let (o1, oa) = measure(ours, iters, rounds);
    let (s1, sa) = measure(sipx, iters, rounds);
    let (o2, _) = measure(ours, iters, rounds);
    let (s2, _) = measure(sipx, iters, rounds);
    let (o, s) = (o1.min(o2), s1.min(s2));
    println!(
        "message: {} bytes (Teams-style INVITE with SDP)",
        INVITE.len()
    );
    println!(
        "teamsgw-sip  parse + Via/From-tag/Call-ID/CSeq: {o:8.0} ns/msg  {oa:5.1} allocations/msg"
    );
    println!(
        "sipx-sip 1.0 parse + Via/From-tag/Call-ID/CSeq: {s:8.0} ns/msg  {sa:5.1} allocations/msg"
    );
    println!(
        "ratio sipx/teamsgw: {:.2}x time, {:.1}x allocations",
        s / o,
        sa / oa.max(1e-9)
    );
}
