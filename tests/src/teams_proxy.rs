//! A Teams SIP proxy for tests: a mutual-TLS SIP listener on loopback (rustls with a
//! certificate from a test CA) that records every message, answers OPTIONS with 200 or 503 +
//! Retry-After, and answers INVITEs by a script: the shapes baresip cannot make (forks, 183
//! then 200, 503 + Retry-After, 603). A 2xx or 183 carries an SDES answer, and a
//! [`TeamsMedia`] behind it answers what teamsgw sends with its own tone.
//!
//! None of teamsgw's SIP code is used: messages are framed by Content-Length (RFC 3261 §18.3),
//! read by [`SipText`] and answered as text built here (§8.2.6), so what a test asserts about
//! teamsgw's messages is read independently of teamsgw's parser. Shared with teamsgw: only the
//! test certificates (`teamsgw_sip::test_pki`, rcgen underneath), which are setup, not a grader. Each connection has a thread
//! of its own that owns its TLS session; `stop` closes the listener and every connection, as
//! a proxy that went away.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use teamsgw_sip::test_pki::{LeafFiles, TestCa};

use crate::teams_media::{Arrival, TeamsMedia};

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

/// How long a connection stays after its final response in
/// [`TeamsProxy::close_after_each_transaction`] mode: long enough for the ACK of a 2xx.
const LINGER: Duration = Duration::from_millis(300);

/// Bytes to send on one connection (its thread writes them).
type Connection = Sender<Vec<u8>>;

struct State {
    answer: Answer,
    script: Vec<Step>,
    received: Vec<(Instant, String, Answer)>,
    /// Requests by method, with their To tag ("" for none).
    requests: Vec<(String, String)>,
    /// Call-ID → the INVITE still waiting for its final response.
    pending: HashMap<String, (SipText, Connection)>,
    /// Call-IDs whose INVITE a CANCEL ended.
    cancelled: HashSet<String>,
    /// RFC 4733 event codes the media stand-in decrypted.
    events: Arc<Mutex<Vec<u8>>>,
    /// Every SRTP packet the media stand-in decrypted.
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    /// The payload type our answers give telephone-event (101 unless a test differs).
    event_pt: u8,
    /// The Contact of our 18x and 2xx: an `api-du-…` name, as Teams gives (§1.5).
    contact: String,
    /// Close the connection after each final response, as Teams does (§1.5).
    close_after_final: bool,
    /// Requests received: (method, the SNI of the connection they came on).
    sni: Vec<(String, Option<String>)>,
    /// Call-ID → our SDP answer: a re-INVITE (a session refresh, a hold) gets it again.
    answers: HashMap<String, String>,
}

/// The `api-du-…pstnhub.microsoft.com` name a proxy at `ip` gives as its Contact host; the
/// lab's DNS maps it back to `ip`.
pub fn api_du_name(ip: std::net::Ipv4Addr) -> String {
    format!("api-du-{}-euwe.pstnhub.microsoft.com", ip.octets()[3])
}

pub struct TeamsProxy {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

/// A TLS server presenting `leaf` that requires a client certificate from `ca` (Microsoft's
/// proxies and the SBC authenticate each other, teams-direct-routing.md §1.3).
fn server_config(ca: &TestCa, leaf: &LeafFiles) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca.ca_path()).unwrap())
        .unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let chain = CertificateDer::pem_file_iter(&leaf.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

impl TeamsProxy {
    pub fn start(addr: SocketAddr, ca: &TestCa, leaf: &LeafFiles) -> Self {
        let state = Arc::new(Mutex::new(State {
            answer: Answer::Ok,
            script: vec![reply(180, "p", false), reply(200, "p", true)],
            received: Vec::new(),
            requests: Vec::new(),
            pending: HashMap::new(),
            cancelled: HashSet::new(),
            events: Arc::default(),
            arrivals: Arc::default(),
            event_pt: 101,
            contact: match addr.ip() {
                std::net::IpAddr::V4(ip) => format!(
                    "<sip:{}:{};x-i=0c6f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b;x-c=7d0e/s/1/4b9c;transport=tls>",
                    api_du_name(ip),
                    addr.port()
                ),
                std::net::IpAddr::V6(_) => format!("<sip:{addr};transport=tls>"),
            },
            close_after_final: false,
            sni: Vec::new(),
            answers: HashMap::new(),
        }));
        let config = server_config(ca, leaf);
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (state, stop, sockets) =
                (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&sockets));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((tcp, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    if let Ok(clone) = tcp.try_clone() {
                        sockets.lock().unwrap().push(clone);
                    }
                    let Ok(tls) = ServerConnection::new(Arc::clone(&config)) else {
                        continue;
                    };
                    let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
                    std::thread::spawn(move || serve(tls, tcp, &state, &stop));
                }
            })
        };
        Self {
            state,
            stop,
            sockets,
            acceptor: Some(acceptor),
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

    /// Every RTP packet the media stand-in decrypted from teamsgw, in order of arrival.
    pub fn srtp_arrivals(&self) -> Vec<Arrival> {
        let arrivals = Arc::clone(&self.state.lock().unwrap().arrivals);
        arrivals.lock().unwrap().clone()
    }

    /// Requests received: (method, To tag).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests received: (method, the SNI their connection's handshake carried).
    pub fn requests_by_sni(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().sni.clone()
    }

    /// From now on each connection is closed shortly after its first final response (once a
    /// 2xx's ACK has had time to come), as Teams closes its TLS connections after each
    /// transaction (§1.5).
    pub fn close_after_each_transaction(&self) {
        self.state.lock().unwrap().close_after_final = true;
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for TeamsProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection: sends what `outgoing` brings, reads and answers what arrives, until either
/// side closes or the proxy stops.
fn serve(tls: ServerConnection, tcp: TcpStream, state: &Arc<Mutex<State>>, stop: &AtomicBool) {
    if tcp
        .set_read_timeout(Some(Duration::from_millis(10)))
        .is_err()
    {
        return;
    }
    let mut stream = StreamOwned::new(tls, tcp);
    let (connection, outgoing): (Connection, Receiver<Vec<u8>>) = channel();
    let mut inbound = Vec::new();
    let mut buf = [0u8; 16384];
    let mut close_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(bytes) = outgoing.try_recv() {
            if stream
                .write_all(&bytes)
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            let is_final = bytes.starts_with(b"SIP/2.0 ") && !bytes.starts_with(b"SIP/2.0 1");
            if is_final && close_at.is_none() && state.lock().unwrap().close_after_final {
                // A moment for the ACK of a 2xx, then gone, as Teams closes its connections.
                close_at = Some(Instant::now() + LINGER);
            }
        }
        if close_at.is_some_and(|at| Instant::now() >= at) {
            stream.conn.send_close_notify();
            let _ = stream.flush();
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => inbound.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        loop {
            match frame(&mut inbound) {
                Some(Frame::Ping) => {
                    let _ = connection.send(b"\r\n".to_vec());
                }
                Some(Frame::Message(text)) => {
                    let sni = stream.conn.server_name().map(str::to_owned);
                    handle(state, &connection, SipText::new(text), sni)
                }
                None => break,
            }
        }
    }
}

enum Frame {
    /// RFC 5626 §3.5.1: a double-CRLF keep-alive, answered with one CRLF.
    Ping,
    Message(String),
}

/// Takes one frame off the front of `inbound`: a keep-alive, or a whole message by its
/// Content-Length (RFC 3261 §18.3: required on stream transports).
fn frame(inbound: &mut Vec<u8>) -> Option<Frame> {
    if inbound.starts_with(b"\r\n\r\n") {
        inbound.drain(..4);
        return Some(Frame::Ping);
    }
    while inbound.starts_with(b"\r\n") && inbound.len() >= 4 {
        inbound.drain(..2);
    }
    let end = inbound.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&inbound[..end]).into_owned();
    let length = SipText::new(head)
        .header("Content-Length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if inbound.len() < end + length {
        return None;
    }
    let message: Vec<u8> = inbound.drain(..end + length).collect();
    Some(Frame::Message(
        String::from_utf8_lossy(&message).into_owned(),
    ))
}

/// A SIP message as text, with the few readings the proxy needs (RFC 3261 §7.3: header names
/// case-insensitive, compact forms of §20 included).
#[derive(Debug, Clone)]
pub struct SipText {
    pub text: String,
}

impl SipText {
    pub fn new(text: String) -> Self {
        Self { text }
    }

    fn head(&self) -> &str {
        self.text.split("\r\n\r\n").next().unwrap_or_default()
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The request's method, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        let first = self.head().lines().next()?;
        (!first.starts_with("SIP/")).then(|| first.split(' ').next().unwrap_or_default())
    }

    /// Every value of header `name`, in order (one per header line).
    pub fn headers<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_owned();
        let compact = match name.to_ascii_lowercase().as_str() {
            "call-id" => Some("i"),
            "via" => Some("v"),
            "from" => Some("f"),
            "to" => Some("t"),
            "content-length" => Some("l"),
            "contact" => Some("m"),
            "content-type" => Some("c"),
            _ => None,
        };
        self.head().lines().skip(1).filter_map(move |line| {
            let (n, v) = line.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case(&name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)))
                .then(|| v.trim())
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }

    /// The `tag` parameter of the To header (RFC 3261 §19.3), outside its `<URI>`.
    pub fn to_tag(&self) -> Option<&str> {
        let to = self.header("To")?;
        let params = to.rsplit_once('>').map_or(to, |(_, p)| p);
        params.split(';').find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("tag")
                .then(|| value.trim())
        })
    }

    /// A response to this request (RFC 3261 §8.2.6.2): Via, From, Call-ID and CSeq copied, a
    /// To tag added when `tag` is given and the To has none, then `extra` lines and `body`.
    fn response(
        &self,
        status: u16,
        reason: &str,
        tag: Option<&str>,
        extra: &[String],
        body: Option<&str>,
    ) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {status} {reason}\r\n");
        for via in self.headers("Via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        let to = self.header("To").unwrap_or_default();
        match tag {
            Some(tag) if self.to_tag().is_none() => {
                out.push_str(&format!("To: {to};tag={tag}\r\n"))
            }
            _ => out.push_str(&format!("To: {to}\r\n")),
        }
        for name in ["From", "Call-ID", "CSeq"] {
            out.push_str(&format!(
                "{name}: {}\r\n",
                self.header(name).unwrap_or_default()
            ));
        }
        out.push_str("Server: Microsoft.PSTNHub.SIPProxy test\r\n");
        for line in extra {
            out.push_str(line);
            out.push_str("\r\n");
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out.into_bytes()
    }
}

fn handle(st: &Arc<Mutex<State>>, connection: &Connection, msg: SipText, sni: Option<String>) {
    let mode = {
        let mut s = st.lock().unwrap();
        let answer = s.answer;
        s.received.push((Instant::now(), msg.text.clone(), answer));
        if let Some(m) = msg.method() {
            let tag = msg.to_tag().unwrap_or_default().to_owned();
            s.requests.push((m.to_owned(), tag));
            s.sni.push((m.to_owned(), sni));
        }
        s.answer
    };
    let Some(method) = msg.method() else { return };
    let send = |bytes: Vec<u8>| {
        let _ = connection.send(bytes);
    };
    match method {
        "OPTIONS" => send(match mode {
            Answer::Ok => msg.response(
                200,
                "OK",
                Some("p"),
                &["Allow: INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY".to_owned()],
                None,
            ),
            Answer::Unavailable(s) => msg.response(
                503,
                "Service Unavailable",
                Some("p"),
                &[format!("Retry-After: {s}")],
                None,
            ),
        }),
        "INVITE" if msg.to_tag().is_none() => {
            send(msg.response(100, "Trying", None, &[], None));
            let call_id = msg.header("Call-ID").unwrap_or_default().to_owned();
            let script = {
                let mut s = st.lock().unwrap();
                s.pending
                    .insert(call_id.clone(), (msg.clone(), connection.clone()));
                s.script.clone()
            };
            let (st, connection) = (Arc::clone(st), connection.clone());
            std::thread::spawn(move || run_script(&st, &connection, &call_id, &msg, script));
        }
        "CANCEL" => {
            send(msg.response(200, "OK", Some("p"), &[], None));
            let call_id = msg.header("Call-ID").unwrap_or_default().to_owned();
            let pending = {
                let mut s = st.lock().unwrap();
                s.cancelled.insert(call_id.clone());
                s.pending.remove(&call_id)
            };
            if let Some((invite, on)) = pending {
                let _ = on.send(invite.response(487, "Request Terminated", Some("p"), &[], None));
            }
        }
        "ACK" => {}
        "INVITE" => {
            // A re-INVITE in a dialog we answered: the same answer again (RFC 3264 §8: an
            // unchanged session), with our Contact.
            let call_id = msg.header("Call-ID").unwrap_or_default();
            let (answer, contact) = {
                let s = st.lock().unwrap();
                (s.answers.get(call_id).cloned(), s.contact.clone())
            };
            let contact = [format!("Contact: {contact}")];
            send(msg.response(200, "OK", None, &contact, answer.as_deref()));
        }
        _ => send(msg.response(200, "OK", Some("p"), &[], None)),
    }
}

fn run_script(
    st: &Arc<Mutex<State>>,
    connection: &Connection,
    call_id: &str,
    invite: &SipText,
    script: Vec<Step>,
) {
    let mut media: Option<String> = None;
    for step in script {
        let (status, tag, sdp, extra) = match step {
            Step::Wait(d) => {
                std::thread::sleep(d);
                continue;
            }
            Step::Reply {
                status,
                tag,
                sdp,
                extra,
            } => (status, tag, sdp, extra),
        };
        // A CANCEL ended the transaction: nothing more for it.
        if st.lock().unwrap().cancelled.contains(call_id) {
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
        let mut lines = Vec::new();
        if (101..300).contains(&status) {
            lines.push(format!("Contact: {}", st.lock().unwrap().contact));
            // RFC 3261 §12.1.1: a dialog's responses copy the Record-Route set.
            lines.extend(
                invite
                    .headers("Record-Route")
                    .map(|rr| format!("Record-Route: {rr}")),
            );
        }
        lines.extend(extra);
        if sdp && media.is_none() {
            let (events, arrivals, pt) = {
                let s = st.lock().unwrap();
                (Arc::clone(&s.events), Arc::clone(&s.arrivals), s.event_pt)
            };
            media = TeamsMedia::bind(events)
                .map(|m| m.event_payload_type(pt).record_arrivals(arrivals))
                .and_then(|m| m.answer(invite.body().as_bytes()));
        }
        let body = if sdp { media.as_deref() } else { None };
        if status >= 200 {
            let mut s = st.lock().unwrap();
            s.pending.remove(call_id);
            if let Some(b) = body {
                s.answers.insert(call_id.to_owned(), b.to_owned());
            }
        }
        let _ = connection.send(invite.response(status, reason, Some(tag), &lines, body));
    }
}
