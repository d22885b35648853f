//! The relay: one media thread moves packets between the Teams leg (SRTP, rtcp-mux) and the
//! PBX leg (RTP, with RTCP on its own port or muxed) of every call, transcrypting in place in a
//! buffer it owns. Nothing is allocated per packet.
//!
//! Why a dedicated thread with its own event loop rather than a tokio task per call: each
//! socket carries one packet per 20 ms, so every packet is a wake-up, and a task wake-up plus a
//! multi-branch `select!` cost more than the two syscalls that move the packet. The loop
//! (level-triggered epoll, see the `poller` module) reads one datagram per ready socket and handles
//! it synchronously.
//!
//! Batch window: after a wake-up the loop does not wait again until `batch_window` has passed,
//! so under load one wake-up serves the packets of many calls instead of a few (a wake-up costs
//! about as much as forwarding a packet). A packet that finds the loop idle is forwarded at
//! once; under load a packet waits at most the window. Arrival times (jitter) are taken per
//! wake-up, so they carry up to the window too.
//!
//! Two phases per wake-up: the loop first receives and transforms every ready packet into an
//! outbox (up to 64), then sends them all. The kernel's receive path and its send path each
//! run many times in a row with their code warm in cache instead of alternating per packet
//! (A/B at 1,000 calls: 5.3 against 6.1 us per forwarded packet). A packet waits for the
//! rest of its batch to be received, a few microseconds each.
//!
//! Latching (symmetric RTP): a leg's peer address comes from the SDP and is replaced by the
//! source of the first valid packet; on the SRTP leg only a packet whose tag verifies moves
//! the latch; on the plain leg only a source [`crate::pbx_source`] accepts (the SDP's address,
//! or one learned), and a port change is followed only for the same SSRC (a NAT rebinding).
//! Everything else is dropped, counted, and does not count as media for the timeout.
//!
//! Sending: with a raw socket ([`crate::raw_send`], `CAP_NET_RAW`, IPv4) the send phase is
//! one `sendmmsg` of the whole outbox with the IP and UDP headers we write, source port the
//! leg's own, and the calls' sockets are only read. Without it each packet is one send from
//! its leg's socket: each leg's RTP socket then gets a connected twin on the same port
//! (`SO_REUSEPORT`) connected to the latched peer. The kernel delivers the peer's packets to
//! the twin and everyone else's to the unconnected socket, so latching still sees strangers,
//! and sending on the twin skips the per-packet route lookup (about 0.3 us of a 3.3 us send).
//! A latch move re-connects the twin.
//!
//! Why the raw socket: a UDP send per packet is a syscall per packet, and the kernel's freeing
//! of each sent packet wakes the sending socket's epoll entry (the write-space callback) since
//! the relay also reads that socket. `recvmmsg` would find one packet per socket (measured no
//! gain) and io_uring `sendmsg` batches measured slower than one `send` each
//! (`benches/scripts/udp_send_cost.sh`, which also measures the raw socket).
//!
//! Why not io_uring for receiving either: a driver with one multishot `recvmsg` per socket
//! into a ring of provided buffers (`DEFER_TASKRUN`, so the kernel's copying runs in this
//! thread at its next wait) was built and measured against this loop in one build at 500
//! calls: 11.5-13.8 us per forwarded packet against 10.9-11.0. The kernel's task-work receive
//! path (poll wake, task work, `io_recvmsg`, a `fget` per request) costs what the epoll report
//! and the `recv` syscall cost, and Linux 6.10+ runs at most 20 deferred items per enter, so
//! draining a wake-up takes extra enters.
//!
//! The gateway drives a session through [`Session`]: ports to put in SDP, [`Session::apply`]
//! for negotiated parameters (and re-INVITEs), [`Session::stats`], and close on drop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use std::net::UdpSocket;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::mpsc;

use crate::comfort_noise::ComfortNoise;
use crate::pbx_source::{MediaSource, PbxSource};
use crate::poller::{Event, Poller, Waker};
use crate::ports::{PortError, PortLease, PortPool};
use crate::raw_send::{self, RawPacket, RawSender};
use crate::srtp::{Context, MasterKey, SrtpError, Suite};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub bind: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    /// No packet from either peer for this long (not counting hold) raises [`MediaEvent::Timeout`].
    pub timeout: Duration,
    /// The loop waits at least this long between wake-ups (see the module doc). Zero: none.
    pub batch_window: Duration,
    /// Send through one raw IPv4 socket, a send phase per syscall ([`crate::raw_send`]), when
    /// the process may (`CAP_NET_RAW`) and `bind` is IPv4; otherwise, or when false, from each
    /// call's own sockets.
    pub raw_socket: bool,
    /// Where the PBX leg's media may come from (`pbx.media_source`).
    pub pbx_media_source: MediaSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Timeout { session: u64 },
}

#[derive(Clone)]
pub struct MediaMetrics {
    packets: IntCounterVec,
    dropped: IntCounterVec,
    auth_failures: IntCounter,
    sessions_active: IntGauge,
    ports_free: IntGauge,
    comfort_noise: IntCounter,
}

impl MediaMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            packets: IntCounterVec::new(
                Opts::new(
                    "teamsgw_media_packets_total",
                    "Media packets relayed, by leg (teams, pbx) and direction (in, out).",
                ),
                &["leg", "direction"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "teamsgw_media_packets_dropped_total",
                    "Media packets dropped, by leg and reason (source: not from the leg's peer; \
                     auth: SRTP tag did not verify; replay; malformed; ssrc_limit: a ninth \
                     stream towards Teams).",
                ),
                &["leg", "reason"],
            )?,
            auth_failures: IntCounter::new(
                "teamsgw_media_srtp_auth_failures_total",
                "SRTP/SRTCP packets dropped because their authentication tag did not verify.",
            )?,
            sessions_active: IntGauge::new(
                "teamsgw_media_sessions_active",
                "Media sessions allocated.",
            )?,
            ports_free: IntGauge::new("teamsgw_media_ports_free", "Free media port pairs.")?,
            comfort_noise: IntCounter::new(
                "teamsgw_media_cn_generated_total",
                "Comfort-noise packets we sent to Teams while a PBX leg was silent (RFC 3389).",
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.packets.clone()))?;
        registry.register(Box::new(self.dropped.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.sessions_active.clone()))?;
        registry.register(Box::new(self.ports_free.clone()))?;
        registry.register(Box::new(self.comfort_noise.clone()))?;
        Ok(())
    }
}

/// Counters of one leg, readable while the call runs (for CDRs and `stats`).
#[derive(Debug, Default)]
pub struct LegStats {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub lost: AtomicU64,
    /// Interarrival jitter (RFC 3550 §6.4.1) in timestamp units.
    pub jitter: AtomicU64,
    pub auth_failures: AtomicU64,
    pub replays: AtomicU64,
    pub unexpected_source: AtomicU64,
    pub malformed: AtomicU64,
}

#[derive(Debug, Default)]
pub struct SessionStats {
    pub teams: LegStats,
    pub pbx: LegStats,
}

/// The Teams leg as negotiated: SRTP keys both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsParams {
    pub remote: Option<SocketAddr>,
    pub suite: Suite,
    /// Teams' key (decrypts what Teams sends).
    pub remote_key: MasterKey,
    /// Our key (encrypts what we send to Teams).
    pub local_key: MasterKey,
    /// We may send to Teams (false while Teams' side is on hold).
    pub send: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxParams {
    pub remote_rtp: Option<SocketAddr>,
    /// RTCP destination when not multiplexed.
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub send: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    pub teams: TeamsParams,
    pub pbx: PbxParams,
    /// Payload type numbers between the legs' numberings (identity when they agree).
    pub payload_map: crate::payload_map::PayloadMap,
    /// Teams' number for comfort noise when both legs negotiated CN: a silent PBX leg then
    /// gets CN towards Teams ([`crate::comfort_noise`]).
    pub teams_cn: Option<u8>,
}

impl SessionParams {
    fn on_hold(&self) -> bool {
        !self.teams.send || !self.pbx.send
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("media thread: {0}")]
    Thread(std::io::Error),
}

enum Command {
    Add(Box<Slot>),
    Apply(u64, Arc<SessionParams>),
    Remove(u64),
    Stop,
}

/// Sends commands to the media thread and wakes it.
#[derive(Clone)]
struct Control {
    tx: std_mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl Control {
    fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            self.waker.wake();
        }
    }
}

pub struct Relay {
    pool: PortPool,
    metrics: MediaMetrics,
    control: Control,
    next_id: AtomicU64,
    raw_socket: bool,
    pbx_media_source: MediaSource,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.control.send(Command::Stop);
    }
}

/// A call's media. Dropping it stops its forwarding and returns the ports.
pub struct Session {
    pub id: u64,
    teams_port: u16,
    pbx_port: u16,
    control: Control,
    stats: Arc<SessionStats>,
    metrics: MediaMetrics,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.control.send(Command::Remove(self.id));
        self.metrics.sessions_active.dec();
    }
}

impl Session {
    /// Our port on the Teams side (RTP and RTCP, muxed).
    pub fn teams_port(&self) -> u16 {
        self.teams_port
    }

    /// Our RTP port on the PBX side (RTCP on the next port unless muxed).
    pub fn pbx_port(&self) -> u16 {
        self.pbx_port
    }

    /// Negotiated parameters, initially and after every re-INVITE. Keys that did not change
    /// keep their SRTP state (rollover counter, replay window).
    pub fn apply(&self, params: SessionParams) {
        self.control.send(Command::Apply(self.id, Arc::new(params)));
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }
}

impl Relay {
    /// Starts the media thread.
    pub fn new(
        config: RelayConfig,
        metrics: MediaMetrics,
    ) -> Result<(Self, mpsc::Receiver<MediaEvent>), MediaError> {
        let pool = PortPool::new(config.bind, config.port_min, config.port_max)?;
        metrics.ports_free.set(pool.free() as i64);
        let (events, rx) = mpsc::channel(1024);
        let poller = Poller::new().map_err(MediaError::Thread)?;
        let waker = Arc::new(Waker::new(&poller, WAKER).map_err(MediaError::Thread)?);
        let (tx, commands) = std_mpsc::channel();
        let raw = match config.bind {
            IpAddr::V4(bind) if config.raw_socket => RawSender::open(bind).ok(),
            _ => None,
        };
        let raw_socket = raw.is_some();
        let thread = EventLoop {
            raw,
            poller,
            waker: Arc::clone(&waker),
            commands,
            slots: Vec::new(),
            by_id: HashMap::new(),
            metrics: metrics.clone(),
            pool: pool.clone(),
            events,
            timeout: config.timeout,
            batch_window: config.batch_window,
        };
        std::thread::Builder::new()
            .name("teamsgw-media".into())
            .spawn(move || thread.run())
            .map_err(MediaError::Thread)?;
        let control = Control { tx, waker };
        Ok((
            Self {
                pool,
                metrics,
                control,
                next_id: AtomicU64::new(1),
                raw_socket,
                pbx_media_source: config.pbx_media_source,
            },
            rx,
        ))
    }

    /// Ports for a new call: two pairs, one per leg. Exhaustion is an error (answer 503).
    pub fn allocate(&self) -> Result<Session, MediaError> {
        let (teams_lease, teams) = self.pool.allocate()?;
        let (pbx_lease, pbx) = self.pool.allocate()?;
        self.metrics.ports_free.set(self.pool.free() as i64);
        self.metrics.sessions_active.inc();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(SessionStats::default());
        let session = Session {
            id,
            teams_port: teams_lease.base,
            pbx_port: pbx_lease.base,
            control: self.control.clone(),
            stats: Arc::clone(&stats),
            metrics: self.metrics.clone(),
        };
        let ports = [teams_lease.base, pbx_lease.base, pbx_lease.base + 1];
        let slot = Slot {
            id,
            teams: teams.rtp,
            pbx_rtp: pbx.rtp,
            pbx_rtcp: pbx.rtcp,
            _teams_rtcp: teams.rtcp,
            _leases: (teams_lease, pbx_lease),
            stats,
            params: None,
            srtp_in: None,
            srtp_out: None,
            teams_peer: None,
            pbx_peer: None,
            pbx_ssrc: None,
            pbx_source: PbxSource::new(self.pbx_media_source),
            teams_rx: RxStats::default(),
            pbx_rx: RxStats::default(),
            cn: ComfortNoise::default(),
            last_rx: Instant::now(),
            timed_out: false,
            seen: [0; SOCKETS_PER_SLOT as usize],
            teams_twin: None,
            pbx_twin: None,
            tokens: 0,
            ports,
        };
        self.control.send(Command::Add(Box::new(slot)));
        Ok(session)
    }

    pub fn ports_free(&self) -> usize {
        self.pool.free()
    }

    /// Whether packets leave through the raw socket ([`RelayConfig::raw_socket`]); false when
    /// it was asked for but could not be opened (no `CAP_NET_RAW`), which the daemon logs.
    pub fn sends_raw(&self) -> bool {
        self.raw_socket
    }
}

/// RFC 3550 A.1/A.8 receive statistics for one incoming stream.
#[derive(Debug, Default, Clone, Copy)]
struct RxStats {
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    transit: i64,
    jitter: f64,
}

/// The largest transit change taken as jitter: 10 s at 8 kHz.
const MAX_TRANSIT_JUMP: u64 = 80_000;

impl RxStats {
    fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        if !self.started {
            *self = Self {
                started: true,
                base_seq: u32::from(seq),
                max_seq: seq,
                ..Self::default()
            };
        } else if seq.wrapping_sub(self.max_seq) < 0x8000 {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
        }
        self.received += 1;
        let transit = i64::from(arrival) - i64::from(timestamp);
        // A jump of more than 10 s (8 kHz units) is a discontinuity (a new source, a
        // timestamp the sender reset, or a hostile one), not jitter: it would set the
        // estimate to hours and keep it there (issue 31 §3: numbers from the network are
        // bounded).
        let d = (transit - self.transit).unsigned_abs();
        if self.received > 1 && d <= MAX_TRANSIT_JUMP {
            self.jitter += (d as f64 - self.jitter) / 16.0;
        }
        self.transit = transit;
    }

    fn lost(&self) -> u64 {
        let extended = u64::from(self.cycles) << 16 | u64::from(self.max_seq);
        let expected = extended.saturating_sub(u64::from(self.base_seq)) + 1;
        expected.saturating_sub(self.received)
    }

    fn publish(&self, leg: &LegStats) {
        leg.lost.store(self.lost(), Ordering::Relaxed);
        leg.jitter.store(self.jitter as u64, Ordering::Relaxed);
    }
}

/// RTCP packet types 192..=223 sit where RTP's marker bit and payload type are (RFC 5761 §4).
fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && (192..=223).contains(&packet[1])
}

fn rtp_fields(packet: &[u8]) -> Option<(u16, u32, u32)> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    Some((
        u16::from_be_bytes([packet[2], packet[3]]),
        u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    ))
}

const WAKER: u64 = u64::MAX;
const BUF: usize = 2048;
/// Datagrams read at most per wake-up from a socket with a backlog.
const BACKLOG_READS: usize = 32;

/// One call's sockets and state, owned by the media thread. Sockets are declared before the
/// leases so they close before the ports go back to the pool.
struct Slot {
    id: u64,
    teams: UdpSocket,
    pbx_rtp: UdpSocket,
    pbx_rtcp: UdpSocket,
    /// Held so the Teams RTCP port stays ours (Teams always muxes).
    _teams_rtcp: UdpSocket,
    _leases: (PortLease, PortLease),
    stats: Arc<SessionStats>,
    params: Option<Arc<SessionParams>>,
    srtp_in: Option<Context>,
    srtp_out: Option<Context>,
    teams_peer: Option<SocketAddr>,
    pbx_peer: Option<SocketAddr>,
    pbx_ssrc: Option<u32>,
    /// Who may send on the PBX leg (the SDP's address, or one learned).
    pbx_source: PbxSource,
    teams_rx: RxStats,
    pbx_rx: RxStats,
    /// Comfort noise for the PBX's stream towards Teams.
    cn: ComfortNoise,
    last_rx: Instant,
    timed_out: bool,
    /// The wake-up at which each socket (by [`Socket`]) was last ready.
    seen: [u64; SOCKETS_PER_SLOT as usize],
    /// Connected twins of `teams` and `pbx_rtp` (module doc), once a peer is known.
    teams_twin: Option<Twin>,
    pbx_twin: Option<Twin>,
    /// This slot's first poller token; its sockets are `tokens + Socket as u64`.
    tokens: u64,
    /// Our port of each [`Exit`], the source port of what leaves by it.
    ports: [u16; 3],
}

/// A socket on a leg's port connected to the leg's latched peer.
struct Twin {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl Twin {
    /// Binds a socket on `base`'s address (both share the port through `SO_REUSEPORT`) and
    /// connects it to `peer`.
    fn open(base: &UdpSocket, peer: SocketAddr) -> std::io::Result<UdpSocket> {
        let socket = crate::ports::bind_shared(base.local_addr()?)?;
        socket.connect(&peer.into())?;
        Ok(socket.into())
    }

    /// Keeps `twin` connected to `peer`; on any failure there is no twin and the leg sends
    /// from its unconnected socket.
    fn follow(
        twin: &mut Option<Twin>,
        base: &UdpSocket,
        peer: Option<SocketAddr>,
        poller: &Poller,
        token: u64,
    ) {
        let Some(peer) = peer else { return };
        match twin {
            Some(t) if t.peer == peer => {}
            Some(t) => {
                if t.socket.connect(peer).is_ok() {
                    t.peer = peer;
                } else if let Some(t) = twin.take() {
                    let _ = poller.delete(&t.socket);
                }
            }
            None => {
                if let Ok(socket) = Self::open(base, peer)
                    && poller.add(&socket, token).is_ok()
                {
                    *twin = Some(Twin { socket, peer });
                }
            }
        }
    }
}

/// Sockets of a slot, in poller token order.
#[derive(Clone, Copy)]
enum Socket {
    Teams = 0,
    PbxRtp = 1,
    PbxRtcp = 2,
    TeamsTwin = 3,
    PbxTwin = 4,
}

const SOCKETS_PER_SLOT: u64 = 5;

/// The socket of a slot a packet leaves by (in [`Slot::ports`] order).
#[derive(Clone, Copy)]
enum Exit {
    Teams = 0,
    PbxRtp = 1,
    PbxRtcp = 2,
}

/// Where a received and transformed packet goes: by which socket of its slot, to whom, and
/// how long it is.
struct Outgoing {
    exit: Exit,
    dest: SocketAddr,
    len: usize,
}

/// A packet buffer, one cache line longer than a power of two so that the buffers' first
/// lines do not all fall into the same few cache sets.
#[derive(Clone)]
struct Buffer {
    data: [u8; BUF],
    _stagger: [u8; 64],
}

/// Packets per send phase at most: one raw `sendmmsg`.
const OUTBOX: usize = raw_send::BATCH;

/// Buffers for the packets of one receive phase: a wake-up first receives and transforms
/// everything ready, then sends it all, so the kernel's receive path and its send path each
/// run many times in a row with their code and data warm in cache.
struct Outbox {
    buffers: Box<[Buffer]>,
    /// Slot index and destination of the packet in the buffer of the same position.
    queued: Vec<(usize, Outgoing)>,
}

impl Outbox {
    fn new() -> Self {
        Self {
            buffers: vec![
                Buffer {
                    data: [0; BUF],
                    _stagger: [0; 64]
                };
                OUTBOX
            ]
            .into_boxed_slice(),
            queued: Vec::with_capacity(OUTBOX),
        }
    }
}

/// Packets counted during one wake-up, added to the Prometheus counters once per wake-up so
/// a packet costs a local increment, not an atomic one on a shared line.
#[derive(Default)]
struct Counts {
    teams_in: u64,
    teams_out: u64,
    pbx_in: u64,
    pbx_out: u64,
    auth_failures: u64,
    dropped: [u64; DROPPED.len()],
}

/// Why a packet was dropped, indexing [`DROPPED`].
#[derive(Clone, Copy)]
enum Dropped {
    TeamsAuth = 0,
    TeamsReplay = 1,
    TeamsMalformed = 2,
    PbxSource = 3,
    PbxMalformed = 4,
    PbxSsrcLimit = 5,
}

/// (leg, reason) labels of `teamsgw_media_packets_dropped_total`, by [`Dropped`].
const DROPPED: [(&str, &str); 6] = [
    ("teams", "auth"),
    ("teams", "replay"),
    ("teams", "malformed"),
    ("pbx", "source"),
    ("pbx", "malformed"),
    ("pbx", "ssrc_limit"),
];

impl Counts {
    fn drop(&mut self, why: Dropped) {
        self.dropped[why as usize] += 1;
    }
}

/// Counters resolved once, so a flush costs atomic adds, not label lookups.
struct Counters {
    teams_in: IntCounter,
    teams_out: IntCounter,
    pbx_in: IntCounter,
    pbx_out: IntCounter,
    auth_failures: IntCounter,
    dropped: [IntCounter; DROPPED.len()],
}

impl Counters {
    fn flush(&self, counts: &mut Counts) {
        let counts = std::mem::take(counts);
        for (counter, n) in [
            (&self.teams_in, counts.teams_in),
            (&self.teams_out, counts.teams_out),
            (&self.pbx_in, counts.pbx_in),
            (&self.pbx_out, counts.pbx_out),
            (&self.auth_failures, counts.auth_failures),
        ]
        .into_iter()
        .chain(self.dropped.iter().zip(counts.dropped))
        {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }
}

/// Adds to a counter only the media thread writes: a plain load and store, no locked
/// read-modify-write (readers on other threads still see whole values).
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

struct EventLoop {
    /// The raw socket all packets leave by, when the relay may use one.
    raw: Option<RawSender>,
    poller: Poller,
    waker: Arc<Waker>,
    commands: std_mpsc::Receiver<Command>,
    slots: Vec<Option<Box<Slot>>>,
    by_id: HashMap<u64, usize>,
    metrics: MediaMetrics,
    pool: PortPool,
    events: mpsc::Sender<MediaEvent>,
    timeout: Duration,
    batch_window: Duration,
}

impl EventLoop {
    fn run(mut self) {
        let counters = Counters {
            teams_in: self.metrics.packets.with_label_values(&["teams", "in"]),
            teams_out: self.metrics.packets.with_label_values(&["teams", "out"]),
            pbx_in: self.metrics.packets.with_label_values(&["pbx", "in"]),
            pbx_out: self.metrics.packets.with_label_values(&["pbx", "out"]),
            auth_failures: self.metrics.auth_failures.clone(),
            dropped: DROPPED
                .map(|(leg, reason)| self.metrics.dropped.with_label_values(&[leg, reason])),
        };
        let mut counts = Counts::default();
        let started = Instant::now();
        let mut events: Vec<Event> = Vec::with_capacity(1024);
        let mut outbox = Outbox::new();
        let check_every = Duration::from_millis(500);
        let mut next_check = started + check_every;
        // Comfort noise is due within a tick of its 200 ms (crate::comfort_noise).
        let cn_every = Duration::from_millis(50);
        let mut next_cn = started + cn_every;
        let mut woke = started;
        let mut wake: u64 = 0;
        loop {
            let since = woke.elapsed();
            if since < self.batch_window {
                std::thread::sleep(self.batch_window - since);
            }
            let wait = next_check
                .min(next_cn)
                .saturating_duration_since(Instant::now());
            if self.poller.wait(&mut events, wait).is_err() {
                return;
            }
            let now = Instant::now();
            woke = now;
            let arrival = (now.duration_since(started).as_micros() / 125) as u32; // 8 kHz units
            wake += 1;
            // A full event list: the loop is behind and every socket may hold a backlog.
            let behind = events.len() == events.capacity();
            let mut commands = false;
            for event in &events {
                let token = Poller::token(event);
                if token == WAKER {
                    commands = true;
                    continue;
                }
                let index = (token / SOCKETS_PER_SLOT) as usize;
                let socket = match token % SOCKETS_PER_SLOT {
                    0 => Socket::Teams,
                    1 => Socket::PbxRtp,
                    2 => Socket::PbxRtcp,
                    3 => Socket::TeamsTwin,
                    _ => Socket::PbxTwin,
                };
                let Some(Some(slot)) = self.slots.get_mut(index) else {
                    continue;
                };
                // A socket holds one packet per 20 ms, so it is ready at one wake-up in many
                // and one read serves it (a second would come back empty). Ready at two wake-ups
                // in a row it holds a backlog (a burst): drain it, as when the loop is behind.
                let seen = &mut slot.seen[socket as usize];
                let reads = if behind || *seen + 1 == wake {
                    BACKLOG_READS
                } else {
                    1
                };
                *seen = wake;
                // What does not fit stays queued in the socket and is reported again.
                for _ in 0..reads.min(OUTBOX - outbox.queued.len()) {
                    let buf = &mut outbox.buffers[outbox.queued.len()].data;
                    let Some(out) = slot.receive(socket, buf, now, arrival, &mut counts) else {
                        break;
                    };
                    if let Some(out) = out {
                        outbox.queued.push((index, out));
                    }
                }
                if self.raw.is_none() {
                    slot.connect_twins(&self.poller);
                }
                if outbox.queued.len() == OUTBOX {
                    self.send_all(&mut outbox, &mut counts);
                }
            }
            self.send_all(&mut outbox, &mut counts);
            if commands {
                self.waker.reset();
                if !self.commands() {
                    return;
                }
            }
            counters.flush(&mut counts);
            if now >= next_check {
                next_check = now + check_every;
                self.check_timeouts();
            }
            if now >= next_cn {
                next_cn = now + cn_every;
                self.comfort_noise(now);
            }
        }
    }

    /// The send phase: everything the receive phase queued goes out.
    fn send_all(&self, outbox: &mut Outbox, counts: &mut Counts) {
        if let Some(raw) = &self.raw {
            self.send_all_raw(raw, outbox, counts);
            return;
        }
        for ((index, out), buf) in outbox.queued.drain(..).zip(outbox.buffers.iter()) {
            let Some(Some(slot)) = self.slots.get(index) else {
                continue;
            };
            if slot.send(&out, &buf.data[..out.len]) {
                slot.sent(&out, counts);
            }
        }
    }

    /// The send phase through the raw socket: the whole outbox in one `sendmmsg`.
    fn send_all_raw(&self, raw: &RawSender, outbox: &mut Outbox, counts: &mut Counts) {
        let mut packets: [RawPacket<'_>; OUTBOX] = std::array::from_fn(|_| RawPacket::default());
        // Position in `outbox.queued` of each raw packet.
        let mut queued_at = [0usize; OUTBOX];
        let mut n = 0;
        for (k, ((index, out), buf)) in outbox.queued.iter().zip(outbox.buffers.iter()).enumerate()
        {
            let Some(Some(slot)) = self.slots.get(*index) else {
                continue;
            };
            let payload = &buf.data[..out.len];
            match raw_send::ipv4(out.dest) {
                Some(dest) => {
                    packets[n] = RawPacket {
                        source_port: slot.ports[out.exit as usize],
                        dest,
                        payload,
                    };
                    queued_at[n] = k;
                    n += 1;
                }
                // Not for an IPv4 socket: the call's own socket says why it cannot go.
                None => {
                    if slot.send(out, payload) {
                        slot.sent(out, counts);
                    }
                }
            }
        }
        let mut sent = [false; raw_send::BATCH];
        raw.send(&packets[..n], &mut sent);
        for (&k, _) in queued_at[..n].iter().zip(sent).filter(|(_, ok)| *ok) {
            let (index, out) = &outbox.queued[k];
            if let Some(Some(slot)) = self.slots.get(*index) {
                slot.sent(out, counts);
            }
        }
        outbox.queued.clear();
    }

    /// Applies queued commands; false when the relay is gone.
    fn commands(&mut self) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Add(mut slot) => {
                    let index = self
                        .slots
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or(self.slots.len());
                    let token = index as u64 * SOCKETS_PER_SLOT;
                    slot.tokens = token;
                    let ok = self.poller.add(&slot.teams, token).is_ok()
                        && self.poller.add(&slot.pbx_rtp, token + 1).is_ok()
                        && self.poller.add(&slot.pbx_rtcp, token + 2).is_ok();
                    if !ok {
                        // Dropped: closing its sockets removes them from epoll, its ports go
                        // back to the pool.
                        continue;
                    }
                    self.by_id.insert(slot.id, index);
                    if index == self.slots.len() {
                        self.slots.push(Some(slot));
                    } else {
                        self.slots[index] = Some(slot);
                    }
                }
                Command::Apply(id, params) => {
                    if let Some(Some(slot)) =
                        self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i))
                    {
                        slot.configure(params);
                        if self.raw.is_none() {
                            slot.connect_twins(&self.poller);
                        }
                    }
                }
                Command::Remove(id) => {
                    if let Some(index) = self.by_id.remove(&id)
                        && let Some(slot) = self.slots.get_mut(index).and_then(Option::take)
                    {
                        let _ = self.poller.delete(&slot.teams);
                        let _ = self.poller.delete(&slot.pbx_rtp);
                        let _ = self.poller.delete(&slot.pbx_rtcp);
                        for twin in [&slot.teams_twin, &slot.pbx_twin].into_iter().flatten() {
                            let _ = self.poller.delete(&twin.socket);
                        }
                        drop(slot);
                        self.metrics.ports_free.set(self.pool.free() as i64);
                    }
                }
                Command::Stop => return false,
            }
        }
        true
    }

    /// Comfort noise towards Teams for each silent PBX leg whose call is not on hold and
    /// whose Teams leg negotiated CN ([`crate::comfort_noise`]).
    fn comfort_noise(&mut self, now: Instant) {
        let mut sent = 0;
        for slot in self.slots.iter_mut().flatten() {
            let Some(pt) = slot
                .params
                .as_ref()
                .filter(|p| !p.on_hold())
                .and_then(|p| p.teams_cn)
            else {
                continue;
            };
            let (Some(dest), Some(srtp)) = (slot.teams_peer, slot.srtp_out.as_mut()) else {
                continue;
            };
            let mut buf = [0u8; 64];
            let Some(n) = slot.cn.poll(now, pt, &mut buf) else {
                continue;
            };
            let Ok(len) = srtp.protect_rtp(&mut buf, n) else {
                continue;
            };
            if send(&slot.teams, slot.teams_twin.as_ref(), &buf[..len], dest) {
                sent += 1;
            }
        }
        if sent > 0 {
            self.metrics.comfort_noise.inc_by(sent);
        }
    }

    fn check_timeouts(&mut self) {
        for slot in self.slots.iter_mut().flatten() {
            let on_hold = slot.params.as_ref().is_none_or(|p| p.on_hold());
            if on_hold {
                slot.last_rx = Instant::now(); // hold does not count towards the media timeout
                slot.timed_out = false;
            } else if !slot.timed_out && slot.last_rx.elapsed() >= self.timeout {
                slot.timed_out = true;
                let _ = self
                    .events
                    .try_send(MediaEvent::Timeout { session: slot.id });
            }
        }
    }
}

impl Slot {
    /// Reads one datagram and transforms it in `buf`; `None` when there was none (the poller
    /// is level-triggered: what is left queued is reported again), `Some(None)` when it is not
    /// to be forwarded, else where it goes.
    fn receive(
        &mut self,
        which: Socket,
        buf: &mut [u8; BUF],
        now: Instant,
        arrival: u32,
        c: &mut Counts,
    ) -> Option<Option<Outgoing>> {
        // A twin only receives from its peer, so it need not report the source.
        let twin = |twin: &Option<Twin>, buf: &mut [u8; BUF]| match twin {
            Some(t) => t.socket.recv(buf).map(|n| (n, t.peer)),
            None => Err(std::io::ErrorKind::WouldBlock.into()),
        };
        let received = match which {
            Socket::Teams => self.teams.recv_from(buf),
            Socket::PbxRtp => self.pbx_rtp.recv_from(buf),
            Socket::PbxRtcp => self.pbx_rtcp.recv_from(buf),
            Socket::TeamsTwin => twin(&self.teams_twin, buf),
            Socket::PbxTwin => twin(&self.pbx_twin, buf),
        };
        // WouldBlock, EINTR, or an ICMP error surfacing: nothing to forward now.
        let Ok((n, src)) = received else {
            return None;
        };
        // Only what a leg's peer sent counts as media for the timeout.
        Some(match which {
            Socket::Teams | Socket::TeamsTwin => {
                c.teams_in += 1;
                self.relay_from_teams(buf, n, src, (now, arrival), c)
            }
            Socket::PbxRtp | Socket::PbxRtcp | Socket::PbxTwin => {
                let rtcp_port = matches!(which, Socket::PbxRtcp);
                c.pbx_in += 1;
                self.relay_from_pbx(buf, (n, src), (now, arrival), rtcp_port, c)
            }
        })
    }

    /// Moves the connected twins to the latched peers.
    fn connect_twins(&mut self, poller: &Poller) {
        let tokens = self.tokens;
        Twin::follow(
            &mut self.teams_twin,
            &self.teams,
            self.teams_peer,
            poller,
            tokens + Socket::TeamsTwin as u64,
        );
        Twin::follow(
            &mut self.pbx_twin,
            &self.pbx_rtp,
            self.pbx_peer,
            poller,
            tokens + Socket::PbxTwin as u64,
        );
    }

    fn configure(&mut self, p: Arc<SessionParams>) {
        let old = self.params.as_ref();
        if old.is_none_or(|o| {
            o.teams.remote_key != p.teams.remote_key || o.teams.suite != p.teams.suite
        }) {
            self.srtp_in = Some(Context::new(p.teams.suite, &p.teams.remote_key, None));
        }
        if old.is_none_or(|o| {
            o.teams.local_key != p.teams.local_key || o.teams.suite != p.teams.suite
        }) {
            self.srtp_out = Some(Context::new(p.teams.suite, &p.teams.local_key, None));
        }
        // A new SDP address re-seeds the latch; the next valid packet may move it again.
        if old.is_none_or(|o| o.teams.remote != p.teams.remote) {
            self.teams_peer = p.teams.remote;
        }
        if old.is_none_or(|o| o.pbx.remote_rtp != p.pbx.remote_rtp) {
            self.pbx_peer = p.pbx.remote_rtp;
            self.pbx_ssrc = None;
            self.pbx_source.on_sdp(p.pbx.remote_rtp, Instant::now());
        }
        self.params = Some(p);
    }

    /// SRTP/SRTCP from Teams to the PBX, decrypted in place: where it goes, if anywhere.
    fn relay_from_teams(
        &mut self,
        buf: &mut [u8; BUF],
        n: usize,
        src: SocketAddr,
        (now, arrival): (Instant, u32),
        c: &mut Counts,
    ) -> Option<Outgoing> {
        let stats = &self.stats.teams;
        bump(&stats.packets_in, 1);
        bump(&stats.bytes_in, n as u64);
        let (Some(params), Some(srtp)) = (self.params.as_ref(), self.srtp_in.as_mut()) else {
            return None;
        };
        let rtcp = is_rtcp(&buf[..n]);
        let result = if rtcp {
            srtp.unprotect_rtcp(buf, n)
        } else {
            srtp.unprotect_rtp(buf, n)
        };
        let len = match result {
            Ok(len) => len,
            Err(e) => {
                if self.teams_peer.is_some_and(|p| p != src) {
                    bump(&stats.unexpected_source, 1);
                }
                match e {
                    SrtpError::AuthFailed => {
                        bump(&stats.auth_failures, 1);
                        c.auth_failures += 1;
                        c.drop(Dropped::TeamsAuth);
                    }
                    SrtpError::Replay | SrtpError::TooOld => {
                        bump(&stats.replays, 1);
                        c.drop(Dropped::TeamsReplay);
                    }
                    _ => {
                        bump(&stats.malformed, 1);
                        c.drop(Dropped::TeamsMalformed);
                    }
                }
                return None;
            }
        };
        // Authenticated: this is Teams, wherever it sends from now.
        self.teams_peer = Some(src);
        self.last_rx = now;
        if !rtcp && let Some((seq, ts, _)) = rtp_fields(&buf[..len]) {
            self.teams_rx.on_packet(seq, ts, arrival);
            self.teams_rx.publish(stats);
            params.payload_map.to_pbx(&mut buf[..len]);
        }
        if !params.pbx.send {
            return None;
        }
        let (exit, dest) = if rtcp && !params.pbx.rtcp_mux {
            let fallback = self
                .pbx_peer
                .map(|p| SocketAddr::new(p.ip(), p.port().wrapping_add(1)));
            (Exit::PbxRtcp, params.pbx.remote_rtcp.or(fallback)?)
        } else {
            (Exit::PbxRtp, self.pbx_peer?)
        };
        Some(Outgoing { exit, dest, len })
    }

    /// RTP/RTCP from the PBX to Teams, encrypted in place.
    fn relay_from_pbx(
        &mut self,
        buf: &mut [u8; BUF],
        (n, src): (usize, SocketAddr),
        (now, arrival): (Instant, u32),
        rtcp_port: bool,
        c: &mut Counts,
    ) -> Option<Outgoing> {
        let stats = &self.stats.pbx;
        bump(&stats.packets_in, 1);
        bump(&stats.bytes_in, n as u64);
        let rtcp = rtcp_port || is_rtcp(&buf[..n]);
        if rtcp {
            if n < 8 || buf[0] >> 6 != 2 {
                bump(&stats.malformed, 1);
                c.drop(Dropped::PbxMalformed);
                return None;
            }
            if !self.pbx_source.accept_rtcp(src) {
                bump(&stats.unexpected_source, 1);
                c.drop(Dropped::PbxSource);
                return None;
            }
        } else {
            let Some((seq, ts, ssrc)) = rtp_fields(&buf[..n]) else {
                bump(&stats.malformed, 1);
                c.drop(Dropped::PbxMalformed);
                return None;
            };
            if !self.pbx_source.accept_rtp(src, seq, now) {
                bump(&stats.unexpected_source, 1);
                c.drop(Dropped::PbxSource);
                return None;
            }
            // Latch to the first accepted packet; follow a new port only for the same SSRC.
            match (self.pbx_ssrc, self.pbx_peer) {
                (None, _) => {
                    self.pbx_ssrc = Some(ssrc);
                    self.pbx_peer = Some(src);
                }
                (Some(known), Some(peer)) if peer != src => {
                    if known != ssrc {
                        bump(&stats.unexpected_source, 1);
                        c.drop(Dropped::PbxSource);
                        return None;
                    }
                    self.pbx_peer = Some(src);
                }
                (Some(known), _) if known != ssrc => {
                    // A new stream from the latched address (e.g. the PBX switched to music
                    // on hold): follow it, its sequence numbers start over.
                    self.pbx_ssrc = Some(ssrc);
                    self.pbx_rx = RxStats::default();
                }
                _ => {}
            }
            self.pbx_rx.on_packet(seq, ts, arrival);
            self.pbx_rx.publish(stats);
            self.last_rx = now;
        }
        let params = self.params.as_ref()?;
        if !params.teams.send {
            return None;
        }
        let (Some(dest), Some(srtp)) = (self.teams_peer, self.srtp_out.as_mut()) else {
            return None;
        };
        if !rtcp {
            params.payload_map.to_teams(&mut buf[..n]);
            self.cn.forwarded(&mut buf[..n], now);
        }
        let protected = if rtcp {
            srtp.protect_rtcp(buf, n)
        } else {
            srtp.protect_rtp(buf, n)
        };
        let len = match protected {
            Ok(len) => len,
            Err(SrtpError::TooManyStreams) => {
                c.drop(Dropped::PbxSsrcLimit);
                return None;
            }
            Err(_) => {
                bump(&stats.malformed, 1);
                c.drop(Dropped::PbxMalformed);
                return None;
            }
        };
        // Teams always gets rtcp-mux: one socket for both.
        Some(Outgoing {
            exit: Exit::Teams,
            dest,
            len,
        })
    }

    /// Sends a packet `receive` prepared; whether it went out.
    fn send(&self, out: &Outgoing, data: &[u8]) -> bool {
        let (socket, twin) = match out.exit {
            Exit::Teams => (&self.teams, self.teams_twin.as_ref()),
            Exit::PbxRtp => (&self.pbx_rtp, self.pbx_twin.as_ref()),
            Exit::PbxRtcp => (&self.pbx_rtcp, None),
        };
        send(socket, twin, data, out.dest)
    }

    /// Counts a packet that went out.
    fn sent(&self, out: &Outgoing, counts: &mut Counts) {
        let stats = match out.exit {
            Exit::Teams => {
                counts.teams_out += 1;
                &self.stats.teams
            }
            Exit::PbxRtp | Exit::PbxRtcp => {
                counts.pbx_out += 1;
                &self.stats.pbx
            }
        };
        bump(&stats.packets_out, 1);
        bump(&stats.bytes_out, out.len as u64);
    }
}

/// Non-blocking send; a full socket buffer drops the packet (late media is useless anyway).
/// Goes out by the connected twin when it is connected to `dest`.
fn send(socket: &UdpSocket, twin: Option<&Twin>, data: &[u8], dest: SocketAddr) -> bool {
    let sent = match twin {
        Some(twin) if twin.peer == dest => twin.socket.send(data),
        _ => socket.send_to(data, dest),
    };
    sent.is_ok()
}

#[cfg(test)]
mod rx_tests {
    use super::RxStats;

    #[test]
    fn a_wild_timestamp_does_not_poison_the_jitter_estimate_rfc3550_a_8() {
        let mut rx = RxStats::default();
        for i in 0..50u32 {
            rx.on_packet(i as u16, i * 160, i * 160 + (i % 2) * 8);
        }
        let steady = rx.jitter;
        assert!(steady > 0.0 && steady < 16.0, "{steady}");
        // One packet claims a timestamp of 2^32-1, then the stream goes on.
        rx.on_packet(50, u32::MAX, 50 * 160);
        for i in 51..60u32 {
            rx.on_packet(i as u16, i * 160, i * 160);
        }
        assert!(
            rx.jitter < 16.0,
            "jitter {} after a wild timestamp",
            rx.jitter
        );
    }
}
