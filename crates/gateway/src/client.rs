//! The tokio driver of the requests teamsgw originates: it owns one client
//! [`TransactionLayer`], the [`RegistrationAgent`] and the [`TrunkHealth`], feeds them time
//! and responses, and puts their requests on the SIP transports.
//!
//! One task owns all the state, so the cores need no locks; the rest of the daemon talks to
//! it through [`ClientHandle`]. Sends go through one ordered sender per peer
//! ([`crate::sender`]: a TCP/TLS connect must not stall 100,000 refreshes, and messages to one
//! peer keep their order); a failed send comes back as a transport error of its transaction.
//! Each transaction records which core it belongs to ([`Owner`]), so any number of cores can
//! share the layer.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use teamsgw_sip::message::Message;
use teamsgw_sip::transaction::{Event, TimerSettings, TransactionLayer, TxId};
use teamsgw_sip::transport::{Incoming, SipTransport, Target, Transport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::dns::Resolver;
use crate::gauge_series::GaugeSeries;
use crate::registration::{
    AgentSettings, Outcome, Registrar, Registration, RegistrationAgent, RequestId, State,
};
use crate::sender::PeerSenders;
use crate::supervision::{Supervision, restart_on_panic};
use crate::trunk::{TrunkHealth, TrunkSettings};

mod metrics;
pub use metrics::ClientMetrics;

/// One user's registration for `user status` and the API (times in unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationView {
    pub upn: String,
    pub enterprise: String,
    pub state: &'static str,
    pub last_error: Option<String>,
    pub next_attempt: Option<u64>,
}

/// One Teams proxy for `trunk status` and the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProxyView {
    pub proxy: String,
    pub up: bool,
    pub last_result: Option<String>,
    pub next_probe: u64,
}

enum Command {
    Sync(Vec<Registration>),
    Registrations(oneshot::Sender<Vec<RegistrationView>>),
    Trunk(oneshot::Sender<Vec<ProxyView>>),
    HoldProxy {
        proxy: String,
        hold: Duration,
    },
    Shutdown {
        unregister: bool,
        limit: Duration,
        done: oneshot::Sender<()>,
    },
}

/// How the rest of the daemon talks to the driver.
#[derive(Clone)]
pub struct ClientHandle {
    commands: mpsc::Sender<Command>,
    summary: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    /// Each Teams proxy and whether trunk health has it up, sent the moment one changes.
    proxies_up: watch::Receiver<Vec<(String, bool)>>,
}

impl ClientHandle {
    /// The users that should be registered (from a new routing snapshot).
    pub async fn sync(&self, users: Vec<Registration>) {
        let _ = self.commands.send(Command::Sync(users)).await;
    }

    pub async fn registrations(&self) -> Vec<RegistrationView> {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Registrations(tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Marks a Teams proxy down for `hold` (a call's 503 with Retry-After, §1.6).
    pub async fn hold_proxy(&self, proxy: String, hold: Duration) {
        let _ = self.commands.send(Command::HoldProxy { proxy, hold }).await;
    }

    /// Trunk health's verdicts, changed as soon as a proxy goes up or down (not polled), so
    /// calls never try a proxy by a verdict older than the one the metrics show.
    pub fn proxies_up(&self) -> watch::Receiver<Vec<(String, bool)>> {
        self.proxies_up.clone()
    }

    pub async fn trunk(&self) -> Vec<ProxyView> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Trunk(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Users per registration state (refreshed every second), for `/readyz`.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        self.summary.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops; with `unregister`, first unregisters every user, waiting up to `limit`.
    pub async fn shutdown(&self, unregister: bool, limit: Duration) {
        let (done, rx) = oneshot::channel();
        let cmd = Command::Shutdown {
            unregister,
            limit,
            done,
        };
        if self.commands.send(cmd).await.is_ok() {
            let _ = tokio::time::timeout(limit + Duration::from_secs(1), rx).await;
        }
    }
}

/// The core a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    Registrations,
    Trunk,
}

/// A request of one core.
type Request = (Owner, RequestId);

/// The transaction layer's destination handle: where to send, and for which request.
#[derive(Debug, Clone)]
struct Dest {
    target: Target,
    request: Request,
}

/// Starts the driver. `responses` carries every SIP response the transports receive. A panic
/// in the driver is reported to `supervision` and the driver starts again with fresh state
/// and the last users it was given, who register again ([`crate::supervision`]).
pub fn spawn(
    sip: SipTransport,
    responses: mpsc::Receiver<Incoming>,
    agent: AgentSettings,
    trunk: TrunkSettings,
    metrics: ClientMetrics,
    resolver: Resolver,
    supervision: Supervision,
) -> ClientHandle {
    let (commands, rx) = mpsc::channel(64);
    let summary = Arc::new(Mutex::new(BTreeMap::new()));
    let (failures_tx, failures) = mpsc::channel(1024);
    let (lookups_tx, lookups) = mpsc::channel(256);
    let proxies_up = Arc::new(watch::Sender::new(Vec::new()));
    let receiver = proxies_up.subscribe();
    // The inputs outlive a driver that panics: its task holds them locked, and unwinding
    // unlocks them for the next one.
    let inputs = Arc::new(tokio::sync::Mutex::new(Inputs {
        responses,
        commands: rx,
        failures,
        lookups,
    }));
    let users: LastUsers = Arc::default();
    let handle_summary = Arc::clone(&summary);
    let start = move |restarted: bool| {
        let now = Instant::now();
        let mut layer = TransactionLayer::new(TimerSettings::default());
        // Issue 31 §2: a response comes from where its request went, over the same transport.
        layer.set_peer_check(|peer: &Dest, incoming: &Dest| {
            peer.target.transport == incoming.target.transport
                && peer.target.addr.ip() == incoming.target.addr.ip()
        });
        let mut driver = Driver {
            sip: sip.clone(),
            layer,
            agent: RegistrationAgent::new(agent.clone(), now),
            trunk: TrunkHealth::new(trunk.clone(), now),
            requests: HashMap::new(),
            transactions: HashMap::new(),
            waiting: HashMap::new(),
            lookups_tx: lookups_tx.clone(),
            senders: PeerSenders::new(sip.clone(), resolver.clone(), failures_tx.clone()),
            resolver: resolver.clone(),
            metrics: metrics.clone(),
            summary: Arc::clone(&summary),
            shutdown: None,
            registration_series: GaugeSeries::default(),
            proxy_series: GaugeSeries::default(),
            proxies_up: Arc::clone(&proxies_up),
            proxies_up_at: u64::MAX,
            users: Arc::clone(&users),
        };
        if restarted {
            let last = users.lock().map(|u| u.clone()).unwrap_or_default();
            driver.agent.sync(last, now);
        }
        tokio::spawn(driver.run(Arc::clone(&inputs)))
    };
    tokio::spawn(restart_on_panic(
        supervision,
        "client",
        "the registration agent and trunk health",
        start,
    ));
    ClientHandle {
        commands,
        summary: handle_summary,
        proxies_up: receiver,
    }
}

/// What the driver reads, kept across restarts.
struct Inputs {
    responses: mpsc::Receiver<Incoming>,
    commands: mpsc::Receiver<Command>,
    failures: mpsc::Receiver<(Request, String)>,
    lookups: mpsc::Receiver<Lookup>,
}

/// The users of the last sync, for a driver that starts again.
type LastUsers = Arc<Mutex<Vec<Registration>>>;

/// A request waiting for its peer's name to resolve.
struct Waiting {
    id: Request,
    message: Message,
    to: Peer,
}

enum Peer {
    Registrar(Registrar),
    Proxy(String),
}

type Lookup = ((String, u16), Result<SocketAddr, String>);

struct Driver {
    sip: SipTransport,
    layer: TransactionLayer<Dest>,
    agent: RegistrationAgent,
    trunk: TrunkHealth,
    /// Trunk health's verdicts for [`ClientHandle::proxies_up`], and the change they are at.
    proxies_up: Arc<watch::Sender<Vec<(String, bool)>>>,
    proxies_up_at: u64,
    users: LastUsers,
    /// Transaction → the request it carries, and back.
    requests: HashMap<TxId, Request>,
    transactions: HashMap<Request, TxId>,
    /// Requests waiting for a name being looked up, and where lookups report.
    waiting: HashMap<(String, u16), Vec<Waiting>>,
    lookups_tx: mpsc::Sender<Lookup>,
    /// Caches answers for their TTL: a PBX with 10,000 users costs one query per TTL.
    resolver: Resolver,
    senders: PeerSenders<Request>,
    metrics: ClientMetrics,
    summary: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    registration_series: GaugeSeries,
    proxy_series: GaugeSeries,
}

const METRICS_EVERY: Duration = Duration::from_secs(1);

impl Driver {
    async fn run(mut self, inputs: Arc<tokio::sync::Mutex<Inputs>>) {
        let mut inputs = inputs.lock_owned().await;
        let Inputs {
            responses,
            commands,
            failures,
            lookups,
        } = &mut *inputs;
        let mut next_metrics = Instant::now();
        loop {
            let now = Instant::now();
            if self.trunk.changes() != self.proxies_up_at {
                // The calls and teamsgw_teams_proxy_up learn a verdict together, at once.
                self.proxies_up_at = self.trunk.changes();
                let states: Vec<(String, bool)> = self
                    .trunk
                    .status()
                    .into_iter()
                    .map(|p| (p.proxy, p.up))
                    .collect();
                self.proxy_series.publish(
                    &self.metrics.proxy_up,
                    states
                        .iter()
                        .map(|(p, up)| (vec![p.as_str()], i64::from(*up))),
                );
                self.proxies_up.send_replace(states);
            }
            if now >= next_metrics {
                self.publish();
                next_metrics = now + METRICS_EVERY;
            }
            if let Some((deadline, _)) = &self.shutdown
                && (self.agent.pending() == 0 || now >= *deadline)
            {
                if let Some((_, done)) = self.shutdown.take() {
                    let _ = done.send(());
                }
                return;
            }
            let wake = [
                self.layer.poll_timeout(),
                self.agent.poll_timeout(),
                self.trunk.poll_timeout(),
                Some(next_metrics),
                self.shutdown.as_ref().map(|(d, _)| *d),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_metrics);
            let sleep = wake.saturating_duration_since(now);
            tokio::select! {
                incoming = responses.recv() => {
                    let Some(inc) = incoming else { return };
                    let reliable = inc.source.transport != Transport::Udp;
                    let source = Dest {
                        target: Target { transport: inc.source.transport, addr: inc.source.peer, server_name: None },
                        request: (Owner::Registrations, RequestId(0)),
                    };
                    self.layer.receive(inc.message, source, reliable, Instant::now());
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.command(cmd);
                }
                looked_up = lookups.recv() => {
                    if let Some((key, result)) = looked_up {
                        self.resolved(key, result);
                    }
                }
                failed = failures.recv() => {
                    if let Some((request, error)) = failed
                        && let Some(tx) = self.transactions.get(&request).copied()
                    {
                        tracing::debug!(%error, "send failed");
                        self.layer.transport_error(tx);
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    let now = Instant::now();
                    self.layer.handle_timeout(now);
                    self.agent.handle_timeout(now);
                    self.trunk.handle_timeout(now);
                }
            }
            self.pump().await;
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Sync(users) => {
                if let Ok(mut last) = self.users.lock() {
                    last.clone_from(&users);
                }
                #[cfg(feature = "fault-injection")]
                injected_fault(&users);
                self.agent.sync(users, now);
            }
            Command::Registrations(reply) => {
                let clock = Clock::now();
                let views = self
                    .agent
                    .status()
                    .map(|s| RegistrationView {
                        upn: s.upn,
                        enterprise: s.enterprise,
                        state: s.state.as_str(),
                        last_error: s.last_error,
                        next_attempt: s.next_attempt.map(|t| clock.unix(t)),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Command::HoldProxy { proxy, hold } => {
                self.trunk.hold_down(&proxy, hold, Instant::now());
            }
            Command::Trunk(reply) => {
                let clock = Clock::now();
                let views = self
                    .trunk
                    .status()
                    .into_iter()
                    .map(|p| ProxyView {
                        proxy: p.proxy,
                        up: p.up,
                        last_result: p.last_result,
                        next_probe: clock.unix(p.next_probe),
                    })
                    .collect();
                let _ = reply.send(views);
            }
            Command::Shutdown {
                unregister,
                limit,
                done,
            } => {
                if unregister {
                    self.agent.shutdown(now);
                    tracing::info!(pending = self.agent.pending(), "unregistering users");
                }
                let deadline = if unregister { now + limit } else { now };
                self.shutdown = Some((deadline, done));
            }
        }
    }

    /// Moves requests from the cores to the transaction layer and events back, until quiet.
    async fn pump(&mut self) {
        loop {
            let mut busy = false;
            let now = Instant::now();
            while let Some(send) = self.agent.poll_send() {
                busy = true;
                let port = send.registrar.port_or_default();
                let host = send.registrar.host.clone();
                let waiting = Waiting {
                    id: (Owner::Registrations, send.id),
                    message: send.request,
                    to: Peer::Registrar(send.registrar),
                };
                self.resolve_then_start(&host, port, waiting, now);
            }
            while let Some(probe) = self.trunk.poll_probe() {
                busy = true;
                let waiting = Waiting {
                    id: (Owner::Trunk, probe.id),
                    message: probe.request,
                    to: Peer::Proxy(probe.proxy.clone()),
                };
                self.resolve_then_start(&probe.proxy, probe.port, waiting, now);
            }
            while let Some(event) = self.layer.poll_event() {
                busy = true;
                self.event(event, now).await;
            }
            while let Some(f) = self.agent.poll_finished() {
                self.metrics
                    .register_requests
                    .with_label_values(&[f.result])
                    .inc();
                if let Some(latency) = f.latency {
                    self.metrics.register_latency.observe(latency.as_secs_f64());
                }
            }
            while let Some((proxy, result)) = self.trunk.poll_result() {
                self.metrics
                    .options
                    .with_label_values(&[proxy.as_str(), result])
                    .inc();
            }
            if !busy {
                return;
            }
        }
    }

    fn start(&mut self, id: Request, request: Message, target: Target, now: Instant) {
        let reliable = target.transport != Transport::Udp;
        let dest = Dest {
            target,
            request: id,
        };
        match self.layer.send_request(request, dest, reliable, now) {
            Some(tx) => {
                self.requests.insert(tx, id);
                self.transactions.insert(id, tx);
            }
            None => self.route(
                id,
                Outcome::TransportError("unsendable request".into()),
                now,
            ),
        }
    }

    async fn event(&mut self, event: Event<Dest>, now: Instant) {
        match event {
            Event::Transmit { dest, data } => {
                self.senders.send(&dest.target, data, dest.request).await;
            }
            Event::Response { tx, message } => {
                if message.status().unwrap_or(0) >= 200
                    && let Some(id) = self.finish(tx)
                {
                    self.route(id, Outcome::Response(message), now);
                }
            }
            Event::Timeout { tx } => {
                if let Some(id) = self.finish(tx) {
                    self.route(id, Outcome::Timeout, now);
                }
            }
            Event::TransportError { tx } => {
                if let Some(id) = self.finish(tx) {
                    self.route(id, Outcome::TransportError("cannot send".into()), now);
                }
            }
            Event::OffPath { source, .. } => {
                tracing::info!(peer = %source.target.addr, "a response from elsewhere than where its request went: dropped");
                self.sip.count_refused_source("dialog_source");
            }
            _ => {}
        }
    }

    fn finish(&mut self, tx: TxId) -> Option<Request> {
        let id = self.requests.remove(&tx)?;
        self.transactions.remove(&id);
        Some(id)
    }

    fn route(&mut self, (owner, id): Request, outcome: Outcome, now: Instant) {
        match owner {
            Owner::Registrations => self.agent.on_outcome(id, outcome, now),
            Owner::Trunk => self.trunk.on_outcome(id, outcome, now),
        }
    }

    /// Starts `w` at once for IP literals; otherwise queues it behind one lookup of the name
    /// on its own task, so no timer of this loop waits on DNS (IPv4 preferred; the resolver
    /// caches the answer for its TTL).
    fn resolve_then_start(&mut self, host: &str, port: u16, w: Waiting, now: Instant) {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.start_waiting(w, Ok(SocketAddr::new(ip, port)), now);
            return;
        }
        let key = (host.to_ascii_lowercase(), port);
        let queue = self.waiting.entry(key.clone()).or_default();
        queue.push(w);
        if queue.len() > 1 {
            return; // a lookup is in flight
        }
        let lookups = self.lookups_tx.clone();
        let resolver = self.resolver.clone();
        tokio::spawn(async move {
            let result = match resolver.lookup(&key.0, port).await {
                Ok(addrs) => addrs
                    .first()
                    .copied()
                    .ok_or_else(|| format!("{} has no address", key.0)),
                Err(e) => Err(e.to_string()),
            };
            let _ = lookups.send((key, result)).await;
        });
    }

    fn resolved(&mut self, key: (String, u16), result: Result<SocketAddr, String>) {
        let now = Instant::now();
        for w in self.waiting.remove(&key).unwrap_or_default() {
            self.start_waiting(w, result.clone(), now);
        }
    }

    fn start_waiting(&mut self, w: Waiting, addr: Result<SocketAddr, String>, now: Instant) {
        match addr {
            Ok(addr) => {
                let target = match w.to {
                    Peer::Registrar(r) => registrar_target(&r, addr),
                    Peer::Proxy(name) => Target {
                        transport: Transport::Tls,
                        addr,
                        server_name: Some(name),
                    },
                };
                self.start(w.id, w.message, target, now);
            }
            Err(e) => self.route(w.id, Outcome::TransportError(e), now),
        }
    }

    fn publish(&mut self) {
        let counts = self.agent.counts();
        let mut totals: BTreeMap<&'static str, usize> =
            State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for ((_, state), n) in &counts {
            *totals.entry(state.as_str()).or_insert(0) += n;
        }
        self.registration_series.publish(
            &self.metrics.registrations,
            counts.iter().map(|((enterprise, state), n)| {
                (
                    vec![*enterprise, state.as_str()],
                    i64::try_from(*n).unwrap_or(i64::MAX),
                )
            }),
        );
        if let Ok(mut s) = self.summary.lock() {
            *s = totals;
        }
        let status = self.trunk.status();
        self.proxy_series.publish(
            &self.metrics.proxy_up,
            status
                .iter()
                .map(|p| (vec![p.proxy.as_str()], i64::from(p.up))),
        );
    }
}

fn registrar_target(r: &Registrar, addr: SocketAddr) -> Target {
    Target {
        transport: r.transport,
        addr,
        server_name: (r.transport == Transport::Tls).then(|| r.host.clone()),
    }
}

/// Converts the cores' `Instant`s to unix seconds for people.
struct Clock {
    instant: Instant,
    unix: u64,
}

impl Clock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    fn unix(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant) {
            Some(ahead) => self.unix + ahead.as_secs(),
            None => self
                .unix
                .saturating_sub(self.instant.duration_since(t).as_secs()),
        }
    }
}

/// Test builds only (the gateway's `fault-injection` feature): the first sync that has the
/// user `FAULT_PANIC_UPN_FOR_TEAMSGW` panics the driver, once, so its supervision is tested
/// against the real daemon (issue 31 §4).
#[cfg(feature = "fault-injection")]
#[allow(clippy::panic)]
fn injected_fault(users: &[Registration]) {
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Ok(upn) = std::env::var("FAULT_PANIC_UPN_FOR_TEAMSGW") else {
        return;
    };
    if users.iter().any(|u| u.upn == upn) && !FIRED.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        panic!("injected fault: a sync with {upn}");
    }
}
