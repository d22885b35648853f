//! Sending relayed packets through one raw IPv4 socket, a whole send phase per syscall.
//!
//! Why: every relayed packet leaves by another UDP socket (its call's port), so a UDP send is
//! one syscall per packet, and because the relay also reads that socket through epoll, every
//! send also wakes the socket's wait queue when the kernel frees the packet (the write-space
//! callback). A `SOCK_RAW`/`IPPROTO_RAW` socket takes packets with the IP and UDP headers we
//! write, from any of our ports, so `sendmmsg` hands the kernel the whole outbox at once, and
//! the socket is in no epoll set. Routing and netfilter still apply (it is a local output like
//! any other). Measured on loopback (`benches/scripts/udp_send_cost.sh`): connected UDP send
//! from a socket in epoll 5.2–5.6 us, raw `sendmmsg` of 64 4.1–4.5 us per packet. The relay
//! as a whole measured the same on loopback either way (`relay_load`, `RELAY_RAW_SOCKET`),
//! where the sender pays its peer's receive path and a raw send its own route lookup, so the
//! daemon leaves it off (`media.raw_socket`) until it is shown to pay on a real NIC.
//!
//! It needs `CAP_NET_RAW`; without it (or for an IPv6 bind address) the relay sends from the
//! calls' own sockets as before. An `IPPROTO_RAW` socket only sends: the kernel delivers
//! nothing to it.

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::net::addr::SocketAddrArg;
use rustix::net::{
    AddressFamily, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, SocketFlags, SocketType,
    bind as bind_to, ipproto, sendmmsg, socket_with, sockopt,
};

/// IPv4 header (no options) and UDP header.
pub(crate) const HEADER: usize = 28;
/// Packets per [`RawSender::send`] at most (the relay's outbox).
pub(crate) const BATCH: usize = 64;
/// Packets per `sendmmsg`: the message arrays are built on the stack for every call, so a
/// small send phase (light load) does not pay for 64; four syscalls for a full outbox instead
/// of one cost little next to the packets' own kernel work.
const CHUNK: usize = 16;
/// Send buffer of the one raw socket: it carries every call's packets until the device takes
/// them (on a NIC, until transmit completion).
const SEND_BUFFER: usize = 4 << 20;

/// The raw socket and the source address written into every header (`0.0.0.0`: the kernel
/// fills in the route's source, as for a UDP socket bound to the wildcard).
pub(crate) struct RawSender {
    socket: OwnedFd,
    source: Ipv4Addr,
}

/// One packet of a batch: where from (our port), where to, and its UDP payload.
pub(crate) struct RawPacket<'a> {
    pub source_port: u16,
    pub dest: SocketAddrV4,
    pub payload: &'a [u8],
}

impl Default for RawPacket<'_> {
    fn default() -> Self {
        Self {
            source_port: 0,
            dest: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            payload: &[],
        }
    }
}

impl RawSender {
    /// Opens the raw socket for relays bound to `bind`; an error (no `CAP_NET_RAW`) means the
    /// relay sends from its UDP sockets.
    pub(crate) fn open(bind: Ipv4Addr) -> std::io::Result<Self> {
        let socket = socket_with(
            AddressFamily::INET,
            SocketType::RAW,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            Some(ipproto::RAW),
        )?;
        // Bound to a concrete address, route lookups see our source (policy routing by source).
        if !bind.is_unspecified() {
            bind_to(&socket, &SocketAddrV4::new(bind, 0))?;
        }
        if sockopt::set_socket_send_buffer_size_force(&socket, SEND_BUFFER).is_err() {
            // Without CAP_NET_ADMIN: as much as net.core.wmem_max allows.
            let _ = sockopt::set_socket_send_buffer_size(&socket, SEND_BUFFER);
        }
        Ok(Self {
            socket,
            source: bind,
        })
    }

    /// Sends up to [`BATCH`] packets, [`CHUNK`] per syscall; `sent[i]` says whether packet `i`
    /// went out. A packet the kernel refuses (no route, a full buffer) is skipped and the rest
    /// still go.
    pub(crate) fn send(&self, packets: &[RawPacket<'_>], sent: &mut [bool; BATCH]) {
        *sent = [false; BATCH];
        let n = packets.len().min(BATCH);
        for (packets, sent) in packets[..n].chunks(CHUNK).zip(sent.chunks_mut(CHUNK)) {
            self.send_chunk(packets, sent);
        }
    }

    fn send_chunk(&self, packets: &[RawPacket<'_>], sent: &mut [bool]) {
        let n = packets.len().min(CHUNK);
        let header = |i: usize| {
            packets.get(i).map_or([0; HEADER], |p| {
                udp_ipv4_header(self.source, p.source_port, p.dest, p.payload)
            })
        };
        let headers: [[u8; HEADER]; CHUNK] = std::array::from_fn(header);
        let addrs: [SocketAddrAny; CHUNK] = std::array::from_fn(|i| {
            packets
                .get(i)
                .map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |p| p.dest)
                .as_any()
        });
        let iovs: [[IoSlice<'_>; 2]; CHUNK] = std::array::from_fn(|i| {
            let payload = packets.get(i).map_or(&[][..], |p| p.payload);
            [IoSlice::new(&headers[i]), IoSlice::new(payload)]
        });
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; CHUNK] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut i = 0;
        let mut msgs: [MMsgHdr<'_>; CHUNK] = controls.each_mut().map(|control| {
            let msg = MMsgHdr::new_with_addr(&addrs[i], &iovs[i], control);
            i += 1;
            msg
        });
        let mut start = 0;
        while start < n {
            match sendmmsg(&self.socket, &mut msgs[start..n], SendFlags::empty()) {
                Ok(0) => break,
                Ok(count) => {
                    sent[start..start + count].fill(true);
                    start += count;
                }
                // The message at `start` was refused: skip it, send the rest.
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => start += 1,
            }
        }
    }
}

/// IPv4 (RFC 791) and UDP (RFC 768) headers for `payload`. The kernel fills in the IP
/// identification and header checksum (raw(7), `IP_HDRINCL`). The UDP checksum covers the
/// pseudo-header, so it needs the source address: with a wildcard source it is 0, which
/// RFC 768 defines as "no checksum" (what the kernel cannot fix up after choosing the source).
pub(crate) fn udp_ipv4_header(
    source: Ipv4Addr,
    source_port: u16,
    dest: SocketAddrV4,
    payload: &[u8],
) -> [u8; HEADER] {
    let udp_len = (8 + payload.len()) as u16;
    let mut h = [0u8; HEADER];
    h[0] = 0x45; // version 4, 5 words
    h[2..4].copy_from_slice(&(HEADER as u16 + payload.len() as u16).to_be_bytes());
    h[6] = 0x40; // don't fragment, as Linux sends UDP with path MTU discovery
    h[8] = 64; // TTL
    h[9] = 17; // UDP
    h[12..16].copy_from_slice(&source.octets());
    h[16..20].copy_from_slice(&dest.ip().octets());
    h[20..22].copy_from_slice(&source_port.to_be_bytes());
    h[22..24].copy_from_slice(&dest.port().to_be_bytes());
    h[24..26].copy_from_slice(&udp_len.to_be_bytes());
    if !source.is_unspecified() {
        let checksum = udp_checksum(&h, payload);
        h[26..28].copy_from_slice(&checksum.to_be_bytes());
    }
    h
}

/// RFC 768: ones' complement sum over the pseudo-header (source, destination, protocol, UDP
/// length), the UDP header and the payload; a computed 0 is sent as 0xffff.
fn udp_checksum(h: &[u8; HEADER], payload: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    };
    add(&h[12..20]); // addresses
    add(&[0, 17]);
    add(&h[24..26]); // UDP length
    add(&h[20..26]); // ports, length (checksum field is zero)
    add(payload);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    match !(sum as u16) {
        0 => 0xffff,
        c => c,
    }
}

/// The IPv4 destination of a packet the raw socket can carry.
pub(crate) fn ipv4(dest: SocketAddr) -> Option<SocketAddrV4> {
    match dest {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, v6.port())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksum_matches_a_known_packet() {
        // RFC 768 checksum of a 2-byte payload, checked by hand: pseudo-header
        // 7f00:0001 + 7f00:0002 + 0011 + 000a, header 1388 + 1389 + 000a, payload 4142.
        let h = udp_ipv4_header(
            Ipv4Addr::new(127, 0, 0, 1),
            5000,
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 5001),
            b"AB",
        );
        let sum: u32 =
            0x7f00 + 0x0001 + 0x7f00 + 0x0002 + 0x0011 + 0x000a + 0x1388 + 0x1389 + 0x000a + 0x4142;
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), !(folded as u16));
        assert_eq!(&h[2..4], &30u16.to_be_bytes(), "total length");
        assert_eq!(&h[24..26], &10u16.to_be_bytes(), "UDP length");
    }

    #[test]
    fn a_wildcard_source_sends_no_checksum() {
        let h = udp_ipv4_header(
            Ipv4Addr::UNSPECIFIED,
            5000,
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 5001),
            b"AB",
        );
        assert_eq!(&h[26..28], &[0, 0]);
        assert_eq!(&h[12..16], &[0, 0, 0, 0], "the kernel picks the source");
    }
}
