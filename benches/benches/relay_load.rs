//! Relay load test (issue: media): N concurrent synthetic G.711 calls (20 ms, 172-byte RTP,
//! 50 packets/s per direction, SRTP on the Teams side) through the relay process on loopback.
//! Every packet that comes back is checked (decrypted where SRTP, payload compared).
//!
//! The relay runs as its own process (`relay_server`) pinned to CPU 0 with `taskset`; this
//! generator pins itself to CPU 1. Reported per N: relay CPU microseconds per forwarded packet
//! (utime+stime from /proc over the measured window), loss, p50/p99 added latency, and heap
//! allocations per forwarded packet in the relay (counting allocator).
//!
//! The same generator then drives Debian's rtpengine (`rtpengine-daemon`, userspace only with
//! `--table=-1`, one worker thread, pinned to CPU 0), with the calls set up through its ng
//! control protocol using the same SDP (RTP/SAVP + SDES from the Teams side, translated to
//! RTP/AVP towards the PBX), and prints the ratio of CPU per forwarded packet.
//!
//! `cargo bench -p teamsgw-benches --bench relay_load` (RELAY_LOAD_CALLS=100,500,1000,2000,
//! RELAY_LOAD_SECONDS=10 to change the defaults; RELAY_LOAD_RTPENGINE=0 to skip rtpengine).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use teamsgw_media::srtp::{Context, MasterKey, Suite};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;

const TEAMS_KEY: [u8; 30] = [0x11; 30];
const RELAY_KEY: [u8; 30] = [0x22; 30];

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    received: AtomicU64,
    bad: AtomicU64,
}

fn packet(seq: u16, ssrc: u32, epoch: Instant) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p[12..20].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    p
}

/// Checks a received plain packet; returns its latency in microseconds.
fn check(p: &[u8], epoch: Instant) -> Option<u64> {
    if p.len() != 172 {
        return None;
    }
    let seq = u16::from_be_bytes([p[2], p[3]]);
    if p[20..]
        .iter()
        .enumerate()
        .any(|(i, &b)| b != (i as u8) ^ (seq as u8))
    {
        return None;
    }
    let sent = u64::from_be_bytes(p[12..20].try_into().ok()?);
    Some((epoch.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

fn pin_self(cpu: &str) {
    let _ = Command::new("taskset")
        .args(["-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
}

struct Server {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start() -> Server {
        let bin = env!("CARGO_BIN_EXE_relay_server");
        let mut child = Command::new("taskset")
            .args(["-c", "0", bin, "30000", "39999"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("taskset (util-linux) and relay_server");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Server {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        reply.trim().to_owned()
    }

    fn allocs(&mut self) -> u64 {
        self.ask("allocs")
            .trim_start_matches("allocs ")
            .parse()
            .unwrap()
    }
}

/// Where one call's packets go and which keys they use.
struct CallConfig {
    relay_teams: SocketAddr,
    relay_pbx: SocketAddr,
    /// The Teams side encrypts with this.
    teams_tx_key: [u8; 30],
    /// What the relay sends to the Teams side decrypts with this.
    teams_rx_key: [u8; 30],
}

enum Backend {
    Teamsgw(Server, Vec<u16>),
    Rtpengine(Rtpengine),
}

impl Backend {
    fn pid(&self) -> u32 {
        match self {
            Backend::Teamsgw(s, _) => s.child.id(),
            Backend::Rtpengine(r) => r.child.id(),
        }
    }

    fn allocs(&mut self) -> Option<u64> {
        match self {
            Backend::Teamsgw(s, _) => Some(s.allocs()),
            Backend::Rtpengine(_) => None,
        }
    }

    fn setup(&mut self, call: usize, teams: SocketAddr, pbx: SocketAddr) -> CallConfig {
        match self {
            Backend::Teamsgw(server, ports) => {
                assert_eq!(server.ask(&format!("apply {call} {teams} {pbx}")), "ok");
                CallConfig {
                    relay_teams: ([127, 0, 0, 1], ports[2 * call]).into(),
                    relay_pbx: ([127, 0, 0, 1], ports[2 * call + 1]).into(),
                    teams_tx_key: TEAMS_KEY,
                    teams_rx_key: RELAY_KEY,
                }
            }
            Backend::Rtpengine(r) => r.setup(call, teams, pbx),
        }
    }

    fn stop(self) {
        let mut child = match self {
            Backend::Teamsgw(s, _) => s.child,
            Backend::Rtpengine(r) => r.child,
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Bencode for rtpengine's ng protocol.
enum B {
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(String, B)>),
    I(i64),
}

fn s(v: &str) -> B {
    B::S(v.as_bytes().to_vec())
}

impl B {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::S(v) => {
                out.extend_from_slice(format!("{}:", v.len()).as_bytes());
                out.extend_from_slice(v);
            }
            B::I(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            B::L(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode(out));
                out.push(b'e');
            }
            B::D(items) => {
                out.push(b'd');
                for (k, v) in items {
                    s(k).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    fn decode(input: &[u8]) -> Option<(B, &[u8])> {
        match input.first()? {
            b'i' => {
                let end = input.iter().position(|&b| b == b'e')?;
                Some((
                    B::I(std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?),
                    &input[end + 1..],
                ))
            }
            b'l' | b'd' => {
                let dict = input[0] == b'd';
                let mut rest = &input[1..];
                let mut items = Vec::new();
                while rest.first()? != &b'e' {
                    let (item, r) = B::decode(rest)?;
                    items.push(item);
                    rest = r;
                }
                let rest = &rest[1..];
                if !dict {
                    return Some((B::L(items), rest));
                }
                let mut pairs = Vec::new();
                let mut it = items.into_iter();
                while let (Some(B::S(k)), Some(v)) = (it.next(), it.next()) {
                    pairs.push((String::from_utf8(k).ok()?, v));
                }
                Some((B::D(pairs), rest))
            }
            _ => {
                let colon = input.iter().position(|&b| b == b':')?;
                let len: usize = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
                let start = colon + 1;
                Some((
                    B::S(input.get(start..start + len)?.to_vec()),
                    &input[start + len..],
                ))
            }
        }
    }

    fn get(&self, key: &str) -> Option<&B> {
        match self {
            B::D(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            B::S(v) => String::from_utf8_lossy(v).into_owned(),
            _ => String::new(),
        }
    }
}

struct Rtpengine {
    child: std::process::Child,
    control: std::net::UdpSocket,
    ng: SocketAddr,
    cookie: u64,
}

impl Rtpengine {
    fn start() -> Option<Rtpengine> {
        let control = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        control
            .set_read_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        let ng: SocketAddr = ([127, 0, 0, 1], 22223).into();
        let child = Command::new("taskset")
            .args([
                "-c",
                "0",
                "rtpengine",
                "--foreground",
                "--log-stderr",
                "--log-level=4",
                "--table=-1",
                "--interface=127.0.0.1",
                "--listen-ng=127.0.0.1:22223",
                "--port-min=40000",
                "--port-max=49999",
                "--num-threads=1",
                "--delete-delay=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut r = Rtpengine {
            child,
            control,
            ng,
            cookie: 0,
        };
        for _ in 0..50 {
            if r.ng(vec![("command".into(), s("ping"))])
                .is_some_and(|res| res.get("result").map(B::text) == Some("pong".into()))
            {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn ng(&mut self, dict: Vec<(String, B)>) -> Option<B> {
        self.cookie += 1;
        let mut msg = format!("{} ", self.cookie).into_bytes();
        B::D(dict).encode(&mut msg);
        self.control.send_to(&msg, self.ng).ok()?;
        let mut buf = vec![0u8; 65536];
        let n = self.control.recv(&mut buf).ok()?;
        let space = buf[..n].iter().position(|&b| b == b' ')?;
        B::decode(&buf[space + 1..n]).map(|(b, _)| b)
    }

    fn setup(&mut self, call: usize, teams: SocketAddr, pbx: SocketAddr) -> CallConfig {
        use base64::Engine as _;
        let key_b64 = base64::engine::general_purpose::STANDARD.encode(TEAMS_KEY);
        let teams_sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key_b64}|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n",
            teams.port()
        );
        let pbx_sdp = format!(
            "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
            pbx.port()
        );
        let call_id = format!("load-{call}");
        let offer = self
            .ng(vec![
                ("command".into(), s("offer")),
                ("call-id".into(), s(&call_id)),
                ("from-tag".into(), s("teams")),
                ("sdp".into(), s(&teams_sdp)),
                ("transport-protocol".into(), s("RTP/AVP")),
                ("ICE".into(), s("remove")),
                ("rtcp-mux".into(), B::L(vec![s("demux")])),
            ])
            .expect("rtpengine offer");
        let to_pbx = teamsgw_sdp::parse(&offer.get("sdp").map(B::text).unwrap_or_default())
            .expect("offer SDP");
        let answer = self
            .ng(vec![
                ("command".into(), s("answer")),
                ("call-id".into(), s(&call_id)),
                ("from-tag".into(), s("teams")),
                ("to-tag".into(), s("pbx")),
                ("sdp".into(), s(&pbx_sdp)),
                ("rtcp-mux".into(), B::L(vec![s("accept")])),
            ])
            .expect("rtpengine answer");
        let to_teams = teamsgw_sdp::parse(&answer.get("sdp").map(B::text).unwrap_or_default())
            .expect("answer SDP");
        let teams_media = to_teams.audio().expect("audio towards Teams");
        let key = teams_media
            .cryptos()
            .first()
            .expect("rtpengine's SDES key")
            .keys[0]
            .key_salt
            .clone();
        let mut teams_rx_key = [0u8; 30];
        teams_rx_key.copy_from_slice(&key);
        CallConfig {
            relay_teams: ([127, 0, 0, 1], teams_media.port).into(),
            relay_pbx: (
                [127, 0, 0, 1],
                to_pbx.audio().expect("audio towards PBX").port,
            )
                .into(),
            teams_tx_key: TEAMS_KEY,
            teams_rx_key,
        }
    }
}

struct Window {
    forwarded: u64,
    sent: u64,
    cpu: f64,
    allocs: Option<u64>,
    latencies: Vec<u64>,
    /// CPU seconds per second the generator used: near 1.0 means it, not the relay, is the limit.
    generator_load: f64,
}

async fn run(calls: usize, seconds: u64, rtpengine: bool) -> Window {
    let mut backend = if rtpengine {
        Backend::Rtpengine(
            Rtpengine::start().expect("rtpengine (Debian rtpengine-daemon) did not answer ping"),
        )
    } else {
        let mut server = Server::start();
        let ports: Vec<u16> = server
            .ask(&format!("alloc {calls}"))
            .split_whitespace()
            .skip(1)
            .map(|p| p.parse().unwrap())
            .collect();
        Backend::Teamsgw(server, ports)
    };
    let totals = Arc::new(Totals::default());
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for call in 0..calls {
        let teams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let cfg = backend.setup(call, teams.local_addr().unwrap(), pbx.local_addr().unwrap());
        let (relay_teams, relay_pbx) = (cfg.relay_teams, cfg.relay_pbx);
        let (totals, latencies, measuring) = (
            Arc::clone(&totals),
            Arc::clone(&latencies),
            Arc::clone(&measuring),
        );
        tasks.push(tokio::spawn(async move {
            let mut protect = Context::new(Suite::AesCm128HmacSha1_80, &MasterKey::from_bytes(&cfg.teams_tx_key).unwrap(), None);
            let mut unprotect = Context::new(Suite::AesCm128HmacSha1_80, &MasterKey::from_bytes(&cfg.teams_rx_key).unwrap(), None);
            // Spread the calls over the 20 ms period.
            tokio::time::sleep(Duration::from_micros((call as u64 * 20_000) / calls as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut seq: u16 = 0;
            let (mut b1, mut b2) = ([0u8; 2048], [0u8; 2048]);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        seq = seq.wrapping_add(1);
                        let plain = packet(seq, 0x1000_0000 + call as u32, epoch);
                        b1[..172].copy_from_slice(&plain);
                        let n = protect.protect_rtp(&mut b1, 172).unwrap();
                        let _ = teams.send_to(&b1[..n], relay_teams).await;
                        let plain = packet(seq, 0x2000_0000 + call as u32, epoch);
                        let _ = pbx.send_to(&plain, relay_pbx).await;
                        if measuring.load(Ordering::Relaxed) {
                            totals.sent.fetch_add(2, Ordering::Relaxed);
                        }
                    }
                    r = teams.recv_from(&mut b1) => {
                        let Ok((n, _)) = r else { continue };
                        let ok = unprotect.unprotect_rtp(&mut b1, n).ok().and_then(|len| check(&b1[..len], epoch));
                        record(ok, &totals, &latencies, &measuring).await;
                    }
                    r = pbx.recv_from(&mut b2) => {
                        let Ok((n, _)) = r else { continue };
                        record(check(&b2[..n], epoch), &totals, &latencies, &measuring).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm up
    let pid = backend.pid();
    let (cpu0, allocs0) = (cpu_seconds(pid), backend.allocs());
    let gen0 = cpu_seconds(std::process::id());
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let (cpu1, allocs1) = (cpu_seconds(pid), backend.allocs());
    let generator_load = (cpu_seconds(std::process::id()) - gen0) / seconds as f64;
    for t in tasks {
        t.abort();
    }
    backend.stop();
    assert_eq!(
        totals.bad.load(Ordering::Relaxed),
        0,
        "packets failed the content check"
    );
    Window {
        forwarded: totals.received.load(Ordering::Relaxed),
        sent: totals.sent.load(Ordering::Relaxed),
        cpu: cpu1 - cpu0,
        // Two `allocs` round trips themselves allocate a little; they are in the delta.
        allocs: allocs1.zip(allocs0).map(|(a, b)| a - b),
        latencies: std::mem::take(&mut *latencies.lock().await),
        generator_load,
    }
}

async fn record(
    latency: Option<u64>,
    totals: &Totals,
    latencies: &Mutex<Vec<u64>>,
    measuring: &std::sync::atomic::AtomicBool,
) {
    if !measuring.load(Ordering::Relaxed) {
        return;
    }
    match latency {
        Some(us) => {
            totals.received.fetch_add(1, Ordering::Relaxed);
            latencies.lock().await.push(us);
        }
        None => {
            totals.bad.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    pin_self("1");
    let calls: Vec<usize> = std::env::var("RELAY_LOAD_CALLS")
        .unwrap_or_else(|_| "100,500,1000,2000".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let seconds: u64 = std::env::var("RELAY_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let with_rtpengine = std::env::var("RELAY_LOAD_RTPENGINE").map_or(true, |v| v != "0");
    println!("relays pinned to CPU 0, generator on CPU 1; {seconds} s measured per run");
    println!(
        "{:>10} {:>6} {:>12} {:>10} {:>9} {:>9} {:>9} {:>12} {:>9}",
        "relay",
        "calls",
        "pkts fwd/s",
        "us/pkt",
        "loss %",
        "p50 us",
        "p99 us",
        "allocs/pkt",
        "gen load"
    );
    for n in calls {
        let mut per_packet = Vec::new();
        for (name, rtpengine) in [("teamsgw", false), ("rtpengine", true)] {
            if rtpengine && !with_rtpengine {
                continue;
            }
            let mut w = runtime.block_on(run(n, seconds, rtpengine));
            w.latencies.sort_unstable();
            let loss = 100.0 * (w.sent.saturating_sub(w.forwarded)) as f64 / w.sent.max(1) as f64;
            let us = w.cpu * 1e6 / w.forwarded.max(1) as f64;
            per_packet.push(us);
            println!(
                "{name:>10} {n:>6} {:>12.0} {us:>10.2} {loss:>9.3} {:>9} {:>9} {:>12} {:>9.2}",
                w.forwarded as f64 / seconds as f64,
                percentile(&w.latencies, 0.5),
                percentile(&w.latencies, 0.99),
                w.allocs.map_or("-".into(), |a| format!(
                    "{:.4}",
                    a as f64 / w.forwarded.max(1) as f64
                )),
                w.generator_load,
            );
        }
        if let [ours, theirs] = per_packet[..] {
            println!(
                "{:>10} {n:>6} CPU per forwarded packet, teamsgw/rtpengine = {:.2}",
                "ratio",
                ours / theirs
            );
        }
    }
}
