//! The tokio driver of the requests teamsgw originates: it owns one client
//! [`TransactionLayer`], the [`RegistrationAgent`] and the [`TrunkHealth`], feeds them time
//! and responses, and puts their requests on the SIP transports.
//!
//! One task owns all the state, so the cores need no locks; the rest of the daemon talks to
//! it through [`ClientHandle`]. Sends run on their own tasks (a TCP/TLS connect must not stall
//! 100,000 refreshes); a failed send comes back as a transport error of its transaction.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};
use teamsgw_sip::message::Message;
use teamsgw_sip::transaction::{Event, TimerSettings, TransactionLayer, TxId};
use teamsgw_sip::transport::{Incoming, SipTransport, Target, Transport};
use tokio::sync::{mpsc, oneshot};

use crate::gauge_series::GaugeSeries;
use crate::registration::{
    AgentSettings, Outcome, Registrar, Registration, RegistrationAgent, RequestId, State,
};
use crate::trunk::{TrunkHealth, TrunkSettings};

/// Metrics of the registration agent and the trunk health.
#[derive(Clone)]
pub struct ClientMetrics {
    registrations: IntGaugeVec,
    register_requests: IntCounterVec,
    register_latency: Histogram,
    proxy_up: IntGaugeVec,
    options: IntCounterVec,
}

impl ClientMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let registrations = IntGaugeVec::new(
            Opts::new(
                "teamsgw_registrations",
                "Users by enterprise and registration state at their PBX.",
            ),
            &["enterprise", "state"],
        )?;
        let register_requests = IntCounterVec::new(
            Opts::new(
                "teamsgw_register_requests_total",
                "REGISTER transactions by result (ok, challenged, auth_failed, timeout, ...).",
            ),
            &["result"],
        )?;
        let register_latency = Histogram::with_opts(
            HistogramOpts::new(
                "teamsgw_register_latency_seconds",
                "From the first REGISTER of an attempt to its 2xx, challenge included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let proxy_up = IntGaugeVec::new(
            Opts::new(
                "teamsgw_teams_proxy_up",
                "1 while the Teams SIP proxy answers our OPTIONS.",
            ),
            &["proxy"],
        )?;
        let options = IntCounterVec::new(
            Opts::new(
                "teamsgw_teams_options_total",
                "OPTIONS sent to Teams SIP proxies by result.",
            ),
            &["proxy", "result"],
        )?;
        // Every result exists from the start, so alerts on rate() see zeros, not gaps.
        for result in [
            "ok",
            "challenged",
            "auth_failed",
            "interval_too_brief",
            "rejected",
            "server_error",
            "timeout",
            "transport_error",
        ] {
            register_requests.with_label_values(&[result]);
        }
        registry.register(Box::new(registrations.clone()))?;
        registry.register(Box::new(register_requests.clone()))?;
        registry.register(Box::new(register_latency.clone()))?;
        registry.register(Box::new(proxy_up.clone()))?;
        registry.register(Box::new(options.clone()))?;
        Ok(Self {
            registrations,
            register_requests,
            register_latency,
            proxy_up,
            options,
        })
    }
}

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

/// The transaction layer's destination handle: where to send, and for which request.
#[derive(Debug, Clone)]
struct Dest {
    target: Target,
    request: RequestId,
}

/// Starts the driver. `responses` carries every SIP response the transports receive.
pub fn spawn(
    sip: SipTransport,
    responses: mpsc::Receiver<Incoming>,
    agent: AgentSettings,
    trunk: TrunkSettings,
    metrics: ClientMetrics,
) -> ClientHandle {
    let now = Instant::now();
    let (commands, rx) = mpsc::channel(64);
    let summary = Arc::new(Mutex::new(BTreeMap::new()));
    let (failures_tx, failures) = mpsc::channel(1024);
    let driver = Driver {
        sip,
        layer: TransactionLayer::new(TimerSettings::default()),
        agent: RegistrationAgent::new(agent, now),
        trunk: TrunkHealth::new(trunk, now),
        requests: HashMap::new(),
        transactions: HashMap::new(),
        resolved: HashMap::new(),
        failures_tx,
        metrics,
        summary: Arc::clone(&summary),
        shutdown: None,
        registration_series: GaugeSeries::default(),
        proxy_series: GaugeSeries::default(),
    };
    tokio::spawn(driver.run(responses, rx, failures));
    ClientHandle { commands, summary }
}

struct Driver {
    sip: SipTransport,
    layer: TransactionLayer<Dest>,
    agent: RegistrationAgent,
    trunk: TrunkHealth,
    /// Transaction → the request it carries, and back.
    requests: HashMap<TxId, RequestId>,
    transactions: HashMap<RequestId, TxId>,
    /// host:port → address, with when it was resolved.
    resolved: HashMap<(String, u16), (SocketAddr, Instant)>,
    failures_tx: mpsc::Sender<(RequestId, String)>,
    metrics: ClientMetrics,
    summary: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    registration_series: GaugeSeries,
    proxy_series: GaugeSeries,
}

const RESOLVE_TTL: Duration = Duration::from_secs(60);
const METRICS_EVERY: Duration = Duration::from_secs(1);

impl Driver {
    async fn run(
        mut self,
        mut responses: mpsc::Receiver<Incoming>,
        mut commands: mpsc::Receiver<Command>,
        mut failures: mpsc::Receiver<(RequestId, String)>,
    ) {
        let mut next_metrics = Instant::now();
        loop {
            let now = Instant::now();
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
                        request: RequestId(0),
                    };
                    self.layer.receive(inc.message, source, reliable, Instant::now());
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return };
                    self.command(cmd);
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
            Command::Sync(users) => self.agent.sync(users, now),
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
                match self.resolve(&send.registrar.host, port).await {
                    Ok(addr) => self.start(
                        send.id,
                        send.request,
                        registrar_target(&send.registrar, addr),
                        now,
                    ),
                    Err(e) => self
                        .agent
                        .on_outcome(send.id, Outcome::TransportError(e), now),
                }
            }
            while let Some(probe) = self.trunk.poll_probe() {
                busy = true;
                match self.resolve(&probe.proxy, probe.port).await {
                    Ok(addr) => {
                        let target = Target {
                            transport: Transport::Tls,
                            addr,
                            server_name: Some(probe.proxy.clone()),
                        };
                        self.start(probe.id, probe.request, target, now);
                    }
                    Err(e) => self
                        .trunk
                        .on_outcome(probe.id, Outcome::TransportError(e), now),
                }
            }
            while let Some(event) = self.layer.poll_event() {
                busy = true;
                self.event(event, now);
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

    fn start(&mut self, id: RequestId, request: Message, target: Target, now: Instant) {
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

    fn event(&mut self, event: Event<Dest>, now: Instant) {
        match event {
            Event::Transmit { dest, data } => {
                let sip = self.sip.clone();
                let failures = self.failures_tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = sip.send(&dest.target, data).await {
                        let _ = failures.send((dest.request, e.to_string())).await;
                    }
                });
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
            _ => {}
        }
    }

    fn finish(&mut self, tx: TxId) -> Option<RequestId> {
        let id = self.requests.remove(&tx)?;
        self.transactions.remove(&id);
        Some(id)
    }

    fn route(&mut self, id: RequestId, outcome: Outcome, now: Instant) {
        if id.0.is_multiple_of(2) {
            self.agent.on_outcome(id, outcome, now);
        } else {
            self.trunk.on_outcome(id, outcome, now);
        }
    }

    /// IP literals directly; names through the system resolver (A/AAAA, IPv4 preferred),
    /// cached for a minute so a PBX with 10,000 users costs one lookup.
    async fn resolve(&mut self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_ascii_lowercase(), port);
        if let Some((addr, at)) = self.resolved.get(&key)
            && at.elapsed() < RESOLVE_TTL
        {
            return Ok(*addr);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| format!("{host} has no address"))?;
        self.resolved.insert(key, (addr, Instant::now()));
        Ok(addr)
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
