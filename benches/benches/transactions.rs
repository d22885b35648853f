//! Transaction-layer benchmark (issue: SIP core): non-INVITE server transactions over UDP
//! semantics through the sans-IO core on one thread: request in, response out, timer J armed
//! (64*T1) and, as the virtual clock advances, fired and cleared.
//!
//! Two figures: the core alone (requests pre-parsed, responses pre-built), and the full path
//! a daemon pays (parse the datagram, build the 200 from it, core). Also memory per live
//! transaction in steady state, from a counting allocator.
//!
//! `cargo bench -p teamsgw-benches --bench transactions`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_benches::{CountingAllocator, live_bytes};
use teamsgw_sip::message::{Message, MessageBuilder};
use teamsgw_sip::transaction::{Event, TimerSettings, TransactionLayer};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// Virtual time between requests: 1 ms, so 64*T1 = 32 s keeps 32,000 transactions alive.
const STEP: Duration = Duration::from_millis(1);

fn request(i: u64) -> Bytes {
    MessageBuilder::request("OPTIONS", "sip:sbc.example.com")
        .header(
            "Via",
            format!("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK{i:016x};rport"),
        )
        .header("From", format!("<sip:probe@example.com>;tag={i:x}"))
        .header("To", "<sip:sbc.example.com>")
        .header("Call-ID", format!("{i:x}@192.0.2.7"))
        .header("CSeq", "1 OPTIONS")
        .header("Max-Forwards", "70")
        .finish()
}

fn drive(
    layer: &mut TransactionLayer<u32>,
    msg: Message,
    response: Option<Bytes>,
    now: Instant,
) -> usize {
    layer.receive(msg, 0, false, now);
    let mut sent = 0;
    while let Some(e) = layer.poll_event() {
        match e {
            Event::Request { tx, message, .. } => {
                let r = response.clone().unwrap_or_else(|| {
                    MessageBuilder::response_to(&message, 200, "OK", Some("t"), None).finish()
                });
                layer.respond(tx, 200, r, now);
            }
            Event::Transmit { data, .. } => sent += data.len(),
            _ => {}
        }
    }
    while let Some(e) = layer.poll_event() {
        if let Event::Transmit { data, .. } = e {
            sent += data.len();
        }
    }
    layer.handle_timeout(now);
    sent
}

fn run(n: u64, full_path: bool) -> (f64, usize, f64) {
    let mut layer = TransactionLayer::new(TimerSettings::default());
    let inputs: Vec<Bytes> = (0..n).map(request).collect();
    let parsed: Vec<Message> = if full_path {
        Vec::new()
    } else {
        inputs
            .iter()
            .map(|b| Message::parse(b.clone()).unwrap())
            .collect()
    };
    let canned = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let t0 = Instant::now();
    let mut now = t0;
    let mut live_at_steady = 0usize;
    let mut bytes_at_steady = 0f64;
    let before = live_bytes();
    let start = Instant::now();
    for i in 0..n as usize {
        now += STEP;
        let sent = if full_path {
            let msg = Message::parse(inputs[i].clone()).unwrap();
            drive(&mut layer, msg, None, now)
        } else {
            drive(&mut layer, parsed[i].clone(), Some(canned.clone()), now)
        };
        std::hint::black_box(sent);
        if i as u64 == n - 1 {
            live_at_steady = layer.live_transactions().1;
            bytes_at_steady = (live_bytes() - before) as f64;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    (
        n as f64 / elapsed,
        live_at_steady,
        bytes_at_steady / live_at_steady.max(1) as f64,
    )
}

fn main() {
    let n = 300_000;
    let (core_rate, live, per_tx) = run(n, false);
    let (full_rate, live_full, per_tx_full) = run(n, true);
    println!(
        "non-INVITE server transactions over UDP (timer J armed, fired, cleared), one thread:"
    );
    println!("  core only (pre-parsed request, canned response): {core_rate:>10.0} tx/s");
    println!("  full path (parse datagram, build 200, core):     {full_rate:>10.0} tx/s");
    println!("  live transactions in steady state: {live} (64*T1 / 1 ms virtual spacing)");
    println!(
        "  memory per live transaction: {per_tx:.0} bytes core-only, {per_tx_full:.0} bytes full path"
    );
    println!("  (full path keeps the received datagram and our response for retransmission)");
    let _ = live_full;
}
