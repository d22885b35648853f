//! The test world: a core, a scripted Teams peer, a scripted PBX peer, fake media and a
//! virtual clock. Peers are plain functions over the messages the core sent; `step` moves the
//! clock to the core's next timer, so a 32 s Timer B runs in microseconds.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_sip::Message;
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::transport::{Source, Transport};

use crate::call::media::{Allocation, MediaCounters, MediaPlane, SessionParams};
use crate::call::routing::{
    NumberFormat, OperatorConnect, PbxRoute, RoutingView, TeamsProxy, Tenant, UserRoute,
};
use crate::call::{
    CallCore, CallEvent, CallRecord, CallSettings, Dest, Input, Output, SessionCounts,
};

pub const TENANT: &str = "cust1.sbc.example.com";
pub const PBX_ADDR: &str = "192.0.2.10:5060";
/// `teams.base_fqdn`: the carrier trunk Operator Connect calls use.
pub const CARRIER: &str = "sbc.example.com";
/// The Microsoft tenant of Operator Connect enterprise Fabrikam (`e2`).
pub const OC_TENANT_ID: &str = "7f3e2a10-aaaa-4bbb-8ccc-000000000032";
pub const TEAMS_PEER: &str = "52.112.0.1:40000";
pub const PROXY1: &str = "198.51.100.1:5061";
pub const PROXY2: &str = "198.51.100.2:5061";

#[derive(Default)]
pub struct FakeMedia {
    pub capacity: usize,
    pub next: u64,
    pub live: HashMap<u64, Option<SessionParams>>,
    pub released: Vec<u64>,
}

impl MediaPlane for FakeMedia {
    fn allocate(&mut self) -> Option<Allocation> {
        if self.live.len() >= self.capacity {
            return None;
        }
        self.next += 1;
        self.live.insert(self.next, None);
        Some(Allocation {
            session: self.next,
            teams_port: 40000 + 4 * self.next as u16,
            pbx_port: 40002 + 4 * self.next as u16,
            local_key: vec![7u8; 30],
        })
    }

    fn apply(&mut self, session: u64, params: SessionParams) {
        if let Some(p) = self.live.get_mut(&session) {
            *p = Some(params);
        }
    }

    fn release(&mut self, session: u64) -> MediaCounters {
        self.live.remove(&session);
        self.released.push(session);
        MediaCounters::default()
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn view(max_sessions: Option<u32>) -> RoutingView {
    view_with_pbx(max_sessions, |_| {})
}

/// [`view`] with the PBX changed by `edit`.
pub fn view_with_pbx(max_sessions: Option<u32>, edit: impl FnOnce(&mut PbxRoute)) -> RoutingView {
    view_with_parts(max_sessions, |_| {}, edit)
}

/// [`view`] with the tenant changed by `edit`.
pub fn view_with_tenant(max_sessions: Option<u32>, edit: impl FnOnce(&mut Tenant)) -> RoutingView {
    view_with_parts(max_sessions, edit, |_| {})
}

fn view_with_parts(
    max_sessions: Option<u32>,
    edit_tenant: impl FnOnce(&mut Tenant),
    edit: impl FnOnce(&mut PbxRoute),
) -> RoutingView {
    let mut tenant = Tenant {
        fqdn: TENANT.into(),
        port: 5061,
        enterprise_id: "e1".into(),
        enterprise: "Contoso".into(),
        max_sessions,
        max_cps: None,
        emergency_numbers: None,
        operator_connect: false,
    };
    edit_tenant(&mut tenant);
    let mut pbx = PbxRoute {
        id: "p1".into(),
        domain: "pbx.example.com".into(),
        next_hop: PBX_ADDR.into(),
        transport: Transport::Udp,
        addrs: vec![addr(PBX_ADDR)].into(),
        codecs: vec!["PCMA".into(), "PCMU".into()],
        number_format: NumberFormat::E164,
        country_code: Some("49".into()),
        diversion: false,
    };
    edit(&mut pbx);
    let user = |upn: &str, number: &str, ext: &str, token: &str, enabled| UserRoute {
        upn: upn.into(),
        enterprise_id: "e1".into(),
        pbx_id: "p1".into(),
        number: number.into(),
        extension: ext.into(),
        auth_user: ext.into(),
        password: "secret".into(),
        contact_token: token.into(),
        enabled,
    };
    RoutingView::new(
        vec![tenant],
        vec![pbx],
        vec![
            user("alice@contoso.com", "+4930111", "1001", "tok1", true),
            user("bob@contoso.com", "+4930112", "1002", "tok2", false),
            // Operator Connect enterprise Fabrikam (issue 32), on the same PBX for brevity.
            UserRoute {
                enterprise_id: "e2".into(),
                ..user("carol@fabrikam.com", "+4930555", "1003", "tok3", true)
            },
        ],
        vec![
            TeamsProxy {
                name: "sip.pstnhub.microsoft.com".into(),
                addr: Some(addr(PROXY1)),
            },
            TeamsProxy {
                name: "sip2.pstnhub.microsoft.com".into(),
                addr: Some(addr(PROXY2)),
            },
        ],
    )
}

/// [`view`] with Fabrikam (`e2`) an Operator Connect enterprise on the carrier trunk
/// [`CARRIER`], carol's +4930555 its activated UserAssigned OC number.
pub fn view_with_operator_connect() -> RoutingView {
    view(None).with_operator_connect(OperatorConnect {
        fqdn: CARRIER.into(),
        tenants: vec![Tenant {
            fqdn: CARRIER.into(),
            port: 5061,
            enterprise_id: "e2".into(),
            enterprise: "Fabrikam".into(),
            max_sessions: None,
            max_cps: None,
            emergency_numbers: None,
            operator_connect: true,
        }],
        tenant_ids: [("e2".to_owned(), OC_TENANT_ID.to_owned())].into(),
        numbers: [("+4930555".to_owned(), "e2".to_owned())].into(),
    })
}

/// A message the core sent, with where it went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: SocketAddr,
    pub msg: Message,
    /// The in-dialog hop it was sent to, when the core left that to the driver
    /// (`host:port`, a name resolved through [`World::names`]).
    pub hop: Option<String>,
}

impl Sent {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.msg.as_bytes()).into_owned()
    }

    pub fn status(&self) -> Option<u16> {
        self.msg.status()
    }

    pub fn method(&self) -> Option<String> {
        self.msg.method().map(|m| m.as_str().to_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.msg
            .headers()
            .find(|h| h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    }

    pub fn body(&self) -> String {
        String::from_utf8_lossy(self.msg.body()).into_owned()
    }
}

pub struct World {
    pub core: CallCore<FakeMedia>,
    pub now: Instant,
    pub sent: VecDeque<Sent>,
    pub events: Vec<CallEvent>,
    pub proxy_down: Vec<(String, Duration)>,
    /// Call-ID links for a SIP capture (`Output::Correlate`), in order.
    pub links: Vec<(String, Option<String>)>,
    /// What the driver's resolver would answer for in-dialog hop names; a name missing
    /// here goes to the hop's fallback, as the driver does.
    pub names: HashMap<String, SocketAddr>,
}

/// The host Teams names in its Contact (teams-direct-routing.md §1.5); the world's DNS
/// maps it to [`TEAMS_PEER`].
pub const TEAMS_API_DU: &str = "api-du-b-euwe.pstnhub.microsoft.com";

impl World {
    pub fn new() -> Self {
        Self::with(view(None), 100)
    }

    pub fn with(view: RoutingView, media_capacity: usize) -> Self {
        Self::with_settings(view, media_capacity, |_| {})
    }

    /// [`World::with`] with the call settings changed by `edit`.
    pub fn with_settings(
        view: RoutingView,
        media_capacity: usize,
        edit: impl FnOnce(&mut CallSettings),
    ) -> Self {
        let mut settings = CallSettings {
            sessions: Arc::new(SessionCounts::default()),
            media_address: "203.0.113.5".into(),
            pbx_host: "203.0.113.5".into(),
            sbc_header: "Carrier/teamsgw/1.0".into(),
            ..CallSettings::default()
        };
        edit(&mut settings);
        let media = FakeMedia {
            capacity: media_capacity,
            ..FakeMedia::default()
        };
        let now = Instant::now();
        Self {
            core: CallCore::new(settings, Arc::new(view), media),
            now,
            sent: VecDeque::new(),
            events: Vec::new(),
            proxy_down: Vec::new(),
            links: Vec::new(),
            names: HashMap::from([(TEAMS_API_DU.to_owned(), addr(TEAMS_PEER))]),
        }
    }

    pub fn input(&mut self, input: Input) {
        self.core.handle(self.now, input);
        self.drain();
    }

    /// Takes what the core queued (after calling it directly, as `recover`).
    pub fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { dest, data } => {
                    let (to, hop) = self.resolve(&dest);
                    let msg = Message::parse(data).expect("the core sent an unparsable message");
                    self.sent.push_back(Sent { to, msg, hop });
                }
                Output::ProxyDown { proxy, retry_after } => {
                    self.proxy_down.push((proxy, retry_after))
                }
                Output::Event(e) => self.events.push(e),
                Output::Correlate {
                    call_id,
                    correlation,
                } => self.links.push((call_id, correlation)),
            }
        }
    }

    /// Where the driver would send to `dest`: a hop's name through [`World::names`], else
    /// its fallback.
    fn resolve(&self, dest: &Dest) -> (SocketAddr, Option<String>) {
        match dest {
            Dest::Reply(s) => (s.peer, None),
            Dest::To(t) => (t.addr, None),
            Dest::Hop(h) => {
                let name = format!("{}:{}", h.host, h.port);
                let resolved = match h.host.parse() {
                    Ok(ip) => Some(SocketAddr::new(ip, h.port)),
                    Err(_) => self.names.get(&h.host).copied(),
                };
                match (resolved, &h.fallback) {
                    (Some(a), _) => (a, Some(name)),
                    (None, Some(f)) => self.resolve(f),
                    (None, None) => panic!("{name} does not resolve and has no fallback"),
                }
            }
        }
    }

    /// Advances the clock to the next timer (at most `limit` ahead) and runs it.
    pub fn step(&mut self, limit: Duration) -> bool {
        let Some(at) = self.core.poll_timeout() else {
            return false;
        };
        if at > self.now + limit {
            return false;
        }
        self.now = self.now.max(at);
        self.core.handle_timeout(self.now);
        self.drain();
        true
    }

    /// Runs timers until `d` of virtual time has passed.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until - self.now) {}
        self.now = until;
        self.core.handle_timeout(self.now);
        self.drain();
    }

    pub fn teams_sends(&mut self, text: String) {
        let source = Source {
            transport: Transport::Tls,
            listener: "teams",
            peer: addr(TEAMS_PEER),
            local: addr("203.0.113.5:5061"),
            conn: Some(1),
        };
        self.receive(text, source);
    }

    /// A response from a Teams proxy arrives on our outbound connection to it.
    pub fn proxy_sends(&mut self, proxy: &str, text: String) {
        let source = Source {
            transport: Transport::Tls,
            listener: "outbound",
            peer: addr(proxy),
            local: addr("203.0.113.5:45000"),
            conn: Some(2),
        };
        self.receive(text, source);
    }

    pub fn pbx_sends(&mut self, text: String) {
        self.pbx_sends_from(PBX_ADDR, text);
    }

    pub fn pbx_sends_from(&mut self, peer: &str, text: String) {
        let source = Source {
            transport: Transport::Udp,
            listener: "pbx",
            peer: addr(peer),
            local: addr("203.0.113.5:5060"),
            conn: None,
        };
        self.receive(text, source);
    }

    fn receive(&mut self, text: String, source: Source) {
        let message = Message::parse(Bytes::from(text)).expect("test message parses");
        self.input(Input::Message { message, source });
    }

    /// Takes the next message sent to `to`, failing with everything sent if there is none.
    pub fn take(&mut self, to: &str) -> Sent {
        let to = addr(to);
        let i = self
            .sent
            .iter()
            .position(|s| s.to == to)
            .unwrap_or_else(|| panic!("nothing sent to {to}; sent: {:#?}", self.sent));
        self.sent.remove(i).unwrap()
    }

    /// Takes the next message to `to` with this status or method.
    pub fn expect(&mut self, to: &str, what: &str) -> Sent {
        let to_addr = addr(to);
        let i = self
            .sent
            .iter()
            .position(|s| {
                s.to == to_addr
                    && (s.status().map(|c| c.to_string()).as_deref() == Some(what)
                        || s.method().as_deref() == Some(what))
            })
            .unwrap_or_else(|| {
                let seen: Vec<String> = self
                    .sent
                    .iter()
                    .map(|s| format!("{} -> {}", s.text().lines().next().unwrap_or(""), s.to))
                    .collect();
                panic!("no {what} sent to {to}; sent: {seen:#?}")
            });
        self.sent.remove(i).unwrap()
    }

    pub fn nothing_to(&self, to: &str, what: &str) -> bool {
        let to = addr(to);
        !self.sent.iter().any(|s| {
            s.to == to
                && (s.status().map(|c| c.to_string()).as_deref() == Some(what)
                    || s.method().as_deref() == Some(what))
        })
    }

    pub fn records(&self) -> Vec<&CallRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Finished(r) => Some(r.as_ref()),
                _ => None,
            })
            .collect()
    }

    pub fn refusals(&self) -> Vec<&'static str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Refused { reason } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    /// Every transfer that ended, as (kind, result).
    pub fn transfers(&self) -> Vec<(&'static str, &'static str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Transfer { kind, result } => Some((*kind, *result)),
                _ => None,
            })
            .collect()
    }

    pub fn applied(&self) -> Vec<SessionParams> {
        self.core
            .media()
            .live
            .values()
            .filter_map(Clone::clone)
            .collect()
    }

    /// Nothing left: no call, no media session.
    pub fn assert_clean(&self) {
        assert_eq!(self.core.active(), 0, "calls still active");
        assert!(self.core.media().live.is_empty(), "media sessions leaked");
    }
}

// ---- messages the peers send -------------------------------------------------------------

pub const TEAMS_SDP: &str = "v=0\r\no=- 2142 0 IN IP4 52.114.14.70\r\ns=session\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 111 9 0 8 13 101\r\na=ice-ufrag:9d4c\r\na=ice-pwd:3f2b8f9e5d1a4c7b9e0f1a2b3c4d5e6f\r\na=candidate:1 1 UDP 2130706431 52.114.14.70 52884 typ host\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:111 SILK/16000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// Teams' SDES answer to our offer (§4.1): PCMA, telephone-event, rtcp-mux.
pub const TEAMS_ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 52.114.14.80\r\ns=-\r\nc=IN IP4 52.114.14.80\r\nt=0 0\r\nm=audio 50000 RTP/SAVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";

pub const PBX_SDP: &str = "v=0\r\no=pbx 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

/// A Teams -> PBX call answered: our 200 to Teams and our ACK to the PBX.
pub fn answered(w: &mut World) -> (Sent, Sent) {
    w.teams_sends(teams_invite(
        "x1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    let ack = w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.sent.clear();
    (ok, ack)
}

/// The first line of `sdp` starting with `prefix` ("" when none).
pub fn sdp_line<'a>(sdp: &'a str, prefix: &str) -> &'a str {
    sdp.lines().find(|l| l.starts_with(prefix)).unwrap_or("")
}

/// An INVITE from Teams for the tenant FQDN, from `caller` to `called` (§3.3's shape).
pub fn teams_invite(call_id: &str, caller: &str, called: &str, host: &str, sdp: &str) -> String {
    format!(
        "INVITE sip:{called}@{host}:5061;user=phone;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 52.112.0.1:40000;branch=z9hG4bK-t-{call_id}\r\n\
         From: <sip:{caller}@sip.pstnhub.microsoft.com:5061;user=phone>;tag=tf\r\n\
         To: <sip:{called}@{host}:5061;user=phone>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=abc>\r\n\
         P-Asserted-Identity: \"Alice\" <sip:{caller}@sip.pstnhub.microsoft.com:5061;user=phone>\r\n\
         User-Agent: Microsoft.PSTNHub.SIPProxy v.2024.1\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// An INVITE from the PBX for a contact token, from `caller`, with or without SDP.
/// The CANCEL of an INVITE we made up (RFC 3261 §9.1: same Request-URI, Via, From, To,
/// Call-ID and CSeq number).
pub fn cancel_of(invite: &str) -> String {
    invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replacen(" INVITE\r\n", " CANCEL\r\n", 1)
}

pub fn pbx_invite(call_id: &str, token: &str, caller: &str, sdp: Option<&str>) -> String {
    let body = sdp.unwrap_or("");
    let ct = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "INVITE sip:{token}@203.0.113.5:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-p-{call_id}\r\n\
         From: \"Carol\" <sip:{caller}@pbx.example.com>;tag=pf\r\n\
         To: <sip:1001@pbx.example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 10 INVITE\r\nMax-Forwards: 69\r\n\
         Record-Route: <sip:192.0.2.10:5060;lr>\r\n\
         Contact: <sip:{caller}@192.0.2.30:5062>\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A response from a peer to a request the core sent.
pub fn reply(
    req: &Sent,
    status: u16,
    reason: &str,
    tag: &str,
    extra: &str,
    sdp: Option<&str>,
) -> String {
    let mut b = MessageBuilder::response_to(&req.msg, status, reason, Some(tag), None);
    if (101..300).contains(&status) {
        b = b.header("Contact", format!("<sip:peer-{tag}@{}>", req.to));
    }
    for line in extra.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap();
        b = b.header(name, value);
    }
    let data = match sdp {
        Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
        None => b.finish(),
    };
    String::from_utf8(data.to_vec()).unwrap()
}

/// An in-dialog request from a peer. `ours` carries both tags: for a leg that called us our
/// 2xx (From is the peer, To is us), for a leg we called our ACK (From is us, To the peer).
pub fn in_dialog(
    method: &str,
    ours: &Sent,
    peer_is_caller: bool,
    cseq: u32,
    body: Option<&str>,
) -> String {
    let h = |n: &str| ours.header(n).unwrap();
    let (from, to) = if peer_is_caller {
        (h("From"), h("To"))
    } else {
        (h("To"), h("From"))
    };
    let body = body.unwrap_or("");
    let call_id = h("Call-ID");
    format!(
        "{method} sip:us@203.0.113.5 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK-d-{method}-{cseq}-{call_id}\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}
