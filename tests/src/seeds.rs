//! The seeds' worked example of the license page, built through the CLI the way an admin
//! would (licensing.md; seeds: the license page): enterprise Contoso with 50 acquired
//! licenses, Direct Routing 9, LCM 10 (19), UI 3 (4), service numbers 1 (1): 23 licensed,
//! 27 monitored users, 27 available. Shared by the CLI, API and console tests so each checks
//! the same figures.

use std::path::Path;

use crate::run_cli;

pub const TENANT: &str = "0e1b2c3d-1111-2222-3333-444455556666";

/// Runs the CLI with `--config teamsgw.toml` in `d` and expects success; its stdout.
pub fn ok(d: &Path, args: &[&str]) -> String {
    let mut full = vec!["--config", "teamsgw.toml"];
    full.extend_from_slice(args);
    let (code, out, err) = run_cli(d, &full);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Enterprise `name` (50 licenses) in the database `d/teamsgw.toml` names, ready for users:
/// direct route `<name>.teams.carrier.example` and PBX `main`.
pub fn enterprise_with_pbx(d: &Path, name: &str) {
    let label = name.to_ascii_lowercase();
    let fqdn = format!("{label}.teams.carrier.example");
    let domain = format!("pbx.{label}.example");
    ok(
        d,
        &[
            "enterprise",
            "add",
            name,
            "--tenant-id",
            TENANT,
            "--acquired-licenses",
            "50",
        ],
    );
    // The direct route's Microsoft user takes one unit (licensing.md §2.3).
    ok(
        d,
        &[
            "enterprise",
            "sku",
            "add",
            name,
            "--sku",
            "MCOCAP",
            "--units",
            "1",
        ],
    );
    ok(
        d,
        &["direct-route", "add", "--enterprise", name, "--fqdn", &fqdn],
    );
    ok(
        d,
        &[
            "pbx",
            "add",
            "--enterprise",
            name,
            "--name",
            "main",
            "--domain",
            &domain,
        ],
    );
}

/// The worked example in the database `d/teamsgw.toml` names (enterprise Contoso).
pub fn worked_example(d: &Path) {
    enterprise_with_pbx(d, "Contoso");
    let gw = "contoso.teams.carrier.example";
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
            "Sales and Marketing",
        ],
    );
    ok(
        d,
        &[
            "lcm-template",
            "add",
            "--enterprise",
            "Contoso",
            "--name",
            "Milano",
            "--group",
            "Retail",
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
            "+15550100",
            "--tag",
            gw,
        ],
    );

    // Imported (not UI-managed): 8 DR members of Sales and Marketing, one plain member, one DR
    // member of Retail, 8 plain Retail members, 5 monitored users in no group.
    let mut csv = String::from(
        "UserPrincipalName,LineUri,EnterpriseVoiceEnabled,OnlineVoiceRoutingPolicy,OnlinePstnGateway,Extension,Password,Groups,Skus\n",
    );
    let mut n = 0;
    let mut row = |upn: String, dr: bool, group: &str| {
        n += 1;
        let (ev, policy, gateway) = if dr {
            ("True", "Unrestricted", gw)
        } else {
            ("False", "", "")
        };
        csv.push_str(&format!(
            "{upn},tel:+1555123{n:04},{ev},{policy},{gateway},{},pw{n},{group},SPE_E5\n",
            2000 + n
        ));
    };
    for i in 1..=8 {
        row(
            format!("sm{i}@contoso.example"),
            true,
            "Sales and Marketing",
        );
    }
    row("sm10@contoso.example".into(), false, "Sales and Marketing");
    row("r1@contoso.example".into(), true, "Retail");
    for i in 2..=9 {
        row(format!("r{i}@contoso.example"), false, "Retail");
    }
    for i in 1..=5 {
        row(format!("m{i}@contoso.example"), false, "");
    }
    std::fs::write(d.join("users.csv"), csv).unwrap();
    let out = ok(
        d,
        &[
            "user",
            "import",
            "--enterprise",
            "Contoso",
            "--pbx",
            "main",
            "users.csv",
        ],
    );
    assert!(out.contains("23 rows: added 23"), "{out}");

    // Through the CLI (UI-managed): three users in no group and one Sales and Marketing member.
    std::fs::write(d.join("pw"), "secret\n").unwrap();
    for (i, upn) in ["ui1", "ui2", "ui3", "sm9"].iter().enumerate() {
        let upn = format!("{upn}@contoso.example");
        let number = format!("+1555999{i:04}");
        let ext = format!("{}", 3000 + i);
        let mut args = vec![
            "user",
            "add",
            "--enterprise",
            "Contoso",
            "--pbx",
            "main",
            "--upn",
            &upn,
            "--number",
            &number,
            "--extension",
            &ext,
            "--password-file",
            "pw",
            "--sku",
            "SPE_E5",
        ];
        if upn.starts_with("sm9") {
            args.extend(["--group", "Sales and Marketing"]);
        }
        ok(d, &args);
    }
}

/// Seed 002's worked example of the Operator Connect license page, in the database
/// `d/teamsgw.toml` names: Operator Connect enterprise Fabrikam (10 acquired licenses) with
/// three monitored users (imported, so none counts as managed by UI), two of them holding an
/// activated UserAssigned OC number: Managed Users-Operator Connect 2 (2), 2 licensed.
pub fn operator_connect_example(d: &Path) {
    ok(
        d,
        &[
            "enterprise",
            "add",
            "Fabrikam",
            "--tenant-id",
            "7f3e2a10-aaaa-4bbb-8ccc-000000000032",
            "--acquired-licenses",
            "10",
            "--service",
            "operator-connect",
        ],
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
    std::fs::write(
        d.join("fabrikam-users.csv"),
        "UserPrincipalName,LineUri,EnterpriseVoiceEnabled,Extension,Password,Skus\n\
         ann@fabrikam.example,tel:+14255550001,True,2001,pw-a,SPE_E5\n\
         ben@fabrikam.example,tel:+14255550002,True,2002,pw-b,SPE_E5\n\
         cat@fabrikam.example,tel:+14255550003,True,2003,pw-c,SPE_E5\n",
    )
    .unwrap();
    ok(
        d,
        &[
            "user",
            "import",
            "--enterprise",
            "Fabrikam",
            "--pbx",
            "main",
            "fabrikam-users.csv",
        ],
    );
    for (number, upn) in [
        ("+14255550100", "ann@fabrikam.example"),
        ("+14255550101", "ben@fabrikam.example"),
    ] {
        ok(
            d,
            &[
                "oc-number",
                "add",
                "--enterprise",
                "Fabrikam",
                "--number",
                number,
                "--user",
                upn,
            ],
        );
    }
}
