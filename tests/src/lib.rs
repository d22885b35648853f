//! Harness for end-to-end tests: runs the real `teamsgw` binary in a scratch directory with a
//! config on ephemeral loopback ports, and talks to it the way ops tools do (HTTP, signals).
//!
//! The binary is the one cargo built next to the test executable (`cargo build -p teamsgw`
//! first; the README's test command does), or `TEAMSGW_BIN` when set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod baresip;
pub mod call_lab;
pub mod dns;
pub mod kamailio;
pub mod postgres;
pub mod seeds;
pub mod teams_media;
pub mod teams_proxy;
pub mod teams_uac;
pub mod ua;
pub mod web;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Path of the `teamsgw` binary under test.
pub fn teamsgw_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TEAMSGW_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<test-exe> -> target/<profile>/teamsgw
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("teamsgw"))
        .expect("test executable has no parent directory");
    assert!(
        bin.is_file(),
        "{} not found: build the daemon first with `cargo build -p teamsgw` \
         (scripts/test.sh does), or set TEAMSGW_BIN",
        bin.display()
    );
    bin
}

/// Ports handed out by [`free_port`] so far in this process.
static HANDED_OUT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A loopback TCP port that was free a moment ago, from 20000-29999: below the kernel's
/// ephemeral range (32768-60999 on Linux), so no outgoing connection's source port can take it
/// between this call and the bind, and never the same one twice in a process (tests run in
/// parallel; a port from `bind(0)` was seen taken by another test's connection in between).
pub fn free_port() -> u16 {
    let start = std::process::id() % 10_000;
    loop {
        let n = HANDED_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + ((start + n * 7) % 10_000) as u16;
        // Free for both, as relay ports (UDP) share the range with listeners (TCP).
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// A loopback port free for both TCP and UDP (the PBX listeners share one port number).
pub fn free_tcp_udp_port() -> u16 {
    free_port()
}

/// The ports one test daemon listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub admin: u16,
    /// PBX side, UDP and TCP.
    pub sip: u16,
    /// Teams side, TLS.
    pub tls: u16,
}

impl Ports {
    pub fn new() -> Self {
        Self {
            admin: free_port(),
            sip: free_tcp_udp_port(),
            tls: free_port(),
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip))
    }
}

impl Default for Ports {
    fn default() -> Self {
        Self::new()
    }
}

/// A config for tests: ephemeral loopback ports, SQLite in the scratch dir, JSON logs, the
/// Teams listener open to loopback. No OPTIONS to Teams proxies and no user registrations
/// (test data names PBXs nobody should resolve); tests of those switch them on.
/// `extra` must not repeat these sections.
pub fn test_config(ports: &Ports, extra: &str) -> String {
    format!(
        "[daemon]\ndrain_seconds = 2\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n\n[database]\nurl = \"sqlite://var/teamsgw.db\"\n\n\
         [teams]\nlisten = \"127.0.0.1:{tls}\"\nallowed_sources = [\"127.0.0.0/8\"]\nproxies = []\n\n\
         [pbx]\nlisten_udp = \"127.0.0.1:{sip}\"\nlisten_tcp = \"127.0.0.1:{sip}\"\n\
         register_users = false\n\n{extra}",
        admin = ports.admin,
        sip = ports.sip,
        tls = ports.tls,
    )
}

/// A running daemon in its own scratch directory; killed on drop.
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    pub admin: SocketAddr,
}

impl Daemon {
    /// Starts `teamsgw run --config teamsgw.toml` in a new scratch directory.
    pub fn start(config: &str, ports: &Ports) -> Self {
        Self::start_with_env(config, ports, &[])
    }

    /// Like [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(config: &str, ports: &Ports, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("teamsgw.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("teamsgw.log")).unwrap();
        let child = Command::new(teamsgw_binary())
            .args(["run", "--config", "teamsgw.toml"])
            .current_dir(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            dir,
            admin: SocketAddr::from(([127, 0, 0, 1], ports.admin)),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("teamsgw.toml")
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("teamsgw.log")).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200; panics with the log after `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("teamsgw exited early with {status}:\n{}", self.log());
            }
            if let Ok((200, _)) = http_get(self.admin, "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "teamsgw not ready after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log()))
    }

    /// The value of one metric sample line (`name{labels}` exactly as exposed). A sample that
    /// is not exposed fails the test, naming what its family does expose: a renamed or dropped
    /// metric must never read as 0.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        parse_metric(&body, sample).unwrap_or_else(|| panic!("{}", not_exposed(&body, sample)))
    }

    /// The value of a sample that may not be exposed yet (a labelled series appears with its
    /// first event), for conditions that wait for it. `None` is never a number: compare with
    /// `Some(..)`, so a sample that never appears fails the wait.
    pub fn metric_if_exposed(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        parse_metric(&body, sample)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGHUP, and waits until the daemon has counted a good snapshot reload since: what the
    /// CLI changed on SQLite is then what the daemon serves.
    pub fn reload(&self) {
        let reloads = "teamsgw_snapshot_reloads_total{result=\"ok\"}";
        let before = self.metric(reloads);
        self.signal("HUP");
        self.wait_for(Duration::from_secs(10), "a snapshot reload", || {
            self.metric(reloads) > before
        });
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit, returning its status and how long that took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "teamsgw still running after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn parse_metric(exposition: &str, sample: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(sample)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Why `sample` is missing from `exposition`: the samples its family does expose, or that the
/// family is not exposed at all.
fn not_exposed(exposition: &str, sample: &str) -> String {
    let family = sample.split('{').next().unwrap_or(sample);
    let present: Vec<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .collect();
    if present.is_empty() {
        format!("metric {sample} is not exposed: no sample of {family} at all")
    } else {
        format!(
            "metric {sample} is not exposed; {family} has:\n{}",
            present.join("\n")
        )
    }
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP response as the tests see it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", self.body))
    }
}

/// A minimal HTTP/1.1 request with an optional bearer token and JSON body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {response:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Runs the binary with `args` in `dir`; returns (exit code, stdout, stderr).
pub fn run_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(teamsgw_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Path of a file under `tests/` (scenario files, fixtures).
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Fails with the install hint when a peer program is missing; never skips.
pub fn require_program(program: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} not found: install the Debian package {debian_package} \
         (apt-get install {debian_package}; scripts/test.sh installs it)"
    );
}

/// Runs a sipp scenario from `tests/sipp/` against `target`; returns (exit code, output).
pub fn sipp(
    scenario: &str,
    target: SocketAddr,
    transport: &str,
    calls: u32,
    extra: &[&str],
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    sipp_in(
        dir.path(),
        free_tcp_udp_port(),
        scenario,
        target,
        transport,
        calls,
        extra,
    )
}

/// [`sipp`] from SIP port `local_port`, in `dir` (where relative paths in the scenario, such
/// as a `play_pcap_audio` file the test wrote, are found).
pub fn sipp_in(
    dir: &Path,
    local_port: u16,
    scenario: &str,
    target: SocketAddr,
    transport: &str,
    calls: u32,
    extra: &[&str],
) -> (i32, String) {
    require_program("sipp", "sip-tester");
    let local_port = local_port.to_string();
    let scenario = fixture(&format!("sipp/{scenario}"));
    let calls = calls.to_string();
    let mut args = vec![
        "-sf",
        scenario.to_str().unwrap(),
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-p",
        &local_port,
        "-m",
        &calls,
        "-r",
        "200",
        "-l",
        "50",
        "-timeout",
        "60s",
        "-timeout_error",
        "-recv_timeout",
        "10000",
        "-nostdin",
        "-trace_err",
    ];
    args.extend_from_slice(extra);
    let target = target.to_string();
    args.push(&target);
    let out = Command::new("sipp")
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with("_errors.log") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    (out.status.code().unwrap_or(-1), text)
}

/// The first `seconds` of a pcap file's packets (libpcap format: a 24-byte file header, then
/// per packet a 16-byte record header whose bytes 8..12 give the captured length), for sipp's
/// `play_pcap_audio`: a phone that speaks that long and then falls silent.
pub fn pcap_prefix(pcap: &[u8], seconds: f64) -> Vec<u8> {
    let word = |at: usize| u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap());
    let mut end = 24;
    let mut first = None;
    while end + 16 <= pcap.len() {
        let at = f64::from(word(end)) + f64::from(word(end + 4)) / 1e6;
        if at - *first.get_or_insert(at) >= seconds {
            break;
        }
        end += 16 + word(end + 8) as usize;
    }
    pcap[..end.min(pcap.len())].to_vec()
}
