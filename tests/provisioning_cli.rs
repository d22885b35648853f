//! The provisioning CLI against SQLite and a real PostgreSQL: the seeds' order (Enterprise →
//! Direct Route → PBX), errors that name the field and the rule, JSON output, cascade delete,
//! and a running daemon picking the change up on SIGHUP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::{Daemon, Ports, run_cli, seeds, test_config};

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

fn config(database_url: &str) -> String {
    format!(
        "[database]\nurl = \"{database_url}\"\n\n[teams]\nbase_fqdn = \"teams.carrier.example\"\n"
    )
}

/// A scratch directory with a config and enterprise `name` (50 licenses) ready for users:
/// direct route `<name>.teams.carrier.example` and PBX `main`.
fn enterprise_with_pbx(database_url: &str, name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("teamsgw.toml"), config(database_url)).unwrap();
    seeds::enterprise_with_pbx(dir.path(), name);
    dir
}

fn workflow(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("teamsgw.toml"), config(database_url)).unwrap();
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
    // Creating a direct route licenses its Microsoft user from the pool (licensing.md §2.3):
    // with nothing bought it fails and names the missing license.
    let route = [
        "direct-route",
        "add",
        "--enterprise",
        "Acme",
        "--fqdn",
        "acme.teams.carrier.example",
        "--max-sessions",
        "20",
    ];
    let err = refused(d, &route, "enterprise");
    assert!(err.contains("no Teams license"), "{err}");
    assert!(err.contains("enterprise sku add"), "{err}");
    for (sku, units) in [("ENTERPRISEPACK", "1"), ("MCOEV", "1")] {
        ok(
            d,
            &[
                "enterprise",
                "sku",
                "add",
                "Acme",
                "--sku",
                sku,
                "--units",
                units,
            ],
        );
    }
    ok(d, &route);
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
    assert_eq!(json[0]["ms_user"], "donotdelete@acme.teams.carrier.example");
    assert_eq!(
        json[0]["licenses"],
        serde_json::json!(["ENTERPRISEPACK", "MCOEV"])
    );
    assert_eq!(json[0]["max_cps"], serde_json::Value::Null);
    // Limits change in place (issue 31 §6); 0 removes one; a rate of 0 or over the maximum
    // names the field.
    let set = ok(
        d,
        &[
            "direct-route",
            "set",
            "acme.teams.carrier.example",
            "--max-cps",
            "10",
        ],
    );
    assert!(set.contains("max sessions 20, max cps 10"), "{set}");
    refused(
        d,
        &[
            "direct-route",
            "set",
            "acme.teams.carrier.example",
            "--max-cps",
            "10001",
        ],
        "max-cps",
    );
    refused(
        d,
        &["direct-route", "set", "acme.teams.carrier.example"],
        "max-sessions",
    );
    refused(
        d,
        &[
            "direct-route",
            "set",
            "nope.teams.carrier.example",
            "--max-cps",
            "1",
        ],
        "fqdn",
    );
    let table = ok(d, &["direct-route", "list", "--enterprise", "Acme"]);
    assert!(
        table.contains("acme.teams.carrier.example  Acme        5061  20            10"),
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

    // SKU purchase dates: Business suites bought on or after 2024-04-01 carry no Teams (seeds).
    refused(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "NOPE",
            "--units",
            "1",
        ],
        "sku",
    );
    refused(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "SPB",
            "--units",
            "1",
            "--acquired-on",
            "2024-13-01",
        ],
        "acquired-on",
    );
    ok(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "SPB",
            "--units",
            "10",
            "--acquired-on",
            "2024-05-01",
        ],
    );
    let business = [
        "user",
        "add",
        "--enterprise",
        "Acme",
        "--pbx",
        "main",
        "--upn",
        "biz@acme.example",
        "--number",
        "+15551230050",
        "--extension",
        "1050",
        "--password-file",
        "pw",
        "--sku",
        "SPB",
        "--sku",
        "MCOEV",
    ];
    let err = refused(d, &business, "sku");
    assert!(err.contains("on or after 2024-04-01"), "{err}");
    ok(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "spb",
            "--units",
            "10",
            "--acquired-on",
            "2023-06-01",
        ],
    );
    ok(d, &business);
    ok(d, &["user", "delete", "biz@acme.example"]);

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
    assert_eq!(daemon.metric(routes), 0.0);
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
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "SPE_E5",
            "--units",
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
        || daemon.metric_if_exposed(routes) == Some(1.0),
    );
}

/// `license report` from the database (seeds: the license page; licensing.md §1.2–§1.8):
/// every user counts once under its highest factor, `counted (configured)`.
fn license_report(database_url: &str) {
    let dir = enterprise_with_pbx(database_url, "Contoso");
    let d = dir.path();
    let config = config(database_url);
    std::fs::write(d.join("pw"), "secret\n").unwrap();
    let gw = "contoso.teams.carrier.example";
    let user = |upn: &str, number: &str, extra: &[&str]| {
        let mut args = vec![
            "user",
            "add",
            "--enterprise",
            "Contoso",
            "--pbx",
            "main",
            "--upn",
            upn,
            "--number",
            number,
            "--extension",
            &number[8..],
            "--password-file",
            "pw",
            "--sku",
            "SPE_E5",
        ];
        args.extend_from_slice(extra);
        ok(d, &args);
    };
    let dr = [
        "--ev-enabled",
        "--voice-routing-policy",
        "Unrestricted",
        "--pstn-gateway",
        gw,
        "--group",
        "Sales",
    ];
    user("dr1@contoso.example", "+15551230001", &dr);
    user("dr2@contoso.example", "+15551230002", &dr);
    user("g1@contoso.example", "+15551230003", &["--group", "Sales"]);
    user("p1@contoso.example", "+15551230004", &[]);
    ok(
        d,
        &[
            "lcm-template",
            "add",
            "--enterprise",
            "Contoso",
            "--name",
            "Roma",
            "--group",
            "Sales",
        ],
    );
    ok(
        d,
        &[
            "service-number",
            "add",
            "--enterprise",
            "Contoso",
            "--number",
            "+15550100-+15550102",
            "--tag",
            "FAX",
        ],
    );
    ok(
        d,
        &[
            "service-number",
            "add",
            "--enterprise",
            "Contoso",
            "--number",
            "+15550199",
            "--tag",
            gw,
        ],
    );

    let report = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["license", "report", "--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&ok(d, &full)).unwrap()
    };
    let r = &report(&["--enterprise", "Contoso"])[0];
    let factor = |name: &str| {
        let f = &r["factors"][name];
        (
            f["counted"].as_u64().unwrap(),
            f["configured"].as_u64().unwrap(),
            f["enabled"].as_bool().unwrap(),
        )
    };
    assert_eq!(factor("direct_routing"), (2, 2, true));
    assert_eq!(factor("lcm"), (1, 3, true), "3 group members, 2 of them DR");
    assert_eq!(
        factor("ui"),
        (1, 4, true),
        "every CLI user is UI-managed; 3 counted above"
    );
    assert_eq!(
        factor("service_numbers"),
        (3, 3, true),
        "the DR-tagged number does not count"
    );
    assert_eq!(
        (
            r["acquired"].as_u64(),
            r["currently_licensed"].as_u64(),
            r["available"].as_i64(),
            r["monitored_users"].as_u64()
        ),
        (Some(50), Some(7), Some(43), Some(4))
    );
    let table = ok(d, &["license", "report"]);
    assert!(
        table.contains(
            "Contoso     50        7         43         4          2 (2)  off (0)  1 (3)  1 (4)  3 (3)"
        ),
        "{table}"
    );
    refused(
        d,
        &["license", "report", "--enterprise", "Nobody"],
        "enterprise",
    );

    // LCM switched off globally: it counts 0 and its member falls through to UI (§1.3).
    std::fs::write(
        d.join("teamsgw.toml"),
        format!("{config}\n[license]\nlcm_factor = false\n"),
    )
    .unwrap();
    let r = &report(&[])[0];
    assert_eq!(r["factors"]["lcm"]["enabled"], false);
    assert_eq!(r["factors"]["lcm"]["counted"], 0);
    assert_eq!(r["factors"]["ui"]["counted"], 2);
    assert_eq!(r["currently_licensed"], 7);

    // A per-enterprise override beats the global switch; acquired can go below usage.
    ok(
        d,
        &[
            "enterprise",
            "set",
            "Contoso",
            "--license-factor",
            "lcm=on",
            "--acquired-licenses",
            "5",
        ],
    );
    let r = &report(&[])[0];
    assert_eq!(r["factors"]["lcm"]["enabled"], true);
    assert_eq!(r["factors"]["lcm"]["counted"], 1);
    assert_eq!(
        (r["acquired"].as_u64(), r["available"].as_i64()),
        (Some(5), Some(-2))
    );
    ok(
        d,
        &[
            "enterprise",
            "set",
            "Contoso",
            "--license-factor",
            "lcm=default",
        ],
    );
    assert_eq!(report(&[])[0]["factors"]["lcm"]["enabled"], false);
    refused(
        d,
        &["enterprise", "set", "Contoso", "--license-factor", "fax=on"],
        "license-factor",
    );
    refused(d, &["enterprise", "set", "Contoso"], "nothing to change");
    refused(
        d,
        &["enterprise", "set", "Nobody", "--acquired-licenses", "1"],
        "enterprise",
    );

    // Emergency numbers per enterprise (issue 30 §3): set, shown, refused when not numbers
    // (nothing changes), back to the default.
    let emergency = || {
        let show = ok(d, &["enterprise", "show", "Contoso", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&show).unwrap();
        v["emergency_numbers"].clone()
    };
    assert_eq!(emergency(), serde_json::Value::Null);
    ok(
        d,
        &[
            "enterprise",
            "set",
            "Contoso",
            "--emergency-numbers",
            "118, 112",
        ],
    );
    assert_eq!(emergency(), serde_json::json!(["118", "112"]));
    let e = refused(
        d,
        &[
            "enterprise",
            "set",
            "Contoso",
            "--emergency-numbers",
            "118,police",
        ],
        "emergency-numbers",
    );
    assert!(e.contains("\"police\" is not a number"), "{e}");
    assert_eq!(emergency(), serde_json::json!(["118", "112"]));
    ok(
        d,
        &[
            "enterprise",
            "set",
            "Contoso",
            "--emergency-numbers",
            "default",
        ],
    );
    assert_eq!(emergency(), serde_json::Value::Null);
}

#[test]
fn license_report_on_sqlite() {
    license_report("sqlite://teamsgw.db");
}

#[test]
fn license_report_on_postgresql() {
    let pg = Postgres::start();
    license_report(&pg.url);
}

const IMPORT_CSV: &str = "\
UserPrincipalName,LineUri,EnterpriseVoiceEnabled,OnlineVoiceRoutingPolicy,Extension,Password,Groups,Skus,Pbx,DisplayName
alice@acme.example,tel:+15551230001;ext=1001,True,Unrestricted,,pw-a,Sales,SPE_E5,,Alice
carol@acme.example,tel:12345,True,,1003,pw-c,,SPE_E5,,Carol
dave@acme.example,tel:+15551230004,True,,1004,pw-d,,SPE_E5,ghost,Dave
erin@acme.example,tel:+15551230001,True,,1005,pw-e,,SPE_E5,,Erin
frank@acme.example,tel:+15551230006,True,,1006,pw-f,,MCOEV,,Frank
bob@acme.example,tel:+15551230002,False,,1002,pw-b,\"Sales; Retail\",SPE_E5,,\"Bob, Jr.\"
";

/// `user import`: each bad row reported with its line and reason (bad E.164, unknown PBX,
/// duplicate number, missing Teams license), only good rows applied, `--strict` applies none,
/// `--dry-run` writes nothing, re-import is idempotent; JSON arrays too.
fn user_import(database_url: &str) {
    let dir = enterprise_with_pbx(database_url, "Acme");
    let d = dir.path();
    std::fs::write(d.join("users.csv"), IMPORT_CSV).unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec![
            "--config",
            "teamsgw.toml",
            "user",
            "import",
            "--enterprise",
            "Acme",
            "--pbx",
            "main",
            "users.csv",
        ];
        args.extend_from_slice(extra);
        run_cli(d, &args)
    };
    let users = || -> serde_json::Value {
        serde_json::from_str(&ok(d, &["user", "list", "--enterprise", "Acme", "--json"])).unwrap()
    };

    for mode in ["--strict", "--dry-run"] {
        let (code, out, err) = import(&[mode]);
        assert_eq!(code, 1, "{mode}: {out} {err}");
        assert!(out.contains("nothing written"), "{mode}: {out}");
        assert_eq!(users(), serde_json::json!([]), "{mode} wrote nothing");
    }

    let (code, out, err) = import(&[]);
    assert_eq!(code, 1, "rows were refused: {out}");
    for (line, why) in [
        (3, "LineUri"),
        (4, "PBX \"ghost\" does not exist"),
        (5, "number +15551230001 is already taken"),
        (6, "no Teams license"),
    ] {
        let expected = format!("users.csv:{line}: ");
        let reported = err
            .lines()
            .find(|l| l.starts_with(&expected))
            .unwrap_or_else(|| panic!("line {line} not reported: {err}"));
        assert!(reported.contains(why), "line {line}: {reported}");
    }
    assert!(
        out.contains("6 rows: added 2, unchanged 0, refused 4"),
        "{out}"
    );
    let listed = users();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["upn"], "alice@acme.example");
    assert_eq!(listed[0]["extension"], "1001", "from ;ext=");
    assert_eq!(
        listed[0]["managed_by_ui"], false,
        "imported users are not UI-managed"
    );
    assert_eq!(listed[1]["groups"], serde_json::json!(["Sales", "Retail"]));

    // Re-import: nothing changes.
    let (_, out, _) = import(&[]);
    assert!(out.contains("added 0, unchanged 2, refused 4"), "{out}");
    assert_eq!(users(), listed);

    std::fs::write(
        d.join("users.json"),
        r#"[{"UserPrincipalName":"gina@acme.example","LineUri":"tel:+15551230007","EnterpriseVoiceEnabled":true,"Extension":"1007","Password":"pw-g","Skus":"SPE_E5"}]"#,
    )
    .unwrap();
    let (code, out, err) = run_cli(
        d,
        &[
            "--config",
            "teamsgw.toml",
            "user",
            "import",
            "--enterprise",
            "Acme",
            "--pbx",
            "main",
            "users.json",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(users().as_array().unwrap().len(), 3);
}

#[test]
fn user_import_on_sqlite() {
    user_import("sqlite://teamsgw.db");
}

#[test]
fn user_import_on_postgresql() {
    let pg = Postgres::start();
    user_import(&pg.url);
}

/// The seeds' worked example (license page: 50 acquired; Direct Routing 9, LCM 10 (19), UI 3,
/// service numbers 1 = 23 licensed; LCM groups of 10 and 9 members), built through the CLI.
fn seeds_worked_example(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("teamsgw.toml"), config(database_url)).unwrap();
    seeds::worked_example(d);
    let report: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["license", "report", "--enterprise", "Contoso", "--json"],
    ))
    .unwrap();
    let r = &report[0];
    let factor = |name: &str| {
        let f = &r["factors"][name];
        (
            f["counted"].as_u64().unwrap(),
            f["configured"].as_u64().unwrap(),
        )
    };
    assert_eq!(factor("direct_routing"), (9, 9));
    assert_eq!(
        factor("lcm"),
        (10, 19),
        "19 group members (10 + 9), 9 of them DR"
    );
    assert_eq!(factor("ui"), (3, 4), "sm9 counts under LCM");
    assert_eq!(
        factor("service_numbers"),
        (1, 1),
        "FAX counts, the DR-tagged number does not"
    );
    assert_eq!(r["currently_licensed"], 23);
    assert_eq!(r["acquired"], 50);
    assert_eq!(r["available"], 27);
    assert_eq!(r["monitored_users"], 27);
}

#[test]
fn seeds_worked_example_on_sqlite() {
    seeds_worked_example("sqlite://teamsgw.db");
}

#[test]
fn seeds_worked_example_on_postgresql() {
    let pg = Postgres::start();
    seeds_worked_example(&pg.url);
}

/// show/set/delete of every entity, the license pool of direct routes and the license-change
/// cooldown (licensing.md §2.3, §2.7).
fn changes(database_url: &str) {
    let dir = enterprise_with_pbx(database_url, "Fabrikam");
    let d = dir.path();
    std::fs::write(d.join("pw"), "secret\n").unwrap();

    // The pool had one MCOCAP unit and the first route took it: a second route finds none.
    let second = [
        "direct-route",
        "add",
        "--enterprise",
        "Fabrikam",
        "--fqdn",
        "fabrikam2.teams.carrier.example",
    ];
    let err = refused(d, &second, "enterprise");
    assert!(err.contains("no Teams license"), "{err}");
    ok(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            "Fabrikam",
            "--sku",
            "SPE_E5",
            "--units",
            "2",
        ],
    );
    ok(d, &second);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(d, &["enterprise", "show", "Fabrikam", "--json"])).unwrap();
    assert_eq!(shown["pbxs"], 1);
    assert_eq!(shown["direct_routes"].as_array().unwrap().len(), 2);
    assert_eq!(
        shown["direct_routes"][1]["licenses"],
        serde_json::json!(["SPE_E5"])
    );
    let table = ok(d, &["enterprise", "show", "Fabrikam"]);
    assert!(table.contains("skus:"), "{table}");
    assert!(table.contains("1 x MCOCAP, 2 x SPE_E5"), "{table}");
    refused(d, &["enterprise", "show", "Nobody"], "enterprise");

    // Deleting a route returns its unit to the pool; the last route is needed by the PBX.
    ok(
        d,
        &["direct-route", "delete", "fabrikam2.teams.carrier.example"],
    );
    ok(d, &second);
    ok(
        d,
        &["direct-route", "delete", "fabrikam2.teams.carrier.example"],
    );
    let err = refused(
        d,
        &["direct-route", "delete", "fabrikam.teams.carrier.example"],
        "--cascade",
    );
    assert!(err.contains("1 PBXs"), "{err}");
    refused(
        d,
        &["direct-route", "delete", "nope.teams.carrier.example"],
        "fqdn",
    );

    // PBX set/delete.
    ok(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--proxy",
            "10.0.0.9:5070",
            "--transport",
            "tcp",
            "--expires",
            "300",
        ],
    );
    let pbxs: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["pbx", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(pbxs[0]["proxy"], "10.0.0.9:5070");
    assert_eq!(pbxs[0]["transport"], "tcp");
    assert_eq!(pbxs[0]["expires"], 300);
    assert_eq!(pbxs[0]["codecs"], serde_json::json!(["PCMA", "PCMU"]));
    // Codecs towards the PBX: what Teams also speaks (G.722, G.711, G.729), since teamsgw
    // never transcodes; SILK is Teams' own.
    let err = refused(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--codecs",
            "SILK,PCMU",
        ],
        "codecs",
    );
    assert!(err.contains("transcoding"), "{err}");
    ok(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--codecs",
            "G722,g729,PCMU",
        ],
    );
    let pbxs: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["pbx", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(
        pbxs[0]["codecs"],
        serde_json::json!(["G722", "G729", "PCMU"])
    );
    ok(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--codecs",
            "pcmu",
        ],
    );
    let table = ok(d, &["pbx", "list", "--enterprise", "Fabrikam"]);
    assert!(table.contains("300      PCMU"), "{table}");
    // Numbering: how the called number reaches the PBX, and its country code for callers.
    assert_eq!(pbxs[0]["number_format"], "e164");
    assert_eq!(pbxs[0]["country_code"], serde_json::Value::Null);
    let set = |extra: &[&'static str]| {
        let mut args = vec!["pbx", "set", "--enterprise", "Fabrikam", "--name", "main"];
        args.extend_from_slice(extra);
        args
    };
    let args = set(&["--number-format", "digits", "--country-code", "49"]);
    ok(d, &args);
    let pbxs: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["pbx", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(pbxs[0]["number_format"], "digits");
    assert_eq!(pbxs[0]["country_code"], "49");
    let args = set(&["--number-format", "national"]);
    let err = refused(d, &args, "number_format");
    assert!(err.contains("e164 or digits"), "{err}");
    let args = set(&["--country-code", "+49"]);
    let err = refused(d, &args, "country_code");
    assert!(err.contains("E.164"), "{err}");
    let args = set(&["--country-code", ""]);
    ok(d, &args);
    let pbxs: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["pbx", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(pbxs[0]["country_code"], serde_json::Value::Null);
    assert_eq!(pbxs[0]["number_format"], "digits");
    // Diversion from Teams' History-Info: off unless asked for.
    assert_eq!(pbxs[0]["diversion"], false);
    let args = set(&["--diversion", "on"]);
    ok(d, &args);
    let pbxs: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["pbx", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(pbxs[0]["diversion"], true);
    let args = set(&["--diversion", "yes"]);
    let (code, _, err) = cli(d, &args);
    assert_ne!(code, 0, "--diversion yes was taken");
    assert!(
        err.contains("--diversion") && err.contains("neither on nor off"),
        "{err}"
    );
    refused(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--expires",
            "5",
        ],
        "expires",
    );
    refused(
        d,
        &["pbx", "set", "--enterprise", "Fabrikam", "--name", "main"],
        "nothing to change",
    );
    ok(
        d,
        &[
            "pbx",
            "set",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--proxy",
            "",
        ],
    );

    // Users: show, set, the cooldown between license changes, delete.
    ok(
        d,
        &[
            "user",
            "add",
            "--enterprise",
            "Fabrikam",
            "--pbx",
            "main",
            "--upn",
            "carol@fabrikam.example",
            "--number",
            "+15551239001",
            "--extension",
            "9001",
            "--password-file",
            "pw",
            "--sku",
            "ENTERPRISEPACK",
            "--sku",
            "MCOEV",
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["user", "show", "carol@fabrikam.example", "--json"],
    ))
    .unwrap();
    assert_eq!(shown["extension"], "9001");
    assert!(shown["last_license_change"].is_i64(), "{shown}");
    assert!(!shown.to_string().contains("secret"), "{shown}");
    ok(
        d,
        &[
            "user",
            "set",
            "carol@fabrikam.example",
            "--extension",
            "9002",
            "--ev-enabled",
            "--group",
            "Sales",
            "--group",
            "Support",
        ],
    );
    let table = ok(d, &["user", "show", "carol@fabrikam.example"]);
    assert!(table.contains("extension:"), "{table}");
    assert!(table.contains("9002"), "{table}");
    assert!(table.contains("Sales, Support"), "{table}");
    let relicense = ["user", "set", "carol@fabrikam.example", "--sku", "SPE_E5"];
    let err = refused(d, &relicense, "sku");
    assert!(err.contains("--force"), "{err}");
    assert!(
        err.contains("allowed in 24h00m") || err.contains("allowed in 23h59m"),
        "a fresh change leaves 24 h: {err}"
    );
    let mut forced = relicense.to_vec();
    forced.push("--force");
    ok(d, &forced);
    let shown: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["user", "show", "carol@fabrikam.example", "--json"],
    ))
    .unwrap();
    assert_eq!(shown["skus"], serde_json::json!(["SPE_E5"]));
    // The same SKUs again is no license change: no cooldown.
    ok(d, &relicense);
    refused(
        d,
        &["user", "set", "carol@fabrikam.example", "--number", "12345"],
        "number",
    );
    refused(
        d,
        &[
            "user",
            "set",
            "carol@fabrikam.example",
            "--sku",
            "MCOCAP",
            "--force",
        ],
        "sku",
    );
    refused(d, &["user", "show", "nobody@fabrikam.example"], "upn");
    let err = refused(
        d,
        &[
            "pbx",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
        ],
        "--cascade",
    );
    assert!(err.contains("1 users"), "{err}");

    // Service numbers and LCM templates.
    ok(
        d,
        &[
            "service-number",
            "add",
            "--enterprise",
            "Fabrikam",
            "--number",
            "+15550200-+15550209",
            "--tag",
            "IVR",
        ],
    );
    refused(
        d,
        &[
            "service-number",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--number",
            "+15550201",
        ],
        "number",
    );
    ok(
        d,
        &[
            "service-number",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--number",
            "+15550200",
        ],
    );
    ok(
        d,
        &[
            "lcm-template",
            "add",
            "--enterprise",
            "Fabrikam",
            "--name",
            "Roma",
            "--group",
            "Sales",
        ],
    );
    ok(
        d,
        &[
            "lcm-template",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--name",
            "Roma",
        ],
    );
    refused(
        d,
        &[
            "lcm-template",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--name",
            "Roma",
        ],
        "name",
    );
    let shown: serde_json::Value =
        serde_json::from_str(&ok(d, &["enterprise", "show", "Fabrikam", "--json"])).unwrap();
    assert_eq!(
        (
            shown["service_numbers"].clone(),
            shown["lcm_templates"].clone()
        ),
        (serde_json::json!(0), serde_json::json!(0))
    );

    ok(
        d,
        &[
            "pbx",
            "delete",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--cascade",
        ],
    );
    let users: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["user", "list", "--enterprise", "Fabrikam", "--json"],
    ))
    .unwrap();
    assert_eq!(users, serde_json::json!([]));
    ok(
        d,
        &["direct-route", "delete", "fabrikam.teams.carrier.example"],
    );
}

#[test]
fn changes_on_sqlite() {
    changes("sqlite://teamsgw.db");
}

#[test]
fn changes_on_postgresql() {
    let pg = Postgres::start();
    changes(&pg.url);
}
