//! The tokio driver of the call layer: one task per shard, each owning a [`CallCore`] over the
//! media relay, fed by Call-ID (our Call-IDs name their shard, peers' are hashed), so calls
//! use several cores with no lock between shards.
//!
//! Sends keep their order per peer ([`crate::sender`]): an INVITE and the CANCEL after it
//! leave in that order, and a slow TLS connect stalls only its own peer. Answers on an
//! existing connection and UDP sends go out at once. Nothing in a shard's loop
//! awaits DNS: PBX and proxy names are resolved when the routing view is built, in-dialog
//! hops by their peer's sender task ([`crate::call_dest`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use teamsgw_media::relay::{Relay, Session};
use teamsgw_sip::transport::{Incoming, SendError, SipTransport, Target};
use tokio::sync::{mpsc, oneshot};

use crate::call::media::{Allocation, LegCounters, MediaCounters, MediaPlane, SessionParams};
use crate::call::{
    CallCore, CallEvent, CallRecord, CallSettings, CallView, Dest, Input, Output, SharedView, Side,
    shard_of_call_id, shard_of_message,
};
use crate::call_dest;
use crate::dns::Resolver;
use crate::sender::{PeerSenders, Plan};
use crate::supervision::{Supervision, guarded};

/// Call metrics (README "Metrics").
#[derive(Clone)]
pub struct CallMetrics {
    active: IntGaugeVec,
    total: IntCounterVec,
    setup: HistogramVec,
    rejected: IntCounterVec,
    failover: IntCounterVec,
    transfers: IntCounterVec,
    emergency: IntCounterVec,
    indialog_fallback: IntCounterVec,
    bye_lost: IntCounterVec,
    internal_errors: IntCounterVec,
    media_loss: HistogramVec,
    media_jitter: HistogramVec,
}

impl CallMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let active = IntGaugeVec::new(
            Opts::new(
                "teamsgw_calls_active",
                "Calls up or being set up, by direction.",
            ),
            &["direction"],
        )?;
        let total = IntCounterVec::new(
            Opts::new(
                "teamsgw_calls_total",
                "Finished calls by direction and result (answered, busy, no_answer, rejected, failed, cancelled).",
            ),
            &["direction", "result"],
        )?;
        let setup = HistogramVec::new(
            HistogramOpts::new(
                "teamsgw_call_setup_seconds",
                "From the INVITE to the first 18x (stage ringing) and to the 200 (stage answered).",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["stage"],
        )?;
        // Per finished call and leg, from the relay's counters (the CDR has the same figures).
        let media_loss = HistogramVec::new(
            HistogramOpts::new(
                "teamsgw_call_media_loss_ratio",
                "Share of media packets lost per finished call, by leg (teams, pbx).",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]),
            &["leg"],
        )?;
        let media_jitter = HistogramVec::new(
            HistogramOpts::new(
                "teamsgw_call_media_jitter_seconds",
                "RFC 3550 interarrival jitter per finished call (8 kHz audio), by leg.",
            )
            .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16]),
            &["leg"],
        )?;
        for leg in ["teams", "pbx"] {
            media_loss.with_label_values(&[leg]);
            media_jitter.with_label_values(&[leg]);
        }
        let rejected = IntCounterVec::new(
            Opts::new(
                "teamsgw_call_admission_rejected_total",
                "INVITEs refused before a call started, by reason.",
            ),
            &["reason"],
        )?;
        let failover = IntCounterVec::new(
            Opts::new(
                "teamsgw_teams_failover_total",
                "INVITEs to Teams moved to the next proxy, by the proxy left and why.",
            ),
            &["from_proxy", "cause"],
        )?;
        let transfers = IntCounterVec::new(
            Opts::new(
                "teamsgw_call_transfers_total",
                "Transfers Teams asked for, by kind (teams_user, number, replaces) and result.",
            ),
            &["kind", "result"],
        )?;
        let emergency = IntCounterVec::new(
            Opts::new(
                "teamsgw_emergency_calls_total",
                "Emergency calls from Teams (calls.emergency_numbers), by enterprise.",
            ),
            &["enterprise"],
        )?;
        let indialog_fallback = IntCounterVec::new(
            Opts::new(
                "teamsgw_teams_indialog_fallback_total",
                "In-dialog requests to Teams that could not use the hop their dialog names (its api-du host) or a later way, and went on to the next: the dialog's last connection, then the proxies. By why.",
            ),
            &["reason"],
        )?;
        let bye_lost = IntCounterVec::new(
            Opts::new(
                "teamsgw_call_bye_lost_total",
                "BYEs of ended calls that got no answer by Timer F (32 s), by the side sent to: that peer may still show the call.",
            ),
            &["side"],
        )?;
        for s in ["teams", "pbx"] {
            bye_lost.with_label_values(&[s]);
        }
        for r in crate::call_dest::FALLBACK_REASONS {
            indialog_fallback.with_label_values(&[r]);
        }
        // Every label value exists from the start, so rate() sees zeros, not gaps.
        for k in ["teams_user", "number", "replaces"] {
            for r in ["completed", "failed"] {
                transfers.with_label_values(&[k, r]);
            }
        }
        for d in ["from_teams", "to_teams"] {
            active.with_label_values(&[d]);
            for r in [
                "answered",
                "busy",
                "no_answer",
                "rejected",
                "failed",
                "cancelled",
            ] {
                total.with_label_values(&[d, r]);
            }
        }
        for s in ["ringing", "answered"] {
            setup.with_label_values(&[s]);
        }
        for r in ["max_sessions", "max_cps", "media_ports", "draining"] {
            rejected.with_label_values(&[r]);
        }
        registry.register(Box::new(active.clone()))?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(setup.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(failover.clone()))?;
        registry.register(Box::new(transfers.clone()))?;
        registry.register(Box::new(emergency.clone()))?;
        registry.register(Box::new(indialog_fallback.clone()))?;
        let internal_errors = IntCounterVec::new(
            Opts::new(
                "teamsgw_internal_errors_total",
                "Panics caught in a supervised task (call_shard: its calls ended; client: its users register again; cdr_writer: its batch was lost); it restarted.",
            ),
            &["task"],
        )?;
        for task in ["call_shard", "client", "cdr_writer"] {
            internal_errors.with_label_values(&[task]);
        }
        registry.register(Box::new(internal_errors.clone()))?;
        registry.register(Box::new(bye_lost.clone()))?;
        registry.register(Box::new(media_loss.clone()))?;
        registry.register(Box::new(media_jitter.clone()))?;
        Ok(Self {
            active,
            total,
            setup,
            rejected,
            failover,
            transfers,
            emergency,
            indialog_fallback,
            bye_lost,
            internal_errors,
            media_loss,
            media_jitter,
        })
    }

    /// Gives every configured Teams proxy its failover series from the start, so alerts and
    /// dashboards on rate() see zeros, not gaps.
    pub fn expect_proxies(&self, proxies: &[String]) {
        for p in proxies {
            for cause in ["timeout", "transport_error", "408", "503", "504"] {
                self.failover.with_label_values(&[p.as_str(), cause]);
            }
        }
    }

    fn event(&self, event: &CallEvent) {
        match event {
            CallEvent::Started { direction } => {
                self.active.with_label_values(&[direction.as_str()]).inc()
            }
            CallEvent::Refused { reason } => self.rejected.with_label_values(&[reason]).inc(),
            // Counted by the SIP layer's metrics, which the shard holds.
            CallEvent::SourceRefused { .. } => {}
            CallEvent::Setup { stage, seconds, .. } => {
                self.setup.with_label_values(&[stage]).observe(*seconds)
            }
            CallEvent::Failover { from_proxy, cause } => self
                .failover
                .with_label_values(&[from_proxy.as_str(), cause])
                .inc(),
            CallEvent::Transfer { kind, result } => {
                self.transfers.with_label_values(&[kind, result]).inc()
            }
            CallEvent::Emergency {
                enterprise,
                caller,
                number,
                location,
            } => {
                self.emergency.with_label_values(&[enterprise]).inc();
                tracing::warn!(
                    %enterprise,
                    %caller,
                    %number,
                    location,
                    "emergency call from Teams (admitted past max_sessions)"
                );
            }
            CallEvent::Finished(r) => {
                let d = r.direction.as_str();
                self.active.with_label_values(&[d]).dec();
                self.total.with_label_values(&[d, r.result]).inc();
                for (leg, c) in [("teams", &r.media.teams), ("pbx", &r.media.pbx)] {
                    let expected = c.packets_in + c.lost;
                    if expected > 0 {
                        let loss = c.lost as f64 / expected as f64;
                        self.media_loss.with_label_values(&[leg]).observe(loss);
                        let jitter = c.jitter as f64 / 8000.0;
                        self.media_jitter.with_label_values(&[leg]).observe(jitter);
                    }
                }
            }
            CallEvent::ByeLost { call_id, side } => {
                self.bye_lost.with_label_values(&[side.as_str()]).inc();
                tracing::warn!(%call_id, side = side.as_str(), "our BYE got no answer: the peer may still show the call");
            }
        }
    }
}

/// The relay as a [`MediaPlane`]: sessions kept here, keys from the OS's CSPRNG.
pub struct RelayMedia {
    relay: Arc<Relay>,
    sessions: HashMap<u64, Session>,
}

impl RelayMedia {
    pub fn new(relay: Arc<Relay>) -> Self {
        Self {
            relay,
            sessions: HashMap::new(),
        }
    }
}

fn counters(s: &teamsgw_media::relay::LegStats) -> LegCounters {
    use std::sync::atomic::Ordering::Relaxed;
    LegCounters {
        packets_in: s.packets_in.load(Relaxed),
        packets_out: s.packets_out.load(Relaxed),
        bytes_in: s.bytes_in.load(Relaxed),
        bytes_out: s.bytes_out.load(Relaxed),
        lost: s.lost.load(Relaxed),
        jitter: s.jitter.load(Relaxed),
        srtp_auth_failures: s.auth_failures.load(Relaxed),
    }
}

impl MediaPlane for RelayMedia {
    fn allocate(&mut self) -> Option<Allocation> {
        let mut key = vec![0u8; 30];
        // RFC 4568 §6.1: the master key must be random; no key, no call.
        getrandom::getrandom(&mut key).ok()?;
        let session = match self.relay.allocate() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports for a new call");
                return None;
            }
        };
        let a = Allocation {
            session: session.id,
            teams_port: session.teams_port(),
            pbx_port: session.pbx_port(),
            local_key: key,
        };
        self.sessions.insert(session.id, session);
        Some(a)
    }

    fn apply(&mut self, session: u64, params: SessionParams) {
        if let Some(s) = self.sessions.get(&session) {
            s.apply(params);
        }
    }

    fn release(&mut self, session: u64) -> MediaCounters {
        match self.sessions.remove(&session) {
            Some(s) => MediaCounters {
                teams: counters(&s.stats().teams),
                pbx: counters(&s.stats().pbx),
            },
            None => MediaCounters::default(),
        }
    }
}

// Nearly every command is an Input; boxing it would allocate per SIP message.
#[allow(clippy::large_enum_variant)]
enum Command {
    Input(Input),
    List(oneshot::Sender<Vec<CallView>>),
}

/// How the daemon talks to the call shards.
#[derive(Clone)]
pub struct CallsHandle {
    shards: Arc<Vec<mpsc::Sender<Command>>>,
    /// Tasks restarted after a panic, for `/readyz`.
    supervision: Supervision,
    /// The routing view the shards were last given (PBX addresses for the flood guard).
    view: Arc<std::sync::RwLock<SharedView>>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    /// Messages the shards queued to peers and not yet handed to a connection.
    sending: Arc<std::sync::atomic::AtomicUsize>,
}

/// What the CDR writer gets: a finished call, or later news of one.
// Nearly every update is a finished call; boxing it would allocate once more per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RecordUpdate {
    Finished(FinishedCall),
    /// The call's BYE to `side` went unanswered (Timer F).
    ByeLost {
        call_id: String,
        side: Side,
    },
}

/// A finished call with wall-clock times (unix milliseconds), for the CDR writer.
#[derive(Debug, Clone)]
pub struct FinishedCall {
    pub record: CallRecord,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
}

impl CallsHandle {
    /// Tasks restarted after an internal error within the last minute (`/readyz`).
    pub fn degraded(&self) -> Vec<String> {
        self.supervision.degraded(Instant::now())
    }

    /// Where other supervised tasks (the client driver) report their panics.
    pub fn supervision(&self) -> Supervision {
        self.supervision.clone()
    }

    /// A message for the call layer: responses and requests by their Call-ID's owner.
    /// Returns false when the shard is overloaded (the message is dropped and counted).
    pub fn dispatch(&self, incoming: Incoming) -> bool {
        let shard = shard_of_message(&incoming.message, self.shards.len() as u16);
        let input = Input::Message {
            message: incoming.message,
            source: incoming.source,
        };
        self.shards[usize::from(shard)]
            .try_send(Command::Input(input))
            .is_ok()
    }

    /// Whether a response belongs to the call layer: its Call-ID is one we created (the leg
    /// we called), or its top Via branch is one of ours (a request we sent on a leg that
    /// called us, under the peer's Call-ID).
    pub fn owns_response(response: &teamsgw_sip::Message) -> bool {
        if shard_of_call_id(response.call_id().unwrap_or_default()).is_some() {
            return true;
        }
        response
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch())
            .is_some_and(|b| b.starts_with(crate::call::CALL_BRANCH_PREFIX.as_bytes()))
    }

    async fn broadcast(&self, make: impl Fn() -> Input) {
        for s in self.shards.iter() {
            let _ = s.send(Command::Input(make())).await;
        }
    }

    pub async fn set_routes(&self, view: SharedView) {
        if let Ok(mut current) = self.view.write() {
            *current = Arc::clone(&view);
        }
        self.broadcast(|| Input::Routes(Arc::clone(&view))).await;
    }

    /// Whether `ip` is a provisioned PBX's signalling address.
    pub fn is_pbx_source(&self, ip: std::net::IpAddr) -> bool {
        self.view.read().is_ok_and(|v| v.is_pbx_source(ip))
    }

    pub async fn proxy_state(&self, proxy: &str, up: bool) {
        self.broadcast(|| Input::ProxyState {
            proxy: proxy.to_owned(),
            up,
        })
        .await;
    }

    /// SIGTERM: new INVITEs get 503; calls still up at `deadline` get BYE.
    pub async fn drain(&self, deadline: Instant) {
        self.broadcast(|| Input::Drain { deadline }).await;
    }

    pub fn active(&self) -> usize {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn calls(&self) -> Vec<CallView> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            if s.send(Command::List(tx)).await.is_ok()
                && let Ok(v) = rx.await
            {
                out.extend(v);
            }
        }
        out
    }

    /// Waits until no call is up and the last BYEs have left, at most `limit`.
    pub async fn wait_idle(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        let busy =
            || self.active() > 0 || self.sending.load(std::sync::atomic::Ordering::Relaxed) > 0;
        while busy() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What the call layer runs on.
pub struct CallLayer {
    pub sip: SipTransport,
    pub relay: Arc<Relay>,
    pub media_events: mpsc::Receiver<teamsgw_media::MediaEvent>,
    pub settings: CallSettings,
    pub shards: u16,
    pub metrics: CallMetrics,
    /// Finished calls, for the CDR writer.
    pub records: mpsc::Sender<RecordUpdate>,
    /// Teams proxies that answered a call 503 with Retry-After, for trunk health (§1.6).
    pub proxy_holds: mpsc::Sender<(String, Duration)>,
    /// Resolves in-dialog hops that are names.
    pub resolver: Resolver,
}

/// Starts the call shards with an empty routing view (every INVITE gets 404 until the first
/// [`CallsHandle::set_routes`]).
pub fn spawn(layer: CallLayer) -> CallsHandle {
    let CallLayer {
        sip,
        relay,
        mut media_events,
        settings,
        shards,
        metrics,
        records,
        proxy_holds,
        resolver,
    } = layer;
    let view: SharedView = Arc::new(crate::call::RoutingView::default());
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let supervision = Supervision::new(metrics.internal_errors.clone());
    let mut senders = Vec::new();
    for shard in 0..shards.max(1) {
        let (tx, rx) = mpsc::channel(4096);
        let settings = CallSettings {
            shard,
            seed: settings
                .seed
                .map(|s| s.wrapping_add(u64::from(shard) * 0x9E37_79B9)),
            ..settings.clone()
        };
        let core = CallCore::new(
            settings,
            Arc::clone(&view),
            RelayMedia::new(Arc::clone(&relay)),
        );
        let (failures_tx, failures) = mpsc::channel(1024);
        let worker = Shard {
            core,
            sip: sip.clone(),
            senders: PeerSenders::new(sip.clone(), resolver.clone(), failures_tx)
                .counting(Arc::clone(&sending)),
            proxies: Vec::new(),
            metrics: metrics.clone(),
            records: records.clone(),
            proxy_holds: proxy_holds.clone(),
            active: Arc::clone(&active),
            clock: WallClock::now(),
            shard,
            supervision: supervision.clone(),
        };
        tokio::spawn(worker.run(rx, failures));
        senders.push(tx);
    }
    let handle = CallsHandle {
        shards: Arc::new(senders),
        supervision,
        view: Arc::new(std::sync::RwLock::new(Arc::clone(&view))),
        active,
        sending,
    };
    let h = handle.clone();
    tokio::spawn(async move {
        while let Some(teamsgw_media::MediaEvent::Timeout { session }) = media_events.recv().await {
            // Rare: every shard checks whether the session is its own.
            h.broadcast(|| Input::MediaTimeout { session }).await;
        }
    });
    handle
}

struct Shard {
    core: CallCore<RelayMedia>,
    sip: SipTransport,
    /// One ordered sender per TCP/TLS peer; a failed INVITE target comes back (for
    /// failover), other failures are only logged.
    senders: PeerSenders<Option<Target>>,
    /// The configured Teams proxies: the last fallback of an in-dialog request to Teams.
    proxies: Vec<Target>,
    metrics: CallMetrics,
    records: mpsc::Sender<RecordUpdate>,
    proxy_holds: mpsc::Sender<(String, Duration)>,
    active: Arc<std::sync::atomic::AtomicUsize>,
    clock: WallClock,
    shard: u16,
    supervision: Supervision,
}

impl Shard {
    /// Runs one step of the core; a panic ends the shard's calls and restarts it
    /// ([`crate::supervision`]).
    fn guard(&mut self, step: impl FnOnce(&mut CallCore<RelayMedia>)) {
        let Err(panic) = guarded(|| step(&mut self.core)) else {
            return;
        };
        let now = Instant::now();
        let calls: Vec<String> = guarded(|| self.core.calls(now))
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        tracing::error!(shard = self.shard, %panic, call_ids = ?calls, "call shard panicked: its calls end and it restarts");
        self.supervision
            .restarted("call_shard", format!("call shard {}", self.shard), now);
        self.core.recover(now);
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut failures: mpsc::Receiver<(Option<Target>, String)>,
    ) {
        loop {
            let wake = self.core.poll_timeout();
            let sleep = wake.map(|w| w.saturating_duration_since(Instant::now()));
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    match cmd {
                        Command::Input(Input::Routes(view)) => {
                            self.proxies = view.proxy_targets();
                            self.guard(|core| core.handle(Instant::now(), Input::Routes(view)));
                        }
                        Command::Input(input) => self.guard(|core| core.handle(Instant::now(), input)),
                        Command::List(reply) => {
                            let calls = guarded(|| self.core.calls(Instant::now())).unwrap_or_default();
                            let _ = reply.send(calls);
                        }
                    }
                }
                failed = failures.recv() => {
                    if let Some((Some(target), _)) = failed {
                        self.guard(|core| core.handle(Instant::now(), Input::SendFailed { target }));
                    }
                }
                _ = tokio::time::sleep(sleep.unwrap_or(Duration::from_secs(3600))) => {
                    self.guard(|core| core.handle_timeout(Instant::now()));
                }
            }
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { dest, data } => self.transmit(dest, data).await,
                Output::ProxyDown { proxy, retry_after } => {
                    tracing::warn!(%proxy, seconds = retry_after.as_secs(), "Teams proxy answered 503 with Retry-After; held down");
                    // Trunk health tells every shard within a second; rare, so never full.
                    let _ = self.proxy_holds.try_send((proxy, retry_after));
                }
                Output::Correlate {
                    call_id,
                    correlation,
                } => {
                    if let Some(capture) = self.sip.capture() {
                        match correlation {
                            Some(c) => capture.link(&call_id, &c),
                            None => capture.unlink(&call_id),
                        }
                    }
                }
                Output::Event(event) => {
                    self.metrics.event(&event);
                    match event {
                        CallEvent::Started { .. } => {
                            self.active
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        CallEvent::Finished(record) => {
                            self.active
                                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                            let finished = self.clock.finished(*record);
                            if self
                                .records
                                .try_send(RecordUpdate::Finished(finished))
                                .is_err()
                            {
                                tracing::error!("CDR queue full: a call record is lost");
                            }
                        }
                        CallEvent::SourceRefused { reason } => {
                            self.sip.count_refused_source(reason)
                        }
                        CallEvent::ByeLost { call_id, side } => {
                            let lost = RecordUpdate::ByeLost { call_id, side };
                            if self.records.try_send(lost).is_err() {
                                tracing::error!("CDR queue full: a lost BYE is not marked");
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    async fn transmit(&mut self, dest: Dest, data: Bytes) {
        match dest {
            Dest::Reply(source) => match self.sip.respond(&source, data.clone()).await {
                Ok(()) => {}
                Err(SendError::ConnectionGone) => match call_dest::via_way(&data) {
                    // §18.2.2: a response whose connection closed goes to its Via.
                    Some(way) => {
                        let plan = Plan {
                            ways: vec![way],
                            fallbacks: None,
                        };
                        self.senders.send_plan(plan, data, None).await;
                    }
                    None => {
                        tracing::debug!(peer = %source.peer, "connection closed; request dropped")
                    }
                },
                Err(e) => tracing::debug!(peer = %source.peer, error = %e, "cannot send"),
            },
            Dest::To(target) => self.senders.send(&target, data, Some(target.clone())).await,
            Dest::Hop(_) => {
                let plan = call_dest::plan(&dest, &self.proxies, &self.metrics.indialog_fallback);
                self.senders.send_plan(plan, data, None).await;
            }
        }
    }
}

/// Turns the core's instants into unix milliseconds.
struct WallClock {
    instant: Instant,
    unix_ms: u64,
}

impl WallClock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.unix_ms + d.as_millis() as u64,
            None => self
                .unix_ms
                .saturating_sub(self.instant.duration_since(t).as_millis() as u64),
        }
    }

    fn finished(&self, record: CallRecord) -> FinishedCall {
        FinishedCall {
            started_ms: self.ms(record.started),
            answered_ms: record.answered.map(|a| self.ms(a)),
            ended_ms: self.ms(record.ended),
            record,
        }
    }
}
