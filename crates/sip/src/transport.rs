//! SIP transports: UDP sockets, TCP and TLS listeners and outbound connections.
//!
//! Every received message is parsed here and handed to the transaction user as an
//! [`Incoming`] on one channel; anything unreadable or from a source outside the listener's
//! allow-list is dropped and counted before it costs more than a parse. Connections live in
//! one table keyed by id (for answering on the connection a request came in on, RFC 3261
//! §18.2.2) and by (transport, peer) for reuse when sending. Teams opens a new TLS connection
//! per transaction: each is simply another entry, closed by the idle timeout.
//!
//! TLS is mutual in both directions: listeners require and verify a client certificate
//! (optionally one whose names match an allowed pattern), and outbound connections present
//! ours. The material is read from [`TlsStore`] at each handshake, so a SIGHUP reload applies
//! to new connections while established ones keep running.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::acl::AllowList;
use crate::certnames;
use crate::framing::{Frame, StreamFramer};
use crate::hep::{Captured, HepCapture};
use crate::message::{Limits, Message};
use crate::metrics::{SipMetrics, kind_of};
use crate::refusal_log::RefusalLog;
use crate::tls::TlsStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// One listening socket and who may use it.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// `teams`, `pbx`: the label in metrics and logs.
    pub name: &'static str,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub allow: AllowList,
    /// TLS: the client certificate must carry a DNS name matching one of these (empty: any
    /// certificate that chains to the trust anchors).
    pub peer_names: Vec<String>,
    /// Open to sources that proved nothing (the PBX side, by default to the whole internet):
    /// its connections together take at most half of `max_connections`, so they never take
    /// a trusted listener's share, and at most `max_connections_per_source` each; its
    /// messages go to the untrusted inbound queue, so a flood there never delays the other.
    pub untrusted: bool,
}

/// Where received messages go: one queue for trusted listeners and our own connections, one
/// for untrusted listeners.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub trusted: mpsc::Sender<Incoming>,
    pub untrusted: mpsc::Sender<Incoming>,
}

impl Inbound {
    /// Both kinds into one queue (tests, tools).
    pub fn single(tx: mpsc::Sender<Incoming>) -> Self {
        Self {
            trusted: tx.clone(),
            untrusted: tx,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransportSettings {
    pub limits: Limits,
    /// A connection with no complete message either way for this long is closed.
    pub idle_timeout: Duration,
    /// A message whose first bytes arrived must be complete within this (slowloris).
    pub message_timeout: Duration,
    pub max_connections: usize,
    /// Connections one source may hold on untrusted listeners.
    pub max_connections_per_source: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    /// SO_RCVBUF for UDP sockets: a burst must not overflow the kernel's small default. The
    /// kernel caps it at net.core.rmem_max.
    pub udp_receive_buffer: usize,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_connections_per_source: 64,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            udp_receive_buffer: 4 << 20,
        }
    }
}

pub type ConnId = u64;

/// Where a message came from, and how to answer it.
#[derive(Debug, Clone)]
pub struct Source {
    pub transport: Transport,
    pub listener: &'static str,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub conn: Option<ConnId>,
}

#[derive(Debug)]
pub struct Incoming {
    pub message: Message,
    pub source: Source,
}

/// Where to send a request we originate.
#[derive(Debug, Clone)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// TLS: the name to send as SNI and to verify the server certificate against.
    pub server_name: Option<String>,
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{name} {} listener {addr}: cannot bind: {error}", transport.as_str())]
pub struct BindError {
    pub name: &'static str,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub error: io::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connection busy; message dropped")]
    Backpressure,
    #[error("no {0} socket to send from")]
    NoSocket(&'static str),
    #[error("connection closed")]
    ConnectionGone,
    #[error("connect to {0} failed: {1}")]
    Connect(SocketAddr, io::Error),
    #[error("TLS to {0} failed: {1}")]
    Tls(SocketAddr, io::Error),
    #[error("bad TLS server name {0:?}")]
    ServerName(String),
    #[error("send failed: {0}")]
    Io(#[from] io::Error),
}

struct ConnHandle {
    tx: mpsc::Sender<Bytes>,
    /// Our end of the connection (for captures).
    local: SocketAddr,
}

struct Inner {
    settings: TransportSettings,
    tls: Arc<TlsStore>,
    metrics: SipMetrics,
    inbound: Inbound,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    conns: DashMap<ConnId, ConnHandle>,
    by_peer: DashMap<(Transport, SocketAddr), ConnId>,
    next_id: AtomicU64,
    open: AtomicUsize,
    /// Connections on untrusted listeners, in all and per source address.
    untrusted_open: AtomicUsize,
    per_source: DashMap<IpAddr, usize>,
    /// HEP capture, when `[hep] collector` is set.
    capture: arc_swap::ArcSwapOption<HepCapture>,
    listeners: Vec<(&'static str, Transport, SocketAddr)>,
    /// TLS refusals logged at warn, once per peer address per minute.
    refusal_log: RefusalLog,
}

/// The running transports. Cheap to clone.
#[derive(Clone)]
pub struct SipTransport {
    inner: Arc<Inner>,
}

impl SipTransport {
    /// Binds every listener (an error names the address) and starts serving them.
    pub async fn bind(
        specs: Vec<ListenerSpec>,
        settings: TransportSettings,
        tls: Arc<TlsStore>,
        metrics: SipMetrics,
        inbound: Inbound,
    ) -> Result<(Self, Vec<JoinHandle<()>>), BindError> {
        let mut udp = Vec::new();
        let mut streams = Vec::new();
        let mut listeners = Vec::new();
        for spec in specs {
            let bind_err = |error: io::Error| BindError {
                name: spec.name,
                transport: spec.transport,
                addr: spec.addr,
                error,
            };
            match spec.transport {
                Transport::Udp => {
                    let socket =
                        bind_udp(spec.addr, settings.udp_receive_buffer).map_err(bind_err)?;
                    let local = socket.local_addr().map_err(bind_err)?;
                    listeners.push((spec.name, spec.transport, local));
                    udp.push((spec, local, Arc::new(socket)));
                }
                Transport::Tcp | Transport::Tls => {
                    let listener = TcpListener::bind(spec.addr).await.map_err(bind_err)?;
                    listeners.push((
                        spec.name,
                        spec.transport,
                        listener.local_addr().map_err(bind_err)?,
                    ));
                    streams.push((spec, listener));
                }
            }
        }
        let inner = Arc::new(Inner {
            settings,
            tls,
            metrics,
            inbound,
            udp: udp
                .iter()
                .map(|(_, local, s)| (*local, Arc::clone(s)))
                .collect(),
            conns: DashMap::new(),
            by_peer: DashMap::new(),
            next_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            untrusted_open: AtomicUsize::new(0),
            per_source: DashMap::new(),
            capture: arc_swap::ArcSwapOption::empty(),
            listeners,
            refusal_log: RefusalLog::default(),
        });
        let mut tasks = Vec::new();
        for (spec, local, socket) in udp {
            tasks.push(tokio::spawn(
                Arc::clone(&inner).serve_udp(spec, local, socket),
            ));
        }
        for (spec, listener) in streams {
            tasks.push(tokio::spawn(
                Arc::clone(&inner).serve_stream_listener(spec, listener),
            ));
        }
        Ok((Self { inner }, tasks))
    }

    /// (listener name, transport, bound address) of every listener.
    pub fn listeners(&self) -> &[(&'static str, Transport, SocketAddr)] {
        &self.inner.listeners
    }

    /// The bound address of the first listener with this name and transport.
    pub fn listener_addr(&self, name: &str, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .listeners
            .iter()
            .find(|(n, t, _)| *n == name && *t == transport)
            .map(|(_, _, a)| *a)
    }

    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Sends a response (or in-dialog request) back the way `source` came: on its connection,
    /// or from the UDP socket it arrived on.
    pub async fn respond(&self, source: &Source, data: Bytes) -> Result<(), SendError> {
        let kind = kind_of(&data);
        self.inner
            .captured(source.local, source.peer, source.transport, &data);
        match source.conn {
            Some(id) => {
                let tx = self
                    .inner
                    .conns
                    .get(&id)
                    .map(|c| c.tx.clone())
                    .ok_or(SendError::ConnectionGone)?;
                // Never wait on a slow peer: answers to others must not queue behind it.
                tx.try_send(data).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => SendError::Backpressure,
                    mpsc::error::TrySendError::Closed(_) => SendError::ConnectionGone,
                })?;
            }
            None => {
                let socket = self
                    .inner
                    .udp
                    .iter()
                    .find(|(local, _)| *local == source.local)
                    .or_else(|| self.inner.udp.first())
                    .map(|(_, s)| Arc::clone(s))
                    .ok_or(SendError::NoSocket("udp"))?;
                socket.send_to(&data, source.peer).await?;
            }
        }
        self.inner
            .metrics
            .sent
            .with_label_values(&[source.transport.as_str(), kind])
            .inc();
        Ok(())
    }

    /// Sends to `target`, reusing an open connection to it or opening one.
    pub async fn send(&self, target: &Target, data: Bytes) -> Result<(), SendError> {
        let kind = kind_of(&data);
        match target.transport {
            Transport::Udp => {
                let (local, socket) = self
                    .inner
                    .udp
                    .iter()
                    .find(|(local, _)| local.is_ipv4() == target.addr.is_ipv4())
                    .map(|(local, s)| (*local, Arc::clone(s)))
                    .ok_or(SendError::NoSocket("udp"))?;
                self.inner
                    .captured(local, target.addr, target.transport, &data);
                socket.send_to(&data, target.addr).await?;
            }
            Transport::Tcp | Transport::Tls => {
                let (tx, local) = match self.connection_to(target) {
                    Some(conn) => conn,
                    None => self.connect(target).await?,
                };
                self.inner
                    .captured(local, target.addr, target.transport, &data);
                tx.send(data).await.map_err(|_| SendError::ConnectionGone)?;
            }
        }
        self.inner
            .metrics
            .sent
            .with_label_values(&[target.transport.as_str(), kind])
            .inc();
        Ok(())
    }

    /// Counts a message refused for who sent it (`teamsgw_sip_rejected_total{reason}`).
    pub fn count_refused_source(&self, reason: &str) {
        self.inner
            .metrics
            .refused_source
            .with_label_values(&[reason])
            .inc();
    }

    pub fn capture(&self) -> Option<Arc<HepCapture>> {
        self.inner.capture.load_full()
    }

    /// Captures every message from now on ([`HepCapture`]).
    pub fn set_capture(&self, capture: Option<Arc<HepCapture>>) {
        self.inner.capture.store(capture);
    }

    fn connection_to(&self, target: &Target) -> Option<(mpsc::Sender<Bytes>, SocketAddr)> {
        let id = *self.inner.by_peer.get(&(target.transport, target.addr))?;
        self.inner.conns.get(&id).map(|c| (c.tx.clone(), c.local))
    }

    async fn connect(
        &self,
        target: &Target,
    ) -> Result<(mpsc::Sender<Bytes>, SocketAddr), SendError> {
        let inner = &self.inner;
        let timeout = inner.settings.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(target.addr))
            .await
            .map_err(|_| SendError::Connect(target.addr, io::ErrorKind::TimedOut.into()))?
            .map_err(|e| SendError::Connect(target.addr, e))?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        match target.transport {
            Transport::Tls => {
                let name = target
                    .server_name
                    .clone()
                    .unwrap_or_else(|| target.addr.ip().to_string());
                let server_name =
                    ServerName::try_from(name.clone()).map_err(|_| SendError::ServerName(name))?;
                let connector = TlsConnector::from(Arc::clone(&inner.tls.current().client_config));
                let stream = tokio::time::timeout(timeout, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| SendError::Tls(target.addr, io::ErrorKind::TimedOut.into()))?
                    .map_err(|e| {
                        inner
                            .metrics
                            .handshake_failures
                            .with_label_values(&["outbound", handshake_reason(&e)])
                            .inc();
                        SendError::Tls(target.addr, e)
                    })?;
                let id = inner.register(Transport::Tls, (target.addr, local), tx.clone());
                tokio::spawn(Arc::clone(inner).run_connection(
                    stream,
                    id,
                    rx,
                    (Transport::Tls, "outbound", false),
                    target.addr,
                    local,
                ));
            }
            _ => {
                let id = inner.register(Transport::Tcp, (target.addr, local), tx.clone());
                tokio::spawn(Arc::clone(inner).run_connection(
                    tcp,
                    id,
                    rx,
                    (Transport::Tcp, "outbound", false),
                    target.addr,
                    local,
                ));
            }
        }
        Ok((tx, local))
    }
}

impl Inner {
    async fn serve_udp(
        self: Arc<Self>,
        spec: ListenerSpec,
        local: SocketAddr,
        socket: Arc<UdpSocket>,
    ) {
        let mut buf = vec![0u8; self.settings.limits.max_message_size.max(1500) + 1];
        loop {
            let (n, peer) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                // ICMP errors from earlier sends surface here on Linux; the socket is fine.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            if !spec.allow.allows(peer.ip()) {
                self.drop_message(Transport::Udp, "source_not_allowed");
                continue;
            }
            let data = &buf[..n];
            if data.iter().all(|&b| b == b'\r' || b == b'\n') {
                continue; // keep-alive
            }
            if n > self.settings.limits.max_message_size {
                self.drop_message(Transport::Udp, "too_large");
                continue;
            }
            let source = Source {
                transport: Transport::Udp,
                listener: spec.name,
                peer,
                local,
                conn: None,
            };
            self.deliver(Bytes::copy_from_slice(data), source, spec.untrusted);
        }
    }

    fn drop_message(&self, transport: Transport, reason: &str) {
        self.metrics
            .dropped
            .with_label_values(&[transport.as_str(), reason])
            .inc();
    }

    fn captured(&self, src: SocketAddr, dst: SocketAddr, transport: Transport, data: &Bytes) {
        if let Some(capture) = &*self.capture.load() {
            capture.capture(Captured {
                src,
                dst,
                transport,
                time: std::time::SystemTime::now(),
                payload: data.clone(),
            });
        }
    }

    fn deliver(&self, data: Bytes, source: Source, untrusted: bool) {
        self.captured(source.peer, source.local, source.transport, &data);
        let message = match Message::parse_with(data, &self.settings.limits) {
            Ok(m) => m,
            Err(e) => {
                self.drop_message(source.transport, e.label());
                return;
            }
        };
        let kind = kind_of(message.as_bytes());
        self.metrics
            .received
            .with_label_values(&[source.transport.as_str(), kind])
            .inc();
        let transport = source.transport;
        let queue = if untrusted {
            &self.inbound.untrusted
        } else {
            &self.inbound.trusted
        };
        if queue.try_send(Incoming { message, source }).is_err() {
            self.drop_message(transport, "overload");
        }
    }

    async fn serve_stream_listener(self: Arc<Self>, spec: ListenerSpec, listener: TcpListener) {
        let spec = Arc::new(spec);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(r) => r,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = spec.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !spec.allow.allows(peer.ip()) {
                self.metrics
                    .refused
                    .with_label_values(&[spec.name, "source_not_allowed"])
                    .inc();
                continue;
            }
            if self.open.load(Ordering::Relaxed) >= self.settings.max_connections {
                self.metrics
                    .refused
                    .with_label_values(&[spec.name, "too_many_connections"])
                    .inc();
                continue;
            }
            let slot = if spec.untrusted {
                match SourceSlot::take(&self, peer.ip()) {
                    Ok(slot) => Some(slot),
                    Err(reason) => {
                        self.metrics
                            .refused
                            .with_label_values(&[spec.name, reason])
                            .inc();
                        continue;
                    }
                }
            } else {
                None
            };
            let _ = tcp.set_nodelay(true);
            let Ok(local) = tcp.local_addr() else {
                continue;
            };
            let inner = Arc::clone(&self);
            let spec = Arc::clone(&spec);
            tokio::spawn(async move {
                // Held for the connection's life: its share of the untrusted limits.
                let _slot = slot;
                let (tx, rx) = mpsc::channel(64);
                let kind = (spec.transport, spec.name, spec.untrusted);
                match spec.transport {
                    Transport::Tls => {
                        let Some(stream) = inner.accept_tls(&spec, tcp).await else {
                            return;
                        };
                        let id = inner.register(Transport::Tls, (peer, local), tx);
                        Arc::clone(&inner)
                            .run_connection(stream, id, rx, kind, peer, local)
                            .await;
                    }
                    _ => {
                        let id = inner.register(Transport::Tcp, (peer, local), tx);
                        Arc::clone(&inner)
                            .run_connection(tcp, id, rx, kind, peer, local)
                            .await;
                    }
                }
            });
        }
    }

    async fn accept_tls(
        &self,
        spec: &ListenerSpec,
        tcp: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let peer = tcp.peer_addr().ok()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&self.tls.current().server_config));
        let fail = |reason: &str| {
            self.metrics
                .handshake_failures
                .with_label_values(&[spec.name, reason])
                .inc();
        };
        let stream = match tokio::time::timeout(
            self.settings.handshake_timeout,
            acceptor.accept(tcp),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason = handshake_reason(&e);
                fail(reason);
                if self.refusal_log.should_log(peer.ip(), Instant::now()) {
                    tracing::warn!(listener = spec.name, %peer, reason, error = %e, "TLS handshake refused");
                }
                return None;
            }
            Err(_) => {
                fail("timeout");
                return None;
            }
        };
        if !spec.peer_names.is_empty() {
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            let verdict = leaf.map_or(Err(Vec::new()), |leaf| {
                certnames::allowed(leaf, &spec.peer_names)
            });
            if let Err(names) = verdict {
                fail("peer_name_not_allowed");
                if self.refusal_log.should_log(peer.ip(), Instant::now()) {
                    tracing::warn!(
                        listener = spec.name,
                        %peer,
                        ?names,
                        allowed = ?spec.peer_names,
                        "TLS peer certificate name not allowed"
                    );
                }
                return None;
            }
        }
        Some(stream)
    }

    fn register(
        &self,
        transport: Transport,
        (peer, local): (SocketAddr, SocketAddr),
        tx: mpsc::Sender<Bytes>,
    ) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.insert(id, ConnHandle { tx, local });
        self.by_peer.insert((transport, peer), id);
        self.open.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .connections
            .with_label_values(&[transport.as_str()])
            .inc();
        id
    }

    fn unregister(&self, id: ConnId, transport: Transport, peer: SocketAddr) {
        self.conns.remove(&id);
        self.by_peer.remove_if(&(transport, peer), |_, v| *v == id);
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .connections
            .with_label_values(&[transport.as_str()])
            .dec();
    }

    /// Reads frames and writes queued messages until the peer closes, framing is lost, no
    /// complete message moves for the idle timeout, or a started message is not complete
    /// within the message timeout (a byte a second keeps no connection open).
    async fn run_connection<S>(
        self: Arc<Self>,
        stream: S,
        id: ConnId,
        mut outgoing: mpsc::Receiver<Bytes>,
        (transport, listener, untrusted): (Transport, &'static str, bool),
        peer: SocketAddr,
        local: SocketAddr,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut framer = StreamFramer::new(self.settings.limits);
        let idle = self.settings.idle_timeout;
        let mut deadline = Instant::now() + idle;
        // When the message being received must be complete.
        let mut message_due: Option<Instant> = None;
        'conn: loop {
            framer.buffer_mut().reserve(2048);
            let wake = message_due.map_or(deadline, |due| due.min(deadline));
            tokio::select! {
                read = reader.read_buf(framer.buffer_mut()) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        break 'conn;
                    }
                    loop {
                        match framer.next_frame() {
                            Ok(Some(Frame::Message(data))) => {
                                deadline = Instant::now() + idle;
                                let source = Source { transport, listener, peer, local, conn: Some(id) };
                                self.deliver(data, source, untrusted);
                            }
                            Ok(Some(Frame::Ping)) => {
                                deadline = Instant::now() + idle;
                                if writer.write_all(b"\r\n").await.is_err() {
                                    break 'conn;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                self.drop_message(transport, e.label());
                                break 'conn;
                            }
                        }
                    }
                    // Line breaks alone are keep-alives on their way, not a message.
                    let started = framer.buffer_mut().iter().any(|b| !matches!(b, b'\r' | b'\n'));
                    message_due = if !started {
                        None
                    } else {
                        message_due.or(Some(Instant::now() + self.settings.message_timeout))
                    };
                }
                data = outgoing.recv() => {
                    let Some(data) = data else { break 'conn };
                    if writer.write_all(&data).await.is_err() {
                        break 'conn;
                    }
                    deadline = Instant::now() + idle;
                }
                _ = tokio::time::sleep_until(wake) => {
                    if message_due.is_some_and(|due| Instant::now() >= due) {
                        self.drop_message(transport, "message_timeout");
                    }
                    break 'conn;
                }
            }
        }
        let _ = writer.shutdown().await;
        self.unregister(id, transport, peer);
    }
}

fn bind_udp(addr: SocketAddr, receive_buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%addr, error = %e, "cannot enlarge the UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let effective = socket.recv_buffer_size().unwrap_or(0);
    if effective < receive_buffer {
        tracing::info!(%addr, requested = receive_buffer, effective, "UDP receive buffer capped by net.core.rmem_max");
    }
    UdpSocket::from_std(socket.into())
}

/// A label for why a handshake failed, from the rustls error inside the I/O error.
fn handshake_reason(e: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "untrusted_certificate",
        Some(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "expired_certificate",
        Some(Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "not_yet_valid_certificate",
        Some(Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        )) => "wrong_key_usage",
        Some(Error::InvalidCertificate(_)) => "invalid_certificate",
        Some(Error::AlertReceived(_)) => "alert_received",
        Some(_) => "protocol",
        None if e.kind() == io::ErrorKind::UnexpectedEof => "eof",
        None => "io",
    }
}

/// A connection's share of the untrusted listeners' limits, given back when dropped.
struct SourceSlot {
    inner: Arc<Inner>,
    source: IpAddr,
}

impl SourceSlot {
    /// Takes a slot for a connection from `source`, or says which limit is reached.
    fn take(inner: &Arc<Inner>, source: IpAddr) -> Result<Self, &'static str> {
        let total = inner.settings.max_connections / 2;
        if inner.untrusted_open.fetch_add(1, Ordering::AcqRel) >= total {
            inner.untrusted_open.fetch_sub(1, Ordering::AcqRel);
            return Err("untrusted_share_full");
        }
        let mut count = inner.per_source.entry(source).or_insert(0);
        if *count >= inner.settings.max_connections_per_source {
            drop(count);
            inner.untrusted_open.fetch_sub(1, Ordering::AcqRel);
            return Err("too_many_from_source");
        }
        *count += 1;
        Ok(Self {
            inner: Arc::clone(inner),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        self.inner.untrusted_open.fetch_sub(1, Ordering::AcqRel);
        self.inner
            .per_source
            .remove_if_mut(&self.source, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
    }
}
