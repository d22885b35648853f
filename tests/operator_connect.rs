//! Operator Connect (issue 32) through the CLI, on SQLite and a real PostgreSQL: the service
//! type and its rules, the OC number inventory and its rules, the import of
//! `Get-CsPhoneNumberAssignment` output, and the OC license page's factor 1 (seed 002's worked
//! example, and a mixed tenant where each user and number lands in one factor or none).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::run_cli;

const OC_TENANT: &str = "7f3e2a10-aaaa-4bbb-8ccc-000000000032";
const DR_TENANT: &str = "7f3e2a10-aaaa-4bbb-8ccc-000000000033";

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

/// Exit 1 and an error naming `field` and containing `rule`.
fn refused(dir: &Path, args: &[&str], field: &str, rule: &str) -> String {
    let (code, _, err) = cli(dir, args);
    assert_eq!(code, 1, "{args:?} should fail: {err}");
    assert!(err.contains(field), "{args:?}: should name {field}: {err}");
    assert!(err.contains(rule), "{args:?}: should say {rule:?}: {err}");
    err
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

fn report(dir: &Path) -> Value {
    let r = json(
        dir,
        &["license", "report", "--enterprise", "Fabrikam", "--json"],
    );
    r[0].clone()
}

fn factor(r: &Value, name: &str) -> (u64, u64, bool) {
    let f = &r["factors"][name];
    (
        f["counted"].as_u64().unwrap(),
        f["configured"].as_u64().unwrap(),
        f["enabled"].as_bool().unwrap(),
    )
}

/// Three monitored users, imported (so none is managed by UI, licensing.md §1.2 factor 3).
const USERS_CSV: &str = "\
UserPrincipalName,LineUri,EnterpriseVoiceEnabled,Extension,Password,Groups,Skus
ann@fabrikam.example,tel:+14255550001,True,2001,pw-a,,SPE_E5
ben@fabrikam.example,tel:+14255550002,True,2002,pw-b,Sales,SPE_E5
cat@fabrikam.example,tel:+14255550003,True,2003,pw-c,Sales,SPE_E5
";

/// `Get-CsPhoneNumberAssignment` output: two OC rows, a Direct Routing and a Calling Plan row
/// (reported, not taken), and two bad rows (a status Microsoft does not have, a user the
/// enterprise does not have).
const NUMBERS_CSV: &str = "\
TelephoneNumber,NumberType,ActivationState,PstnAssignmentStatus,AssignedPstnTargetId,IsoCountryCode,City
+14255550200,OperatorConnect,Activated,VoiceApplicationAssigned,9b1c0000-0000-4000-8000-000000000001,US,Redmond
14255550201,OperatorConnect,AssignmentPending,Unassigned,,us,Redmond
+14255550202,DirectRouting,Activated,UserAssigned,ann@fabrikam.example,US,Redmond
+14255550203,CallingPlan,Activated,UserAssigned,ben@fabrikam.example,US,Redmond
+14255550204,OperatorConnect,Activated,Borrowed,,US,Redmond
+14255550205,OperatorConnect,Activated,UserAssigned,nobody@fabrikam.example,US,Redmond
";

fn workflow(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("teamsgw.toml"),
        format!(
            "[database]\nurl = \"{database_url}\"\n\n[teams]\nbase_fqdn = \"teams.carrier.example\"\n"
        ),
    )
    .unwrap();

    // §1 The service type: an OC enterprise needs no direct route before its PBX, and refuses
    // one; a DR enterprise is as before.
    ok(
        d,
        &[
            "enterprise",
            "add",
            "Fabrikam",
            "--tenant-id",
            OC_TENANT,
            "--acquired-licenses",
            "10",
            "--service",
            "operator-connect",
        ],
    );
    refused(
        d,
        &[
            "enterprise",
            "add",
            "Bad",
            "--tenant-id",
            DR_TENANT,
            "--acquired-licenses",
            "1",
            "--service",
            "calling-plan",
        ],
        "service",
        "is not direct-routing or operator-connect",
    );
    ok(
        d,
        &[
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            DR_TENANT,
            "--acquired-licenses",
            "10",
        ],
    );
    let list = json(d, &["enterprise", "list", "--json"]);
    assert_eq!(list[0]["service"], "direct-routing", "{list}");
    assert_eq!(list[1]["service"], "operator-connect", "{list}");
    refused(
        d,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Fabrikam",
            "--fqdn",
            "fabrikam.teams.carrier.example",
        ],
        "enterprise",
        "Operator Connect enterprise",
    );
    ok(
        d,
        &[
            "pbx",
            "add",
            "--enterprise",
            "Fabrikam",
            "--name",
            "main",
            "--domain",
            "pbx.fabrikam.example",
        ],
    );
    std::fs::write(d.join("users.csv"), USERS_CSV).unwrap();
    ok(
        d,
        &[
            "user",
            "import",
            "--enterprise",
            "Fabrikam",
            "--pbx",
            "main",
            "users.csv",
        ],
    );
    refused(
        d,
        &[
            "enterprise",
            "set",
            "Fabrikam",
            "--service",
            "direct-routing",
        ],
        "service",
        "has 3 users",
    );

    // §2 Numbers and their rules.
    let add = |number: &str, extra: &[&str]| {
        let mut args = vec![
            "oc-number",
            "add",
            "--enterprise",
            "Fabrikam",
            "--number",
            number,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(d, &args)
    };
    let refuse = |args: Vec<String>, field: &str, rule: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(d, &args, field, rule)
    };
    run(add("+14255550100", &["--user", "ann@fabrikam.example"]));
    run(add("+14255550101", &[]));
    run(add("+14255550110-+14255550119", &["--country", "us"]));
    let user = json(d, &["user", "show", "ann@fabrikam.example", "--json"]);
    assert_eq!(
        user["number"], "+14255550100",
        "assigning a user an OC number sets its number (LineURI)"
    );
    refuse(add("+14255550115", &[]), "number", "overlaps an OC number");
    refuse(
        add("+14255550102", &["--user", "ann@fabrikam.example"]),
        "user",
        "already holds OC number +14255550100",
    );
    refuse(
        add(
            "+14255550103",
            &[
                "--assignment",
                "ConferenceAssigned",
                "--user",
                "ann@fabrikam.example",
            ],
        ),
        "user",
        "only a UserAssigned number names a user",
    );
    refuse(
        add("+14255550104", &["--user", "zed@fabrikam.example"]),
        "user",
        "no user",
    );
    refused(
        d,
        &[
            "oc-number",
            "assign",
            "--number",
            "+14255550112",
            "--user",
            "ben@fabrikam.example",
        ],
        "number",
        "only a single number is assigned",
    );
    refused(
        d,
        &[
            "service-number",
            "add",
            "--enterprise",
            "Fabrikam",
            "--number",
            "+14255550118",
            "--tag",
            "FAX",
        ],
        "number",
        "overlaps an OC number",
    );
    // A number belongs to one enterprise only, and only OC enterprises hold them.
    refused(
        d,
        &[
            "oc-number",
            "add",
            "--enterprise",
            "Acme",
            "--number",
            "+14255550300",
        ],
        "enterprise",
        "Direct Routing enterprise",
    );
    ok(
        d,
        &[
            "oc-number",
            "assign",
            "--number",
            "+14255550101",
            "--user",
            "ben@fabrikam.example",
        ],
    );

    // §3 Seed 002's worked example: 3 monitored users, 2 with assigned OC numbers.
    let r = report(d);
    assert_eq!(factor(&r, "operator_connect"), (2, 2, true), "{r}");
    assert_eq!(factor(&r, "direct_routing"), (0, 0, false), "{r}");
    assert_eq!(r["monitored_users"], 3, "{r}");
    assert_eq!(r["currently_licensed"], 2, "{r}");
    let table = ok(d, &["license", "report", "--enterprise", "Fabrikam"]);
    assert!(table.contains("OC") && table.contains("2 (2)"), "{table}");

    // A mixed tenant: ben (OC number, in an LCM group) counts once, under OC; cat (group only)
    // under LCM; a VoiceApplicationAssigned and an Unassigned number are nobody's licence.
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
    run(add(
        "+14255550120",
        &["--assignment", "VoiceApplicationAssigned"],
    ));
    let r = report(d);
    assert_eq!(factor(&r, "operator_connect"), (2, 2, true), "{r}");
    assert_eq!(factor(&r, "lcm"), (1, 2, true), "{r}");
    assert_eq!(factor(&r, "service_numbers"), (0, 0, true), "{r}");
    assert_eq!(r["currently_licensed"], 3, "{r}");
    // A number not activated does not count; unassigning moves ben to LCM.
    ok(
        d,
        &[
            "oc-number",
            "assign",
            "--number",
            "+14255550100",
            "--activation",
            "UpdatePending",
        ],
    );
    ok(d, &["oc-number", "unassign", "--number", "+14255550101"]);
    let r = report(d);
    assert_eq!(factor(&r, "operator_connect"), (0, 0, true), "{r}");
    assert_eq!(factor(&r, "lcm"), (2, 2, true), "{r}");

    // Release: off the inventory, onto the released list with today's date.
    ok(d, &["oc-number", "release", "--number", "+14255550101"]);
    let numbers = json(
        d,
        &["oc-number", "list", "--enterprise", "Fabrikam", "--json"],
    );
    assert!(
        numbers
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["first"] != "+14255550101"),
        "{numbers}"
    );
    let released = json(
        d,
        &[
            "oc-number",
            "list",
            "--enterprise",
            "Fabrikam",
            "--released",
            "--json",
        ],
    );
    assert_eq!(released[0]["first"], "+14255550101", "{released}");
    assert_eq!(
        released[0]["released_on"].as_str().unwrap().len(),
        10,
        "{released}"
    );

    // Import: the OC rows are written, the rest reported as FILE:LINE: reason; a dry run
    // writes nothing; a second import changes nothing.
    std::fs::write(d.join("numbers.csv"), NUMBERS_CSV).unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec![
            "oc-number",
            "import",
            "--enterprise",
            "Fabrikam",
            "numbers.csv",
        ];
        args.extend_from_slice(extra);
        cli(d, &args)
    };
    let (code, out, err) = import(&["--dry-run"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("would add 2") && out.contains("nothing written"),
        "{out}"
    );
    let count = |d: &Path| {
        json(
            d,
            &["oc-number", "list", "--enterprise", "Fabrikam", "--json"],
        )
        .as_array()
        .unwrap()
        .len()
    };
    assert_eq!(count(d), 3, "the dry run wrote nothing");
    let (code, out, err) = import(&[]);
    assert_eq!(code, 1, "refused rows make the import fail: {out}{err}");
    assert!(
        out.contains("6 rows: added 2, updated 0, unchanged 0, refused 4"),
        "{out}"
    );
    for (line, reason) in [
        (4, "NumberType DirectRouting is not OperatorConnect"),
        (5, "NumberType CallingPlan is not OperatorConnect"),
        (6, "is not a PstnAssignmentStatus"),
        (7, "no user \"nobody@fabrikam.example\""),
    ] {
        assert!(
            err.contains(&format!("numbers.csv:{line}: ")) && err.contains(reason),
            "line {line}: {reason}: {err}"
        );
    }
    assert_eq!(count(d), 5);
    let listed = json(
        d,
        &["oc-number", "list", "--enterprise", "Fabrikam", "--json"],
    );
    let pending = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["first"] == "+14255550201")
        .unwrap();
    assert_eq!(pending["activation"], "AssignmentPending", "{pending}");
    assert_eq!(pending["source"], "import", "{pending}");
    assert_eq!(pending["country"], "US", "{pending}");
    let (_, out, _) = import(&[]);
    assert!(out.contains("added 0, updated 0, unchanged 2"), "{out}");

    // Export reads back as an import that changes nothing.
    let exported = ok(d, &["oc-number", "export", "--enterprise", "Fabrikam"]);
    std::fs::write(d.join("export.json"), &exported).unwrap();
    let out = ok(
        d,
        &[
            "oc-number",
            "import",
            "--enterprise",
            "Fabrikam",
            "export.json",
        ],
    );
    assert!(out.contains("added 0, updated 0, unchanged 14"), "{out}");
    let csv = ok(
        d,
        &["oc-number", "export", "--enterprise", "Fabrikam", "--csv"],
    );
    assert!(
        csv.starts_with("TelephoneNumber,NumberType,ActivationState,PstnAssignmentStatus"),
        "{csv}"
    );

    // Deleting the enterprise releases its numbers: billing keeps them.
    ok(d, &["enterprise", "delete", "Fabrikam", "--cascade"]);
    let released = json(
        d,
        &[
            "oc-number",
            "list",
            "--enterprise",
            "Fabrikam",
            "--released",
            "--json",
        ],
    );
    assert_eq!(released.as_array().unwrap().len(), 6, "{released}");
}

#[test]
fn operator_connect_on_sqlite() {
    workflow("sqlite://teamsgw.db");
}

#[test]
fn operator_connect_on_postgresql() {
    let pg = Postgres::start();
    workflow(&pg.url);
}
