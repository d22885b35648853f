//! A SIP user agent for tests, built only on `teamsgw-sip`: transports, the transaction
//! layer, dialogs and digest. Roles:
//! - UAS: answers INVITE with 180 + 200 (retransmitting the 200 until the ACK on UDP), BYE
//!   and OPTIONS with 200;
//! - UAC: places calls (INVITE, ACK for the 2xx, BYE) and registers with digest auth.
//!
//! One task owns the transaction layer; commands reach it over a channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_sip::acl::AllowList;
use teamsgw_sip::dialog::{Dialog, Retransmit, TwoXxRetransmitter};
use teamsgw_sip::digest::{Credentials, DigestClient, DigestError};
use teamsgw_sip::message::{Message, MessageBuilder, Method};
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::test_pki::TestCa;
use teamsgw_sip::tls::{TlsMaterial, TlsPaths, TlsStore};
use teamsgw_sip::transaction::{Event, TimerSettings, TransactionLayer, TxId};
use teamsgw_sip::transport::{
    Incoming, ListenerSpec, SipTransport, Source, Target, Transport, TransportSettings,
};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub enum Dest {
    Back(Source),
    To(Target),
}

/// Counters a test asserts on.
#[derive(Debug, Default)]
pub struct Stats {
    pub answered: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// Every WWW-/Proxy-Authenticate value answered, in order.
    pub challenges: std::sync::Mutex<Vec<String>>,
}

enum Command {
    Call {
        reply: oneshot::Sender<Result<(), String>>,
    },
    Register {
        user: String,
        password: String,
        domain: String,
        expires: u32,
        reply: oneshot::Sender<Result<u16, String>>,
    },
}

/// What a UAC's call or registration is waiting for.
enum Pending {
    Invite {
        reply: oneshot::Sender<Result<(), String>>,
        request: Message,
    },
    Bye {
        reply: oneshot::Sender<Result<(), String>>,
        call_id: String,
    },
    Register {
        reply: oneshot::Sender<Result<u16, String>>,
        request: Message,
        creds: Credentials,
        expires: u32,
        digest: DigestClient,
        attempts: u32,
    },
}

pub struct Ua {
    commands: mpsc::Sender<Command>,
    pub stats: Arc<Stats>,
    pub addr: SocketAddr,
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn tls_store() -> Arc<TlsStore> {
    let dir = tempfile::tempdir().unwrap().keep();
    let ca = TestCa::new(&dir, "ua");
    let leaf = ca.leaf("ua", &["ua.example.test"]);
    Arc::new(TlsStore::new(
        TlsMaterial::load(&TlsPaths {
            certificate: leaf.cert,
            key: leaf.key,
            trust_anchors: ca.ca_path(),
        })
        .unwrap(),
    ))
}

impl Ua {
    /// A UA listening on UDP and TCP at `port` of 127.0.0.1, using `transport` to talk to `peer`.
    pub async fn start(port: u16, transport: Transport, peer: Option<SocketAddr>) -> Ua {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let specs = [Transport::Udp, Transport::Tcp]
            .into_iter()
            .map(|t| ListenerSpec {
                name: "ua",
                transport: t,
                addr,
                allow: AllowList::any(),
                peer_names: vec![],
                untrusted: false,
            })
            .collect();
        let (tx, inbound) = mpsc::channel(4096);
        let (sip, _tasks) = SipTransport::bind(
            specs,
            TransportSettings::default(),
            tls_store(),
            SipMetrics::new().unwrap(),
            teamsgw_sip::transport::Inbound::single(tx),
        )
        .await
        .unwrap();
        let (commands, rx) = mpsc::channel(1024);
        let stats = Arc::new(Stats::default());
        let core = Core {
            sip,
            layer: TransactionLayer::new(TimerSettings::default()),
            transport,
            reliable: transport != Transport::Udp,
            addr,
            peer,
            stats: Arc::clone(&stats),
            pending: HashMap::new(),
            uas_dialogs: HashMap::new(),
            retransmitters: HashMap::new(),
            acks: HashMap::new(),
        };
        tokio::spawn(core.run(inbound, rx));
        Ua {
            commands,
            stats,
            addr,
        }
    }

    /// Places one call to the peer: INVITE, ACK, BYE.
    pub async fn call(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Call { reply })
            .await
            .map_err(|e| e.to_string())?;
        rx.await.map_err(|e| e.to_string())?
    }

    /// REGISTERs `user` at `domain` (the peer), answering digest challenges. Returns the
    /// final status, or an error naming an authentication failure.
    pub async fn register(
        &self,
        user: &str,
        password: &str,
        domain: &str,
        expires: u32,
    ) -> Result<u16, String> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Register {
            user: user.into(),
            password: password.into(),
            domain: domain.into(),
            expires,
            reply,
        };
        self.commands.send(cmd).await.map_err(|e| e.to_string())?;
        rx.await.map_err(|e| e.to_string())?
    }
}

struct Core {
    sip: SipTransport,
    layer: TransactionLayer<Dest>,
    transport: Transport,
    reliable: bool,
    addr: SocketAddr,
    peer: Option<SocketAddr>,
    stats: Arc<Stats>,
    pending: HashMap<TxId, Pending>,
    /// UAS dialogs by Call-ID.
    uas_dialogs: HashMap<String, Dialog>,
    retransmitters: HashMap<String, (TwoXxRetransmitter, Source)>,
    /// The ACK we sent for each call's 2xx, re-sent for 2xx retransmissions.
    acks: HashMap<String, (Bytes, Dest)>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Incoming>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        loop {
            let next = [self.layer.poll_timeout(), self.retransmit_deadline()]
                .into_iter()
                .flatten()
                .min();
            let sleep = next.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                incoming = inbound.recv() => {
                    let Some(inc) = incoming else { return };
                    let reliable = inc.source.transport != Transport::Udp;
                    self.layer.receive(inc.message, Dest::Back(inc.source), reliable, Instant::now());
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.command(cmd);
                }
                _ = tokio::time::sleep(sleep) => {
                    let now = Instant::now();
                    self.layer.handle_timeout(now);
                    self.retransmit_2xx(now);
                }
            }
            while let Some(event) = self.layer.poll_event() {
                self.event(event).await;
            }
        }
    }

    fn via(&self) -> String {
        let t = match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        };
        format!(
            "SIP/2.0/{t} {};branch={};rport",
            self.addr,
            unique("z9hG4bK")
        )
    }

    fn contact(&self) -> String {
        let t = if self.transport == Transport::Udp {
            ""
        } else {
            ";transport=tcp"
        };
        format!("<sip:ua@{}{t}>", self.addr)
    }

    fn target(&self) -> Option<Dest> {
        self.peer.map(|addr| {
            Dest::To(Target {
                transport: self.transport,
                addr,
                server_name: None,
            })
        })
    }

    fn command(&mut self, cmd: Command) {
        let Some(dest) = self.target() else { return };
        let Some(peer) = self.peer else { return };
        let now = Instant::now();
        match cmd {
            Command::Call { reply } => {
                let sdp = "v=0\r\no=ua 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
                let data = MessageBuilder::request("INVITE", &format!("sip:service@{peer}"))
                    .header("Via", self.via())
                    .header(
                        "From",
                        format!("<sip:ua@{}>;tag={}", self.addr, unique("f")),
                    )
                    .header("To", format!("<sip:service@{peer}>"))
                    .header("Call-ID", unique("call-"))
                    .header("CSeq", "1 INVITE")
                    .header("Contact", self.contact())
                    .header("Max-Forwards", "70")
                    .body(Some("application/sdp"), sdp.as_bytes());
                let request = Message::parse(data).unwrap();
                if let Some(tx) = self
                    .layer
                    .send_request(request.clone(), dest, self.reliable, now)
                {
                    self.pending.insert(tx, Pending::Invite { reply, request });
                }
            }
            Command::Register {
                user,
                password,
                domain,
                expires,
                reply,
            } => {
                let request = self.register_request(
                    &user,
                    &domain,
                    expires,
                    1,
                    &mut DigestClient::new(),
                    None,
                );
                let creds = Credentials {
                    username: user,
                    password,
                };
                if let Some(tx) = self
                    .layer
                    .send_request(request.clone(), dest, self.reliable, now)
                {
                    self.pending.insert(
                        tx,
                        Pending::Register {
                            reply,
                            request,
                            creds,
                            expires,
                            digest: DigestClient::new(),
                            attempts: 0,
                        },
                    );
                }
            }
        }
    }

    fn register_request(
        &self,
        user: &str,
        domain: &str,
        expires: u32,
        cseq: u32,
        digest: &mut DigestClient,
        previous: Option<(&Message, &Credentials)>,
    ) -> Message {
        let uri = format!("sip:{domain}");
        let (from, call_id) = match previous {
            Some((p, _)) => (
                text(p.header(teamsgw_sip::HeaderName::From).unwrap_or_default()),
                text(p.call_id().unwrap_or_default()),
            ),
            None => (
                format!("<sip:{user}@{domain}>;tag={}", unique("r")),
                unique("reg-"),
            ),
        };
        let mut b = MessageBuilder::request("REGISTER", &uri)
            .header("Via", self.via())
            .header("From", from)
            .header("To", format!("<sip:{user}@{domain}>"))
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} REGISTER"))
            .header("Contact", self.contact())
            .header("Expires", expires.to_string())
            .header("Max-Forwards", "70");
        if let Some((_, creds)) = previous {
            for (name, value) in digest.authorize(creds, "REGISTER", &uri) {
                b = b.header(name, value);
            }
        }
        Message::parse(b.finish()).unwrap()
    }

    async fn transmit(&self, dest: &Dest, data: Bytes) {
        let result = match dest {
            Dest::Back(source) => self.sip.respond(source, data).await,
            Dest::To(target) => self.sip.send(target, data).await,
        };
        if let Err(e) = result {
            tracing_free_log(&format!("send failed: {e}"));
        }
    }

    async fn event(&mut self, event: Event<Dest>) {
        let now = Instant::now();
        match event {
            Event::Transmit { dest, data } => self.transmit(&dest, data).await,
            Event::Request {
                tx,
                message,
                source: Dest::Back(source),
            } => self.uas_request(tx, message, source, now),
            Event::Request { .. } => {}
            Event::Ack { message, .. } => {
                // The ACK for our 2xx: stop retransmitting it and confirm the dialog.
                if let Some(call_id) = message.call_id().map(text) {
                    self.retransmitters.remove(&call_id);
                    if let Some(d) = self.uas_dialogs.get_mut(&call_id) {
                        d.confirm();
                    }
                }
            }
            Event::Response { tx, message } => self.uac_response(tx, message, now).await,
            Event::StrayResponse { message, .. } => {
                // A 2xx retransmission after the INVITE transaction ended: ACK it again.
                if message.status().is_some_and(|s| (200..300).contains(&s))
                    && let Some((ack, dest)) = message
                        .call_id()
                        .map(text)
                        .and_then(|c| self.acks.get(&c).cloned())
                {
                    self.transmit(&dest, ack).await;
                }
            }
            Event::Timeout { tx } | Event::TransportError { tx } => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                match self.pending.remove(&tx) {
                    Some(Pending::Invite { reply, request }) => {
                        let call_id = text(request.call_id().unwrap_or_default());
                        let _ = reply.send(Err(format!("INVITE timed out ({call_id})")));
                    }
                    Some(Pending::Bye { reply, call_id }) => {
                        let _ = reply.send(Err(format!("BYE timed out ({call_id})")));
                    }
                    Some(Pending::Register { reply, .. }) => {
                        let _ = reply.send(Err("timeout".into()));
                    }
                    None => {}
                }
            }
            Event::Cancelled { .. } | Event::AckTimeout { .. } | Event::OffPath { .. } => {}
        }
    }

    fn uas_request(&mut self, tx: TxId, message: Message, source: Source, now: Instant) {
        let Some(method) = message.method() else {
            return;
        };
        let ok = |status: u16, reason: &str, tag: &str| {
            MessageBuilder::response_to(&message, status, reason, Some(tag), None)
        };
        match method {
            Method::Invite => {
                let call_id = text(message.call_id().unwrap_or_default());
                let tag = unique("t");
                self.layer.respond(
                    tx,
                    180,
                    ok(180, "Ringing", &tag)
                        .header("Contact", self.contact())
                        .finish(),
                    now,
                );
                let sdp = "v=0\r\no=ua 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";
                let answer = ok(200, "OK", &tag)
                    .header("Contact", self.contact())
                    .body(Some("application/sdp"), sdp.as_bytes());
                self.layer.respond(tx, 200, answer.clone(), now);
                if let Ok(dialog) = Dialog::uas(&message, &tag) {
                    self.uas_dialogs.insert(call_id.clone(), dialog);
                }
                if source.transport == Transport::Udp {
                    let r = TwoXxRetransmitter::new(answer, self.layer.timers(), now);
                    self.retransmitters.insert(call_id, (r, source));
                }
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
            }
            Method::Bye => {
                let call_id = text(message.call_id().unwrap_or_default());
                let tag = message.to_tag().map(text).unwrap_or_default();
                let known = self.uas_dialogs.remove(&call_id).is_some();
                if !known {
                    tracing_free_log(&format!("BYE for unknown dialog {call_id}"));
                }
                self.retransmitters.remove(&call_id);
                let status = if known { 200 } else { 481 };
                self.layer
                    .respond(tx, status, ok(status, "OK", &tag).finish(), now);
                if known {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                let tag = unique("t");
                self.layer
                    .respond(tx, 200, ok(200, "OK", &tag).finish(), now);
            }
        }
    }

    async fn uac_response(&mut self, tx: TxId, message: Message, now: Instant) {
        let Some(status) = message.status() else {
            return;
        };
        if status < 200 {
            return;
        }
        let Some(pending) = self.pending.remove(&tx) else {
            // A 2xx retransmission within the Accepted INVITE transaction: ACK again.
            if (200..300).contains(&status)
                && let Some((ack, dest)) = message
                    .call_id()
                    .map(text)
                    .and_then(|c| self.acks.get(&c).cloned())
            {
                self.transmit(&dest, ack).await;
            }
            return;
        };
        match pending {
            Pending::Invite { reply, request } => {
                if !(200..300).contains(&status) {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = reply.send(Err(format!("INVITE answered {status}")));
                    return;
                }
                let Ok(mut dialog) = Dialog::uac(&request, &message) else {
                    let _ = reply.send(Err("no dialog from 2xx".into()));
                    return;
                };
                let Some(dest) = self.target() else { return };
                let ack = dialog.ack(1).header("Via", self.via()).finish();
                let call_id = dialog.id.call_id.clone();
                self.acks
                    .insert(call_id.clone(), (ack.clone(), dest.clone()));
                self.transmit(&dest, ack).await;
                let bye = Message::parse(dialog.request("BYE").header("Via", self.via()).finish())
                    .unwrap();
                if let Some(bye_tx) = self.layer.send_request(bye, dest, self.reliable, now) {
                    self.pending.insert(bye_tx, Pending::Bye { reply, call_id });
                }
            }
            Pending::Bye { reply, .. } => {
                if status == 200 {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    let _ = reply.send(Ok(()));
                } else {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = reply.send(Err(format!("BYE answered {status}")));
                }
            }
            Pending::Register {
                reply,
                request,
                creds,
                expires,
                mut digest,
                attempts,
            } => {
                if !matches!(status, 401 | 407) {
                    let _ = reply.send(Ok(status));
                    return;
                }
                if let Ok(mut seen) = self.stats.challenges.lock() {
                    seen.extend(
                        message
                            .values(teamsgw_sip::HeaderName::WwwAuthenticate)
                            .chain(message.values(teamsgw_sip::HeaderName::ProxyAuthenticate))
                            .map(text),
                    );
                }
                if let Err(e) = digest.on_challenge(&request, &message) {
                    let _ = reply.send(Err(match e {
                        DigestError::Rejected(realm) => {
                            format!("authentication failed for realm {realm}")
                        }
                        other => other.to_string(),
                    }));
                    return;
                }
                if attempts >= 3 {
                    let _ = reply.send(Err("too many challenges".into()));
                    return;
                }
                let (user, domain) = registration_parts(&request);
                let cseq = request.cseq().and_then(Result::ok).map_or(1, |c| c.seq) + 1;
                let next = self.register_request(
                    &user,
                    &domain,
                    expires,
                    cseq,
                    &mut digest,
                    Some((&request, &creds)),
                );
                let Some(dest) = self.target() else { return };
                if let Some(tx) = self
                    .layer
                    .send_request(next.clone(), dest, self.reliable, now)
                {
                    self.pending.insert(
                        tx,
                        Pending::Register {
                            reply,
                            request: next,
                            creds,
                            expires,
                            digest,
                            attempts: attempts + 1,
                        },
                    );
                }
            }
        }
    }

    fn retransmit_deadline(&self) -> Option<Instant> {
        self.retransmitters
            .values()
            .filter_map(|(r, _)| r.poll_timeout())
            .min()
    }

    fn retransmit_2xx(&mut self, now: Instant) {
        let mut gave_up = Vec::new();
        for (call_id, (r, source)) in &mut self.retransmitters {
            match r.handle_timeout(now) {
                Some(Retransmit::Send(data)) => {
                    self.layer.send_stateless(Dest::Back(source.clone()), data)
                }
                Some(Retransmit::GaveUp) => gave_up.push(call_id.clone()),
                None => {}
            }
        }
        for c in gave_up {
            self.retransmitters.remove(&c);
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn registration_parts(request: &Message) -> (String, String) {
    let to = request.to().and_then(Result::ok);
    let user = to
        .as_ref()
        .and_then(|t| t.uri.user())
        .map(text)
        .unwrap_or_default();
    let domain = request
        .request_uri_raw()
        .map(text)
        .unwrap_or_default()
        .trim_start_matches("sip:")
        .to_owned();
    (user, domain)
}

fn tracing_free_log(line: &str) {
    if std::env::var_os("UA_DEBUG").is_some() {
        eprintln!("ua: {line}");
    }
}
