//! Call rate through the real daemon, and through Kamailio + rtpengine in the same run (issue:
//! calls, "Call rate" and "Side by side"). sipp on the PBX side (UDP) places calls for the
//! Teams user; the SBC rewrites the SDP (RTP/AVP -> RTP/SAVP with SDES and rtcp-mux), sets up
//! a relay session and sends the INVITE over one long-lived mutual-TLS connection (as Teams
//! keeps one) to our scripted Teams UAS, which answers at once with SDES SDP; sipp hangs up
//! after 1 s. An SBC's CPU (user + system of all its processes, from /proc) over a step,
//! divided by the calls, is its CPU per call; `perf stat` (when installed) counts syscalls.
//!
//! The two SBCs, each with its own Teams UAS (the same code, certificate and script):
//! - teamsgw, the release build, with the user registered at a Kamailio PBX (CallLab);
//! - Kamailio 5.6 with tls and rtpengine modules plus Debian's rtpengine 10.5 (userspace,
//!   two threads): `benches/kamailio/teams_sbc.cfg`, dSIPRouter's Teams recipe.
//!
//! RFC 7501's session establishment rate is the highest rate of a step with no failed call.
//! sipp, the Teams UAS and the SBC share 2 cores, so the `load` column shows the SBC's CPU
//! share, and a step where sipp failed calls is marked.
//!
//! `cargo build --release -p teamsgw && cargo bench -p teamsgw-benches --bench call_rate`
//! (`CALL_RATES=50,100,200`, `CALLS_PER_STEP=1000`, `CALL_RATE_KAMAILIO=0` for teamsgw only).
//! Needs kamailio (+ kamailio-tls-modules), rtpengine-daemon and sipp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::kamailio::Kamailio;
use teamsgw_tests::teams_proxy::{TeamsProxy, reply};
use teamsgw_tests::{free_port, free_tcp_udp_port, require_program, sipp};

/// User + system CPU, in seconds, of the process or thread whose `stat` file this is (0 when
/// it is gone).
fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds by thread name over all threads of `pids` (where the time goes).
fn cpu_by_thread(pids: &[u32]) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let cpu = cpu_seconds(&path.join("stat").to_string_lossy());
            *by_name.entry(name.trim().to_owned()).or_insert(0.0) += cpu;
        }
    }
    by_name
}

/// An SBC under load: where sipp sends, the Request-URI user, and its processes.
#[derive(Clone)]
struct Sbc {
    name: &'static str,
    target: SocketAddr,
    service: String,
    pids: Vec<u32>,
    /// Cores it uses with no call (timers, OPTIONS, registrations), measured before the steps.
    idle: f64,
}

impl Sbc {
    fn cpu(&self) -> f64 {
        self.pids
            .iter()
            .map(|p| cpu_seconds(&format!("/proc/{p}/stat")))
            .sum()
    }

    fn measure_idle(&mut self) {
        let (cpu0, t0) = (self.cpu(), Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        self.idle = (self.cpu() - cpu0) / t0.elapsed().as_secs_f64();
    }
}

/// Kamailio as the Teams SBC with rtpengine behind it, and its own Teams UAS.
struct KamailioSbc {
    kamailio: Kamailio,
    rtpengine: Child,
    _teams: TeamsProxy,
    _dir: tempfile::TempDir,
}

impl KamailioSbc {
    fn start(lab: &CallLab) -> KamailioSbc {
        require_program("rtpengine", "rtpengine-daemon");
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists(),
            "Kamailio's tls module is missing: apt-get install kamailio-tls-modules"
        );
        let dir = tempfile::tempdir().unwrap();
        let teams_port = free_port();
        let teams = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], teams_port)));
        teams.set_script(vec![reply(200, "p", true)]);
        let ng = SocketAddr::from(([127, 0, 0, 1], free_tcp_udp_port()));
        let rtpengine = Command::new("rtpengine")
            .args([
                "--foreground",
                "--log-stderr",
                "--log-level=3",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng={ng}"),
                "--port-min=50000",
                "--port-max=59999",
                "--num-threads=2",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rtpengine");
        let leaf = lab.ca.leaf("kamailio-sbc", &["sbc.test", "*.sbc.test"]);
        let tls_cfg = dir.path().join("tls.cfg");
        let profile = |kind: &str| {
            format!(
                "[{kind}:default]\nmethod = TLSv1.2+\nverify_certificate = yes\n\
                 require_certificate = yes\nprivate_key = {}\ncertificate = {}\nca_list = {}\n\n",
                leaf.key.display(),
                leaf.cert.display(),
                lab.ca.ca_path().display()
            )
        };
        std::fs::write(&tls_cfg, profile("server") + &profile("client")).unwrap();
        let tls_port = free_tcp_udp_port();
        let kamailio = Kamailio::start_file(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("kamailio/teams_sbc.cfg"),
            &[
                ("LISTEN_TLS", format!("tls:127.0.0.1:{tls_port}")),
                ("TLS_CONFIG", tls_cfg.display().to_string()),
                ("RTPENGINE_SOCKET", format!("udp:{ng}")),
                ("TEAMS_NUMBER", TEAMS_NUMBER.to_owned()),
                ("TEAMS_NEXT_HOP", format!("127.0.0.2:{teams_port}")),
                ("SBC_CONTACT", format!("{TENANT}:{tls_port}")),
            ],
            &[],
        );
        KamailioSbc {
            kamailio,
            rtpengine,
            _teams: teams,
            _dir: dir,
        }
    }

    fn sbc(&self) -> Sbc {
        let mut pids = self.kamailio.pids();
        pids.push(self.rtpengine.id());
        Sbc {
            name: "kamailio+rtpengine",
            target: self.kamailio.addr,
            service: "teams".to_owned(),
            pids,
            idle: 0.0,
        }
    }
}

impl Drop for KamailioSbc {
    fn drop(&mut self) {
        let _ = self.rtpengine.kill();
        let _ = self.rtpengine.wait();
    }
}

/// What one step measured.
struct Step {
    ok: f64,
    failed: f64,
    /// sipp itself exited with an error (a timeout, a dead call).
    sipp_failed: bool,
    cpu: f64,
    /// Syscalls and context switches, counted by perf.
    syscalls: Option<(f64, f64)>,
    wall: f64,
    /// CPU seconds by thread name.
    threads: Vec<(String, f64)>,
}

fn step(sbc: &Sbc, rate: u32, calls: u32) -> Step {
    let perf = Command::new("perf").arg("--version").output().is_ok();
    let perf_out = std::env::temp_dir().join(format!("call_rate_perf_{rate}_{}.txt", sbc.name));
    let pid_list: Vec<String> = sbc.pids.iter().map(u32::to_string).collect();
    let perf_child = perf.then(|| {
        Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "raw_syscalls:sys_enter,context-switches",
                "-o",
            ])
            .arg(&perf_out)
            .args(["-p", &pid_list.join(",")])
            .spawn()
            .ok()
    });
    let (cpu0, t0) = (sbc.cpu(), Instant::now());
    let threads0 = cpu_by_thread(&sbc.pids);
    let (limit, rate_s) = ((rate * 3).to_string(), rate.to_string());
    let (code, out) = sipp(
        "uac_call_hold_1s.xml",
        sbc.target,
        "u1",
        calls,
        &["-s", &sbc.service, "-r", &rate_s, "-l", &limit],
    );
    // Let the last BYEs (and teamsgw's CDR writes) finish inside the window.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu, wall) = (sbc.cpu() - cpu0, t0.elapsed().as_secs_f64());
    let threads: Vec<(String, f64)> = cpu_by_thread(&sbc.pids)
        .into_iter()
        .map(|(name, c)| {
            let before = threads0.get(&name).copied().unwrap_or(0.0);
            (name, c - before)
        })
        .filter(|(_, c)| *c > 0.0)
        .collect();
    let syscalls = perf_child.flatten().and_then(|mut c| {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
        let text = std::fs::read_to_string(&perf_out).ok()?;
        let count = |event: &str| {
            text.lines()
                .find(|l| l.contains(event))
                .and_then(|l| l.split(',').next()?.parse::<f64>().ok())
        };
        Some((count("raw_syscalls")?, count("context-switches")?))
    });
    Step {
        ok: stat(&out, "Successful call"),
        failed: stat(&out, "Failed call"),
        sipp_failed: code != 0,
        cpu,
        syscalls,
        wall,
        threads,
    }
}

fn main() {
    let rates: Vec<u32> = std::env::var("CALL_RATES")
        .unwrap_or_else(|_| "50,100,200".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let calls: u32 = std::env::var("CALLS_PER_STEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let with_kamailio = std::env::var("CALL_RATE_KAMAILIO").map_or(true, |v| v != "0");
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let teamsgw = Sbc {
        name: "teamsgw",
        target: lab.ports.sip_addr(),
        service: lab.contact_token(),
        pids: vec![lab.daemon.pid()],
        idle: 0.0,
    };
    let kamailio = with_kamailio.then(|| KamailioSbc::start(&lab));
    let mut systems: Vec<Sbc> = std::iter::once(teamsgw)
        .chain(kamailio.iter().map(KamailioSbc::sbc))
        .collect();
    println!("call_rate: {calls} calls per step, 1 s each, sipp (UDP) -> SBC -> TLS Teams UAS");
    for sbc in &mut systems {
        sbc.measure_idle();
        println!("{:>20} idle: {:.4} cores", sbc.name, sbc.idle);
    }
    // `CPU/call` is all the SBC's CPU in the step over its calls; `net/call` first takes off
    // what it burns idle over the same time, so the fixed cost does not dominate low rates.
    println!(
        "{:>20} {:>6} {:>8} {:>8} {:>12} {:>12} {:>10} {:>10} {:>6}",
        "sbc", "cps", "ok", "failed", "us CPU/call", "us net/call", "sys/call", "cs/call", "load"
    );
    for rate in rates {
        let mut per_call = Vec::new();
        for sbc in &systems {
            let s = step(sbc, rate, calls);
            let per = |v: f64| if s.ok > 0.0 { v / s.ok } else { f64::NAN };
            let net = per(s.cpu - sbc.idle * s.wall);
            per_call.push((per(s.cpu), net));
            println!(
                "{:>20} {rate:>6} {:>8} {:>8} {:>12.1} {:>12.1} {:>10} {:>10} {:>6.2}{}",
                sbc.name,
                s.ok,
                s.failed,
                per(s.cpu) * 1e6,
                net * 1e6,
                s.syscalls
                    .map_or("-".to_owned(), |(n, _)| format!("{:.1}", per(n))),
                s.syscalls
                    .map_or("-".to_owned(), |(_, n)| format!("{:.1}", per(n))),
                s.cpu / s.wall,
                if s.failed > 0.0 || s.sipp_failed {
                    "  (calls failed)"
                } else {
                    ""
                }
            );
            let threads: Vec<String> = s
                .threads
                .iter()
                .map(|(name, c)| format!("{name} {:.0}", per(*c) * 1e6))
                .collect();
            println!("{:>20} us/call by thread: {}", "", threads.join(", "));
            if (s.failed > 0.0 || s.sipp_failed)
                && let Some(k) = kamailio.as_ref().filter(|_| sbc.name != "teamsgw")
            {
                let log = k.kamailio.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("kamailio's log ends:\n{}", tail.join("\n"));
            }
        }
        if let [(ours, ours_net), (theirs, theirs_net)] = per_call[..] {
            println!(
                "{:>20} {rate:>6} teamsgw / kamailio+rtpengine: CPU per call {:.2}, net {:.2}",
                "ratio",
                ours / theirs,
                ours_net / theirs_net
            );
        }
    }
}

/// A cumulative counter from sipp's final statistics screen.
fn stat(out: &str, name: &str) -> f64 {
    out.lines()
        .filter(|l| l.trim_start().starts_with(name))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse::<f64>().ok())
        .next_back()
        .unwrap_or(0.0)
}
