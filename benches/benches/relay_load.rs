//! Relay load test (issue: media): N concurrent synthetic G.711 calls (20 ms, 172-byte RTP,
//! 50 packets/s per direction, SRTP on the Teams side) through the relay process on loopback.
//! Every packet that comes back is checked (decrypted where SRTP, payload compared).
//!
//! The relay runs as its own process (`relay_server`) pinned to CPU 0 with `taskset`; this
//! generator pins itself to CPU 1. Reported per N: relay CPU microseconds per forwarded packet
//! (utime+stime from /proc over the measured window), loss, p50/p99/p99.9 added latency, the
//! interarrival jitter the relay adds (RFC 3550 §6.4.1 estimate over each stream's transit times,
//! mean of the streams), heap allocations per forwarded packet in the relay (counting
//! allocator), resident memory per call (VmRSS growth from before the calls were set up to the
//! end of the window; socket buffers are kernel memory and not in it), syscalls per forwarded
//! packet (performance.md §4.4; counted by `perf stat -e raw_syscalls:sys_enter` in a 2 s
//! window after the measured one, so the tracepoint does not weigh on the CPU figure), and the
//! CPU seconds per second of relay and generator (near 1.0: that process is saturated, and its
//! latency is queueing).
//!
//! The same generator then drives Debian's rtpengine (`rtpengine-daemon`, userspace only with
//! `--table=-1`, one worker thread, pinned to CPU 0), with the calls set up through its ng
//! control protocol using the same SDP (RTP/SAVP + SDES from the Teams side, translated to
//! RTP/AVP towards the PBX), and prints the ratio of CPU per forwarded packet.
//!
//! Which points compare. A point is marked and left out of the ratio medians when the generator
//! used more than 0.8 of its core (performance.md §4.7: it may be what limits the point) or a
//! relay is past §4.3's stopping point (loss above 0.1 % or its CPU at 100 %, read as a load of
//! 0.98 or more): past it, CPU per forwarded packet measures how much a saturated relay drops
//! and batches, not what a packet costs.
//!
//! `cargo bench -p teamsgw-benches --bench relay_load` (RELAY_LOAD_CALLS=100,250,500,1000,1500,2000,
//! RELAY_LOAD_SECONDS=10 to change the defaults; RELAY_LOAD_RTPENGINE=0 to skip rtpengine;
//! RELAY_LOAD_SERVER=path to drive another build of relay_server in place of this one;
//! RELAY_LOAD_BASELINE=path adds a run of another build next to ours in every pair and prints
//! the ratio of CPU per forwarded packet, teamsgw/baseline, for an A/B of two versions in one
//! run (with RELAY_LOAD_REPEAT, the median of the pairs);
//! RELAY_LOAD_PAYLOAD_MAP=1 adds a run of our relay with a payload-type map on every session
//! (the rewrite path for every packet) and prints its CPU per packet against the plain run;
//! RELAY_LOAD_G722=1 adds a run whose calls are G.722 (payload type 9, 64 kbit/s: the same
//! 160-byte frames) and prints its CPU per packet against the G.711 run (issue 37: the relay
//! does not decode, so a codec must cost nothing);
//! RELAY_LOAD_REPEAT=3 runs each pair three times and prints the median ratio, as one pair on a
//! noisy 2-core machine is one sample; RELAY_LOAD_NETNS=1 for the veth topology below).
//!
//! A debug build (`cargo test -p teamsgw-benches --bench relay_load`, which the README's test
//! command runs) is a short run: 20 calls for 1 s, our relay plain and with a payload-type map,
//! no rtpengine. Its figures mean nothing; its checks (every packet that comes back is intact,
//! and at least 90 % come back) run in CI.
//!
//! Topology. On loopback (the default) a sender runs the receiver's whole receive path inside
//! its own send and wakes the receiver, so each relay is also charged for the generator's
//! receives. With RELAY_LOAD_NETNS=1 (root, iproute2 and ethtool; performance.md §4.1) the relay
//! runs in a network namespace of its own (`teamsgw-bench`, 198.18.0.2, the RFC 2544
//! benchmarking range) behind a veth pair with GRO and threaded NAPI: as with a NIC, a send
//! ends at the device and the receiving side's kernel work runs in that side's NAPI thread.
//! The relay side's NAPI thread is pinned to the relay's CPU and its CPU time counts as the
//! relay's (it is the relay host's receive work); the generator side's runs on CPU 1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use teamsgw_media::srtp::{Context, MasterKey, Suite};

const TEAMS_KEY: [u8; 30] = [0x11; 30];
const RELAY_KEY: [u8; 30] = [0x22; 30];

fn packet(seq: u16, ssrc: u32, epoch: Instant, payload_type: u8) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[1] = payload_type;
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

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Counts a process's syscalls for `seconds` with `perf stat`; None when perf cannot run.
fn count_syscalls(pid: u32, seconds: u64) -> Option<std::process::Child> {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p"])
        .arg(pid.to_string())
        .args(["--", "sleep"])
        .arg(seconds.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()
}

/// Syscalls per second from `perf stat -x,` output (count, unit, event, ...). perf attaches
/// before it starts `sleep`, so its window is the sleep (its "enabled" field is the time the
/// process was on a CPU, not the window).
fn syscall_rate(perf: std::process::Child) -> Option<f64> {
    let out = perf.wait_with_output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))?;
    let count: f64 = line.split(',').next()?.parse().ok()?;
    Some(count / SYSCALL_WINDOW as f64)
}

/// RFC 3550 §6.4.1 interarrival jitter of one stream, from its packets' transit times.
#[derive(Default)]
struct Jitter {
    last_transit: Option<u64>,
    estimate: f64,
}

impl Jitter {
    fn update(&mut self, transit_us: u64) {
        if let Some(last) = self.last_transit {
            let d = transit_us.abs_diff(last) as f64;
            self.estimate += (d - self.estimate) / 16.0;
        }
        self.last_transit = Some(transit_us);
    }
}

const NETNS: &str = "teamsgw-bench";
const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Where relays and generator meet (module doc).
struct Topology {
    relay_ip: Ipv4Addr,
    gen_ip: Ipv4Addr,
    netns: bool,
    /// NAPI threads of the relay side and of the generator side (veth only).
    relay_napi: Vec<u32>,
    gen_napi: Vec<u32>,
}

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "RELAY_LOAD_NETNS: `{command}` failed");
}

fn threads_named(prefix: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim().starts_with(prefix))
        {
            pids.push(pid);
        }
    }
    pids
}

impl Topology {
    fn loopback() -> Self {
        Self {
            relay_ip: Ipv4Addr::LOCALHOST,
            gen_ip: Ipv4Addr::LOCALHOST,
            netns: false,
            relay_napi: Vec::new(),
            gen_napi: Vec::new(),
        }
    }

    fn veth() -> Self {
        Self::teardown();
        sh(&format!(
            "ip netns add {NETNS} && ip link add tgwb0 type veth peer name tgwb1 netns {NETNS} \
             && ip addr add {GEN_IP}/30 dev tgwb0 && ip link set tgwb0 up \
             && ip -n {NETNS} addr add {RELAY_IP}/30 dev tgwb1 && ip -n {NETNS} link set tgwb1 up \
             && ip -n {NETNS} link set lo up \
             && ethtool -K tgwb0 gro on tso off >/dev/null && ip netns exec {NETNS} ethtool -K tgwb1 gro on tso off >/dev/null \
             && echo 1 > /sys/class/net/tgwb0/threaded \
             && ip netns exec {NETNS} sh -c 'echo 1 > /sys/class/net/tgwb1/threaded'"
        ));
        let (relay_napi, gen_napi) = (threads_named("napi/tgwb1-"), threads_named("napi/tgwb0-"));
        assert!(
            !relay_napi.is_empty() && !gen_napi.is_empty(),
            "RELAY_LOAD_NETNS: no threaded NAPI on the veth pair"
        );
        for (pids, cpu) in [(&relay_napi, "0"), (&gen_napi, "1")] {
            for pid in pids {
                sh(&format!("taskset -p -c {cpu} {pid} >/dev/null"));
            }
        }
        Self {
            relay_ip: RELAY_IP,
            gen_ip: GEN_IP,
            netns: true,
            relay_napi,
            gen_napi,
        }
    }

    fn teardown() {
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!("ip link del tgwb0 2>/dev/null; ip netns del {NETNS} 2>/dev/null"),
            ])
            .status();
    }

    /// `program` run on the relay's side (CPU 0).
    fn relay_command(&self, program: &str) -> Command {
        let mut command = if self.netns {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", NETNS, "taskset", "-c", "0", program]);
            c
        } else {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", program]);
            c
        };
        command.stdin(Stdio::null());
        command
    }

    /// CPU seconds of the relay side's kernel threads (its receive work on a veth).
    fn relay_kernel_cpu(&self) -> f64 {
        self.relay_napi.iter().map(|&pid| cpu_seconds(pid)).sum()
    }

    fn gen_kernel_cpu(&self) -> f64 {
        self.gen_napi.iter().map(|&pid| cpu_seconds(pid)).sum()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.netns {
            Self::teardown();
        }
    }
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
    /// `bin`: this build's relay_server, or another's for an A/B (module doc).
    fn start(topology: &Topology, payload_map: bool, bin: &str) -> Server {
        let mut command = topology.relay_command(bin);
        command.args(["30000", "39999"]);
        if payload_map {
            command.env("RELAY_SERVER_PAYLOAD_MAP", "1");
        }
        if topology.netns {
            command.arg(topology.relay_ip.to_string());
        }
        let mut child = command
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
    Teamsgw(Server, Vec<u16>, Ipv4Addr),
    Rtpengine(Rtpengine),
}

impl Backend {
    fn pid(&self) -> u32 {
        match self {
            Backend::Teamsgw(s, _, _) => s.child.id(),
            Backend::Rtpengine(r) => r.child.id(),
        }
    }

    fn allocs(&mut self) -> Option<u64> {
        match self {
            Backend::Teamsgw(s, _, _) => Some(s.allocs()),
            Backend::Rtpengine(_) => None,
        }
    }

    fn setup(&mut self, call: usize, teams: SocketAddr, pbx: SocketAddr) -> CallConfig {
        match self {
            Backend::Teamsgw(server, ports, ip) => {
                assert_eq!(server.ask(&format!("apply {call} {teams} {pbx}")), "ok");
                CallConfig {
                    relay_teams: (*ip, ports[2 * call]).into(),
                    relay_pbx: (*ip, ports[2 * call + 1]).into(),
                    teams_tx_key: TEAMS_KEY,
                    teams_rx_key: RELAY_KEY,
                }
            }
            Backend::Rtpengine(r) => r.setup(call, teams, pbx),
        }
    }

    fn stop(self) {
        let mut child = match self {
            Backend::Teamsgw(s, _, _) => s.child,
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
    relay_ip: Ipv4Addr,
    gen_ip: Ipv4Addr,
}

impl Rtpengine {
    fn start(topology: &Topology) -> Option<Rtpengine> {
        let control = std::net::UdpSocket::bind((topology.gen_ip, 0)).ok()?;
        control
            .set_read_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        let ng: SocketAddr = (topology.relay_ip, 22223).into();
        let child = topology
            .relay_command("rtpengine")
            .args([
                "--foreground",
                "--log-stderr",
                "--log-level=4",
                "--table=-1",
                &format!("--interface={}", topology.relay_ip),
                &format!("--listen-ng={ng}"),
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
            relay_ip: topology.relay_ip,
            gen_ip: topology.gen_ip,
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
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key_b64}|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n",
            teams.port(),
            ip = self.gen_ip
        );
        let pbx_sdp = format!(
            "v=0\r\no=- 2 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
            pbx.port(),
            ip = self.gen_ip
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
            relay_teams: (self.relay_ip, teams_media.port).into(),
            relay_pbx: (
                self.relay_ip,
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
    /// Relay process CPU seconds, plus its side's NAPI thread on a veth.
    cpu: f64,
    /// Of `cpu`, the relay side's NAPI thread.
    napi: f64,
    allocs: Option<u64>,
    latencies: Vec<u64>,
    /// CPU seconds per second the generator used: near 1.0 means it, not the relay, is the limit.
    generator_load: f64,
    /// The measured interval (a saturated generator overruns the nominal one).
    elapsed: f64,
    /// Mean over the streams of their RFC 3550 jitter, microseconds.
    jitter_us: f64,
    /// Relay resident memory added per call, KiB.
    rss_per_call_kib: f64,
    /// Relay syscalls per second in the window after the measured one (None: no perf).
    syscalls_per_second: Option<f64>,
}

/// One call on the generator side.
struct GenCall {
    teams: mio::net::UdpSocket,
    pbx: mio::net::UdpSocket,
    protect: Context,
    unprotect: Context,
    seq: u16,
    ssrc: u32,
    /// Of what arrives on the Teams side and on the PBX side.
    teams_jitter: Jitter,
    pbx_jitter: Jitter,
}

/// Seconds of load after the measured window while `perf stat` counts the relay's syscalls.
const SYSCALL_WINDOW: u64 = 2;

/// Plays `calls` calls against the backend from one mio loop (the same design as the relay,
/// so the generator is not the first thing to saturate).
fn run(
    calls: usize,
    seconds: u64,
    rtpengine: bool,
    payload_map: bool,
    topology: &Topology,
    bin: &str,
    payload_type: u8,
) -> Window {
    // Memory is read once the relay is up and before any call exists.
    let (mut backend, rss_before) = if rtpengine {
        let r = Rtpengine::start(topology)
            .expect("rtpengine (Debian rtpengine-daemon) did not answer ping");
        let rss = rss_kib(r.child.id());
        (Backend::Rtpengine(r), rss)
    } else {
        let mut server = Server::start(topology, payload_map, bin);
        // A round trip: the server is up before its memory is read.
        server.allocs();
        let rss = rss_kib(server.child.id());
        let ports: Vec<u16> = server
            .ask(&format!("alloc {calls}"))
            .split_whitespace()
            .skip(1)
            .map(|p| p.parse().unwrap())
            .collect();
        (Backend::Teamsgw(server, ports, topology.relay_ip), rss)
    };
    let mut poll = mio::Poll::new().unwrap();
    let mut gen_calls = Vec::with_capacity(calls);
    for call in 0..calls {
        let teams = std::net::UdpSocket::bind((topology.gen_ip, 0)).unwrap();
        let pbx = std::net::UdpSocket::bind((topology.gen_ip, 0)).unwrap();
        teams.set_nonblocking(true).unwrap();
        pbx.set_nonblocking(true).unwrap();
        let cfg = backend.setup(call, teams.local_addr().unwrap(), pbx.local_addr().unwrap());
        // Connected: a cheaper send for the generator (it shares the machine with the relay),
        // and a check that the relay answers from the port it was sent to (symmetric RTP).
        teams.connect(cfg.relay_teams).unwrap();
        pbx.connect(cfg.relay_pbx).unwrap();
        let mut teams = mio::net::UdpSocket::from_std(teams);
        let mut pbx = mio::net::UdpSocket::from_std(pbx);
        poll.registry()
            .register(&mut teams, mio::Token(2 * call), mio::Interest::READABLE)
            .unwrap();
        poll.registry()
            .register(&mut pbx, mio::Token(2 * call + 1), mio::Interest::READABLE)
            .unwrap();
        gen_calls.push(GenCall {
            teams,
            pbx,
            protect: Context::new(
                Suite::AesCm128HmacSha1_80,
                &MasterKey::from_bytes(&cfg.teams_tx_key).unwrap(),
                None,
            ),
            unprotect: Context::new(
                Suite::AesCm128HmacSha1_80,
                &MasterKey::from_bytes(&cfg.teams_rx_key).unwrap(),
                None,
            ),
            seq: 0,
            ssrc: call as u32,
            teams_jitter: Jitter::default(),
            pbx_jitter: Jitter::default(),
        });
    }
    let pid = backend.pid();
    let epoch = Instant::now();
    let warmup_end = epoch + Duration::from_secs(2);
    let end = warmup_end + Duration::from_secs(seconds);
    let (mut perf, mut end_window) = (None, None);
    let (mut cpu0, mut allocs0, mut gen0, mut napi0) = (0.0, None, 0.0, 0.0);
    let mut measured_from = warmup_end;
    let mut measuring = false;
    let (mut sent, mut received, mut bad) = (0u64, 0u64, 0u64);
    let mut latencies = Vec::with_capacity(1 << 22);
    // Calls send in turn, spread evenly over the 20 ms packet interval.
    let spacing = Duration::from_nanos(20_000_000 / calls as u64);
    let (mut cursor, mut due) = (0usize, Instant::now());
    let mut events = mio::Events::with_capacity(4096);
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if !measuring && end_window.is_none() && now >= warmup_end {
            measuring = true;
            measured_from = now;
            napi0 = topology.relay_kernel_cpu();
            (cpu0, allocs0, gen0) = (
                cpu_seconds(pid) + napi0,
                backend.allocs(),
                cpu_seconds(std::process::id()) + topology.gen_kernel_cpu(),
            );
        }
        if now >= end && end_window.is_none() {
            end_window = Some(WindowEnd {
                napi: topology.relay_kernel_cpu(),
                cpu: cpu_seconds(pid),
                allocs: backend.allocs(),
                elapsed: measured_from.elapsed().as_secs_f64(),
                generator_cpu: cpu_seconds(std::process::id()) + topology.gen_kernel_cpu(),
                rss: rss_kib(pid),
            });
            measuring = false;
            perf = count_syscalls(pid, SYSCALL_WINDOW);
        }
        if end_window.is_some() {
            // Load goes on until perf has counted its window.
            match perf.as_mut().map(|p| p.try_wait()) {
                Some(Ok(None)) => {}
                _ => break,
            }
        }
        while due <= now {
            let c = &mut gen_calls[cursor];
            c.seq = c.seq.wrapping_add(1);
            let plain = packet(c.seq, 0x1000_0000 + c.ssrc, epoch, payload_type);
            buf[..172].copy_from_slice(&plain);
            let n = c.protect.protect_rtp(&mut buf, 172).unwrap();
            let _ = c.teams.send(&buf[..n]);
            let plain = packet(c.seq, 0x2000_0000 + c.ssrc, epoch, payload_type);
            let _ = c.pbx.send(&plain);
            if measuring {
                sent += 2;
            }
            cursor = (cursor + 1) % calls;
            due += spacing;
        }
        let _ = poll.poll(
            &mut events,
            Some(due.saturating_duration_since(Instant::now())),
        );
        for event in events.iter() {
            let (call, teams_side) = (event.token().0 / 2, event.token().0 % 2 == 0);
            let c = &mut gen_calls[call];
            loop {
                let r = if teams_side {
                    c.teams.recv_from(&mut buf)
                } else {
                    c.pbx.recv_from(&mut buf)
                };
                let Ok((n, _)) = r else { break };
                let checked = if teams_side {
                    c.unprotect
                        .unprotect_rtp(&mut buf, n)
                        .ok()
                        .and_then(|len| check(&buf[..len], epoch))
                } else {
                    check(&buf[..n], epoch)
                };
                if !measuring {
                    continue;
                }
                match checked {
                    Some(us) => {
                        received += 1;
                        latencies.push(us);
                        if teams_side {
                            c.teams_jitter.update(us);
                        } else {
                            c.pbx_jitter.update(us);
                        }
                    }
                    None => bad += 1,
                }
            }
        }
    }
    let w = end_window.expect("the loop ends after the measured window");
    let syscalls_per_second = perf.and_then(syscall_rate);
    backend.stop();
    assert_eq!(bad, 0, "packets failed the content check");
    assert!(received > 0, "no packet came back through the relay");
    // Loss is a figure of a real run (a saturated relay drops); a short run is far from that.
    assert!(
        !cfg!(debug_assertions) || received * 10 >= sent * 9,
        "only {received} of {sent} packets came back through the relay"
    );
    let streams = gen_calls
        .iter()
        .flat_map(|c| [&c.teams_jitter, &c.pbx_jitter])
        .map(|j| j.estimate);
    Window {
        forwarded: received,
        sent,
        cpu: w.cpu + w.napi - cpu0,
        napi: w.napi - napi0,
        // The `allocs` round trips themselves allocate a little; they are in the delta.
        allocs: w.allocs.zip(allocs0).map(|(a, b)| a - b),
        latencies,
        generator_load: (w.generator_cpu - gen0) / w.elapsed,
        elapsed: w.elapsed,
        jitter_us: streams.sum::<f64>() / (2 * calls) as f64,
        rss_per_call_kib: w.rss.saturating_sub(rss_before) as f64 / calls as f64,
        syscalls_per_second,
    }
}

/// Readings at the end of the measured window.
struct WindowEnd {
    napi: f64,
    cpu: f64,
    allocs: Option<u64>,
    elapsed: f64,
    generator_cpu: f64,
    rss: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    pin_self("1");
    let short = cfg!(debug_assertions);
    let calls: Vec<usize> = std::env::var("RELAY_LOAD_CALLS")
        .unwrap_or_else(|_| {
            if short {
                "20".into()
            } else {
                "100,250,500,1000,1500,2000".into()
            }
        })
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    let seconds: u64 = std::env::var("RELAY_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if short { 1 } else { 10 });
    let with_rtpengine = std::env::var("RELAY_LOAD_RTPENGINE").map_or(!short, |v| v != "0");
    let repeat: usize = std::env::var("RELAY_LOAD_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let topology = if std::env::var("RELAY_LOAD_NETNS").is_ok_and(|v| v == "1") {
        Topology::veth()
    } else {
        Topology::loopback()
    };
    println!(
        "relays pinned to CPU 0, generator on CPU 1; {seconds} s measured per run; {}",
        if topology.netns {
            "relay in netns teamsgw-bench behind a veth pair (threaded NAPI; `napi` = the relay side's NAPI thread, included in us/pkt)"
        } else {
            "loopback"
        }
    );
    let perf = Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !perf {
        println!("sys/pkt needs perf: apt-get install linux-perf (column left as -)");
    }
    println!(
        "{:>10} {:>6} {:>12} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9} {:>9} {:>10} {:>9}",
        "relay",
        "calls",
        "pkts fwd/s",
        "us/pkt",
        "napi",
        "loss %",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "jitter us",
        "allocs/pkt",
        "KiB/call",
        "sys/pkt",
        "relay load",
        "gen load"
    );
    for n in calls {
        let mut ratios: Vec<(&str, f64)> = Vec::new();
        for _ in 0..repeat {
            ratios.extend(compare(n, seconds, with_rtpengine, &topology));
        }
        for label in ["ratio", "vs base", "g722"] {
            let mut of: Vec<f64> = ratios
                .iter()
                .filter(|(l, _)| *l == label)
                .map(|&(_, r)| r)
                .collect();
            if of.len() > 1 {
                of.sort_by(f64::total_cmp);
                println!(
                    "{label:>10} {n:>6} median of {} comparable ratios = {:.3} (lowest {:.3}, highest {:.3})",
                    of.len(),
                    of[of.len() / 2],
                    of[0],
                    of[of.len() - 1]
                );
            }
        }
    }
}

/// One run of each relay at `n` calls; the ratios of CPU per forwarded packet (`ratio`:
/// teamsgw/rtpengine, `vs base`: teamsgw/baseline) when the point compares (module doc).
fn compare(
    n: usize,
    seconds: u64,
    with_rtpengine: bool,
    topology: &Topology,
) -> Vec<(&'static str, f64)> {
    let mut per_packet = Vec::new();
    let mut comparable = true;
    let with_pt_map =
        std::env::var("RELAY_LOAD_PAYLOAD_MAP").map_or(cfg!(debug_assertions), |v| v == "1");
    let mut pt_map_us = None;
    let with_g722 = std::env::var("RELAY_LOAD_G722").map_or(cfg!(debug_assertions), |v| v == "1");
    let mut g722_us = None;
    let baseline = std::env::var("RELAY_LOAD_BASELINE").ok();
    let mut baseline_us = None;
    let ours = env!("CARGO_BIN_EXE_relay_server").to_owned();
    let ours = std::env::var("RELAY_LOAD_SERVER").unwrap_or(ours);
    // (name, rtpengine, payload-type map, baseline build, payload type)
    for (name, rtpengine, map, base, payload_type) in [
        ("teamsgw", false, false, false, 0),
        ("g722", false, false, false, 9),
        ("baseline", false, false, true, 0),
        ("teamsgw+pt", false, true, false, 0),
        ("rtpengine", true, false, false, 0),
    ] {
        let g722 = payload_type == 9;
        if (rtpengine && !with_rtpengine)
            || (map && !with_pt_map)
            || (base && baseline.is_none())
            || (g722 && !with_g722)
        {
            continue;
        }
        let bin = match (&baseline, base) {
            (Some(b), true) => b,
            _ => &ours,
        };
        let mut w = run(n, seconds, rtpengine, map, topology, bin, payload_type);
        w.latencies.sort_unstable();
        let loss = 100.0 * (w.sent.saturating_sub(w.forwarded)) as f64 / w.sent.max(1) as f64;
        let us = w.cpu * 1e6 / w.forwarded.max(1) as f64;
        let napi_us = w.napi * 1e6 / w.forwarded.max(1) as f64;
        if map {
            pt_map_us = Some(us);
        } else if g722 {
            g722_us = Some(us);
        } else if base {
            baseline_us = Some(us);
        } else {
            per_packet.push(us);
        }
        let load = w.cpu / w.elapsed;
        let forwarded_per_second = w.forwarded as f64 / w.elapsed;
        let valid = if w.generator_load > 0.8 {
            comparable = false;
            "  (generator > 0.8: invalid, §4.7)"
        } else if loss > 0.1 || load >= 0.98 {
            comparable = false;
            "  (past the stopping point: loss > 0.1 % or CPU at 100 %, §4.3)"
        } else {
            ""
        };
        println!(
            "{name:>10} {n:>6} {:>12.0} {us:>10.2} {napi_us:>6.2} {loss:>9.3} {:>9} {:>9} {:>9} {:>9.0} {:>12} {:>9.1} {:>9} {:>10.2} {:>9.2}{valid}",
            forwarded_per_second,
            percentile(&w.latencies, 0.5),
            percentile(&w.latencies, 0.99),
            percentile(&w.latencies, 0.999),
            w.jitter_us,
            w.allocs.map_or("-".into(), |a| format!(
                "{:.4}",
                a as f64 / w.forwarded.max(1) as f64
            )),
            w.rss_per_call_kib,
            w.syscalls_per_second.map_or("-".into(), |r| format!(
                "{:.2}",
                r / forwarded_per_second.max(1.0)
            )),
            load,
            w.generator_load,
        );
    }
    if let (Some(&plain), Some(mapped)) = (per_packet.first(), pt_map_us) {
        println!(
            "{:>10} {n:>6} CPU per forwarded packet, payload-type rewrite / plain = {:.3}",
            "pt ratio",
            mapped / plain
        );
    }
    let note = if comparable { "" } else { "  (not comparable)" };
    let mut ratios = Vec::new();
    if let (Some(&plain), Some(g722)) = (per_packet.first(), g722_us) {
        println!(
            "{:>10} {n:>6} CPU per forwarded packet, G.722 / G.711 = {:.3}{note}",
            "g722",
            g722 / plain
        );
        ratios.push(("g722", g722 / plain));
    }
    if let (Some(&plain), Some(base)) = (per_packet.first(), baseline_us) {
        println!(
            "{:>10} {n:>6} CPU per forwarded packet, teamsgw/baseline = {:.3}{note}",
            "vs base",
            plain / base
        );
        ratios.push(("vs base", plain / base));
    }
    if let [ours, theirs] = per_packet[..] {
        println!(
            "{:>10} {n:>6} CPU per forwarded packet, teamsgw/rtpengine = {:.2}{note}",
            "ratio",
            ours / theirs
        );
        ratios.push(("ratio", ours / theirs));
    }
    if comparable { ratios } else { Vec::new() }
}
