//! Ordered sends to the peers we dial: one sender task per TCP/TLS peer, so an INVITE and
//! the CANCEL after it leave in that order, and a slow connect or DNS lookup stalls only its
//! own peer (a task per message could let them overtake each other). A UDP send to an
//! address is one syscall and goes out at once. A failed send is reported with the token its
//! sender gave.
//!
//! A message may have several [`Way`]s to its peer, tried in order until one takes it: an
//! in-dialog request towards Teams goes to the `api-du-…` name its dialog names, then back
//! on the connection the dialog last used, then to the configured proxies
//! (teams-direct-routing.md §1.5). Each way left behind is counted by why.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use prometheus::IntCounterVec;
use teamsgw_sip::transport::{SendError, SipTransport, Source, Target, Transport};
use tokio::sync::mpsc;

use crate::dns::{DnsError, Resolver};

/// Messages queued per peer before further ones are refused as failed sends.
const QUEUE: usize = 1024;
/// A peer's task ends after this long without a message (its connection stays open).
const IDLE: Duration = Duration::from_secs(60);

/// One way to reach a peer.
#[derive(Debug, Clone)]
pub enum Way {
    /// Back on the connection (or from the UDP socket) a message came in on.
    Back(Source),
    To(Target),
    /// A name (or literal) to resolve; each address is tried in order. TLS checks the
    /// server certificate against `server_name` (the name itself, not an address).
    Name {
        host: String,
        port: u16,
        transport: Transport,
        server_name: Option<String>,
    },
}

/// The ways to try for one message, in order; each one left behind is counted in
/// `fallbacks` by reason (when given).
#[derive(Debug, Clone)]
pub struct Plan {
    pub ways: Vec<Way>,
    pub fallbacks: Option<IntCounterVec>,
}

impl Plan {
    pub fn to(target: Target) -> Self {
        Self {
            ways: vec![Way::To(target)],
            fallbacks: None,
        }
    }
}

type Item<T> = (Bytes, Plan, T);

pub struct PeerSenders<T> {
    sip: SipTransport,
    resolver: Resolver,
    peers: HashMap<(Transport, String), mpsc::Sender<Item<T>>>,
    failures: mpsc::Sender<(T, String)>,
    /// Messages queued to a peer's task and not yet handed to its connection: a drain waits
    /// for them, so the BYEs it sends leave before the process does.
    in_flight: Arc<AtomicUsize>,
}

impl<T: Send + 'static> PeerSenders<T> {
    pub fn new(sip: SipTransport, resolver: Resolver, failures: mpsc::Sender<(T, String)>) -> Self {
        Self {
            sip,
            resolver,
            peers: HashMap::new(),
            failures,
            in_flight: Arc::default(),
        }
    }

    /// Counts this sender's queued messages in `in_flight` (shared by several senders).
    pub fn counting(mut self, in_flight: Arc<AtomicUsize>) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// A failure back to the owner. Never awaited: the owner is the task running this code,
    /// and it reads the channel only between its own steps (issue 31 §4: a task that awaits
    /// a send into its own full channel waits for good). A full channel loses the report;
    /// the transaction then ends by its timer instead.
    fn report(&self, token: T, why: String) {
        if self.failures.try_send((token, why)).is_err() {
            tracing::warn!("send failure reports are backed up; one is dropped");
        }
    }

    /// Queues `data` for `target`; a failure comes back on the failures channel with `token`.
    pub async fn send(&mut self, target: &Target, data: Bytes, token: T) {
        self.send_plan(Plan::to(target.clone()), data, token).await;
    }

    /// Queues `data` for the first of `plan`'s ways that takes it; a failure of all of them
    /// comes back on the failures channel with `token`.
    pub async fn send_plan(&mut self, plan: Plan, data: Bytes, token: T) {
        let key = match plan.ways.first() {
            Some(Way::To(t)) if t.transport == Transport::Udp && plan.ways.len() == 1 => {
                if let Err(e) = self.sip.send(t, data).await {
                    self.report(token, e.to_string());
                }
                return;
            }
            Some(Way::To(t)) => (t.transport, t.addr.to_string()),
            Some(Way::Back(s)) => (s.transport, s.peer.to_string()),
            Some(Way::Name {
                host,
                port,
                transport,
                ..
            }) => (*transport, format!("{host}:{port}")),
            None => {
                self.report(token, "no way to the peer".into());
                return;
            }
        };
        let mut item = (data, plan, token);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // A sender whose task ended (idle) is replaced once.
        for _ in 0..2 {
            let tx = self.peers.entry(key.clone()).or_insert_with(|| {
                spawn(
                    self.sip.clone(),
                    self.resolver.clone(),
                    self.failures.clone(),
                    Arc::clone(&self.in_flight),
                )
            });
            match tx.try_send(item) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.peers.remove(&key);
                    item = back;
                }
                Err(mpsc::error::TrySendError::Full((_, _, token))) => {
                    self.in_flight.fetch_sub(1, Ordering::Relaxed);
                    let why = format!("send queue to {} is full", key.1);
                    self.report(token, why);
                    return;
                }
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn<T: Send + 'static>(
    sip: SipTransport,
    resolver: Resolver,
    failures: mpsc::Sender<(T, String)>,
    in_flight: Arc<AtomicUsize>,
) -> mpsc::Sender<Item<T>> {
    let (tx, mut rx) = mpsc::channel::<Item<T>>(QUEUE);
    tokio::spawn(async move {
        while let Ok(Some((data, plan, token))) = tokio::time::timeout(IDLE, rx.recv()).await {
            let result = deliver(&sip, &resolver, &plan, data.clone()).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot send");
                if data.starts_with(b"BYE ") {
                    tokio::spawn(retry_bye(sip.clone(), resolver.clone(), plan, data));
                }
                let _ = failures.send((token, e)).await;
            }
        }
    });
    tx
}

/// A BYE no way took is tried again over all of them on Timer E's schedule (500 ms doubling
/// to T2 = 4 s) until Timer F (32 s, RFC 3261 §17.1.2.2): a peer that comes back in that time
/// still learns the call ended. Its transaction in the call core counts it lost at Timer F
/// if no answer came.
async fn retry_bye(sip: SipTransport, resolver: Resolver, plan: Plan, data: Bytes) {
    let start = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        tokio::time::sleep(wait).await;
        if start.elapsed() >= Duration::from_secs(32) {
            return;
        }
        if deliver(&sip, &resolver, &plan, data.clone()).await.is_ok() {
            tracing::info!("a BYE that could not be sent earlier went out");
            return;
        }
        wait = (wait * 2).min(Duration::from_secs(4));
    }
}

/// Tries `plan`'s ways in order; the last error when none takes the message.
async fn deliver(
    sip: &SipTransport,
    resolver: &Resolver,
    plan: &Plan,
    data: Bytes,
) -> Result<(), String> {
    let mut last = String::from("no way to the peer");
    for (i, way) in plan.ways.iter().enumerate() {
        let (reason, error) = match try_way(sip, resolver, way, data.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if i + 1 < plan.ways.len() {
            tracing::warn!(way = %describe(way), reason, %error, "in-dialog request falls back to the next way to the peer");
            if let Some(c) = &plan.fallbacks {
                c.with_label_values(&[reason]).inc();
            }
        }
        last = error;
    }
    Err(last)
}

async fn try_way(
    sip: &SipTransport,
    resolver: &Resolver,
    way: &Way,
    data: Bytes,
) -> Result<(), (&'static str, String)> {
    let sent = |e: SendError| (send_reason(&e), e.to_string());
    match way {
        Way::Back(source) => sip.respond(source, data).await.map_err(sent),
        Way::To(target) => sip.send(target, data).await.map_err(sent),
        Way::Name {
            host,
            port,
            transport,
            server_name,
        } => {
            let addrs = resolver.lookup(host, *port).await.map_err(|e| {
                let reason = match e {
                    DnsError::NotFound(_) => "not_found",
                    DnsError::Failed(..) => "dns_failed",
                };
                (reason, e.to_string())
            })?;
            let mut last = ("not_found", format!("{host} has no address"));
            for addr in addrs {
                let target = Target {
                    transport: *transport,
                    addr,
                    server_name: server_name.clone(),
                };
                match sip.send(&target, data.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = sent(e),
                }
            }
            Err(last)
        }
    }
}

fn send_reason(e: &SendError) -> &'static str {
    match e {
        SendError::Connect(_, io) | SendError::Tls(_, io)
            if io.kind() == std::io::ErrorKind::TimedOut =>
        {
            "timeout"
        }
        SendError::Connect(..) => "refused",
        SendError::Tls(..) | SendError::ServerName(_) => "handshake",
        SendError::ConnectionGone => "connection_gone",
        SendError::Backpressure | SendError::NoSocket(_) | SendError::Io(_) => "send_failed",
    }
}

fn describe(way: &Way) -> String {
    match way {
        Way::Back(s) => format!("connection from {}", s.peer),
        Way::To(t) => t.addr.to_string(),
        Way::Name { host, port, .. } => format!("{host}:{port}"),
    }
}
