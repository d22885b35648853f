//! A Teams SIP proxy for tests: a mutual-TLS SIP listener on loopback (our SIP transport
//! with a certificate from a test CA) that records every message, answers OPTIONS with 200
//! or 503 + Retry-After, and answers INVITEs by a script: the shapes baresip cannot make
//! (forks, 183 then 200, 503 + Retry-After, 603). A 2xx or 183 carries an SDES answer, and
//! an echo behind it decrypts what teamsgw sends and sends it back encrypted with our key,
//! so a phone hears its own tone through both SRTP directions. It runs on its own runtime so
//! `stop` really closes its sockets, as a proxy that went away.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_sip::Method;
use teamsgw_sip::acl::AllowList;
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::test_pki::{LeafFiles, TestCa};
use teamsgw_sip::tls::{TlsMaterial, TlsPaths, TlsStore};
use teamsgw_sip::transport::{Incoming, ListenerSpec, SipTransport, Transport, TransportSettings};
use tokio::sync::mpsc;

use crate::srtp_echo::SrtpEcho;

/// How the proxy answers OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// 503 with `Retry-After: seconds`.
    Unavailable(u32),
}

/// One step of the answer to an INVITE.
#[derive(Debug, Clone)]
pub enum Step {
    /// A response with this To tag (the fork), with the SDES answer when `sdp`, and extra
    /// header lines (`Name: value`).
    Reply {
        status: u16,
        tag: &'static str,
        sdp: bool,
        extra: Vec<String>,
    },
    Wait(Duration),
}

pub fn reply(status: u16, tag: &'static str, sdp: bool) -> Step {
    Step::Reply {
        status,
        tag,
        sdp,
        extra: Vec::new(),
    }
}

struct State {
    answer: Answer,
    script: Vec<Step>,
    received: Vec<(Instant, String, Answer)>,
    /// Requests by method, with their To tag ("" for none).
    requests: Vec<(String, String)>,
    /// Call-ID → the INVITE still waiting for its final response.
    pending: HashMap<String, Incoming>,
    /// Call-IDs whose INVITE a CANCEL ended.
    cancelled: std::collections::HashSet<String>,
    /// RFC 4733 event codes the echo decrypted.
    events: Arc<Mutex<Vec<u8>>>,
    /// The payload type our answers give telephone-event (101 unless a test differs).
    event_pt: u8,
}

pub struct TeamsProxy {
    runtime: Option<tokio::runtime::Runtime>,
    state: Arc<Mutex<State>>,
    pub addr: SocketAddr,
}

impl TeamsProxy {
    pub fn start(addr: SocketAddr, ca: &TestCa, leaf: &LeafFiles) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State {
            answer: Answer::Ok,
            script: vec![reply(180, "p", false), reply(200, "p", true)],
            received: Vec::new(),
            requests: Vec::new(),
            pending: HashMap::new(),
            cancelled: Default::default(),
            events: Arc::default(),
            event_pt: 101,
        }));
        let tls = Arc::new(TlsStore::new(
            TlsMaterial::load(&TlsPaths {
                certificate: leaf.cert.clone(),
                key: leaf.key.clone(),
                trust_anchors: ca.ca_path(),
            })
            .unwrap(),
        ));
        let (tx, mut inbound) = mpsc::channel(1024);
        let sip = runtime.block_on(async {
            let spec = ListenerSpec {
                name: "teams-proxy",
                transport: Transport::Tls,
                addr,
                allow: AllowList::any(),
                peer_names: vec![],
            };
            let (sip, _tasks) = SipTransport::bind(
                vec![spec],
                TransportSettings::default(),
                tls,
                SipMetrics::new().unwrap(),
                tx,
            )
            .await
            .unwrap();
            sip
        });
        let st = Arc::clone(&state);
        runtime.spawn(async move {
            while let Some(inc) = inbound.recv().await {
                handle(&sip, &st, inc).await;
            }
        });
        Self {
            runtime: Some(runtime),
            state,
            addr,
        }
    }

    pub fn set_answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = answer;
    }

    /// How INVITEs are answered from now on (default: 180, then 200 with SDP, one fork).
    pub fn set_script(&self, script: Vec<Step>) {
        self.state.lock().unwrap().script = script;
    }

    /// Our answers give telephone-event payload type `pt` (RFC 3264 §6.1 lets an answer
    /// differ from the offer's number): teamsgw must rewrite it between the legs.
    pub fn set_event_payload_type(&self, pt: u8) {
        self.state.lock().unwrap().event_pt = pt;
    }

    /// Every message received, with its arrival time and how OPTIONS were answered then.
    pub fn received(&self) -> Vec<(Instant, String, Answer)> {
        self.state.lock().unwrap().received.clone()
    }

    /// RFC 4733 event codes heard in SRTP from teamsgw, in order (repeats included: an event
    /// is sent in several packets).
    pub fn telephone_events(&self) -> Vec<u8> {
        let events = Arc::clone(&self.state.lock().unwrap().events);
        events.lock().unwrap().clone()
    }

    /// Requests received: (method, To tag).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for TeamsProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

async fn handle(sip: &SipTransport, st: &Arc<Mutex<State>>, inc: Incoming) {
    let msg = &inc.message;
    let mode = {
        let mut s = st.lock().unwrap();
        let answer = s.answer;
        s.received
            .push((Instant::now(), text(msg.as_bytes()), answer));
        if let Some(m) = msg.method() {
            s.requests.push((
                m.as_str().to_owned(),
                msg.to_tag().map(text).unwrap_or_default(),
            ));
        }
        s.answer
    };
    let Some(method) = msg.method() else { return };
    let respond = |status: u16, reason: &str| {
        MessageBuilder::response_to(msg, status, reason, Some("p"), None)
            .header("Server", "Microsoft.PSTNHub.SIPProxy test")
    };
    match method {
        Method::Options => {
            let b = match mode {
                Answer::Ok => {
                    respond(200, "OK").header("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY")
                }
                Answer::Unavailable(s) => {
                    respond(503, "Service Unavailable").header("Retry-After", s.to_string())
                }
            };
            let _ = sip.respond(&inc.source, b.finish()).await;
        }
        Method::Invite if msg.to_tag().is_none() => {
            let call_id = msg.call_id().map(text).unwrap_or_default();
            let script = st.lock().unwrap().script.clone();
            let trying = MessageBuilder::response_to(msg, 100, "Trying", None, None).finish();
            let _ = sip.respond(&inc.source, trying).await;
            let sip = sip.clone();
            let st = Arc::clone(st);
            st.lock().unwrap().pending.insert(
                call_id.clone(),
                Incoming {
                    message: inc.message.clone(),
                    source: inc.source.clone(),
                },
            );
            tokio::spawn(run_script(sip, st, call_id, inc, script));
        }
        Method::Cancel => {
            let _ = sip.respond(&inc.source, respond(200, "OK").finish()).await;
            let call_id = msg.call_id().map(text).unwrap_or_default();
            let pending = {
                let mut s = st.lock().unwrap();
                s.cancelled.insert(call_id.clone());
                s.pending.remove(&call_id)
            };
            if let Some(invite) = pending {
                let r = MessageBuilder::response_to(
                    &invite.message,
                    487,
                    "Request Terminated",
                    Some("p"),
                    None,
                )
                .finish();
                let _ = sip.respond(&invite.source, r).await;
            }
        }
        Method::Ack => {}
        _ => {
            let _ = sip.respond(&inc.source, respond(200, "OK").finish()).await;
        }
    }
}

async fn run_script(
    sip: SipTransport,
    st: Arc<Mutex<State>>,
    call_id: String,
    inc: Incoming,
    script: Vec<Step>,
) {
    let mut echo: Option<String> = None;
    for step in script {
        match step {
            Step::Wait(d) => tokio::time::sleep(d).await,
            Step::Reply {
                status,
                tag,
                sdp,
                extra,
            } => {
                // A CANCEL ended the transaction: nothing more for it.
                if st.lock().unwrap().cancelled.contains(&call_id) {
                    return;
                }
                let reason = match status {
                    180 => "Ringing",
                    183 => "Session Progress",
                    200 => "OK",
                    486 => "Busy Here",
                    503 => "Service Unavailable",
                    603 => "Decline",
                    _ => "Response",
                };
                let mut b =
                    MessageBuilder::response_to(&inc.message, status, reason, Some(tag), None)
                        .header("Server", "Microsoft.PSTNHub.SIPProxy test");
                if (101..300).contains(&status) {
                    b = b.header(
                        "Contact",
                        "<sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=test>",
                    );
                    // RFC 3261 §12.1.1: a dialog's responses copy the Record-Route set.
                    for rr in inc
                        .message
                        .values(teamsgw_sip::message::HeaderName::RecordRoute)
                    {
                        b = b.header("Record-Route", text(rr));
                    }
                }
                for line in &extra {
                    if let Some((n, v)) = line.split_once(": ") {
                        b = b.header(n, v);
                    }
                }
                let data: Bytes = if sdp {
                    if echo.is_none() {
                        let (events, pt) = {
                            let st = st.lock().unwrap();
                            (Arc::clone(&st.events), st.event_pt)
                        };
                        echo = start_echo(inc.message.body(), events, pt);
                    }
                    b.body(
                        Some("application/sdp"),
                        echo.as_deref().unwrap_or("").as_bytes(),
                    )
                } else {
                    b.finish()
                };
                if status >= 200 {
                    st.lock().unwrap().pending.remove(&call_id);
                }
                let _ = sip.respond(&inc.source, data).await;
            }
        }
    }
}

/// Starts the SRTP echo for an SDES offer and returns our answer.
fn start_echo(offer: &[u8], events: Arc<Mutex<Vec<u8>>>, event_pt: u8) -> Option<String> {
    SrtpEcho::bind(events)?
        .event_payload_type(event_pt)
        .answer(offer)
}
