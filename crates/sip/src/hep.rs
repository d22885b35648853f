//! SIP capture to a Homer collector in HEPv3 (the format Homer's heplify-server and Kamailio's
//! siptrace speak): every message a transport receives or sends, byte for byte, with its
//! real addresses and ports, the capture agent id and auth key, the time, and a correlation
//! id that ties a B2BUA's legs together (the gateway links each call's Call-IDs).
//!
//! The SIP path never waits for the collector: [`HepCapture::capture`] only copies a handle
//! into a bounded queue, and what does not fit, is too large for one HEP packet or cannot be
//! sent is dropped and counted (`teamsgw_hep_dropped_total{reason}`). A task encodes and sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::Message;
use crate::transport::Transport;

/// Where captures go and how they identify us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HepConfig {
    pub collector: SocketAddr,
    /// Chunk 0x000c: tells this SBC's captures apart at the collector.
    pub capture_id: u32,
    /// Chunk 0x000e, when the collector asks for one.
    pub auth_key: Option<String>,
}

/// One SIP message as it crossed the wire.
#[derive(Debug, Clone)]
pub struct Captured {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub time: SystemTime,
    pub payload: Bytes,
}

/// Messages waiting for the sender; beyond this they are dropped, not queued.
const QUEUE: usize = 4096;
/// HEP's length fields are 16 bits.
const MAX_PACKET: usize = u16::MAX as usize;

fn chunk(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes()); // vendor: generic
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The HEPv3 packet for `c`; `None` when it would not fit HEP's 16-bit length.
pub fn encode(c: &Captured, config: &HepConfig, correlation: Option<&str>) -> Option<Vec<u8>> {
    let extra = config.auth_key.as_ref().map_or(0, String::len) + correlation.map_or(0, str::len);
    if c.payload.len() + extra + 200 > MAX_PACKET {
        return None;
    }
    let mut out = Vec::with_capacity(c.payload.len() + extra + 128);
    out.extend_from_slice(b"HEP3\0\0");
    let (family, src, dst): (u8, Vec<u8>, Vec<u8>) = match (c.src, c.dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            (2, s.ip().octets().into(), d.ip().octets().into())
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a {
                SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
                SocketAddr::V6(a) => a.ip().octets(),
            };
            (10, v6(s).into(), v6(d).into())
        }
    };
    chunk(&mut out, 0x0001, &[family]);
    let protocol = match c.transport {
        Transport::Udp => 17,
        Transport::Tcp | Transport::Tls => 6,
    };
    chunk(&mut out, 0x0002, &[protocol]);
    let (src_kind, dst_kind) = if family == 2 {
        (0x0003, 0x0004)
    } else {
        (0x0005, 0x0006)
    };
    chunk(&mut out, src_kind, &src);
    chunk(&mut out, dst_kind, &dst);
    chunk(&mut out, 0x0007, &c.src.port().to_be_bytes());
    chunk(&mut out, 0x0008, &c.dst.port().to_be_bytes());
    let since = c.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    chunk(&mut out, 0x0009, &(since.as_secs() as u32).to_be_bytes());
    chunk(&mut out, 0x000a, &since.subsec_micros().to_be_bytes());
    chunk(&mut out, 0x000b, &[1]); // SIP
    chunk(&mut out, 0x000c, &config.capture_id.to_be_bytes());
    if let Some(key) = &config.auth_key {
        chunk(&mut out, 0x000e, key.as_bytes());
    }
    chunk(&mut out, 0x000f, &c.payload);
    if let Some(id) = correlation {
        chunk(&mut out, 0x0011, id.as_bytes());
    }
    let len = (out.len() as u16).to_be_bytes();
    out[4..6].copy_from_slice(&len);
    Some(out)
}

struct Metrics {
    sent: IntCounter,
    dropped: IntCounterVec,
}

/// The capture of one process: a queue, a sender task, and the Call-ID links.
pub struct HepCapture {
    queue: mpsc::Sender<Captured>,
    metrics: Arc<Metrics>,
    /// A leg's Call-ID → the correlation id of its call (the first leg's Call-ID).
    links: DashMap<Bytes, Arc<str>>,
}

impl HepCapture {
    /// Binds a UDP socket towards `config.collector` and starts the sender task.
    pub async fn start(config: HepConfig, registry: &Registry) -> std::io::Result<Arc<Self>> {
        let sent = IntCounter::new(
            "teamsgw_hep_sent_total",
            "SIP messages sent to the HEP collector.",
        )
        .map_err(std::io::Error::other)?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "teamsgw_hep_dropped_total",
                "SIP messages not captured: queue_full, too_large or send_error.",
            ),
            &["reason"],
        )
        .map_err(std::io::Error::other)?;
        for r in ["queue_full", "too_large", "send_error"] {
            dropped.with_label_values(&[r]);
        }
        registry
            .register(Box::new(sent.clone()))
            .map_err(std::io::Error::other)?;
        registry
            .register(Box::new(dropped.clone()))
            .map_err(std::io::Error::other)?;
        let bind: SocketAddr = if config.collector.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(config.collector).await?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let capture = Arc::new(Self {
            queue,
            metrics: Arc::new(Metrics { sent, dropped }),
            links: DashMap::new(),
        });
        tokio::spawn(Arc::clone(&capture).send_all(config, socket, rx));
        Ok(capture)
    }

    /// Queues one message; never waits.
    pub fn capture(&self, c: Captured) {
        if self.queue.try_send(c).is_err() {
            self.metrics
                .dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }

    /// Messages with `call_id` carry `correlation` from now on (the legs of one call).
    pub fn link(&self, call_id: &str, correlation: &str) {
        self.links.insert(
            Bytes::copy_from_slice(call_id.as_bytes()),
            correlation.into(),
        );
    }

    pub fn unlink(&self, call_id: &str) {
        self.links.remove(call_id.as_bytes());
    }

    fn correlation(&self, payload: &Bytes) -> Option<Arc<str>> {
        let msg = Message::parse(payload.clone()).ok()?;
        let call_id = msg.call_id()?;
        match self.links.get(call_id) {
            Some(c) => Some(Arc::clone(c.value())),
            None => std::str::from_utf8(call_id).ok().map(Arc::from),
        }
    }

    async fn send_all(
        self: Arc<Self>,
        config: HepConfig,
        socket: UdpSocket,
        mut rx: mpsc::Receiver<Captured>,
    ) {
        while let Some(c) = rx.recv().await {
            let correlation = self.correlation(&c.payload);
            let Some(packet) = encode(&c, &config, correlation.as_deref()) else {
                self.metrics.dropped.with_label_values(&["too_large"]).inc();
                continue;
            };
            match socket.send(&packet).await {
                Ok(_) => self.metrics.sent.inc(),
                Err(_) => self
                    .metrics
                    .dropped
                    .with_label_values(&["send_error"])
                    .inc(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The chunks of a HEPv3 packet by type, checking the framing on the way.
    fn chunks(packet: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&packet[..4], b"HEP3");
        assert_eq!(
            usize::from(u16::from_be_bytes([packet[4], packet[5]])),
            packet.len()
        );
        let mut out = Vec::new();
        let mut i = 6;
        while i < packet.len() {
            let kind = u16::from_be_bytes([packet[i + 2], packet[i + 3]]);
            let len = usize::from(u16::from_be_bytes([packet[i + 4], packet[i + 5]]));
            out.push((kind, packet[i + 6..i + len].to_vec()));
            i += len;
        }
        assert_eq!(i, packet.len());
        out
    }

    /// HEPv3 (sipcapture.org HEP3 spec, generic chunks 0x0001-0x0011).
    #[test]
    fn a_captured_message_becomes_the_hep3_chunks_homer_reads() {
        let payload = Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n");
        let c = Captured {
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "198.51.100.7:5061".parse().unwrap(),
            transport: Transport::Tls,
            time: UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456),
            payload: payload.clone(),
        };
        let config = HepConfig {
            collector: "127.0.0.1:9060".parse().unwrap(),
            capture_id: 2001,
            auth_key: Some("secret".into()),
        };
        let got = chunks(&encode(&c, &config, Some("call-1")).unwrap());
        let want: Vec<(u16, Vec<u8>)> = vec![
            (1, vec![2]),
            (2, vec![6]),
            (3, vec![192, 0, 2, 1]),
            (4, vec![198, 51, 100, 7]),
            (7, 5060u16.to_be_bytes().into()),
            (8, 5061u16.to_be_bytes().into()),
            (9, 1_700_000_000u32.to_be_bytes().into()),
            (10, 123_456u32.to_be_bytes().into()),
            (11, vec![1]),
            (12, 2001u32.to_be_bytes().into()),
            (14, b"secret".to_vec()),
            (15, payload.to_vec()),
            (17, b"call-1".to_vec()),
        ];
        assert_eq!(got, want);
        // IPv6 uses chunks 5 and 6; too large a message is refused, not truncated.
        let v6 = Captured {
            src: "[2001:db8::1]:5060".parse().unwrap(),
            ..c.clone()
        };
        let got = chunks(&encode(&v6, &config, None).unwrap());
        assert_eq!(got[0], (1, vec![10]));
        assert_eq!(got[2].0, 5);
        assert_eq!(got[3].1[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        let big = Captured {
            payload: Bytes::from(vec![b'a'; 70_000]),
            ..c
        };
        assert!(encode(&big, &config, None).is_none());
    }
}
