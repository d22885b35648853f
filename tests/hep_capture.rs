//! SIP capture to a Homer collector (HEPv3) through the real daemon: it registers a Teams user
//! at Kamailio and answers OPTIONS while tshark records the SIP on the wire and a collector
//! socket in the test receives the captures. Each SIP packet tshark saw arrives as a HEP
//! packet with the same bytes, the same addresses and ports, our capture id and auth key.
//! With the collector gone, SIP goes on and the drop counter moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::CallLab;

/// One decoded HEPv3 packet: chunk type → value (sipcapture.org's HEP3 generic chunks).
type Hep = BTreeMap<u16, Vec<u8>>;

/// An independent HEPv3 reader, so the test does not trust the encoder it checks.
fn decode(packet: &[u8]) -> Option<Hep> {
    if packet.get(..4)? != b"HEP3" {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
    if total != packet.len() {
        return None;
    }
    let mut chunks = Hep::new();
    let mut at = 6;
    while at < total {
        let kind = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
        let len = usize::from(u16::from_be_bytes([
            *packet.get(at + 4)?,
            *packet.get(at + 5)?,
        ]));
        chunks.insert(kind, packet.get(at + 6..at + len)?.to_vec());
        at += len;
    }
    Some(chunks)
}

fn addr(hep: &Hep, ip: u16, port: u16) -> SocketAddr {
    let ip: [u8; 4] = hep[&ip].clone().try_into().unwrap();
    let port = u16::from_be_bytes(hep[&port].clone().try_into().unwrap());
    SocketAddr::from((ip, port))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn options(to: SocketAddr, n: u32) -> (UdpSocket, Vec<u8>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-hep-{n}\r\n\
         From: <sip:probe@127.0.0.1>;tag=h{n}\r\nTo: <sip:{to}>\r\nCall-ID: hep-options-{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(msg.as_bytes(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = s.recv_from(&mut buf).expect("no answer to OPTIONS");
    assert!(
        buf.starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..len])
    );
    (s, msg.into_bytes())
}

#[test]
fn every_sip_message_reaches_the_collector_byte_for_byte_and_a_lost_collector_only_counts() {
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let collector_port = collector.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, _)) = collector.recv_from(&mut buf) {
                    received.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        })
    };
    // The SIP on the wire, as tshark sees it (every UDP packet on loopback but the captures).
    let tshark = Command::new("tshark")
        .args(["-i", "lo", "-l", "-Q", "-f"])
        .arg(format!("udp and not port {collector_port}"))
        .args([
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("tshark not found ({e}): install Debian's `tshark` package"));
    std::thread::sleep(Duration::from_secs(2));

    let config = format!(
        "[hep]\ncollector = \"127.0.0.1:{collector_port}\"\ncapture_id = 4242\nauth_key = \"homer-secret\"\n"
    );
    let lab = CallLab::start(&config, &[], 5061, None);
    let sip = lab.ports.sip_addr();
    let (_probe, sent_options) = options(sip, 1);
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(tshark.id().to_string())
        .status();
    // Both pipes at once, so a chatty stderr cannot block tshark; its stderr explains an empty
    // capture (no permission on `lo`, a bad filter).
    let out = tshark.wait_with_output().unwrap();
    let wire = String::from_utf8_lossy(&out.stdout).into_owned();
    let tshark_errors = String::from_utf8_lossy(&out.stderr).into_owned();

    // The daemon's SIP packets: to or from its PBX listener.
    let seen: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = wire
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let a = |ip: &str, port: &str| -> Option<SocketAddr> {
                Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
            };
            Some((
                a(f.first()?, f.get(1)?)?,
                a(f.get(2)?, f.get(3)?)?,
                hex(f.get(4)?),
            ))
        })
        .filter(|(s, d, _)| *s == sip || *d == sip)
        .collect();
    assert!(
        seen.iter().any(|(_, _, p)| p.starts_with(b"REGISTER "))
            && seen.iter().any(|(_, _, p)| p == &sent_options),
        "tshark saw no REGISTER or OPTIONS ({}):\n{wire}\n--- tshark's stderr:\n{tshark_errors}",
        out.status
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let heps: Vec<Hep> = loop {
        let heps: Vec<Hep> = received
            .lock()
            .unwrap()
            .iter()
            .map(|p| decode(p).expect("the collector got a packet that is not HEPv3"))
            .collect();
        if heps.len() >= seen.len() || Instant::now() > deadline {
            break heps;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (src, dst, payload) in &seen {
        let hep = heps
            .iter()
            .find(|h| &h[&0x000f] == payload)
            .unwrap_or_else(|| {
                panic!(
                    "no capture of {src} -> {dst}:\n{}",
                    String::from_utf8_lossy(payload)
                )
            });
        assert_eq!(addr(hep, 0x0003, 0x0007), *src);
        assert_eq!(addr(hep, 0x0004, 0x0008), *dst);
        assert_eq!(hep[&0x0001], [2], "IPv4");
        assert_eq!(hep[&0x0002], [17], "UDP");
        assert_eq!(hep[&0x000b], [1], "SIP");
        assert_eq!(hep[&0x000c], 4242u32.to_be_bytes());
        assert_eq!(hep[&0x000e], b"homer-secret");
        let seconds = u32::from_be_bytes(hep[&0x0009].clone().try_into().unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        assert!(now.abs_diff(seconds) < 60, "timestamp {seconds}, now {now}");
        let call_id = String::from_utf8_lossy(payload)
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: ").map(str::to_owned))
            .unwrap();
        assert_eq!(hep[&0x0011], call_id.as_bytes(), "correlation id");
    }
    assert!(lab.metric("teamsgw_hep_sent_total") >= seen.len() as f64);

    // The collector goes away: SIP is answered as before, and the captures are counted lost.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    for n in 2..8 {
        options(sip, n);
    }
    let dropped = "teamsgw_hep_dropped_total{reason=\"send_error\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab
        .daemon
        .metric_if_exposed(dropped)
        .is_none_or(|n| n == 0.0)
    {
        assert!(Instant::now() < deadline, "{dropped} never moved");
        options(sip, 9);
        std::thread::sleep(Duration::from_millis(200));
    }
}
