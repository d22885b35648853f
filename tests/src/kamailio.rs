//! A real Kamailio registrar for tests (Debian package `kamailio`), configured from
//! `tests/kamailio/registrar.cfg` on loopback ports of the test's choosing. Killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{fixture, free_tcp_udp_port, require_program};

pub struct Kamailio {
    child: Child,
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Kamailio {
    /// Starts Kamailio; `defines` are `-A` config defines such as `ALGORITHM_SHA256`.
    pub fn start(defines: &[&str]) -> Kamailio {
        require_program("kamailio", "kamailio");
        let dir = tempfile::tempdir().unwrap();
        let port = free_tcp_udp_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let template = std::fs::read_to_string(fixture("kamailio/registrar.cfg")).unwrap();
        let ctl = dir.path().join("ctl.sock");
        let cfg = template
            .replace("LISTEN_UDP", &format!("udp:{addr}"))
            .replace("LISTEN_TCP", &format!("tcp:{addr}"))
            .replace("CTL_SOCKET", &format!("unix:{}", ctl.display()));
        let cfg_path = dir.path().join("registrar.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-Y"])
            .arg(dir.path());
        cmd.arg("-P").arg(dir.path().join("kamailio.pid"));
        // Own process group: kamailio forks workers that survive a SIGKILL
        // of the main process, so teardown signals the whole group.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        for d in defines {
            cmd.args(["-A", d]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let k = Kamailio { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !k.ctl_socket().exists() || k.kamcmd(&["core.version"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "kamailio did not start:\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        k
    }

    fn ctl_socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
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
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
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
