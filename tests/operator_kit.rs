//! The operator kit (`deploy/`), tested rather than just written: the Prometheus rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), the Grafana dashboard
//! has the shape Grafana imports and its queries parse (promtool again), and every metric and
//! label name the rules and the dashboard use exists on a real scrape of a running daemon, so
//! a metric renamed in code breaks this test, not the on-call engineer's night.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use teamsgw_tests::call_lab::CallLab;

/// Labels Prometheus adds to every scraped series (target labels), never on `/metrics`.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus")
        .join(file)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy(""))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}): install Debian's `prometheus` package")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "teamsgw-alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "teamsgw-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test, and a runbook line.
    let rules = std::fs::read_to_string(deploy("teamsgw-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("teamsgw-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 9, "{alerts:?}");
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test"
        );
    }
    assert_eq!(
        rules.matches(" runbook: ").count(),
        alerts.len(),
        "an alert without a runbook annotation"
    );
}

/// Metric name → label names, from the samples (and the HELP lines of vectors without one).
fn scrape(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            metrics.entry(name.to_owned()).or_default();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.split_once('}').map_or("", |(l, _)| l)),
            None => (line.split(' ').next().unwrap_or_default(), ""),
        };
        let entry = metrics.entry(name.to_owned()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            if let Some((label, _)) = pair.split_once('=') {
                entry.insert(label.to_owned());
            }
        }
        // A histogram's series carry its name with a suffix.
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                metrics.entry(base.to_owned()).or_default();
            }
        }
    }
    metrics
}

/// What one PromQL expression uses: metric names with their matcher labels, recording rule
/// names, and the labels of `by`/`on`/`without`/`ignoring` clauses.
#[derive(Debug, Default)]
struct Uses {
    selectors: Vec<(String, Vec<String>)>,
    recorded: Vec<String>,
    grouping: Vec<String>,
}

/// The index of the first `close` at or after `from` outside string literals.
fn closing(expr: &str, from: usize, close: u8) -> usize {
    let b = expr.as_bytes();
    let mut i = from;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == close && !quoted => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

fn uses(expr: &str) -> Uses {
    let mut out = Uses::default();
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            // Skip string literals (label values).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if !ident(b[i]) || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let next = b.get(j).copied();
        if matches!(word, "by" | "on" | "without" | "ignoring") && next == Some(b'(') {
            let end = closing(expr, j, b')');
            out.grouping.extend(
                expr[j + 1..end]
                    .split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
            i = end;
            continue;
        }
        if word.contains(':') {
            out.recorded.push(word.to_owned());
        } else if word.starts_with("teamsgw_") || word.starts_with("process_") {
            let mut labels = Vec::new();
            if next == Some(b'{') {
                let end = closing(expr, j, b'}');
                for m in split_matchers(&expr[j + 1..end]) {
                    let name: String = m
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        labels.push(name);
                    }
                }
                i = end;
            }
            out.selectors.push((word.to_owned(), labels));
        }
    }
    out
}

/// Matchers of a selector, split at commas outside string literals.
fn split_matchers(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < inner.len() {
        let end = closing(inner, start, b',');
        parts.push(&inner[start..end]);
        start = end + 1;
    }
    parts
}

/// The rules file's recording rule names and every expression in it (one line each).
fn rule_exprs() -> (BTreeSet<String>, Vec<String>) {
    let rules = std::fs::read_to_string(deploy("teamsgw-alerts.yml")).unwrap();
    let recorded = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect();
    let exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_owned)
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    (recorded, exprs)
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(deploy("../grafana/teamsgw.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("teamsgw.json is not JSON: {e}"))
}

/// Every query of the dashboard: the panels' targets and the instance variable's
/// `label_values(metric, label)` as the expression it stands for.
fn dashboard_exprs(dash: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().into_iter().flatten() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                exprs.push(e.to_owned());
            }
        }
    }
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = var["definition"].as_str()
            && let Some(args) = q
                .strip_prefix("label_values(")
                .and_then(|a| a.strip_suffix(')'))
            && let Some((metric, label)) = args.split_once(',')
        {
            exprs.push(format!("count by ({}) ({})", label.trim(), metric.trim()));
        }
    }
    exprs
}

/// Grafana's variables as Prometheus sees them once Grafana has filled them in.
fn as_prometheus_sees_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$instance", ".*")
}

/// Every problem of `exprs` against the scrape `text`; `recorded` are the rules' own names.
fn problems(text: &str, exprs: &[String], recorded: &BTreeSet<String>) -> Vec<String> {
    let metrics = scrape(text);
    let mut problems = Vec::new();
    for expr in exprs {
        let u = uses(expr);
        let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
        for (name, labels) in &u.selectors {
            let Some(have) = metrics.get(name) else {
                problems.push(format!("{name} is not on /metrics (in `{expr}`)"));
                continue;
            };
            known.extend(have.iter().cloned());
            for l in labels {
                if !have.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{name} has no label {l} (in `{expr}`)"));
                }
            }
        }
        for r in &u.recorded {
            if !recorded.contains(r) {
                problems.push(format!("{r} is recorded by no rule (in `{expr}`)"));
            }
            // A recording rule's labels are those of the metrics it aggregates.
            known.extend(["enterprise", "direction"].map(str::to_owned));
        }
        for l in &u.grouping {
            if !known.contains(l) {
                problems.push(format!("no metric of `{expr}` has label {l}"));
            }
        }
    }
    problems
}

#[test]
fn every_metric_and_label_the_rules_and_the_dashboard_use_exists_on_a_real_scrape() {
    // A Teams proxy nobody answers (teamsgw_teams_proxy_up 0), a registered user, and a
    // license count each second: every series the rules read has samples.
    let port = teamsgw_tests::free_port();
    let lab = CallLab::start_with_env(
        "",
        &["127.0.0.2"],
        port,
        None,
        &[("TEAMSGW_LICENSE__REFRESH_SECONDS", "1")],
        &[],
    );
    let (recorded, mut exprs) = rule_exprs();
    exprs.extend(dashboard_exprs(&dashboard()));
    // Registration and trunk series are published every few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, text) = lab.daemon.get("/metrics");
        assert_eq!(status, 200);
        let found = problems(&text, &exprs, &recorded);
        if found.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n--- scrape\n{text}",
            found.join("\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The dashboard in the shape Grafana imports: a schema version, a data source and an
/// instance variable, the six rows, and panels whose targets query the chosen data source.
#[test]
fn the_dashboard_has_the_shape_grafana_imports_and_every_query_parses() {
    let dash = dashboard();
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 30),
        "schemaVersion"
    );
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus")
    );
    assert!(
        vars.iter()
            .any(|v| v["name"] == "instance" && v["type"] == "query")
    );
    let panels = dash["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        [
            "Teams trunk",
            "Registrations",
            "Calls",
            "Media",
            "Licenses",
            "Process"
        ]
    );
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {} has no target", p["title"]);
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {}",
            p["title"]
        );
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("$instance"),
                "panel {}: `{expr}` ignores the instance variable",
                p["title"]
            );
        }
    }
    // promtool parses every query, as the body of a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs(&dash).iter().enumerate() {
        let expr = serde_json::to_string(&as_prometheus_sees_it(expr)).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {expr}\n"
        ));
    }
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, rules).unwrap();
    let checked = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
}

#[test]
fn the_expression_reader_finds_names_labels_and_grouping() {
    let u = uses(
        r#"sum by (instance, enterprise) (rate(teamsgw_x_total{result="a,b}",state!~"c"}[5m])) > on (instance) teamsgw:y:sum"#,
    );
    assert_eq!(
        u.selectors,
        [(
            "teamsgw_x_total".to_owned(),
            vec!["result".to_owned(), "state".to_owned()]
        )]
    );
    assert_eq!(u.recorded, ["teamsgw:y:sum"]);
    assert_eq!(u.grouping, ["instance", "enterprise", "instance"]);
}
