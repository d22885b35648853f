//! Receiving datagrams with `recvmmsg(2)`: the only `unsafe` in the media crate.
//!
//! Why: mio readiness is edge-triggered, so after every wake a socket must be read until it
//! would block. With one socket per RTP port and 50 packets/s per stream, a wake almost always
//! finds one datagram, so a plain `recv_from` loop costs two system calls per packet (the
//! datagram, then `EAGAIN`). One `recvmmsg` with room for [`BATCH`] datagrams that returns
//! fewer has drained the socket in one call. Measured in `benches/relay_load.rs` (both
//! variants in the same run). Sending stays `send_to`: each packet leaves by the other leg's
//! socket, so there is nothing to batch per socket (`sendmmsg` would not save a call).
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Datagrams per `recvmmsg` call.
pub const BATCH: usize = 8;
/// Large enough for any RTP/RTCP datagram we relay; longer ones are truncated and dropped.
pub const BUF: usize = 2048;

/// Buffers for one batch, reused for every call.
pub struct RecvBatch {
    pub bufs: Box<[[u8; BUF]; BATCH]>,
    addrs: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: Box::new([[0; BUF]; BATCH]),
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
            addrs: unsafe { MaybeUninit::zeroed().assume_init() },
            lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }
}

impl RecvBatch {
    /// Receives up to [`BATCH`] datagrams without blocking; `Ok(0)` never happens (an empty
    /// socket is `WouldBlock`). Fewer than `BATCH` means the socket is drained.
    pub fn recv(&mut self, socket: &impl AsRawFd, limit: usize) -> io::Result<usize> {
        let limit = limit.clamp(1, BATCH);
        // SAFETY: iovec/mmsghdr are plain old data; zeroed is valid and every pointer we use
        // is set below.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { MaybeUninit::zeroed().assume_init() };
        #[allow(clippy::needless_range_loop)] // three parallel arrays
        for i in 0..limit {
            iovecs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovecs[i].iov_len = BUF;
            msgs[i].msg_hdr.msg_iov = &mut iovecs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: `msgs[..limit]` point at `iovecs`, `self.bufs` and `self.addrs`, which all
        // outlive the call and are not otherwise borrowed; the kernel writes at most `iov_len`
        // bytes per buffer and `msg_namelen` bytes per address.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                limit as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, msg) in msgs.iter().take(n).enumerate() {
            self.lens[i] = msg.msg_len as usize;
            self.truncated[i] = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Length and source of datagram `i` of the last batch; `None` when it was truncated or
    /// its source is not IPv4/IPv6.
    pub fn datagram(&self, i: usize) -> Option<(usize, SocketAddr)> {
        if self.truncated[i] {
            return None;
        }
        Some((self.lens[i], to_socket_addr(&self.addrs[i])?))
    }
}

fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (ss_family says so); storage is large
            // enough and suitably aligned for it.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn receives_several_datagrams_with_their_sources_in_one_call() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("[::1]:0").ok();
        let rx6 = std::net::UdpSocket::bind("[::1]:0").ok();
        for i in 0..3u8 {
            a.send_to(&[i; 100], rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx, BATCH).unwrap(), 3);
        for i in 0..3 {
            assert_eq!(batch.datagram(i), Some((100, a.local_addr().unwrap())));
            assert_eq!(batch.bufs[i][0], i as u8);
        }
        let empty = batch.recv(&rx, BATCH).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        // A full batch means: maybe more.
        for _ in 0..BATCH + 2 {
            a.send_to(&[7; 10], rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(batch.recv(&rx, BATCH).unwrap(), BATCH);
        assert_eq!(batch.recv(&rx, BATCH).unwrap(), 2);
        // Oversized datagrams are flagged, not passed on cut.
        a.send_to(&[1; BUF + 10], rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(batch.recv(&rx, 1).unwrap(), 1);
        assert_eq!(batch.datagram(0), None);
        if let (Some(b), Some(rx6)) = (b, rx6) {
            b.send_to(&[9; 5], rx6.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert_eq!(batch.recv(&rx6, BATCH).unwrap(), 1);
            assert_eq!(batch.datagram(0), Some((5, b.local_addr().unwrap())));
        }
    }
}
