//! HEP capture cost (issue "operator kit"): what the SIP path pays per message when capture is
//! on (copying a handle into the bounded queue), and what the sender task pays per message
//! (finding the Call-ID's correlation id and encoding HEPv3), for a 1.4 KB Teams INVITE.
//! Time (best of 7 rounds) and heap allocations per message.
//!
//! `cargo bench -p teamsgw-benches --bench hep`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::SystemTime;

use bytes::Bytes;
use teamsgw_benches::{CountingAllocator, best_per_iteration};
use teamsgw_sip::hep::{Captured, HepCapture, HepConfig, encode};
use teamsgw_sip::transport::Transport;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const INVITE: &[u8] = include_bytes!("../../crates/sip/tests/data/teams-invite.sip");

fn message() -> Captured {
    Captured {
        src: "52.112.0.1:40000".parse().unwrap(),
        dst: "203.0.113.5:5061".parse().unwrap(),
        transport: Transport::Tls,
        time: SystemTime::now(),
        payload: Bytes::from_static(INVITE),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = HepConfig {
        collector: sink.local_addr().unwrap(),
        capture_id: 1,
        auth_key: Some("key".into()),
    };
    let registry = prometheus::Registry::new();
    let capture = rt
        .block_on(HepCapture::start(config.clone(), &registry))
        .unwrap();
    let _runtime = rt.enter();
    // The SIP path: enqueue only (the queue holds 4096; rounds of 4000 never overflow it, and
    // the sender drains it between rounds).
    let template = message();
    let mut on_path = (f64::MAX, 0.0);
    for _ in 0..7 {
        // As the transport hook builds it: the clock read, the handle copied.
        let r = best_per_iteration(1, 4000, || {
            capture.capture(black_box(Captured {
                time: SystemTime::now(),
                ..template.clone()
            }))
        });
        on_path = (on_path.0.min(r.0), r.1);
        rt.block_on(tokio::time::sleep(std::time::Duration::from_millis(50)));
    }
    let c = message();
    let task = best_per_iteration(7, 100_000, || {
        let msg = teamsgw_sip::Message::parse(c.payload.clone()).unwrap();
        let id = std::str::from_utf8(msg.call_id().unwrap()).unwrap();
        black_box(encode(black_box(&c), &config, Some(id)));
    });
    println!(
        "message: {} bytes (Teams-style INVITE with SDP)",
        INVITE.len()
    );
    println!(
        "SIP path, capture() enqueue:            {:8.0} ns/msg  {:5.1} allocations/msg",
        on_path.0, on_path.1
    );
    println!(
        "sender task, correlation + HEPv3 encode: {:8.0} ns/msg  {:5.1} allocations/msg",
        task.0, task.1
    );
}
