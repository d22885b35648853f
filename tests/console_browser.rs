//! Acceptance for the web console in a real browser: Debian's headless Chromium, driven
//! through WebDriver (chromium-driver) by Debian's python3-selenium (`tests/browser/console.py`),
//! against the real daemon holding the seeds' worked example. The script signs in (a wrong
//! token first), reads the license page, switches LCM off with Apply license factors, presses
//! Refresh licenses, opens the License-Audit for today, and signs out; this test checks what
//! it read against `license report --json`. Full-page screenshots of each page are saved under
//! the target directory (`console-screenshots/`) for a person to look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use teamsgw_tests::web::console_daemon;
use teamsgw_tests::{Daemon, require_program, seeds};

const TOKEN: &str = "browser-token-0123456789-0123456789abcdef";

fn report(daemon: &Daemon) -> Value {
    report_of(daemon, "Contoso")
}

fn report_of(daemon: &Daemon, enterprise: &str) -> Value {
    let out = seeds::ok(
        daemon.dir(),
        &["license", "report", "--enterprise", enterprise, "--json"],
    );
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// `n1 (n2)` as the page shows a factor (`off (n2)` when switched off).
fn cell(f: &Value) -> String {
    if f["enabled"] == true {
        format!("{} ({})", f["counted"], f["configured"])
    } else {
        format!("off ({})", f["configured"])
    }
}

fn assert_page_says(page: &Value, report: &Value, when: &str) {
    for key in [
        "acquired",
        "currently_licensed",
        "monitored_users",
        "available",
    ] {
        assert_eq!(
            page[key],
            report[key].to_string(),
            "{when}: {key}\npage {page}\nreport {report}"
        );
    }
    for f in ["direct_routing", "lcm", "ui", "service_numbers"] {
        assert_eq!(
            page["factors"][f],
            cell(&report["factors"][f]),
            "{when}: factor {f}"
        );
    }
}

#[test]
fn an_admin_works_the_license_page_in_headless_chromium() {
    require_program("chromium", "chromium");
    require_program("chromedriver", "chromium-driver");
    let selenium = Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status();
    assert!(
        selenium.is_ok_and(|s| s.success()),
        "python3-selenium is missing: apt-get install python3-selenium"
    );
    let daemon = console_daemon(TOKEN, "");
    seeds::worked_example(daemon.dir());
    seeds::operator_connect_example(daemon.dir());
    daemon.reload();
    let before = report(&daemon);
    assert_eq!(before["currently_licensed"], 23, "{before}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/console.py");
    let base = format!("http://{}", daemon.admin);
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([&base, TOKEN, shots.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed:\n{stderr}\n{stdout}\n{}",
        daemon.log()
    );
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(seen["overview_licensed"], "23", "{seen}");
    assert_page_says(&seen["before"], &before, "the worked example");
    assert_eq!(seen["before"]["factors"]["lcm"], "10 (19)");
    let after = report(&daemon);
    assert_eq!(after["factors"]["lcm"]["enabled"], false, "{after}");
    assert_ne!(after["currently_licensed"], 23);
    assert_page_says(&seen["after_apply"], &after, "after Apply license factors");
    assert_page_says(&seen["after_refresh"], &after, "after Refresh licenses");
    let (t1, t2) = (
        &seen["after_apply"]["calculation_time"],
        &seen["after_refresh"]["calculation_time"],
    );
    assert_ne!(t1, t2, "Refresh licenses moves the calculation time");
    let today = &t2.as_str().unwrap()[..10];
    assert_eq!(seen["audit_days"], serde_json::json!([today]), "{seen}");
    assert_eq!(seen["audit_chart"], 2, "licensed and acquired lines");
    assert!(
        seen["phone_width"].as_f64().unwrap() <= 390.0,
        "the page fits a phone: {seen}"
    );
    assert!(
        seen["after_sign_out"]
            .as_str()
            .unwrap()
            .ends_with("/ui/sign-in"),
        "{seen}"
    );
    // Seed 002 (issue 32): the OC page says what `license report` says, in seed 002's words.
    let oc = report_of(&daemon, "Fabrikam");
    let page = &seen["oc"];
    assert_eq!(page["factors"]["operator_connect"], "2 (2)", "{seen}");
    for f in ["operator_connect", "lcm", "ui", "service_numbers"] {
        assert_eq!(page["factors"][f], cell(&oc["factors"][f]), "OC factor {f}");
    }
    assert_eq!(
        page["currently_licensed"],
        oc["currently_licensed"].to_string()
    );
    assert_eq!(page["monitored_users"], "3");
    assert_eq!(
        page["labels"],
        serde_json::json!([
            "Managed Users-Operator Connect",
            "Managed Users-By LifeCycle Management",
            "Managed Users-By User Interface",
            "Managed Service Numbers"
        ])
    );
    assert_eq!(
        page["numbers"],
        serde_json::json!(["+14255550100", "+14255550101"])
    );
    assert_eq!(page["billed"]["ann@fabrikam.example"], "Operator Connect");
    assert_eq!(page["billed"]["cat@fabrikam.example"], "not billed");
    // The inventory's operations in the browser: cat's new number counts, ben's released
    // number does not, and the dry-run import names the Direct Routing row and wrote nothing.
    assert_eq!(seen["oc_after_add"], "3 (3)", "{seen}");
    let now = report_of(&daemon, "Fabrikam");
    assert_eq!(
        seen["oc_final"]["operator_connect"],
        cell(&now["factors"]["operator_connect"])
    );
    assert_eq!(seen["oc_final"]["operator_connect"], "2 (2)", "{seen}");
    assert_eq!(
        seen["oc_final"]["numbers"],
        serde_json::json!(["+14255550100", "+14255550102"])
    );
    let summary = seen["oc_import"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("would add 1") && summary.contains("nothing written"),
        "{summary}"
    );
    assert_eq!(seen["oc_import"]["refused_lines"], serde_json::json!(["3"]));
    let listed = seeds::ok(
        daemon.dir(),
        &["oc-number", "list", "--enterprise", "Fabrikam", "--json"],
    );
    assert!(
        !listed.contains("+14255550300"),
        "the dry run wrote nothing"
    );
    assert_eq!(seen["services"]["Fabrikam"], "Operator Connect", "{seen}");
    assert_eq!(seen["services"]["Contoso"], "Direct Routing", "{seen}");
    for page in [
        "license-operator-connect",
        "sign-in",
        "enterprises",
        "license",
        "license-phone",
        "license-audit",
        "operations",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{}",
            png.display()
        );
    }
}
