//! The daemon as ops see it: readiness, metrics, SIGHUP reloads, SIGTERM drain, check-config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::{Daemon, Ports, free_port, run_cli, test_config};

const START: Duration = Duration::from_secs(20);

#[test]
fn serves_metrics_reloads_on_sighup_and_drains_on_sigterm() {
    let ports = Ports::new();
    // A long drain limit, so an exit that waited for it stands out from a slow machine.
    let config = test_config(&ports, "").replace("drain_seconds = 2", "drain_seconds = 60");
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(START);

    // Scrape: build info carries the crate version.
    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let version = env!("CARGO_PKG_VERSION");
    let build_info = body
        .lines()
        .find(|l| l.starts_with("teamsgw_build_info{"))
        .unwrap_or_else(|| panic!("no teamsgw_build_info in:\n{body}"));
    assert!(
        build_info.contains(&format!("version=\"{version}\"")),
        "{build_info}"
    );
    assert!(build_info.ends_with(" 1"), "{build_info}");
    assert!(body.contains("teamsgw_uptime_seconds "));
    assert!(body.contains("process_resident_memory_bytes "));
    // The media relay is up on the configured range (20000..=29999: 5,000 RTP/RTCP pairs).
    assert!(body.contains("\nteamsgw_media_ports_free 5000\n"), "{body}");
    assert!(body.contains("\nteamsgw_media_sessions_active 0\n"));
    let (status, body) = daemon.get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));

    // A dev certificate and the SQLite file were created in the (empty) state directory.
    assert!(daemon.dir().join("var/dev-cert.pem").is_file());
    assert!(daemon.dir().join("var/teamsgw.db").is_file());

    // An invalid config on SIGHUP changes nothing and is counted as an error.
    let good = std::fs::read_to_string(daemon.config_path()).unwrap();
    std::fs::write(
        daemon.config_path(),
        good.replace("level = \"info\"", "level = \"info\"\nlevl = \"debug\""),
    )
    .unwrap();
    daemon.signal("HUP");
    let errors = "teamsgw_config_reloads_total{result=\"error\"}";
    daemon.wait_for(Duration::from_secs(10), "reload error counted", || {
        daemon.metric_if_exposed(errors) == Some(1.0)
    });
    assert_eq!(
        daemon.metric("teamsgw_config_reloads_total{result=\"ok\"}"),
        0.0
    );
    assert!(
        daemon.log().contains("log.levl"),
        "the bad key is logged by path"
    );
    assert_eq!(
        daemon.get("/readyz").0,
        200,
        "still serving after a bad reload"
    );
    assert!(!daemon.log().contains("\"level\":\"DEBUG\""));

    // A valid change applies live: debug logging appears without a restart.
    std::fs::write(
        daemon.config_path(),
        good.replace("level = \"info\"", "level = \"debug\""),
    )
    .unwrap();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(10), "reload ok counted", || {
        daemon.metric_if_exposed("teamsgw_config_reloads_total{result=\"ok\"}") == Some(1.0)
    });
    assert_eq!(daemon.metric(errors), 1.0);
    daemon.get("/healthz");
    daemon.wait_for(Duration::from_secs(5), "debug log lines", || {
        daemon.log().contains("\"level\":\"DEBUG\"")
    });

    // SIGTERM with nothing in flight: exit 0 as soon as the drain finds nothing to wait for,
    // not at the drain limit (60 s); a quarter of it leaves a busy machine room.
    daemon.signal("TERM");
    let (status, took) = daemon.wait_exit(Duration::from_secs(90));
    assert!(status.success(), "exit status {status}:\n{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("teamsgw stopped"), "{log}");
    assert!(!log.contains("drain limit reached"), "{log}");
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: the drain waited for its limit with nothing in flight"
    );
}

#[test]
fn readyz_is_503_with_reason_until_the_database_is_reachable() {
    let ports = Ports::new();
    // Nothing listens on this port: the database is unreachable.
    let db_port = free_port();
    let config = test_config(&ports, "").replace(
        "sqlite://var/teamsgw.db",
        &format!("postgres://teamsgw@127.0.0.1:{db_port}/teamsgw?connect_timeout=1"),
    );
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_for(START, "admin listener", || {
        teamsgw_tests::http_get(daemon.admin, "/healthz").is_ok()
    });
    daemon.wait_for(START, "a failed snapshot load", || {
        daemon.metric_if_exposed("teamsgw_snapshot_reloads_total{result=\"error\"}") >= Some(1.0)
    });
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("provisioning snapshot not loaded"),
        "{reason}"
    );
    assert_eq!(daemon.get("/healthz").0, 200, "alive while not ready");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).0.success());
    let _ = &mut daemon;
}

#[test]
fn check_config_lists_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"127.0.0.1:notaport\"\n\n[log]\nlevel = \"info\"\nformt = \"json\"\n",
    )
    .unwrap();
    let (code, _out, err) = run_cli(dir.path(), &["check-config", "--config", "bad.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("admin.listen:"), "{err}");
    assert!(err.contains("log.formt:"), "{err}");
    assert!(err.contains("unknown key"), "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, test_config(&Ports::new(), "")).unwrap();
    let (code, out, err) = run_cli(dir.path(), &["check-config", "--config", "good.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");

    // The same rules apply to `run`: it refuses to start on a bad file.
    let (code, _, err) = run_cli(dir.path(), &["run", "--config", "bad.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("admin.listen:"), "{err}");
}

#[test]
fn check_config_names_a_broken_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
    let config = test_config(
        &Ports::new(),
        "[tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n",
    );
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let (code, _, err) = run_cli(dir.path(), &["check-config", "--config", "c.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("tls.certificate:") && err.contains("cert.pem"),
        "{err}"
    );
}

#[test]
fn version_names_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_cli(dir.path(), &["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("teamsgw {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn systemd_notifications_follow_the_lifecycle() {
    use std::os::unix::net::UnixDatagram;
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("notify.sock");
    let receiver = UnixDatagram::bind(&sock).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let next = || {
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ports = Ports::new();
    let mut daemon = Daemon::start_with_env(
        &test_config(&ports, ""),
        &ports,
        &[("NOTIFY_SOCKET", sock.to_str().unwrap())],
    );
    assert_eq!(next(), "READY=1");
    daemon.signal("HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    daemon.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
    assert!(daemon.wait_exit(Duration::from_secs(10)).0.success());
}
