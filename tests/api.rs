//! The REST API under /api/v1 against the running daemon: bearer token, the CLI's operations
//! and JSON, `{error, field, rule}` errors with the right status, the routing snapshot swapped
//! before the response, license gauges and the daily audit row, PostgreSQL LISTEN/NOTIFY
//! reloads, and schemathesis (from PyPI) checking every operation against the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::{Daemon, HttpResponse, Ports, http_request, run_cli, test_config};

const TOKEN: &str = "test-token-0123456789-0123456789-abcdef";
const TENANT: &str = "0e1b2c3d-1111-2222-3333-444455556666";
const OC_TENANT: &str = "7f3e2a10-aaaa-4bbb-8ccc-000000000032";

fn config(ports: &Ports, database_url: &str, extra: &str) -> String {
    test_config(ports, extra)
        .replace(
            "[teams]\n",
            "[teams]\nbase_fqdn = \"teams.carrier.example\"\n",
        )
        .replace("sqlite://var/teamsgw.db", database_url)
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"))
}

fn api(daemon: &Daemon, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    http_request(
        daemon.admin,
        method,
        &format!("/api/v1{path}"),
        Some(TOKEN),
        body.as_ref(),
    )
}

/// Asserts the status and, for errors, the `{error, field, rule}` shape naming `field`.
fn expect(r: &HttpResponse, status: u16, field: Option<&str>) -> Value {
    assert_eq!(r.status, status, "{r:?}");
    if r.status == 204 {
        return Value::Null;
    }
    let body = r.json();
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["rule"].as_str().is_some_and(|s| !s.is_empty()),
            "{body}"
        );
        assert!(
            body["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{body}"
        );
    }
    body
}

fn cli_json(daemon: &Daemon, args: &[&str]) -> Value {
    let mut full = vec!["--config", "teamsgw.toml"];
    full.extend_from_slice(args);
    let (code, out, err) = run_cli(daemon.dir(), &full);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn api_provisions_like_the_cli() {
    let ports = Ports::new();
    let mut daemon = Daemon::start(
        &config(
            &ports,
            "sqlite://var/teamsgw.db",
            "[license]\nrefresh_seconds = 1\nwarning_percent = 50\n",
        ),
        &ports,
    );
    daemon.wait_ready(Duration::from_secs(30));

    // The description is public; everything else needs the token.
    let doc = http_request(daemon.admin, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["openapi"], "3.0.3");
    let r = http_request(daemon.admin, "GET", "/api/v1/enterprises", None, None);
    expect(&r, 401, Some("Authorization"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = http_request(
        daemon.admin,
        "GET",
        "/api/v1/enterprises",
        Some("wrong"),
        None,
    );
    expect(&r, 401, Some("Authorization"));

    // Bad input names the field and the rule; nothing is written.
    let r = api(
        &daemon,
        "POST",
        "/enterprises",
        Some(json!({"name": "Acme", "tenant_id": "42", "acquired_licenses": 2})),
    );
    expect(&r, 400, Some("tenant-id"));
    let r = api(
        &daemon,
        "POST",
        "/enterprises",
        Some(json!({"name": "Acme"})),
    );
    expect(&r, 400, Some("tenant_id"));
    let r = api(
        &daemon,
        "POST",
        "/enterprises",
        Some(json!({"name": "Acme", "tenant_id": TENANT, "acquired_licenses": 2, "color": 1})),
    );
    expect(&r, 400, Some("color"));
    assert_eq!(
        expect(&api(&daemon, "GET", "/enterprises", None), 200, None),
        json!([])
    );

    let created = api(
        &daemon,
        "POST",
        "/enterprises",
        Some(json!({"name": "Acme", "tenant_id": TENANT, "acquired_licenses": 2})),
    );
    assert_eq!(expect(&created, 201, None)["name"], "Acme");
    let r = api(
        &daemon,
        "POST",
        "/enterprises",
        Some(json!({"name": "Acme", "tenant_id": TENANT, "acquired_licenses": 2})),
    );
    expect(&r, 409, Some("name"));

    // A direct route with an empty pool is refused naming the license (licensing.md §2.3).
    let route = json!({"enterprise": "Acme", "fqdn": "acme.teams.carrier.example"});
    let r = api(&daemon, "POST", "/direct-routes", Some(route.clone()));
    let body = expect(&r, 400, Some("enterprise"));
    assert!(
        body["rule"].as_str().unwrap().contains("no Teams license"),
        "{body}"
    );
    let r = api(
        &daemon,
        "POST",
        "/enterprises/Acme/skus",
        Some(json!({"sku": "SPE_E5", "units": 5})),
    );
    assert_eq!(expect(&r, 201, None)["part_number"], "SPE_E5");
    let r = api(&daemon, "POST", "/direct-routes", Some(route));
    assert_eq!(expect(&r, 201, None)["licenses"], json!(["SPE_E5"]));
    // The snapshot is swapped before the response: routing sees the route at once.
    assert_eq!(daemon.metric("teamsgw_snapshot_direct_routes"), 1.0);
    // A direct route's limits change in place (issue 31 §6); 0 removes one.
    let path = "/direct-routes/acme.teams.carrier.example";
    let r = api(
        &daemon,
        "PATCH",
        path,
        Some(json!({"max_cps": 25, "max_sessions": 0})),
    );
    let body = expect(&r, 200, None);
    assert_eq!(
        (&body["max_cps"], &body["max_sessions"]),
        (&json!(25), &json!(null))
    );
    let r = api(&daemon, "PATCH", path, Some(json!({"max_cps": 10_001})));
    expect(&r, 400, Some("max-cps"));
    let r = api(&daemon, "PATCH", path, Some(json!({})));
    expect(&r, 400, Some("max-sessions"));

    let r = api(
        &daemon,
        "POST",
        "/pbxs",
        Some(json!({"enterprise": "Acme", "name": "main", "domain": "pbx.acme.example"})),
    );
    assert_eq!(expect(&r, 201, None)["transport"], "udp");
    let r = api(
        &daemon,
        "PATCH",
        "/pbxs/Acme/main",
        Some(json!({"transport": "tls", "proxy": "pbx.acme.example:5061"})),
    );
    assert_eq!(expect(&r, 200, None)["transport"], "tls");
    expect(
        &api(
            &daemon,
            "PATCH",
            "/pbxs/Acme/nope",
            Some(json!({"expires": 600})),
        ),
        404,
        Some("name"),
    );

    let user = |upn: &str, number: &str| {
        json!({
            "enterprise": "Acme", "pbx": "main", "upn": upn, "number": number,
            "extension": &number[8..], "password": "pbx-secret", "skus": ["SPE_E5"],
        })
    };
    let r = api(
        &daemon,
        "POST",
        "/users",
        Some(user("a@acme.example", "+15551230001")),
    );
    let body = expect(&r, 201, None);
    assert_eq!(body["managed_by_ui"], true);
    assert!(
        !r.body.contains("pbx-secret") && !r.body.contains("password"),
        "{}",
        r.body
    );
    let r = api(
        &daemon,
        "POST",
        "/users",
        Some(user("b@acme.example", "+15551230001")),
    );
    expect(&r, 409, Some("number"));
    let r = api(
        &daemon,
        "POST",
        "/users",
        Some(user("b@acme.example", "15551230002")),
    );
    expect(&r, 400, Some("number"));
    expect(
        &api(
            &daemon,
            "POST",
            "/users",
            Some(user("b@acme.example", "+15551230002")),
        ),
        201,
        None,
    );
    let shown = expect(
        &api(&daemon, "GET", "/users/a@acme.example", None),
        200,
        None,
    );
    assert_eq!(shown["extension"], "0001");
    expect(
        &api(&daemon, "GET", "/users/nobody@acme.example", None),
        404,
        Some("upn"),
    );

    // The license-change cooldown, and force.
    let r = api(
        &daemon,
        "PATCH",
        "/users/a@acme.example",
        Some(json!({"skus": ["ENTERPRISEPACK", "MCOEV"]})),
    );
    let body = expect(&r, 400, Some("sku"));
    assert!(body["rule"].as_str().unwrap().contains("force"), "{body}");
    let r = api(
        &daemon,
        "PATCH",
        "/users/a@acme.example",
        Some(json!({"skus": ["ENTERPRISEPACK", "MCOEV"], "force": true})),
    );
    assert_eq!(
        expect(&r, 200, None)["skus"],
        json!(["ENTERPRISEPACK", "MCOEV"])
    );

    // Same operations, same JSON as the CLI.
    let from_api = expect(&api(&daemon, "GET", "/license/report", None), 200, None);
    let from_cli = cli_json(&daemon, &["license", "report", "--json"]);
    assert_eq!(from_api, from_cli);
    assert_eq!(from_api[0]["factors"]["ui"]["counted"], 2);
    let users_api = expect(
        &api(&daemon, "GET", "/users?enterprise=Acme", None),
        200,
        None,
    );
    assert_eq!(
        users_api,
        cli_json(&daemon, &["user", "list", "--enterprise", "Acme", "--json"])
    );
    expect(&api(&daemon, "GET", "/users", None), 400, Some("query"));

    // Gauges, the warning (2 of 2 acquired > 50 %) and today's audit row.
    daemon.wait_for(Duration::from_secs(20), "license gauges", || {
        daemon.metric_if_exposed("teamsgw_license_used{enterprise=\"Acme\",factor=\"ui\"}")
            == Some(2.0)
    });
    assert_eq!(
        daemon.metric("teamsgw_license_acquired{enterprise=\"Acme\"}"),
        2.0
    );
    assert_eq!(
        daemon.metric("teamsgw_license_warning{enterprise=\"Acme\"}"),
        1.0
    );
    assert!(
        daemon
            .log()
            .contains("license usage passed the warning limit")
    );
    let r = api(
        &daemon,
        "PATCH",
        "/enterprises/Acme",
        Some(json!({"acquired_licenses": 10})),
    );
    assert_eq!(expect(&r, 200, None)["acquired_licenses"], 10);
    daemon.wait_for(Duration::from_secs(20), "the warning to clear", || {
        daemon.metric_if_exposed("teamsgw_license_warning{enterprise=\"Acme\"}") == Some(0.0)
    });
    let today = {
        let r = api(
            &daemon,
            "GET",
            "/license/history?enterprise=Acme&from=2000-01-01&to=2999-12-31",
            None,
        );
        let days = expect(&r, 200, None);
        assert_eq!(days.as_array().unwrap().len(), 1, "{days}");
        assert_eq!(days[0]["report"]["enterprise"], "Acme");
        days[0]["day"].as_str().unwrap().to_owned()
    };
    let history = cli_json(
        &daemon,
        &[
            "license",
            "history",
            "--enterprise",
            "Acme",
            "--from",
            &today,
            "--to",
            &today,
            "--json",
        ],
    );
    assert_eq!(history[0]["report"]["acquired"], 10, "{history}");
    let r = api(
        &daemon,
        "GET",
        "/license/history?enterprise=Acme&from=2026-02-01&to=2026-01-01",
        None,
    );
    expect(&r, 400, Some("to"));

    // Deletes: children need cascade (409), then everything goes.
    expect(
        &api(&daemon, "DELETE", "/enterprises/Acme", None),
        409,
        Some("cascade"),
    );
    expect(
        &api(&daemon, "DELETE", "/users/b@acme.example", None),
        204,
        None,
    );
    expect(
        &api(&daemon, "DELETE", "/users/b@acme.example", None),
        404,
        Some("upn"),
    );
    expect(
        &api(&daemon, "DELETE", "/pbxs/Acme/main?cascade=true", None),
        204,
        None,
    );
    expect(
        &api(
            &daemon,
            "DELETE",
            "/direct-routes/acme.teams.carrier.example",
            None,
        ),
        204,
        None,
    );
    assert_eq!(daemon.metric("teamsgw_snapshot_direct_routes"), 0.0);
    expect(
        &api(&daemon, "DELETE", "/enterprises/Acme?cascade=true", None),
        204,
        None,
    );
    assert_eq!(
        expect(&api(&daemon, "GET", "/enterprises", None), 200, None),
        json!([])
    );
    // The audit history outlives the enterprise: the carrier still bills its last days.
    let all_days = "from=2000-01-01&to=2999-12-31";
    let r = api(
        &daemon,
        "GET",
        &format!("/license/history?enterprise=Acme&{all_days}"),
        None,
    );
    assert_eq!(expect(&r, 200, None).as_array().unwrap().len(), 1);
    let r = api(
        &daemon,
        "GET",
        &format!("/license/history?enterprise=Never&{all_days}"),
        None,
    );
    expect(&r, 404, Some("enterprise"));
}

/// Issue 32 over the API: an Operator Connect enterprise, its numbers and their rules, an
/// import with refused rows, a release, and a license report that is the CLI's, figure for
/// figure (seed 002's example: 3 monitored users, 2 with OC numbers).
#[test]
fn operator_connect_numbers_through_the_api_agree_with_the_cli() {
    let ports = Ports::new();
    let mut daemon = Daemon::start(&config(&ports, "sqlite://var/teamsgw.db", ""), &ports);
    daemon.wait_ready(Duration::from_secs(30));
    let post = |path: &str, body: Value| api(&daemon, "POST", path, Some(body));
    expect(
        &post(
            "/enterprises",
            json!({"name": "Fabrikam", "tenant_id": OC_TENANT, "acquired_licenses": 10,
                "service": "operator-connect"}),
        ),
        201,
        None,
    );
    let shown = expect(
        &api(&daemon, "GET", "/enterprises/Fabrikam", None),
        200,
        None,
    );
    assert_eq!(shown["service"], "operator-connect", "{shown}");
    expect(
        &post(
            "/direct-routes",
            json!({"enterprise": "Fabrikam", "fqdn": "fabrikam.teams.carrier.example"}),
        ),
        400,
        Some("enterprise"),
    );
    expect(
        &post(
            "/pbxs",
            json!({"enterprise": "Fabrikam", "name": "main", "domain": "pbx.fabrikam.example"}),
        ),
        201,
        None,
    );
    for (upn, number) in [
        ("ann@fabrikam.example", "+14255550001"),
        ("ben@fabrikam.example", "+14255550002"),
        ("cat@fabrikam.example", "+14255550003"),
    ] {
        expect(
            &post(
                "/users",
                json!({"enterprise": "Fabrikam", "pbx": "main", "upn": upn, "number": number,
                    "extension": &number[8..], "password": "x", "skus": ["SPE_E5"]}),
            ),
            201,
            None,
        );
    }
    let added = expect(
        &post(
            "/oc-numbers",
            json!({"enterprise": "Fabrikam", "number": "+14255550100",
                "user": "ann@fabrikam.example", "country": "us"}),
        ),
        201,
        None,
    );
    assert_eq!(added["assignment"], "UserAssigned", "{added}");
    assert_eq!(added["source"], "api", "{added}");
    assert_eq!(added["country"], "US", "{added}");
    expect(
        &post(
            "/oc-numbers",
            json!({"enterprise": "Fabrikam", "number": "+14255550100"}),
        ),
        409,
        Some("number"),
    );
    expect(
        &post(
            "/oc-numbers",
            json!({"enterprise": "Fabrikam", "number": "+14255550101", "user": "ann@fabrikam.example"}),
        ),
        400,
        Some("user"),
    );
    expect(
        &post(
            "/oc-numbers",
            json!({"enterprise": "Fabrikam", "number": "+14255550101"}),
        ),
        201,
        None,
    );
    let assigned = expect(
        &api(
            &daemon,
            "PATCH",
            "/oc-numbers/+14255550101",
            Some(json!({"user": "ben@fabrikam.example"})),
        ),
        200,
        None,
    );
    assert_eq!(assigned["user"], "ben@fabrikam.example", "{assigned}");
    let ben = expect(
        &api(&daemon, "GET", "/users/ben@fabrikam.example", None),
        200,
        None,
    );
    assert_eq!(ben["number"], "+14255550101", "{ben}");

    // An import with an OC row, a Direct Routing row (reported) and a bad row.
    let rows = json!([
        {"TelephoneNumber": "+14255550200", "NumberType": "OperatorConnect",
         "ActivationState": "Activated", "PstnAssignmentStatus": "Unassigned"},
        {"TelephoneNumber": "+14255550201", "NumberType": "DirectRouting",
         "ActivationState": "Activated", "PstnAssignmentStatus": "Unassigned"},
        {"TelephoneNumber": "+14255550202", "NumberType": "OperatorConnect",
         "ActivationState": "Sleeping", "PstnAssignmentStatus": "Unassigned"},
    ]);
    let dry = expect(
        &post(
            "/oc-numbers/import?enterprise=Fabrikam&dry_run=true",
            rows.clone(),
        ),
        200,
        None,
    );
    assert_eq!(
        (dry["added"].as_u64(), dry["dry_run"].as_bool()),
        (Some(1), Some(true)),
        "{dry}"
    );
    let done = expect(
        &post("/oc-numbers/import?enterprise=Fabrikam", rows),
        200,
        None,
    );
    assert_eq!(done["added"], 1, "{done}");
    let refused = done["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{done}");
    assert_eq!(refused[0]["line"], 2, "{done}");
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("ActivationState"),
        "{done}"
    );

    let released = expect(
        &api(&daemon, "DELETE", "/oc-numbers/+14255550200", None),
        200,
        None,
    );
    assert_eq!(released["first"], "+14255550200", "{released}");
    let list = expect(
        &api(
            &daemon,
            "GET",
            "/oc-numbers/released?enterprise=Fabrikam",
            None,
        ),
        200,
        None,
    );
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // The export reads back as an import that changes nothing.
    let exported = expect(
        &api(
            &daemon,
            "GET",
            "/oc-numbers/export?enterprise=Fabrikam",
            None,
        ),
        200,
        None,
    );
    let n = exported.as_array().unwrap().len();
    assert_eq!(n, 2, "{exported}");
    assert_eq!(exported[0]["NumberType"], "OperatorConnect", "{exported}");
    let again = expect(
        &post("/oc-numbers/import?enterprise=Fabrikam", exported),
        200,
        None,
    );
    assert_eq!(
        (again["added"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(2)),
        "{again}"
    );

    // The report: OC 2 (2) for ann and ben; the API's figures are the CLI's.
    let report = expect(
        &api(&daemon, "GET", "/license/report?enterprise=Fabrikam", None),
        200,
        None,
    );
    let f = &report[0]["factors"]["operator_connect"];
    assert_eq!(
        (f["counted"].as_u64(), f["configured"].as_u64()),
        (Some(2), Some(2)),
        "{report}"
    );
    assert_eq!(report[0]["monitored_users"], 3, "{report}");
    let cli = cli_json(
        &daemon,
        &["license", "report", "--enterprise", "Fabrikam", "--json"],
    );
    assert_eq!(report, cli);
}

#[test]
fn api_without_a_configured_token_refuses_everything() {
    let ports = Ports::new();
    let mut daemon = Daemon::start(&test_config(&ports, ""), &ports);
    daemon.wait_ready(Duration::from_secs(30));
    let r = http_request(daemon.admin, "GET", "/api/v1/enterprises", Some(""), None);
    let body = expect(&r, 401, Some("admin.token"));
    assert!(
        body["rule"].as_str().unwrap().contains("admin.token"),
        "{body}"
    );
}

/// On PostgreSQL a CLI change reaches a running daemon without SIGHUP (LISTEN/NOTIFY).
#[test]
fn postgresql_changes_reload_the_daemon_without_sighup() {
    let pg = Postgres::start();
    let ports = Ports::new();
    let mut daemon = Daemon::start(&config(&ports, &pg.url, ""), &ports);
    daemon.wait_ready(Duration::from_secs(30));
    daemon.wait_for(Duration::from_secs(10), "the change listener", || {
        daemon.log().contains("following provisioning changes")
    });
    assert_eq!(daemon.metric("teamsgw_snapshot_direct_routes"), 0.0);
    for args in [
        vec![
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            TENANT,
            "--acquired-licenses",
            "1",
        ],
        vec![
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "MCOCAP",
            "--units",
            "1",
        ],
        vec![
            "direct-route",
            "add",
            "--enterprise",
            "Acme",
            "--fqdn",
            "acme.teams.carrier.example",
        ],
    ] {
        let mut full = vec!["--config", "teamsgw.toml"];
        full.extend(args);
        let (code, _, err) = run_cli(daemon.dir(), &full);
        assert_eq!(code, 0, "{err}");
    }
    daemon.wait_for(Duration::from_secs(10), "the route without SIGHUP", || {
        daemon.metric_if_exposed("teamsgw_snapshot_direct_routes") == Some(1.0)
    });
}

/// Where scripts/test.sh installs schemathesis (a venv, reused between runs).
fn schemathesis() -> PathBuf {
    let candidates = [
        std::env::var_os("SCHEMATHESIS_FOR_TEAMSGW_TESTS").map(PathBuf::from),
        Some(PathBuf::from(
            "/var/tmp/teamsgw-schemathesis/bin/schemathesis",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "schemathesis not found: scripts/test.sh installs it from PyPI \
                 (python3 -m venv /var/tmp/teamsgw-schemathesis && \
                 /var/tmp/teamsgw-schemathesis/bin/pip install schemathesis), \
                 or set SCHEMATHESIS_FOR_TEAMSGW_TESTS"
            )
        })
}

/// schemathesis generates requests for every operation of /api/v1/openapi.json: no 5xx, and
/// every status, content type and body matches the document.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = schemathesis();
    let ports = Ports::new();
    let mut daemon = Daemon::start(&config(&ports, "sqlite://var/teamsgw.db", ""), &ports);
    daemon.wait_ready(Duration::from_secs(30));
    // Some data, so reads and deletes also meet things that exist.
    let setup = [
        (
            "POST",
            "/enterprises",
            json!({"name": "Acme", "tenant_id": TENANT, "acquired_licenses": 9}),
        ),
        (
            "POST",
            "/enterprises/Acme/skus",
            json!({"sku": "SPE_E5", "units": 9}),
        ),
        (
            "POST",
            "/direct-routes",
            json!({"enterprise": "Acme", "fqdn": "acme.teams.carrier.example"}),
        ),
        (
            "POST",
            "/pbxs",
            json!({"enterprise": "Acme", "name": "main", "domain": "pbx.acme.example"}),
        ),
        (
            "POST",
            "/users",
            json!({"enterprise": "Acme", "pbx": "main", "upn": "a@acme.example",
            "number": "+15551230001", "extension": "1001", "password": "x", "skus": ["SPE_E5"]}),
        ),
        (
            "POST",
            "/enterprises",
            json!({"name": "Fabrikam", "tenant_id": OC_TENANT, "acquired_licenses": 3,
            "service": "operator-connect"}),
        ),
        (
            "POST",
            "/pbxs",
            json!({"enterprise": "Fabrikam", "name": "main", "domain": "pbx.fabrikam.example"}),
        ),
        (
            "POST",
            "/users",
            json!({"enterprise": "Fabrikam", "pbx": "main", "upn": "b@fabrikam.example",
            "number": "+14255550001", "extension": "2001", "password": "x", "skus": ["SPE_E5"]}),
        ),
        (
            "POST",
            "/oc-numbers",
            json!({"enterprise": "Fabrikam", "number": "+14255550100", "user": "b@fabrikam.example"}),
        ),
    ];
    for (method, path, body) in setup {
        let r = api(&daemon, method, path, Some(body));
        assert_eq!(r.status, 201, "{path}: {r:?}");
    }
    let base = format!("http://{}/api/v1", daemon.admin);
    let out = Command::new(&schemathesis)
        .args([
            "run",
            &format!("{base}/openapi.json"),
            "--url",
            &base,
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--no-color",
        ])
        // Its cache (`.schemathesis/`) goes to the daemon's scratch directory, not the tree:
        // each run starts from nothing, with no crash replayed from an earlier one.
        .current_dir(daemon.dir())
        .output()
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains("passed"), "{report}");
    assert!(
        !daemon.log().contains("API request failed"),
        "{}",
        daemon.log()
    );
}
