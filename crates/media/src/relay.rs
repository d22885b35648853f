//! The relay: one task per call moves packets between the Teams leg (SRTP, rtcp-mux) and the
//! PBX leg (RTP, with RTCP on its own port or muxed), transcrypting in place in a buffer the
//! task owns. Nothing is allocated per packet.
//!
//! Latching (symmetric RTP): a leg's peer address comes from the SDP and is replaced by the
//! source of the first valid packet; on the SRTP leg only a packet whose tag verifies moves
//! the latch, on the plain leg a source change is followed only for the same SSRC (a NAT
//! rebinding). Everything else from elsewhere is dropped and counted.
//!
//! The gateway drives a session through [`Session`]: ports to put in SDP, [`Session::apply`]
//! for negotiated parameters (and re-INVITEs), [`Session::stats`], and close on drop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::ports::{PortError, PortLease, PortPool};
use crate::srtp::{Context, MasterKey, SrtpError, Suite};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub bind: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    /// No packet from either peer for this long (not counting hold) raises [`MediaEvent::Timeout`].
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Timeout { session: u64 },
}

#[derive(Clone)]
pub struct MediaMetrics {
    packets: IntCounterVec,
    auth_failures: IntCounter,
    sessions_active: IntGauge,
    ports_free: IntGauge,
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
            auth_failures: IntCounter::new(
                "teamsgw_media_srtp_auth_failures_total",
                "SRTP/SRTCP packets dropped because their authentication tag did not verify.",
            )?,
            sessions_active: IntGauge::new(
                "teamsgw_media_sessions_active",
                "Media sessions allocated.",
            )?,
            ports_free: IntGauge::new("teamsgw_media_ports_free", "Free media port pairs.")?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.packets.clone()))?;
        registry.register(Box::new(self.auth_failures.clone()))?;
        registry.register(Box::new(self.sessions_active.clone()))?;
        registry.register(Box::new(self.ports_free.clone()))?;
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
}

pub struct Relay {
    pool: PortPool,
    config: RelayConfig,
    metrics: MediaMetrics,
    events: mpsc::Sender<MediaEvent>,
    next_id: AtomicU64,
}

/// A call's media. Dropping it ends the forwarding task and returns the ports.
pub struct Session {
    pub id: u64,
    teams_port: u16,
    pbx_port: u16,
    control: watch::Sender<Option<Arc<SessionParams>>>,
    stats: Arc<SessionStats>,
    metrics: MediaMetrics,
}

impl Drop for Session {
    fn drop(&mut self) {
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
        let _ = self.control.send(Some(Arc::new(params)));
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }
}

impl Relay {
    pub fn new(
        config: RelayConfig,
        metrics: MediaMetrics,
    ) -> Result<(Self, mpsc::Receiver<MediaEvent>), MediaError> {
        let pool = PortPool::new(config.bind, config.port_min, config.port_max)?;
        metrics.ports_free.set(pool.free() as i64);
        let (events, rx) = mpsc::channel(1024);
        Ok((
            Self {
                pool,
                config,
                metrics,
                events,
                next_id: AtomicU64::new(1),
            },
            rx,
        ))
    }

    /// Ports for a new call: two pairs, one per leg. Exhaustion is an error (answer 503).
    pub fn allocate(&self) -> Result<Session, MediaError> {
        let teams = self.pool.allocate()?;
        let pbx = self.pool.allocate()?;
        self.metrics.ports_free.set(self.pool.free() as i64);
        self.metrics.sessions_active.inc();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (control, rx) = watch::channel(None);
        let stats = Arc::new(SessionStats::default());
        let session = Session {
            id,
            teams_port: teams.base,
            pbx_port: pbx.base,
            control,
            stats: Arc::clone(&stats),
            metrics: self.metrics.clone(),
        };
        let task = Forwarder {
            id,
            teams,
            pbx,
            stats,
            metrics: self.metrics.clone(),
            pool: self.pool.clone(),
            events: self.events.clone(),
            timeout: self.config.timeout,
            params: None,
            srtp_in: None,
            srtp_out: None,
            teams_peer: None,
            pbx_peer: None,
            pbx_ssrc: None,
            teams_rx: RxStats::default(),
            pbx_rx: RxStats::default(),
        };
        tokio::spawn(task.run(rx));
        Ok(session)
    }

    pub fn ports_free(&self) -> usize {
        self.pool.free()
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
        if self.received > 1 {
            let d = (transit - self.transit).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
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

struct Forwarder {
    id: u64,
    teams: PortLease,
    pbx: PortLease,
    stats: Arc<SessionStats>,
    metrics: MediaMetrics,
    pool: PortPool,
    events: mpsc::Sender<MediaEvent>,
    timeout: Duration,
    params: Option<Arc<SessionParams>>,
    srtp_in: Option<Context>,
    srtp_out: Option<Context>,
    teams_peer: Option<SocketAddr>,
    pbx_peer: Option<SocketAddr>,
    pbx_ssrc: Option<u32>,
    teams_rx: RxStats,
    pbx_rx: RxStats,
}

const BUF: usize = 2048;

impl Forwarder {
    async fn run(mut self, mut control: watch::Receiver<Option<Arc<SessionParams>>>) {
        let started = Instant::now();
        let mut last_rx = Instant::now();
        let mut timed_out = false;
        let (mut b1, mut b2, mut b3) = ([0u8; BUF], [0u8; BUF], [0u8; BUF]);
        let packets_in_teams = self.metrics.packets.with_label_values(&["teams", "in"]);
        let packets_out_pbx = self.metrics.packets.with_label_values(&["pbx", "out"]);
        let packets_in_pbx = self.metrics.packets.with_label_values(&["pbx", "in"]);
        let packets_out_teams = self.metrics.packets.with_label_values(&["teams", "out"]);
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let arrival = (started.elapsed().as_micros() / 125) as u32; // 8 kHz units
            tokio::select! {
                changed = control.changed() => {
                    if changed.is_err() {
                        break; // the Session was dropped
                    }
                    let params = control.borrow_and_update().clone();
                    self.configure(params);
                }
                // Wake on readiness, then drain the socket: under load one wake-up serves
                // every packet that queued meanwhile.
                r = self.teams.rtp.readable() => {
                    if r.is_err() { continue }
                    while let Ok((n, src)) = self.teams.rtp.try_recv_from(&mut b1) {
                        last_rx = Instant::now();
                        packets_in_teams.inc();
                        if self.relay_from_teams(&mut b1, n, src, arrival).await {
                            packets_out_pbx.inc();
                        }
                    }
                }
                r = self.pbx.rtp.readable() => {
                    if r.is_err() { continue }
                    while let Ok((n, src)) = self.pbx.rtp.try_recv_from(&mut b2) {
                        last_rx = Instant::now();
                        packets_in_pbx.inc();
                        if self.relay_from_pbx(&mut b2, n, src, arrival, false).await {
                            packets_out_teams.inc();
                        }
                    }
                }
                r = self.pbx.rtcp.readable() => {
                    if r.is_err() { continue }
                    while let Ok((n, src)) = self.pbx.rtcp.try_recv_from(&mut b3) {
                        packets_in_pbx.inc();
                        if self.relay_from_pbx(&mut b3, n, src, arrival, true).await {
                            packets_out_teams.inc();
                        }
                    }
                }
                // One long-lived timer for the timeout check, not a new one per packet.
                _ = ticker.tick() => {}
            }
            let on_hold = self.params.as_ref().is_some_and(|p| p.on_hold());
            if on_hold || self.params.is_none() {
                last_rx = Instant::now(); // hold does not count towards the media timeout
            } else if !timed_out && last_rx.elapsed() >= self.timeout {
                timed_out = true;
                let _ = self
                    .events
                    .try_send(MediaEvent::Timeout { session: self.id });
            } else if last_rx.elapsed() < self.timeout {
                timed_out = false;
            }
        }
        let Forwarder {
            teams,
            pbx,
            pool,
            metrics,
            ..
        } = self;
        drop((teams, pbx));
        metrics.ports_free.set(pool.free() as i64);
    }

    fn configure(&mut self, params: Option<Arc<SessionParams>>) {
        let Some(p) = params else { return };
        let old = self.params.as_ref();
        let keys_changed = old.is_none_or(|o| {
            o.teams.remote_key != p.teams.remote_key || o.teams.suite != p.teams.suite
        });
        if keys_changed {
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
        }
        self.params = Some(p);
    }

    /// SRTP/SRTCP from Teams to the PBX. Returns whether a packet was forwarded.
    async fn relay_from_teams(
        &mut self,
        buf: &mut [u8; BUF],
        n: usize,
        src: SocketAddr,
        arrival: u32,
    ) -> bool {
        let stats = &self.stats.teams;
        stats.packets_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        let (Some(params), Some(srtp)) = (self.params.clone(), self.srtp_in.as_mut()) else {
            return false;
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
                    stats.unexpected_source.fetch_add(1, Ordering::Relaxed);
                }
                match e {
                    SrtpError::AuthFailed => {
                        stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                        self.metrics.auth_failures.inc();
                    }
                    SrtpError::Replay | SrtpError::TooOld => {
                        stats.replays.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        stats.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return false;
            }
        };
        // Authenticated: this is Teams, wherever it sends from now (latching, §3.5 anchor stays ours).
        self.teams_peer = Some(src);
        if !rtcp && let Some((seq, ts, _)) = rtp_fields(&buf[..len]) {
            self.teams_rx.on_packet(seq, ts, arrival);
            self.teams_rx.publish(stats);
        }
        if !params.pbx.send {
            return false;
        }
        let (socket, dest) = if rtcp && !params.pbx.rtcp_mux {
            (
                &self.pbx.rtcp,
                params
                    .pbx
                    .remote_rtcp
                    .or(self.pbx_peer.map(|p| SocketAddr::new(p.ip(), p.port() + 1))),
            )
        } else {
            (&self.pbx.rtp, self.pbx_peer)
        };
        let Some(dest) = dest else { return false };
        send(socket, &buf[..len], dest, &self.stats.pbx).await
    }

    /// RTP/RTCP from the PBX to Teams, encrypted in place.
    async fn relay_from_pbx(
        &mut self,
        buf: &mut [u8; BUF],
        n: usize,
        src: SocketAddr,
        arrival: u32,
        rtcp_port: bool,
    ) -> bool {
        let stats = &self.stats.pbx;
        stats.packets_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        let Some(params) = self.params.clone() else {
            return false;
        };
        let rtcp = rtcp_port || is_rtcp(&buf[..n]);
        if rtcp {
            if n < 8 || buf[0] >> 6 != 2 {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        } else {
            let Some((seq, ts, ssrc)) = rtp_fields(&buf[..n]) else {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            // Latch to the first valid packet; follow a new source only for the same SSRC.
            match (self.pbx_ssrc, self.pbx_peer) {
                (None, _) => {
                    self.pbx_ssrc = Some(ssrc);
                    self.pbx_peer = Some(src);
                }
                (Some(known), Some(peer)) if peer != src => {
                    if known != ssrc {
                        stats.unexpected_source.fetch_add(1, Ordering::Relaxed);
                        return false;
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
        }
        if !params.teams.send {
            return false;
        }
        let (Some(dest), Some(srtp)) = (self.teams_peer, self.srtp_out.as_mut()) else {
            return false;
        };
        let protected = if rtcp {
            srtp.protect_rtcp(buf, n)
        } else {
            srtp.protect_rtp(buf, n)
        };
        let Ok(len) = protected else {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        // Teams always gets rtcp-mux: one socket for both.
        send(&self.teams.rtp, &buf[..len], dest, &self.stats.teams).await
    }
}

async fn send(socket: &UdpSocket, data: &[u8], dest: SocketAddr, stats: &LegStats) -> bool {
    // The send buffer is almost never full: try without a readiness round trip first.
    let sent = match socket.try_send_to(data, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.send_to(data, dest).await,
        other => other,
    };
    if sent.is_ok() {
        stats.packets_out.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_out
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        true
    } else {
        false
    }
}
