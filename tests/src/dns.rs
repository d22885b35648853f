//! A tiny DNS server on loopback for peers that resolve names themselves (baresip's libre
//! does not read /etc/hosts) and for teamsgw's own resolver (`dns.servers`): each name it is
//! given has one A record (`*.example.com` covers every name under it), other names are
//! NXDOMAIN. Teams resolves our Contact FQDN (§3.1), so the Teams endpoint needs the tenant
//! FQDN to resolve; teamsgw resolves Teams' `api-du-…pstnhub.microsoft.com` Contact (§1.5).
//! Stops on drop.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Dns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Dns {
    /// Every name in `names` is 127.0.0.1.
    pub fn start(names: &[&str]) -> Dns {
        let records: Vec<(&str, Ipv4Addr)> =
            names.iter().map(|n| (*n, Ipv4Addr::LOCALHOST)).collect();
        Self::start_records(&records)
    }

    /// One A record per (name or `*.domain`, address).
    pub fn start_records(records: &[(&str, Ipv4Addr)]) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let names: Vec<(String, Ipv4Addr)> = records
            .iter()
            .map(|(n, a)| (n.to_ascii_lowercase(), *a))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = answer(&buf[..n], &names) {
                    let _ = socket.send_to(&answer, peer);
                }
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// RFC 1035 §4.1: one question in, the same question and at most one A record out.
fn answer(query: &[u8], names: &[(String, Ipv4Addr)]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question = query.get(12..at + 4)?;
    let name = labels.join(".");
    let record = names.iter().find_map(|(n, a)| {
        let matches = match n.strip_prefix("*.") {
            Some(domain) => name.ends_with(&format!(".{domain}")),
            None => *n == name,
        };
        matches.then_some(*a)
    });
    let known = record.is_some();
    let a = known && qtype == 1;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[0..2]);
    // QR, RD copied, RA; NXDOMAIN for names we do not know.
    out.push(0x80 | (query[2] & 0x01));
    out.push(if known { 0x80 } else { 0x83 });
    out.extend_from_slice(&[0, 1, 0, u8::from(a), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let (true, Some(ip)) = (a, record) {
        out.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}
