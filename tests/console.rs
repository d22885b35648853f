//! The web console under /ui/ against the running daemon, over plain HTTP as a browser would
//! speak it: sign-in with the admin token, the session cookie's rules, CSRF on every form,
//! the security headers, the seeds' worked example read off the license page and equal to
//! `license report --json`, Apply license factors, Refresh licenses, the License-Audit (table,
//! chart, CSV), and provisioned names shown as text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use teamsgw_tests::web::{WebClient, console_daemon, csrf_of, text_of};
use teamsgw_tests::{Daemon, HttpResponse, seeds};

const TOKEN: &str = "console-token-0123456789-0123456789abcdef";
const LICENSE: &str = "/ui/enterprises/Contoso/license";

fn daemon() -> Daemon {
    console_daemon(TOKEN, "[license]\nwarning_percent = 40\n")
}

fn signed_in(daemon: &Daemon) -> WebClient {
    let mut web = WebClient::new(daemon.admin);
    let r = web.sign_in(TOKEN);
    assert_eq!(r.status, 303, "{r:?}");
    web
}

fn report(daemon: &Daemon) -> Value {
    let out = seeds::ok(
        daemon.dir(),
        &["license", "report", "--enterprise", "Contoso", "--json"],
    );
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

fn assert_secure_headers(r: &HttpResponse) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    for rule in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(rule), "CSP without {rule}: {csp:?}");
    }
    assert!(!csp.contains("script-src"), "no script is allowed: {csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
}

fn redirected_to_sign_in(r: &HttpResponse) -> bool {
    r.status == 303 && r.header("location") == Some("/ui/sign-in")
}

#[test]
fn nothing_is_reachable_without_a_session_and_no_form_without_its_csrf_token() {
    let daemon = daemon();
    seeds::enterprise_with_pbx(daemon.dir(), "Contoso");
    let mut web = WebClient::new(daemon.admin);
    for path in [
        "/ui/",
        LICENSE,
        "/ui/operations",
        "/ui/enterprises/Contoso/license/audit.csv",
    ] {
        let r = web.get(path);
        assert!(redirected_to_sign_in(&r), "{path}: {r:?}");
    }
    let r = web.post(&format!("{LICENSE}/refresh"), &[("csrf", "x")]);
    assert!(redirected_to_sign_in(&r), "{r:?}");
    let page = web.get("/ui/sign-in");
    assert_eq!(page.status, 200);
    assert_secure_headers(&page);
    assert!(page.body.contains("name=\"token\""), "{}", page.body);

    // A wrong token is refused with a message, counted, and opens no session.
    let r = web.sign_in("not-the-token");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not the admin token"), "{}", r.body);
    assert!(web.cookie.is_none());
    let refused = "teamsgw_console_rejected_total{reason=\"sign_in\"}";
    assert_eq!(daemon.metric(refused), 1.0);

    let r = web.sign_in(TOKEN);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/")));
    let cookie = r.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=1800"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let overview = web.get("/ui/");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert_secure_headers(&overview);

    // A state-changing form without this session's CSRF token: 403, counted, nothing done.
    let before = report(&daemon);
    for fields in [
        vec![
            ("lcm", "off"),
            ("ui", "default"),
            ("service_numbers", "default"),
        ],
        vec![
            ("csrf", "0000"),
            ("lcm", "off"),
            ("ui", "default"),
            ("service_numbers", "default"),
        ],
    ] {
        let r = web.post(&format!("{LICENSE}/factors"), &fields);
        assert_eq!(r.status, 403, "{r:?}");
        assert!(r.body.contains("CSRF token"), "{}", r.body);
    }
    assert_eq!(report(&daemon), before, "a refused form changed something");
    let csrf_refused = "teamsgw_console_rejected_total{reason=\"csrf\"}";
    assert_eq!(daemon.metric(csrf_refused), 2.0);

    // Sign-out ends the session: its cookie no longer opens a page.
    let old = web.cookie.clone();
    let csrf = csrf_of(&overview.body);
    assert_eq!(web.post("/ui/sign-out", &[]).status, 403);
    let r = web.post("/ui/sign-out", &[("csrf", &csrf)]);
    assert!(redirected_to_sign_in(&r), "{r:?}");
    assert!(web.cookie.is_none(), "the cookie was cleared");
    web.cookie = old;
    assert!(redirected_to_sign_in(&web.get("/ui/")));
}

/// Acceptance: the seeds' worked example read off the license page, equal to
/// `license report --json`; Apply license factors, Refresh licenses and the License-Audit.
#[test]
fn the_license_page_shows_what_license_report_counts_and_its_actions_work() {
    let daemon = daemon();
    seeds::worked_example(daemon.dir());
    daemon.reload();
    let mut web = signed_in(&daemon);
    let page = web.get(LICENSE);
    assert_eq!(page.status, 200, "{page:?}");
    let p = &page.body;
    let json = report(&daemon);
    assert_eq!(text_of(p, "acquired"), "50");
    assert_eq!(text_of(p, "currently-licensed"), "23");
    assert_eq!(text_of(p, "monitored-users"), "27");
    assert_eq!(text_of(p, "available"), "27");
    let cell = |page: &str, factor: &str| text_of(page, &format!("cell-{factor}"));
    assert_eq!(
        text_of(p, "factor-direct_routing"),
        "1 Direct Routing 9 (9) yes always"
    );
    assert_eq!(cell(p, "lcm"), "10 (19)");
    assert_eq!(cell(p, "ui"), "3 (4)");
    assert_eq!(cell(p, "service_numbers"), "1 (1)");
    for (id, key) in [
        ("acquired", "acquired"),
        ("currently-licensed", "currently_licensed"),
        ("available", "available"),
        ("monitored-users", "monitored_users"),
    ] {
        assert_eq!(
            text_of(p, id),
            json[key].to_string(),
            "{id} against license report"
        );
    }

    // Explain the count: who is billed under each factor, from the same count.
    for (factor, total) in [
        ("direct_routing", 9),
        ("lcm", 10),
        ("ui", 3),
        ("none", 5),
        ("", 27),
    ] {
        let page = web.get(&format!("{LICENSE}?factor={factor}"));
        assert_eq!(
            text_of(&page.body, "explain-total"),
            format!("{total} of 27 monitored users"),
            "factor {factor:?}"
        );
    }
    let lcm = web.get(&format!("{LICENSE}?factor=lcm"));
    let sm9 = lcm
        .body
        .split("data-upn=\"sm9@contoso.example\"")
        .nth(1)
        .unwrap();
    let sm9 = &sm9[..sm9.find("</tr>").unwrap()];
    assert!(
        sm9.contains("<td>LCM, UI</td>") && sm9.contains(">LCM</td>"),
        "{sm9}"
    );

    // License problems: users inside their license-change cooldown with the time left, and a
    // Teams Phone variant other than Standard (licensing.md §2.7, §3.5).
    seeds::ok(
        daemon.dir(),
        &[
            "user",
            "add",
            "--enterprise",
            "Contoso",
            "--pbx",
            "main",
            "--upn",
            "smb@contoso.example",
            "--number",
            "+15559990100",
            "--extension",
            "3100",
            "--password-file",
            "pw",
            "--sku",
            "ENTERPRISEPACK",
            "--sku",
            "MCOEVSMB_1",
        ],
    );
    daemon.reload();
    let page = web.get(LICENSE);
    let problems = text_of(&page.body, "license-problems");
    assert!(
        problems.contains("smb@contoso.example Teams Phone not Standard"),
        "{problems}"
    );
    assert!(
        problems.contains("sm9@contoso.example In license-change cooldown licenses changed within the last 24 h; the next change is allowed in 2"),
        "{problems}"
    );
    // A summary by kind comes first, and a kind filters the table: the one phone-variant
    // problem is not buried under the cooldown of every user just provisioned.
    let kinds = text_of(&page.body, "problem-kinds");
    assert!(kinds.contains("Teams Phone not Standard : 1"), "{kinds}");
    assert!(kinds.contains("In license-change cooldown : 28"), "{kinds}");
    let only = web.get(&format!("{LICENSE}?problem=teams_phone_variant"));
    let rows = text_of(&only.body, "license-problems");
    assert!(
        rows.contains("smb@contoso.example") && !rows.contains("sm9@"),
        "{rows}"
    );
    assert_eq!(text_of(&only.body, "problems-total"), "1 of 29 problems");
    seeds::ok(daemon.dir(), &["user", "delete", "smb@contoso.example"]);

    // Apply license factors: LCM off, as `enterprise set --license-factor lcm=off` does.
    let csrf = csrf_of(p);
    let r = web.post(
        &format!("{LICENSE}/factors"),
        &[
            ("csrf", &csrf),
            ("lcm", "off"),
            ("ui", "default"),
            ("service_numbers", "default"),
        ],
    );
    assert_eq!(r.status, 303, "{r:?}");
    let json = report(&daemon);
    assert_eq!(json["factors"]["lcm"]["enabled"], false, "{json}");
    let page = web.get(r.header("location").unwrap());
    let p = &page.body;
    assert!(p.contains("License factors applied"), "{p}");
    assert_eq!(
        text_of(p, "currently-licensed"),
        json["currently_licensed"].to_string()
    );
    assert_ne!(json["currently_licensed"], 23, "LCM off changes the count");
    assert_eq!(cell(p, "lcm"), "off (19)");
    assert!(
        text_of(p, "factor-lcm").ends_with("no off"),
        "{}",
        text_of(p, "factor-lcm")
    );
    assert_eq!(
        cell(p, "ui"),
        format!(
            "{} ({})",
            json["factors"]["ui"]["counted"], json["factors"]["ui"]["configured"]
        )
    );

    // Refresh licenses: the count is read from the database again (a CLI change on SQLite,
    // not yet reloaded, shows only then), today's audit row is written, and the calculation
    // time moves.
    let before = text_of(p, "calculation-time");
    assert!(text_of(p, "loaded-at").starts_with("Counted from the provisioning data loaded at 20"));
    seeds::ok(
        daemon.dir(),
        &["enterprise", "set", "Contoso", "--acquired-licenses", "60"],
    );
    assert_eq!(
        text_of(&web.get(LICENSE).body, "acquired"),
        "50",
        "not reloaded yet"
    );
    std::thread::sleep(Duration::from_millis(20));
    let r = web.post(&format!("{LICENSE}/refresh"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{r:?}");
    let page = web.get(r.header("location").unwrap());
    assert!(page.body.contains("Licenses refreshed"), "{}", page.body);
    assert_eq!(text_of(&page.body, "acquired"), "60");
    // The license snapshot follows each routing reload on its own, counted.
    let loads = daemon.metric("teamsgw_license_snapshot_loads_total{result=\"ok\"}");
    assert!(loads >= 3.0, "start, the SIGHUP and two changes: {loads}");
    let after = text_of(&page.body, "calculation-time");
    assert!(
        after.starts_with("20") && after.ends_with(" UTC"),
        "{after}"
    );
    assert_ne!(before, after, "Refresh licenses recounts");

    // License-Audit for today: the row, the chart and the CSV.
    let today = after[..10].to_owned();
    let audit = web.get(&format!("{LICENSE}?from={today}&to={today}"));
    let a = &audit.body;
    assert!(a.contains(&format!("data-day=\"{today}\"")), "{a}");
    assert!(a.contains("<svg") && a.contains("polyline"), "{a}");
    let csv = web.get(&format!("{LICENSE}/audit.csv?from={today}&to={today}"));
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    let line = format!("{today},60,{},", json["currently_licensed"]);
    assert!(csv.body.contains(&line), "{}", csv.body);
    let bad = web.get(&format!("{LICENSE}?from=yesterday"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("from:"), "{}", bad.body);

    // The overview's row says the same, and links the license page.
    let overview = web.get("/ui/?q=conto");
    let row = text_of(&overview.body, "enterprises");
    assert!(
        row.contains(&format!(
            "Contoso Direct Routing 60 {} ",
            json["currently_licensed"]
        )),
        "{row}"
    );
    assert!(
        overview
            .body
            .contains("href=\"/ui/enterprises/Contoso/license\"")
    );
    let none = web.get("/ui/?q=nobody");
    assert!(none.body.contains("No enterprise matches"), "{}", none.body);
    let unknown = web.get("/ui/enterprises/Nobody/license");
    assert_eq!(unknown.status, 404, "{unknown:?}");
}

/// User-controlled strings are escaped: an enterprise named like a script tag is text.
#[test]
fn a_provisioned_name_that_looks_like_markup_is_shown_as_text() {
    let daemon = daemon();
    let name = "<script>alert(1)</script>";
    seeds::ok(
        daemon.dir(),
        &[
            "enterprise",
            "add",
            name,
            "--tenant-id",
            seeds::TENANT,
            "--acquired-licenses",
            "5",
        ],
    );
    daemon.reload();
    let mut web = signed_in(&daemon);
    let overview = web.get("/ui/");
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains(name), "{}", overview.body);
    assert!(
        overview
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        overview.body
    );
    let href = "/ui/enterprises/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/license";
    assert!(overview.body.contains(href), "{}", overview.body);
    let page = web.get(href);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(!page.body.contains(name) && page.body.contains("&lt;script&gt;"));
}

/// Issue 35 §6: the Operations page says when a Teams proxy is probed next in seconds from
/// now ("in 58 s"), not as the Unix timestamp it showed (1796655942).
#[test]
fn the_operations_page_says_when_the_next_probe_is_from_now() {
    let ports = teamsgw_tests::Ports::new();
    // A proxy nobody answers on: it is probed, found down, and probed again later.
    let config = teamsgw_tests::test_config(&ports, "")
        .replace(
            "[teams]\n",
            "[teams]\nbase_fqdn = \"teams.carrier.example\"\n",
        )
        .replace(
            "proxies = []\n",
            "proxies = [\"127.0.0.9\"]\nproxy_port = 9\n",
        )
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(30));
    let mut web = signed_in(&daemon);
    let page = web.get("/ui/operations");
    assert_eq!(page.status, 200, "{page:?}");
    let cell = page
        .body
        .split("class=\"next-probe\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no next probe on the page:\n{}", page.body));
    let seconds = cell
        .strip_prefix("in ")
        .and_then(|s| s.strip_suffix(" s"))
        .map(|s| s.parse::<u64>());
    assert!(
        cell == "now" || cell.ends_with(" s ago") || matches!(seconds, Some(Ok(s)) if s <= 3600),
        "{cell:?}"
    );
}
