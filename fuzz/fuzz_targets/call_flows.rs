//! The call core driven by arbitrary sequences of valid-shaped SIP flows (INVITE from either
//! side, 1xx/2xx/3xx-6xx with and without SDP and forks, ACK, BYE, CANCEL, garbage, time,
//! media timeouts), structure-aware: each input byte picks the next event, following bytes
//! its details. Invariants beyond "no panic": every message the core sends parses, and once
//! drained every call is gone and every media session released (nothing leaks).
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use teamsgw_gateway::call::media::{Allocation, MediaCounters, MediaPlane, SessionParams};
use teamsgw_gateway::call::routing::{NumberFormat, PbxRoute, RoutingView, TeamsProxy, Tenant, UserRoute};
use teamsgw_gateway::call::{CallCore, CallSettings, Dest, Input, Output};
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::transport::{Source, Transport};
use teamsgw_sip::Message;

#[derive(Default)]
struct Media {
    next: u64,
    live: HashMap<u64, ()>,
}

impl MediaPlane for Media {
    fn allocate(&mut self) -> Option<Allocation> {
        if self.live.len() >= 8 {
            return None;
        }
        self.next += 1;
        self.live.insert(self.next, ());
        Some(Allocation { session: self.next, teams_port: 40000, pbx_port: 40002, local_key: vec![7; 30] })
    }
    fn apply(&mut self, _: u64, _: SessionParams) {}
    fn release(&mut self, session: u64) -> MediaCounters {
        assert!(self.live.remove(&session).is_some(), "released twice");
        MediaCounters::default()
    }
}

const PBX: &str = "192.0.2.10:5060";
const TEAMS: &str = "52.112.0.1:40000";
const P1: &str = "198.51.100.1:5061";
const P2: &str = "198.51.100.2:5061";
const TEAMS_SDP: &str = "v=0\r\no=- 1 0 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\n";
const PBX_SDP: &str = "v=0\r\no=p 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn view() -> RoutingView {
    let user = UserRoute {
        upn: "a@x".into(), enterprise_id: "e".into(), pbx_id: "p".into(), number: "+4930111".into(),
        extension: "1001".into(), display_name: None, auth_user: "1001".into(), password: "pw".into(),
        contact_token: "tok".into(), enabled: true,
    };
    RoutingView::new(
        vec![Tenant { fqdn: "t.sbc.example".into(), port: 5061, enterprise_id: "e".into(), enterprise: "E".into(), max_sessions: Some(3) }],
        vec![PbxRoute { id: "p".into(), domain: "pbx".into(), next_hop: PBX.into(), transport: Transport::Udp, addrs: vec![addr(PBX)], codecs: vec!["PCMA".into(), "PCMU".into()], number_format: NumberFormat::E164, country_code: Some("49".into()) }],
        vec![user],
        vec![TeamsProxy { name: "p1".into(), addr: Some(addr(P1)) }, TeamsProxy { name: "p2".into(), addr: Some(addr(P2)) }],
    )
}

struct Flow<'a> {
    data: &'a [u8],
    core: CallCore<Media>,
    now: Instant,
    /// Requests the core sent, by peer; our responses and in-dialog messages from peers.
    sent: Vec<(SocketAddr, Message)>,
    n: u32,
}

impl Flow<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.data.split_first() else { return 0 };
        self.data = rest;
        b
    }

    fn bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte()).min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a.to_vec()
    }

    fn feed(&mut self, text: Vec<u8>, peer: &str, listener: &'static str, transport: Transport) {
        let Ok(message) = Message::parse(Bytes::from(text)) else { return };
        let source = Source { transport, listener, peer: addr(peer), local: addr("203.0.113.5:5060"), conn: Some(1) };
        self.core.handle(self.now, Input::Message { message, source });
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            if let Output::Transmit { dest, data } = out {
                let to = match dest { Dest::Reply(s) => s.peer, Dest::To(t) => t.addr };
                let msg = Message::parse(data).expect("the core sent an unparsable message");
                self.sent.push((to, msg));
                if self.sent.len() > 64 {
                    self.sent.remove(0);
                }
            }
        }
    }

    /// The latest message sent to `to` matching `f`.
    fn last(&self, to: &str, f: impl Fn(&Message) -> bool) -> Option<Message> {
        let to = addr(to);
        self.sent.iter().rev().find(|(a, m)| *a == to && f(m)).map(|(_, m)| m.clone())
    }

    fn step(&mut self) {
        let op = self.byte() % 12;
        let side = self.byte();
        let (peer, listener, transport) = match side % 3 {
            0 => (PBX, "pbx", Transport::Udp),
            1 => (TEAMS, "teams", Transport::Tls),
            _ => (if side & 4 == 0 { P1 } else { P2 }, "outbound", Transport::Tls),
        };
        self.n += 1;
        match op {
            0 | 1 => {
                let sdp = match self.byte() % 4 {
                    0 => Vec::new(),
                    1 => self.bytes(),
                    _ if op == 0 => TEAMS_SDP.as_bytes().to_vec(),
                    _ => PBX_SDP.as_bytes().to_vec(),
                };
                let (uri, from, peer, listener, transport) = if op == 0 {
                    ("sip:+4930222@t.sbc.example:5061;user=phone", "sip:+4930111@sip.pstnhub.microsoft.com", TEAMS, "teams", Transport::Tls)
                } else {
                    ("sip:tok@203.0.113.5", "sip:0301234@pbx", PBX, "pbx", Transport::Udp)
                };
                let mut b = MessageBuilder::request("INVITE", uri)
                    .header("Via", format!("SIP/2.0/UDP {peer};branch=z9hG4bK-f{}", self.n))
                    .header("From", format!("<{from}>;tag=f{}", self.n))
                    .header("To", format!("<{uri}>"))
                    .header("Call-ID", format!("fz{}", self.n))
                    .header("CSeq", "1 INVITE")
                    .header("Contact", format!("<sip:x@{peer}>"))
                    .header("Max-Forwards", "70");
                if self.byte() & 1 == 1 {
                    b = b.header("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"n\"");
                }
                let text = if sdp.is_empty() { b.finish() } else { b.body(Some("application/sdp"), &sdp) };
                self.feed(text.to_vec(), peer, listener, transport);
            }
            2 => {
                // A response to the latest INVITE we sent to this peer.
                let Some(req) = self.last(peer, |m| m.method().is_some_and(|x| x.as_str() == "INVITE")) else { return };
                const CODES: [u16; 14] = [100, 180, 183, 183, 200, 200, 401, 407, 408, 486, 487, 503, 504, 603];
                let status = CODES[usize::from(self.byte()) % CODES.len()];
                let tag = format!("k{}", self.byte() % 3);
                let mut b = MessageBuilder::response_to(&req, status, "X", (status > 100).then_some(tag.as_str()), None)
                    .header("Contact", format!("<sip:y@{peer}>"));
                match status {
                    401 => b = b.header("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\", qop=\"auth\""),
                    407 => b = b.header("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"n\""),
                    503 => b = b.header("Retry-After", "1"),
                    _ => {}
                }
                let sdp = match self.byte() % 4 {
                    0 => Vec::new(),
                    1 => self.bytes(),
                    _ if listener == "pbx" => PBX_SDP.as_bytes().to_vec(),
                    _ => TEAMS_SDP.as_bytes().to_vec(),
                };
                let text = if sdp.is_empty() || !(180..300).contains(&status) { b.finish() } else { b.body(Some("application/sdp"), &sdp) };
                self.feed(text.to_vec(), peer, listener, transport);
            }
            3..=5 => {
                // ACK, BYE or re-INVITE from the peer in the dialog of our latest 2xx to it, or
                // BYE in the dialog of our latest ACK to it.
                let method = ["ACK", "BYE", "INVITE"][usize::from(op - 3)];
                let ours = self.last(peer, |m| m.status() == Some(200) || m.method().is_some_and(|x| x.as_str() == "ACK"));
                let Some(ours) = ours else { return };
                let h = |n| ours.header(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                use teamsgw_sip::HeaderName as H;
                let (from, to) = if ours.is_request() { (h(H::To), h(H::From)) } else { (h(H::From), h(H::To)) };
                let cseq = 2 + u32::from(self.byte());
                let b = MessageBuilder::request(method, "sip:us@203.0.113.5")
                    .header("Via", format!("SIP/2.0/UDP {peer};branch=z9hG4bK-d{}", self.n))
                    .header("From", from).header("To", to).header("Call-ID", h(H::CallId))
                    .header("CSeq", format!("{cseq} {method}")).header("Max-Forwards", "70");
                let text = if self.byte() & 1 == 1 { b.body(Some("application/sdp"), &self.bytes()) } else { b.finish() };
                self.feed(text.to_vec(), peer, listener, transport);
            }
            6 => {
                // CANCEL of the latest INVITE from this peer (same Via branch and Call-ID).
                let k = self.n.saturating_sub(u32::from(self.byte() % 4) + 1);
                let Some(p) = [PBX, TEAMS].get(usize::from(side & 1)) else { return };
                let (listener, transport) = if *p == PBX { ("pbx", Transport::Udp) } else { ("teams", Transport::Tls) };
                let text = format!(
                    "CANCEL sip:x@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bK-f{k}\r\nFrom: <sip:a@b>;tag=f{k}\r\nTo: <sip:c@d>\r\nCall-ID: fz{k}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                );
                self.feed(text.into_bytes(), p, listener, transport);
            }
            7 => {
                let ms = u64::from(self.byte()) * 250;
                self.now += Duration::from_millis(ms);
                self.core.handle_timeout(self.now);
                self.drain();
            }
            8 => {
                let session = u64::from(self.byte() % 8);
                self.core.handle(self.now, Input::MediaTimeout { session });
                self.drain();
            }
            9 => {
                let proxy = if side & 1 == 0 { "p1" } else { "p2" };
                self.core.handle(self.now, Input::ProxyState { proxy: proxy.into(), up: side & 2 == 0 });
            }
            10 => {
                let target = teamsgw_sip::transport::Target { transport, addr: addr(peer), server_name: None };
                self.core.handle(self.now, Input::SendFailed { target });
                self.drain();
            }
            _ => {
                let raw = self.bytes();
                self.feed(raw, peer, listener, transport);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let settings = CallSettings { sessions: Arc::new(Default::default()), ..CallSettings::default() };
    let now = Instant::now();
    let mut flow = Flow { data, core: CallCore::new(settings, Arc::new(view()), Media::default()), now, sent: Vec::new(), n: 0 };
    while !flow.data.is_empty() {
        flow.step();
    }
    // Drain: every call still up gets BYE at the deadline; the rest time out.
    let deadline = flow.now + Duration::from_secs(1);
    flow.core.handle(flow.now, Input::Drain { deadline });
    for _ in 0..400 {
        flow.now += Duration::from_millis(500);
        flow.core.handle_timeout(flow.now);
        flow.drain();
    }
    assert_eq!(flow.core.active(), 0, "calls left after the drain");
    assert!(flow.core.media().live.is_empty(), "media sessions leaked");
});
