//! A real Kamailio registrar for tests (Debian package `kamailio`), configured from
//! `tests/kamailio/registrar.cfg` on loopback ports of the test's choosing. Killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{fixture, free_tcp_udp_port, require_program};

pub struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
    defines: Vec<String>,
}

impl Kamailio {
    /// Starts Kamailio; `defines` are `-A` config defines such as `ALGORITHM_SHA256`.
    pub fn start(defines: &[&str]) -> Kamailio {
        Self::start_config("kamailio/registrar.cfg", defines)
    }

    /// Starts Kamailio with a config from `tests/` (`kamailio/pbx.cfg`: the hosted PBX).
    pub fn start_config(config: &str, defines: &[&str]) -> Kamailio {
        Self::start_file(&fixture(config), &[], defines)
    }

    /// Starts Kamailio with the config at `path`. Besides LISTEN_UDP, LISTEN_TCP (a free port
    /// of its own on 127.0.0.1) and CTL_SOCKET, each `(placeholder, value)` is substituted.
    pub fn start_file(path: &Path, substitutions: &[(&str, String)], defines: &[&str]) -> Kamailio {
        require_program("kamailio", "kamailio");
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_udp_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let template = std::fs::read_to_string(path).unwrap();
        let ctl = dir.path().join("ctl.sock");
        let mut cfg = template
            .replace("LISTEN_UDP", &format!("udp:{addr}"))
            .replace("LISTEN_TCP", &format!("tcp:{addr}"))
            .replace("CTL_SOCKET", &format!("unix:{}", ctl.display()));
        for (placeholder, value) in substitutions {
            cfg = cfg.replace(placeholder, value);
        }
        std::fs::write(dir.path().join("registrar.cfg"), cfg).unwrap();
        let defines: Vec<String> = defines.iter().map(|d| (*d).to_owned()).collect();
        let child = Self::spawn(dir.path(), &defines);
        let k = Kamailio {
            child,
            dir,
            addr,
            defines,
        };
        k.wait_started();
        k
    }

    /// The main process and its workers (one process group): for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        let group = self.child.id();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 5 (pgrp) comes after the command name, which may hold spaces.
            let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
            if rest.split_whitespace().nth(2) == Some(group.to_string().as_str()) {
                pids.push(pid);
            }
        }
        pids
    }

    fn spawn(dir: &Path, defines: &[String]) -> Child {
        let _ = std::fs::remove_file(dir.join("ctl.sock"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("kamailio.log"))
            .unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(dir.join("registrar.cfg"))
            .args(["-DD", "-E", "-Y"])
            .arg(dir);
        cmd.arg("-P").arg(dir.join("kamailio.pid"));
        // Own process group: kamailio forks workers that survive a SIGKILL
        // of the main process, so teardown signals the whole group.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        for d in defines {
            cmd.args(["-A", d]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn wait_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.ctl_socket().exists() || self.kamcmd(&["core.version"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "kamailio did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a stopped instance again on the same address (its bindings are gone: they
    /// live in memory, as on a PBX that restarted).
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.dir.path(), &self.defines);
        self.wait_started();
    }

    fn ctl_socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// How often `line` appears in the log once it appears `n` times, or after 5 s: the
    /// daemon counts a call ended when its BYE leaves, a moment before Kamailio logs it.
    pub fn wait_log_count(&self, line: &str, n: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let count = self.log().matches(line).count();
            if count >= n || std::time::Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs a kamcmd RPC against this instance.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl_socket().display()))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The registrar's location table (`ul.dump`).
    pub fn bindings(&self) -> String {
        self.kamcmd(&["ul.dump"]).unwrap_or_default()
    }

    /// Stops the process and its workers (SIGTERM, then SIGKILL for
    /// stragglers); `start` again for a new instance.
    pub fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}
