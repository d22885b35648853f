//! The call core alone (issue: calls, "allocations per call"): whole PBX -> Teams calls
//! through one sans-IO `CallCore` with a fake media plane and a virtual clock. Each call is
//! INVITE (with SDP) from the PBX, 100/180/200 (SDES answer) from a Teams proxy, ACK, BYE from
//! the PBX and the Teams side's 200 for our BYE.
//!
//! Measured around the core only (parsing the peers' bytes included, building them not): CPU
//! time and allocations per call, and live heap after 10,000 and after 100,000 calls (a
//! bounded core shows no growth). The call rate the daemon reaches end to end is another
//! measurement: this is the part of it that is ours alone.
//!
//! A second run gives every call a hold and resume from the PBX (each passed to Teams as our
//! re-INVITE) and two absorbed refreshes, for the cost of a mid-call transaction.
//!
//! `cargo bench -p teamsgw-benches --bench call_core` (CALLS=n to change the count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_benches::{CountingAllocator, allocations, live_bytes};
use teamsgw_gateway::call::media::{Allocation, MediaCounters, MediaPlane, SessionParams};
use teamsgw_gateway::call::routing::{
    NumberFormat, PbxRoute, RoutingView, TeamsProxy, Tenant, UserRoute,
};
use teamsgw_gateway::call::{CallCore, CallSettings, Dest, Input, Output};
use teamsgw_sip::Message;
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::transport::{Source, Transport};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

struct Media(u64);

impl MediaPlane for Media {
    fn allocate(&mut self) -> Option<Allocation> {
        self.0 += 1;
        Some(Allocation {
            session: self.0,
            teams_port: 40000,
            pbx_port: 40002,
            local_key: vec![7; 30],
        })
    }
    fn apply(&mut self, _: u64, _: SessionParams) {}
    fn release(&mut self, _: u64) -> MediaCounters {
        MediaCounters::default()
    }
}

const PBX: &str = "192.0.2.10:5060";
const PROXY: &str = "198.51.100.1:5061";
const PBX_SDP: &str = "v=0\r\no=pbx 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const TEAMS_SDP: &str = "v=0\r\no=- 1 1 IN IP4 52.114.14.80\r\ns=-\r\nc=IN IP4 52.114.14.80\r\nt=0 0\r\nm=audio 50000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn view() -> RoutingView {
    RoutingView::new(
        vec![Tenant {
            fqdn: "cust1.sbc.example.com".into(),
            port: 5061,
            enterprise_id: "e".into(),
            enterprise: "E".into(),
            max_sessions: None,
            max_cps: None,
            emergency_numbers: None,
            operator_connect: false,
        }],
        vec![PbxRoute {
            id: "p".into(),
            domain: "pbx.example.com".into(),
            next_hop: PBX.into(),
            transport: Transport::Udp,
            addrs: vec![addr(PBX)].into(),
            codecs: vec!["PCMU".into(), "PCMA".into()],
            number_format: NumberFormat::E164,
            country_code: Some("49".into()),
            diversion: false,
        }],
        vec![UserRoute {
            upn: "alice@contoso.com".into(),
            enterprise_id: "e".into(),
            pbx_id: "p".into(),
            number: "+4930111".into(),
            extension: "1001".into(),
            auth_user: "1001".into(),
            password: "pw".into(),
            contact_token: "tok1".into(),
            enabled: true,
        }],
        vec![TeamsProxy {
            name: "sip.pstnhub.microsoft.com".into(),
            addr: Some(addr(PROXY)),
        }],
    )
}

struct Bench {
    core: CallCore<Media>,
    now: Instant,
    spent: Duration,
    allocs: u64,
    sent: Vec<(SocketAddr, Message)>,
    with_mid_call: bool,
    mid_call_cseq: u32,
}

impl Bench {
    /// Feeds bytes from a peer; only parsing and the core are timed and counted.
    fn feed(&mut self, data: Bytes, peer: &str, listener: &'static str, transport: Transport) {
        let source = Source {
            transport,
            listener,
            peer: addr(peer),
            local: addr("203.0.113.5:5060"),
            conn: Some(1),
        };
        let (a0, t0) = (allocations().0, Instant::now());
        let message = Message::parse(data).unwrap();
        self.core
            .handle(self.now, Input::Message { message, source });
        while let Some(out) = self.core.poll_output() {
            if let Output::Transmit { dest, data } = out {
                let to = match dest {
                    Dest::Reply(s) => s.peer,
                    Dest::To(t) => t.addr,
                    // Teams' api-du Contact: the driver resolves it; this bench has no DNS,
                    // so it takes the hop's fallback, the proxy the call went through.
                    Dest::Hop(h) => match &h.fallback {
                        Some(Dest::Reply(s)) => s.peer,
                        Some(Dest::To(t)) => t.addr,
                        _ => addr(PROXY),
                    },
                };
                // The peer reads what we sent (its parse is not ours: outside the timing).
                self.sent.push((to, Message::parse(data).unwrap()));
            }
        }
        self.spent += t0.elapsed();
        self.allocs += allocations().0 - a0;
    }

    fn take(&mut self, to: &str, what: &str) -> Message {
        let to = addr(to);
        let i = self
            .sent
            .iter()
            .position(|(a, m)| {
                *a == to
                    && (m.method().is_some_and(|x| x.as_str() == what)
                        || m.status().is_some_and(|s| s.to_string() == what))
            })
            .unwrap_or_else(|| panic!("no {what} to {to}"));
        self.sent.swap_remove(i).1
    }

    /// A request from the PBX in the dialog of our 200 `ok`.
    fn pbx_request(&mut self, ok: &Message, i: u64, method: &str, cseq: u32, sdp: Option<&str>) {
        use teamsgw_sip::HeaderName as H;
        let header = |n| String::from_utf8_lossy(ok.header(n).unwrap()).into_owned();
        let body = sdp.unwrap_or("");
        let ct = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let req = format!(
            "{method} sip:tok1@203.0.113.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PBX};branch=z9hG4bK-{method}{cseq}-{i}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: bench-{i}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 69\r\n\
             {ct}Content-Length: {}\r\n\r\n{body}",
            header(H::From),
            header(H::To),
            body.len()
        );
        self.feed(Bytes::from(req), PBX, "pbx", Transport::Udp);
    }

    /// Issue "mid-call" performance: the PBX holds (our re-INVITE holds Teams) and resumes
    /// (ours resumes Teams), then refreshes twice with an unchanged SDP (absorbed): six
    /// mid-call INVITE transactions, each with its ACK.
    fn mid_call(&mut self, ok: &Message, i: u64) {
        let mut cseq = 11;
        for (version, direction) in [(2, "sendonly"), (3, "sendrecv")] {
            let sdp = PBX_SDP
                .replace("o=pbx 1 1 ", &format!("o=pbx 1 {version} "))
                .replace("a=sendrecv", &format!("a={direction}"));
            self.pbx_request(ok, i, "INVITE", cseq, Some(&sdp));
            self.take(PBX, "200");
            self.pbx_request(ok, i, "ACK", cseq, None);
            let ours = self.take(PROXY, "INVITE");
            let teams = TEAMS_SDP
                .replace("o=- 1 1 ", &format!("o=- 1 {version} "))
                .replace(
                    "a=sendrecv",
                    if version == 2 {
                        "a=inactive"
                    } else {
                        "a=sendrecv"
                    },
                );
            let answer = MessageBuilder::response_to(&ours, 200, "OK", None, None)
                .header("Contact", "<sip:api-du-b-euwe.pstnhub.microsoft.com:443>")
                .body(Some("application/sdp"), teams.as_bytes());
            self.feed(answer, PROXY, "outbound", Transport::Tls);
            self.take(PROXY, "ACK");
            cseq += 1;
        }
        let same = PBX_SDP.replace("o=pbx 1 1 ", "o=pbx 1 3 ");
        for _ in 0..2 {
            self.pbx_request(ok, i, "INVITE", cseq, Some(&same));
            self.take(PBX, "200");
            self.pbx_request(ok, i, "ACK", cseq, None);
            cseq += 1;
        }
        let to_teams = addr(PROXY);
        assert!(
            !self.sent.iter().any(
                |(to, m)| *to == to_teams && m.method().is_some_and(|x| x.as_str() == "INVITE")
            ),
            "a refresh reached Teams"
        );
        self.mid_call_cseq = cseq;
    }

    fn call(&mut self, i: u64) {
        self.sent.clear();
        let invite = format!(
            "INVITE sip:tok1@203.0.113.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PBX};branch=z9hG4bK-{i}\r\n\
             From: \"Carol\" <sip:0301234567@pbx.example.com>;tag=pf{i}\r\nTo: <sip:1001@pbx.example.com>\r\n\
             Call-ID: bench-{i}\r\nCSeq: 10 INVITE\r\nMax-Forwards: 69\r\nRecord-Route: <sip:{PBX};lr>\r\n\
             Contact: <sip:c@192.0.2.30:5062>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{PBX_SDP}",
            PBX_SDP.len()
        );
        self.feed(Bytes::from(invite), PBX, "pbx", Transport::Udp);
        let out = self.take(PROXY, "INVITE");
        for (status, sdp) in [(100, None), (180, None), (200, Some(TEAMS_SDP))] {
            let mut b = MessageBuilder::response_to(
                &out,
                status,
                "X",
                (status > 100).then_some("t1"),
                None,
            );
            if status > 100 {
                b = b.header("Contact", "<sip:api-du-b-euwe.pstnhub.microsoft.com:443>");
            }
            let data = match sdp {
                Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
                None => b.finish(),
            };
            self.feed(data, PROXY, "outbound", Transport::Tls);
        }
        let ok = self.take(PBX, "200");
        self.pbx_request(&ok, i, "ACK", 10, None);
        self.mid_call_cseq = 11;
        if self.with_mid_call {
            self.mid_call(&ok, i);
        }
        let cseq = self.mid_call_cseq;
        self.pbx_request(&ok, i, "BYE", cseq, None);
        let bye = self.take(PROXY, "BYE");
        let done = MessageBuilder::response_to(&bye, 200, "OK", None, None).finish();
        self.feed(done, PROXY, "outbound", Transport::Tls);
        // One call per virtual millisecond; transactions end as their timers fire.
        self.now += Duration::from_millis(1);
        let (a0, t0) = (allocations().0, Instant::now());
        self.core.handle_timeout(self.now);
        while self.core.poll_output().is_some() {}
        self.spent += t0.elapsed();
        self.allocs += allocations().0 - a0;
    }
}

/// What one run of `calls` calls measured.
struct Run {
    cpu_per_call: f64,
    allocs_per_call: f64,
}

fn run(calls: u64, with_mid_call: bool) -> Run {
    let settings = CallSettings {
        sessions: Arc::new(Default::default()),
        ..CallSettings::default()
    };
    let mut b = Bench {
        core: CallCore::new(settings, Arc::new(view()), Media(0)),
        now: Instant::now(),
        spent: Duration::ZERO,
        allocs: 0,
        sent: Vec::with_capacity(16),
        with_mid_call,
        mid_call_cseq: 11,
    };
    // Transactions live 64*T1 = 32 s of virtual time, 32,000 calls at one per ms: the heap
    // grows until then and must stay flat after.
    let (mut live_at_half, mut live_at_end) = (0, 0);
    for i in 0..calls {
        b.call(i);
        if i + 1 == calls / 2 {
            live_at_half = live_bytes();
            println!("  tables after {} calls: {:?}", i + 1, b.core.table_sizes());
        }
        if i + 1 == calls {
            live_at_end = live_bytes();
            println!("  tables after {} calls: {:?}", i + 1, b.core.table_sizes());
        }
    }
    // Let every transaction of the last calls end (64*T1).
    b.now += Duration::from_secs(40);
    b.core.handle_timeout(b.now);
    while b.core.poll_output().is_some() {}
    assert_eq!(b.core.active(), 0);
    let what = if with_mid_call {
        "with hold, resume and two refreshes each"
    } else {
        "(INVITE, 100/180/200, ACK, BYE)"
    };
    println!("call_core: {calls} PBX->Teams calls {what} through one core");
    println!(
        "  tables (slots, owners, dialogs, timers, client tx, server tx): {:?}",
        b.core.table_sizes()
    );
    let run = Run {
        cpu_per_call: b.spent.as_secs_f64() * 1e6 / calls as f64,
        allocs_per_call: b.allocs as f64 / calls as f64,
    };
    println!(
        "  CPU per call (parse + core, both legs): {:.2} us",
        run.cpu_per_call
    );
    println!("  allocations per call: {:.1}", run.allocs_per_call);
    println!(
        "  live heap after {} calls: {} KiB; after {calls}: {} KiB; with every timer run: {} KiB",
        calls / 2,
        live_at_half / 1024,
        live_at_end / 1024,
        live_bytes() / 1024
    );
    let before = live_bytes();
    drop(b);
    println!(
        "  of which the core's tables' capacity (freed with it): {} KiB",
        (before - live_bytes()) / 1024
    );
    run
}

fn main() {
    let calls: u64 = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let plain = run(calls, false);
    let mid = run(calls, true);
    // Six INVITE transactions per call: the PBX's hold and resume, ours towards Teams for
    // each, and two refreshes answered on the PBX leg.
    println!(
        "mid-call: {:.2} us CPU and {:.1} allocations per mid-call INVITE transaction",
        (mid.cpu_per_call - plain.cpu_per_call) / 6.0,
        (mid.allocs_per_call - plain.allocs_per_call) / 6.0
    );
}
