//! The provisioning CLI against SQLite and a real PostgreSQL: the seeds' order (Enterprise →
//! Direct Route → PBX), errors that name the field and the rule, JSON output, cascade delete,
//! and a running daemon picking the change up on SIGHUP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::{Daemon, Ports, run_cli, test_config};

const TENANT: &str = "0e1b2c3d-1111-2222-3333-444455556666";

fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["--config", "teamsgw.toml"];
    full.extend_from_slice(args);
    run_cli(dir, &full)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = cli(dir, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Exit 1 and a message that names `field`.
fn refused(dir: &Path, args: &[&str], field: &str) -> String {
    let (code, _, err) = cli(dir, args);
    assert_eq!(code, 1, "{args:?} should fail: {err}");
    assert!(
        err.contains(field),
        "{args:?}: error should name {field}: {err}"
    );
    err
}

fn workflow(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("teamsgw.toml"),
        format!("[database]\nurl = \"{database_url}\"\n\n[teams]\nbase_fqdn = \"teams.carrier.example\"\n"),
    )
    .unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            TENANT,
            "--acquired-licenses",
            "50",
        ],
    );
    refused(
        d,
        &[
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            TENANT,
            "--acquired-licenses",
            "5",
        ],
        "name",
    );
    refused(
        d,
        &[
            "enterprise",
            "add",
            "Beta",
            "--tenant-id",
            "42",
            "--acquired-licenses",
            "5",
        ],
        "tenant-id",
    );

    let err = refused(
        d,
        &[
            "pbx",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "main",
            "--domain",
            "pbx.acme.example",
        ],
        "enterprise",
    );
    assert!(err.contains("no direct route"), "{err}");
    refused(
        d,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Acme",
            "--fqdn",
            "acme.elsewhere.example",
        ],
        "fqdn",
    );
    refused(
        d,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Nobody",
            "--fqdn",
            "x.teams.carrier.example",
        ],
        "enterprise",
    );
    ok(
        d,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Acme",
            "--fqdn",
            "acme.teams.carrier.example",
            "--max-sessions",
            "20",
        ],
    );
    refused(
        d,
        &[
            "pbx",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "main",
            "--domain",
            "pbx.acme.example",
            "--transport",
            "sctp",
        ],
        "transport",
    );
    ok(
        d,
        &[
            "pbx",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "main",
            "--domain",
            "pbx.acme.example",
            "--proxy",
            "10.0.0.5:5080",
        ],
    );

    let routes = ok(d, &["direct-route", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(json[0]["fqdn"], "acme.teams.carrier.example");
    assert_eq!(json[0]["max_sessions"], 20);
    let table = ok(d, &["direct-route", "list", "--enterprise", "Acme"]);
    assert!(
        table.contains("acme.teams.carrier.example  Acme        5061  20"),
        "{table}"
    );
    refused(
        d,
        &["direct-route", "list", "--enterprise", "Nobody"],
        "enterprise",
    );

    let table = ok(d, &["pbx", "list", "--enterprise", "Acme"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("main  pbx.acme.example  10.0.0.5:5080  udp"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["enterprise", "list", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "Acme");
    assert_eq!(json[0]["acquired_licenses"], 50);

    // Users: licenses checked (licensing.md §3: Teams + Teams Phone), password sealed at rest.
    std::fs::write(d.join("pw"), "pbx-secret-1001\n").unwrap();
    let user = [
        "user",
        "add",
        "--enterprise",
        "Acme",
        "--pbx",
        "main",
        "--upn",
        "alice@acme.example",
        "--number",
        "+15551230001",
        "--extension",
        "1001",
        "--password-file",
        "pw",
    ];
    let err = refused(d, &user, "sku");
    assert!(err.contains("no Teams license"), "{err}");
    let mut licensed = user.to_vec();
    licensed.extend(["--sku", "SPE_E5", "--ev-enabled", "--group", "Sales"]);
    ok(d, &licensed);
    refused(d, &licensed, "upn");
    let mut no_password = licensed.clone();
    no_password.truncate(12);
    let (code, _, err) = cli(d, &no_password);
    assert_eq!(code, 2, "clap usage error: {err}");
    assert!(err.contains("--password-file"), "{err}");
    let listed = ok(d, &["user", "list", "--enterprise", "Acme", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(json[0]["upn"], "alice@acme.example");
    assert_eq!(json[0]["managed_by_ui"], true);
    assert!(
        !listed.contains("pbx-secret") && !listed.contains("password"),
        "{listed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("var/password.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the generated key is private");
    }

    let mut bob = licensed.clone();
    bob[7] = "bob@acme.example";
    bob[9] = "+15551230002";
    ok(d, &bob);
    ok(d, &["user", "delete", "bob@acme.example"]);
    refused(d, &["user", "delete", "bob@acme.example"], "upn");

    // Service numbers (ranges, no overlap) and LCM templates (licensing.md §1.2 factors 4, 2).
    let sn = |number: &'static str| {
        [
            "service-number",
            "add",
            "--enterprise",
            "Acme",
            "--number",
            number,
            "--tag",
            "FAX",
        ]
    };
    ok(d, &sn("+15550100-+15550109"));
    let err = refused(d, &sn("+15550105"), "number");
    assert!(err.contains("overlaps +15550100-+15550109"), "{err}");
    refused(d, &sn("+15550120-+15550110"), "number");
    ok(d, &sn("+15550199"));
    let json: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["service-number", "list", "--enterprise", "Acme", "--json"],
    ))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["last"], "+15550109");
    ok(
        d,
        &[
            "lcm-template",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "Roma",
            "--group",
            "Sales and Marketing",
        ],
    );
    refused(
        d,
        &[
            "lcm-template",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "Roma",
            "--group",
            "Retail",
        ],
        "name",
    );
    let table = ok(d, &["lcm-template", "list", "--enterprise", "Acme"]);
    assert!(table.contains("Roma  Sales and Marketing"), "{table}");

    let err = refused(d, &["enterprise", "delete", "Acme"], "--cascade");
    assert!(
        err.contains("1 direct routes, 1 PBXs, 1 users, 2 service numbers, 1 LCM templates"),
        "{err}"
    );
    ok(d, &["enterprise", "delete", "Acme", "--cascade"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["enterprise", "list", "--json"])).unwrap();
    assert_eq!(json, serde_json::json!([]));
}

#[test]
fn provisioning_cli_on_sqlite() {
    workflow("sqlite://teamsgw.db");
}

#[test]
fn provisioning_cli_on_postgresql() {
    let pg = Postgres::start();
    workflow(&pg.url);
}

#[test]
fn running_daemon_sees_a_cli_change_after_sighup() {
    let ports = Ports::new();
    let mut daemon = Daemon::start(
        &test_config(&ports, "").replace(
            "[teams]\n",
            "[teams]\nbase_fqdn = \"teams.carrier.example\"\n",
        ),
        &ports,
    );
    daemon.wait_ready(Duration::from_secs(30));
    let routes = "teamsgw_snapshot_direct_routes";
    assert_eq!(daemon.metric(routes), Some(0.0));
    let d = daemon.dir();
    ok(
        d,
        &[
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            TENANT,
            "--acquired-licenses",
            "1",
        ],
    );
    ok(
        d,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Acme",
            "--fqdn",
            "acme.teams.carrier.example",
        ],
    );
    daemon.signal("HUP");
    daemon.wait_for(
        Duration::from_secs(20),
        "the direct route in the snapshot",
        || daemon.metric(routes) == Some(1.0),
    );
}
