//! A throwaway PostgreSQL cluster for tests (Debian's PostgreSQL 15 binaries, run as the
//! `postgres` user): initdb in a scratch directory, a loopback port of its own, fsync off.
//! Stopped and removed on drop; `stop`/`start` simulate a database outage.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// `postgres://` URL of the `teamsgw` database.
    pub url: String,
}

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{BIN}/{program}")])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("runuser {program}: {e}"))
}

/// Why this machine cannot run the throwaway cluster, with what to do about it.
fn missing_prerequisite() -> Option<String> {
    if !std::path::Path::new(&format!("{BIN}/initdb")).exists() {
        return Some(format!(
            "PostgreSQL 15 not found in {BIN}: `apt-get install postgresql-15` \
             (scripts/test.sh, the README's test command, installs it)"
        ));
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some(
            "the PostgreSQL tests start the server as the `postgres` user with runuser, which \
             needs root: run the test command as root (CI does) or under `sudo -E`"
                .to_owned(),
        );
    }
    let user = Command::new("id").arg("postgres").output().ok()?;
    if !user.status.success() {
        return Some(
            "no `postgres` user: reinstall Debian's postgresql-15 package, which creates it"
                .to_owned(),
        );
    }
    None
}

impl Postgres {
    pub fn start() -> Postgres {
        if let Some(why) = missing_prerequisite() {
            panic!("cannot start a throwaway PostgreSQL: {why}");
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "chown for the postgres user (tests run as root)"
        );
        let data = dir.path().join("data");
        let out = as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut pg = Postgres {
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/teamsgw"),
            dir,
        };
        pg.start_server();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE teamsgw",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.url = format!("postgres://postgres@127.0.0.1:{}/teamsgw", pg.port);
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "postgres did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown): a database outage.
    pub fn stop(&self) {
        let _ = as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts it again on the same port after [`Postgres::stop`].
    pub fn restart(&self) {
        self.start_server();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
