//! Call rate through the real daemon (issue: calls, "Call rate"): sipp on the PBX side (UDP)
//! calls the Teams user's contact token; teamsgw rewrites the SDP, allocates a relay session
//! and sends the INVITE over one long-lived TLS connection (as Teams keeps one) to a scripted
//! Teams UAS that answers at once with SDES SDP; sipp hangs up after 1 s. The release daemon's
//! CPU (user + system, from /proc) over the run, divided by the calls, is its CPU per call;
//! `perf stat` (when installed) counts its syscalls in the same window.
//!
//! RFC 7501's session establishment rate is the highest rate of a step with no failed call.
//! The sipp generator and the Teams UAS run on the same 2 cores, so above their own limits the
//! figure says more about them than about teamsgw: the `load` column shows the daemon's CPU
//! share, and a step is marked when sipp failed calls.
//!
//! `cargo build --release -p teamsgw && cargo bench -p teamsgw-benches --bench call_rate`
//! (`CALL_RATES=50,100,200`, `CALLS_PER_STEP=1000`). Needs kamailio (the PBX registrar the
//! user registers at) and sipp.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::CallLab;
use teamsgw_tests::teams_proxy::reply;
use teamsgw_tests::{free_port, sipp};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
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
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let token = lab.contact_token();
    let pid = lab.daemon.pid();
    let perf = Command::new("perf").arg("--version").output().is_ok();
    println!("call_rate: {calls} calls per step, 1 s each, sipp (UDP) -> teamsgw -> TLS Teams UAS");
    println!(
        "{:>6} {:>8} {:>8} {:>12} {:>10} {:>8}",
        "cps", "ok", "failed", "us CPU/call", "sys/call", "load"
    );
    for rate in rates {
        let limit = (rate * 3).to_string();
        let rate_s = rate.to_string();
        let perf_out = std::env::temp_dir().join(format!("call_rate_perf_{rate}.txt"));
        let perf_child = perf.then(|| {
            Command::new("perf")
                .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-o"])
                .arg(&perf_out)
                .args(["-p", &pid.to_string()])
                .spawn()
                .ok()
        });
        let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
        let (code, out) = sipp(
            "uac_call_hold_1s.xml",
            lab.ports.sip_addr(),
            "u1",
            calls,
            &["-s", &token, "-r", &rate_s, "-l", &limit],
        );
        // Let the last BYEs and CDR writes finish inside the window.
        std::thread::sleep(Duration::from_millis(500));
        let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
        let syscalls = perf_child.flatten().and_then(|mut c| {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
            let text = std::fs::read_to_string(&perf_out).ok()?;
            text.lines()
                .find(|l| l.contains("raw_syscalls"))
                .and_then(|l| l.split(',').next()?.parse::<f64>().ok())
        });
        let ok = stat(&out, "Successful call");
        let failed = stat(&out, "Failed call");
        let per_call = |v: f64| if ok > 0.0 { v / ok } else { f64::NAN };
        println!(
            "{rate:>6} {ok:>8} {failed:>8} {:>12.1} {:>10} {:>8.2}{}",
            per_call(cpu) * 1e6,
            syscalls.map_or("-".to_owned(), |s| format!("{:.1}", per_call(s))),
            cpu / wall,
            if code != 0 || failed > 0.0 {
                "  (calls failed)"
            } else {
                ""
            }
        );
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
