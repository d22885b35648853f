//! The call core driven by arbitrary sequences of valid-shaped SIP flows (INVITE from either
//! side, 1xx/2xx/3xx-6xx with and without SDP and forks, ACK, BYE, CANCEL, garbage, time,
//! media timeouts) and mid-call ones (hold, resume, refreshes and codec changes in re-INVITE
//! and UPDATE; REFER to a Teams user or a number, NOTIFY, answers to our REFER, NOTIFY and
//! BYE; INVITE with Replaces naming a call's Teams dialog), structure-aware: each input byte
//! picks the next event, following bytes its details. Invariants beyond "no panic": every message the core sends parses, and once
//! drained every call is gone and every media session released (nothing leaks).
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use teamsgw_gateway::call::media::{Allocation, MediaCounters, MediaPlane, SessionParams};
use teamsgw_gateway::call::routing::{
    NumberFormat, OperatorConnect, PbxRoute, RoutingView, TeamsProxy, Tenant, UserRoute,
};
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

/// Numbers from the network at and past their bounds (issue 31 §3): every one must get a
/// sane answer and overflow nothing (an `Instant` plus 2^64-1 s once panicked a shard).
const EXTREME: [&str; 6] = ["1", "0", "86401", "4294967296", "18446744073709551615", "99999999999999999999999"];
const SESSION_EXPIRES: [&str; 5] = [
    "90;refresher=uac",
    "18446744073709551615;refresher=uas",
    "18446744073709551615",
    "4294967296;refresher=uac",
    "0",
];

/// Mid-call offers: holds both ways (§3.6), a refresh (same `o=` version), a new Teams key
/// and no rtcp-mux (§3.5), a codec change, a PBX hold with 0.0.0.0.
const MID_CALL_SDP: [&str; 8] = [
    "v=0\r\no=- 1 1 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\na=inactive\r\n",
    "v=0\r\no=- 1 2 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n",
    TEAMS_SDP,
    "v=0\r\no=- 1 3 IN IP4 52.114.14.71\r\ns=-\r\nc=IN IP4 52.114.14.71\r\nt=0 0\r\nm=audio 52886 RTP/SAVP 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31\r\na=rtpmap:101 telephone-event/8000\r\n",
    "v=0\r\no=p 1 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n",
    "v=0\r\no=p 1 3 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=inactive\r\n",
    PBX_SDP,
    "v=0\r\no=p 1 4 IN IP4 192.0.2.21\r\ns=-\r\nc=IN IP4 192.0.2.21\r\nt=0 0\r\nm=audio 30002 RTP/AVP 18 96\r\na=rtpmap:18 G729/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
];

/// Refer-To of a transfer to a Teams user (no user part, x-m/x-t) and to a number (§3.7).
const REFER_TO: [&str; 3] = [
    "<sip:sip.pstnhub.microsoft.com:5061;transport=tls;x-m=8:orgid:fce2158f;x-t=2d88cb42>",
    "<sip:+4930333@sip.pstnhub.microsoft.com:5061;user=phone>",
    "<sip:2002@pbx>",
];

const SIPFRAG: [&str; 4] = ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK", "SIP/2.0 486 Busy Here"];

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn view() -> RoutingView {
    let user = UserRoute {
        upn: "a@x".into(), enterprise_id: "e".into(), pbx_id: "p".into(), number: "+4930111".into(),
        extension: "1001".into(), auth_user: "1001".into(), password: "pw".into(),
        contact_token: "tok".into(), enabled: true,
    };
    // An Operator Connect user on the carrier trunk `sbc.example` (issue 32).
    let oc_user = UserRoute {
        upn: "c@y".into(), enterprise_id: "o".into(), number: "+4930555".into(),
        contact_token: "tok2".into(), ..user.clone()
    };
    let tenant = Tenant { fqdn: "t.sbc.example".into(), port: 5061, enterprise_id: "e".into(), enterprise: "E".into(), max_sessions: Some(3), max_cps: Some(20), emergency_numbers: None, operator_connect: false };
    let oc_tenant = Tenant { fqdn: "sbc.example".into(), enterprise_id: "o".into(), enterprise: "O".into(), max_sessions: None, max_cps: None, operator_connect: true, ..tenant.clone() };
    RoutingView::new(
        vec![tenant],
        vec![PbxRoute { id: "p".into(), domain: "pbx".into(), next_hop: PBX.into(), transport: Transport::Udp, addrs: vec![addr(PBX)].into(), codecs: vec!["PCMA".into(), "PCMU".into()], number_format: NumberFormat::E164, country_code: Some("49".into()), diversion: true }],
        vec![user, oc_user],
        vec![TeamsProxy { name: "p1".into(), addr: Some(addr(P1)) }, TeamsProxy { name: "p2".into(), addr: Some(addr(P2)) }],
    )
    .with_operator_connect(OperatorConnect {
        fqdn: "sbc.example".into(),
        tenants: vec![oc_tenant],
        tenant_ids: [("o".to_owned(), "tid".to_owned())].into(),
        numbers: [("+4930555".to_owned(), "o".to_owned())].into(),
    })
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
                // An in-dialog hop's name is the driver's to resolve: its fallback here.
                let to = match dest {
                    Dest::Reply(s) => s.peer,
                    Dest::To(t) => t.addr,
                    Dest::Hop(h) => match &h.fallback {
                        Some(Dest::Reply(s)) => s.peer,
                        Some(Dest::To(t)) => t.addr,
                        _ => addr(P1),
                    },
                };
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

    /// An INVITE from `peer` that starts a dialog (Call-ID `fz<n>`, CANCEL's target).
    fn new_invite(&self, uri: &str, from: &str, peer: &str) -> MessageBuilder {
        MessageBuilder::request("INVITE", uri)
            .header("Via", format!("SIP/2.0/UDP {peer};branch=z9hG4bK-f{}", self.n))
            .header("From", format!("<{from}>;tag=f{}", self.n))
            .header("To", format!("<{uri}>"))
            .header("Call-ID", format!("fz{}", self.n))
            .header("CSeq", "1 INVITE")
            .header("Contact", format!("<sip:x@{peer}>"))
            .header("Max-Forwards", "70")
    }

    /// Our latest 2xx or ACK to `peer`: the dialog a peer's in-dialog request goes in, as
    /// (From, To, Call-ID) from the peer's side.
    fn dialog_with(&self, peer: &str) -> Option<(String, String, String)> {
        use teamsgw_sip::HeaderName as H;
        let ours = self.last(peer, |m| m.status() == Some(200) || m.method().is_some_and(|x| x.as_str() == "ACK"))?;
        let h = |n| ours.header(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let (from, to) = if ours.is_request() { (h(H::To), h(H::From)) } else { (h(H::From), h(H::To)) };
        Some((from, to, h(H::CallId)))
    }

    /// A request from `peer` in the dialog of our latest 2xx or ACK to it.
    fn in_dialog(&mut self, peer: &str, method: &str) -> Option<MessageBuilder> {
        let (from, to, call_id) = self.dialog_with(peer)?;
        let cseq = 2 + u32::from(self.byte());
        Some(
            MessageBuilder::request(method, "sip:us@203.0.113.5")
                .header("Via", format!("SIP/2.0/UDP {peer};branch=z9hG4bK-d{}", self.n))
                .header("From", from)
                .header("To", to)
                .header("Call-ID", call_id)
                .header("CSeq", format!("{cseq} {method}"))
                .header("Max-Forwards", "70"),
        )
    }

    /// A mid-call request: re-INVITE or UPDATE with a mid-call offer, REFER, or NOTIFY of a
    /// REFER's progress.
    fn mid_call(&mut self, peer: &str, listener: &'static str, transport: Transport) {
        let kind = self.byte() % 5;
        let method = ["INVITE", "UPDATE", "REFER", "NOTIFY", "INVITE"][usize::from(kind)];
        let Some(b) = self.in_dialog(peer, method) else { return };
        let text = match kind {
            0 | 1 | 4 => {
                let sdp = MID_CALL_SDP[usize::from(self.byte()) % MID_CALL_SDP.len()];
                if kind == 1 && self.byte() & 1 == 1 {
                    b.finish()
                } else {
                    let se = SESSION_EXPIRES[usize::from(self.byte()) % SESSION_EXPIRES.len()];
                    b.header("Session-Expires", se).body(Some("application/sdp"), sdp.as_bytes())
                }
            }
            2 => {
                let to = REFER_TO[usize::from(self.byte()) % REFER_TO.len()];
                b.header("Refer-To", to)
                    .header("Referred-By", "<sip:sip.pstnhub.microsoft.com;x-m=8:orgid:bdc0;x-t=2d88;x-ti=9cfa;x-tt=aHR0>")
                    .finish()
            }
            _ => {
                let frag = SIPFRAG[usize::from(self.byte()) % SIPFRAG.len()];
                let state = if frag.contains(" 1") { "active;expires=60" } else { "terminated;reason=noresource" };
                b.header("Event", "refer")
                    .header("Subscription-State", state)
                    .body(Some("message/sipfrag;version=2.0"), frag.as_bytes())
            }
        };
        self.feed(text.to_vec(), peer, listener, transport);
    }

    /// A response to our latest request other than INVITE and ACK to `peer` (REFER, NOTIFY,
    /// BYE, UPDATE).
    fn answer_request(&mut self, peer: &str, listener: &'static str, transport: Transport) {
        let Some(req) = self.last(peer, |m| m.method().is_some_and(|x| !matches!(x.as_str(), "INVITE" | "ACK"))) else { return };
        const CODES: [u16; 9] = [100, 200, 202, 403, 405, 481, 491, 501, 503];
        let status = CODES[usize::from(self.byte()) % CODES.len()];
        let text = MessageBuilder::response_to(&req, status, "X", Some("k0"), None).finish();
        self.feed(text.to_vec(), peer, listener, transport);
    }

    /// INVITE with Replaces from Teams naming the Teams dialog of a call: our 2xx to Teams,
    /// or our INVITE to a Teams proxy (its early dialog, with a guessed To tag).
    fn replacing(&mut self) {
        use teamsgw_sip::HeaderName as H;
        let target = if self.byte() & 1 == 0 {
            self.dialog_with(TEAMS).map(|(theirs, ours, id)| (id, ours, theirs))
        } else {
            let to = [P1, P2][usize::from(self.byte() & 1)];
            self.last(to, |m| m.method().is_some_and(|x| x.as_str() == "INVITE")).map(|inv| {
                let h = |n| inv.header(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                (h(H::CallId), h(H::From), format!("x;tag=k{}", self.byte() % 3))
            })
        };
        let Some((call_id, ours, theirs)) = target else { return };
        let tag = |h: &str| h.split(";tag=").nth(1).unwrap_or("").to_owned();
        let mut replaces = format!("{call_id};to-tag={};from-tag={}", tag(&ours), tag(&theirs));
        match self.byte() % 4 {
            0 => replaces.push_str(";early-only"),
            1 => replaces = format!("{call_id};to-tag={};from-tag={}", tag(&theirs), tag(&ours)),
            _ => {}
        }
        let uri = "sip:+4930222@t.sbc.example:5061;user=phone";
        let sdp = if self.byte() & 1 == 0 { TEAMS_SDP } else { MID_CALL_SDP[3] };
        let text = self
            .new_invite(uri, "sip:+4930333@sip.pstnhub.microsoft.com", TEAMS)
            .header("Replaces", replaces)
            .body(Some("application/sdp"), sdp.as_bytes());
        self.feed(text.to_vec(), TEAMS, "teams", Transport::Tls);
    }

    fn step(&mut self) {
        let op = self.byte() % 15;
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
                let (uri, from, peer, listener, transport) = if op == 0 && side & 8 != 0 {
                    ("sip:+4930222@sbc.example:5061;user=phone", "sip:+4930555@sip.pstnhub.microsoft.com", TEAMS, "teams", Transport::Tls)
                } else if op == 0 {
                    ("sip:+4930222@t.sbc.example:5061;user=phone", "sip:+4930111@sip.pstnhub.microsoft.com", TEAMS, "teams", Transport::Tls)
                } else {
                    ("sip:tok@203.0.113.5", "sip:0301234@pbx", PBX, "pbx", Transport::Udp)
                };
                let mut b = self.new_invite(uri, from, peer);
                if self.byte() & 1 == 1 {
                    b = b.header("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"n\"");
                }
                let text = if sdp.is_empty() { b.finish() } else { b.body(Some("application/sdp"), &sdp) };
                self.feed(text.to_vec(), peer, listener, transport);
            }
            2 => {
                // A response to the latest INVITE we sent to this peer.
                let Some(req) = self.last(peer, |m| m.method().is_some_and(|x| x.as_str() == "INVITE")) else { return };
                const CODES: [u16; 15] = [100, 180, 183, 183, 200, 200, 401, 407, 408, 422, 486, 487, 503, 504, 603];
                let status = CODES[usize::from(self.byte()) % CODES.len()];
                let tag = format!("k{}", self.byte() % 3);
                let mut b = MessageBuilder::response_to(&req, status, "X", (status > 100).then_some(tag.as_str()), None)
                    .header("Contact", format!("<sip:y@{peer}>"));
                match status {
                    401 => b = b.header("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\", qop=\"auth\""),
                    407 => b = b.header("Proxy-Authenticate", "Digest realm=\"r\", nonce=\"n\""),
                    503 => b = b.header("Retry-After", EXTREME[usize::from(self.byte()) % EXTREME.len()]),
                    422 => b = b.header("Min-SE", EXTREME[usize::from(self.byte()) % EXTREME.len()]),
                    200 if self.byte() & 1 == 1 => {
                        let se = SESSION_EXPIRES[usize::from(self.byte()) % SESSION_EXPIRES.len()];
                        b = b.header("Require", "timer").header("Session-Expires", se);
                    }
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
                let Some(b) = self.in_dialog(peer, method) else { return };
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
            11 => self.mid_call(peer, listener, transport),
            12 => self.answer_request(peer, listener, transport),
            13 => self.replacing(),
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
