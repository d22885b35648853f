//! Relay load test (issue: media): N concurrent synthetic G.711 calls (20 ms, 172-byte RTP,
//! 50 packets/s per direction, SRTP on the Teams side) through the relay process on loopback.
//! Every packet that comes back is checked (decrypted where SRTP, payload compared).
//!
//! The relay runs as its own process (`relay_server`) pinned to CPU 0 with `taskset`; this
//! generator pins itself to CPU 1. Reported per N: relay CPU microseconds per forwarded packet
//! (utime+stime from /proc over the measured window), loss, p50/p99 added latency, and heap
//! allocations per forwarded packet in the relay (counting allocator).
//!
//! `cargo bench -p teamsgw-benches --bench relay_load` (RELAY_LOAD_CALLS=100,500,1000,2000,
//! RELAY_LOAD_SECONDS=10 to change the defaults).
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

struct Window {
    forwarded: u64,
    sent: u64,
    cpu: f64,
    allocs: u64,
    latencies: Vec<u64>,
}

async fn run(calls: usize, seconds: u64) -> Window {
    let mut server = Server::start();
    let ports: Vec<u16> = server
        .ask(&format!("alloc {calls}"))
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    let totals = Arc::new(Totals::default());
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for call in 0..calls {
        let teams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let reply = server.ask(&format!(
            "apply {call} {} {}",
            teams.local_addr().unwrap(),
            pbx.local_addr().unwrap()
        ));
        assert_eq!(reply, "ok");
        let relay_teams: SocketAddr = ([127, 0, 0, 1], ports[2 * call]).into();
        let relay_pbx: SocketAddr = ([127, 0, 0, 1], ports[2 * call + 1]).into();
        let (totals, latencies, measuring) = (
            Arc::clone(&totals),
            Arc::clone(&latencies),
            Arc::clone(&measuring),
        );
        tasks.push(tokio::spawn(async move {
            let mut protect = Context::new(Suite::AesCm128HmacSha1_80, &MasterKey::from_bytes(&TEAMS_KEY).unwrap(), None);
            let mut unprotect = Context::new(Suite::AesCm128HmacSha1_80, &MasterKey::from_bytes(&RELAY_KEY).unwrap(), None);
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
    let pid = server.child.id();
    let (cpu0, allocs0) = (cpu_seconds(pid), server.allocs());
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let (cpu1, allocs1) = (cpu_seconds(pid), server.allocs());
    for t in tasks {
        t.abort();
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
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
        allocs: allocs1 - allocs0,
        latencies: std::mem::take(&mut *latencies.lock().await),
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
    println!(
        "relay: teamsgw relay_server pinned to CPU 0; generator on CPU 1; {seconds} s per run"
    );
    println!(
        "{:>6} {:>12} {:>10} {:>9} {:>9} {:>9} {:>12}",
        "calls", "pkts fwd/s", "us/pkt", "loss %", "p50 us", "p99 us", "allocs/pkt"
    );
    for n in calls {
        let mut w = runtime.block_on(run(n, seconds));
        w.latencies.sort_unstable();
        let loss = 100.0 * (w.sent.saturating_sub(w.forwarded)) as f64 / w.sent.max(1) as f64;
        println!(
            "{n:>6} {:>12.0} {:>10.2} {:>9.3} {:>9} {:>9} {:>12.4}",
            w.forwarded as f64 / seconds as f64,
            w.cpu * 1e6 / w.forwarded.max(1) as f64,
            loss,
            percentile(&w.latencies, 0.5),
            percentile(&w.latencies, 0.99),
            w.allocs as f64 / w.forwarded.max(1) as f64
        );
    }
}
