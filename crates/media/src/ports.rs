//! The UDP port pool for media. Ports are handed out in even/odd pairs (RTP, RTCP) from the
//! configured range and come back when the lease drops. Running out is an error the call
//! layer turns into 503, never a panic.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use std::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free media ports in the configured range")]
    Exhausted,
    #[error("invalid media port range {0}..={1}")]
    BadRange(u16, u16),
    /// Binding failed for another reason than the port being taken (out of file descriptors,
    /// an address not on this host): not a full pool, and retrying other ports will not help.
    #[error("binding media port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

#[derive(Debug)]
struct Inner {
    free: VecDeque<u16>,
}

/// Even base ports of the range; each lease owns `base` and `base + 1`.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<Mutex<Inner>>,
    bind: IpAddr,
}

/// The right to ports `base` and `base + 1`, given back on drop. The sockets bound on them
/// come separately (see [`PortPool::allocate`]) and must be closed before the lease drops.
#[derive(Debug)]
pub struct PortLease {
    pool: PortPool,
    pub base: u16,
}

/// Non-blocking sockets bound on a lease's ports: RTP on the even port, RTCP on the odd one.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.pool.inner.lock() {
            inner.free.push_back(self.base);
        }
    }
}

impl PortPool {
    pub fn new(bind: IpAddr, min: u16, max: u16) -> Result<Self, PortError> {
        if min > max || max - min < 1 {
            return Err(PortError::BadRange(min, max));
        }
        let start = min + (min % 2);
        let free: VecDeque<u16> = (start..max).step_by(2).collect();
        if free.is_empty() {
            return Err(PortError::BadRange(min, max));
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner { free })),
            bind,
        })
    }

    pub fn free(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.free.len())
    }

    /// Binds the next free pair. Ports another process holds are skipped (and retried later).
    pub fn allocate(&self) -> Result<(PortLease, PortPair), PortError> {
        let attempts = self.free();
        for _ in 0..attempts {
            let base = {
                let mut inner = self.inner.lock().map_err(|_| PortError::Exhausted)?;
                inner.free.pop_front().ok_or(PortError::Exhausted)?
            };
            let pair = bind(self.bind, base)
                .map_err(|e| (base, e))
                .and_then(|rtp| Ok((rtp, bind(self.bind, base + 1).map_err(|e| (base + 1, e))?)));
            if pair.is_err()
                && let Ok(mut inner) = self.inner.lock()
            {
                inner.free.push_back(base);
            }
            match pair {
                Ok((rtp, rtcp)) => {
                    return Ok((
                        PortLease {
                            pool: self.clone(),
                            base,
                        },
                        PortPair { rtp, rtcp },
                    ));
                }
                Err((_, e)) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err((port, source)) => return Err(PortError::Bind { port, source }),
            }
        }
        Err(PortError::Exhausted)
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    bind_shared(SocketAddr::new(ip, port)).map(UdpSocket::from)
}

/// A non-blocking UDP socket bound with `SO_REUSEPORT`, so the relay can add a connected twin
/// on a leased port; a port another user's (or a non-reusing) socket holds still fails to bind.
pub(crate) fn bind_shared(address: SocketAddr) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_pairs_returns_them_and_reports_exhaustion() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41000, 41006).unwrap();
        assert_eq!(pool.free(), 3);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        assert_eq!(
            (a.0.base % 2, a.1.rtcp.local_addr().unwrap().port()),
            (0, a.0.base + 1)
        );
        assert!(matches!(pool.allocate(), Err(PortError::Exhausted)));
        drop(b);
        assert_eq!(pool.free(), 1);
        assert!(pool.allocate().is_ok());
        drop((a, c));
        assert!(matches!(
            PortPool::new("127.0.0.1".parse().unwrap(), 5, 5),
            Err(PortError::BadRange(5, 5))
        ));
    }

    #[test]
    fn a_bind_failure_other_than_a_taken_port_is_reported_as_itself() {
        // 192.0.2.1 (TEST-NET-1, RFC 5737) is not an address of this host.
        let pool = PortPool::new("192.0.2.1".parse().unwrap(), 41200, 41204).unwrap();
        let err = pool.allocate().unwrap_err();
        assert!(
            matches!(&err, PortError::Bind { port: 41200, source }
                if source.kind() == std::io::ErrorKind::AddrNotAvailable),
            "{err:?}"
        );
        assert_eq!(pool.free(), 2, "the pair went back to the pool");
    }

    #[test]
    fn ports_held_by_others_are_skipped() {
        let _squatter = std::net::UdpSocket::bind("127.0.0.1:41100").unwrap();
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41100, 41104).unwrap();
        let (lease, _sockets) = pool.allocate().unwrap();
        assert_eq!(lease.base, 41102);
    }
}
