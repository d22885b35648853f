//! The license page of an enterprise: the seeds' "UMP License" page, point by point.
//! Acquired and currently licensed licenses, the factors in priority order as `n1 (n2)` with
//! their switches, monitored users and available licenses; "Apply license factors" (the
//! operation behind `enterprise set --license-factor`), "Refresh licenses" (today's audit row,
//! recounted now) and the License-Audit for a date range, as a table, an SVG chart and CSV.
//! Its two user lists, Explain the count and License problems, are in `lists.rs`.

mod lists;
pub mod oc_numbers;

use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use teamsgw_license::catalogue::Date;
use teamsgw_store::{LicenseSnapshot, ProvisionError, Service, Store};

use super::chart::history_chart;
use super::layout::{csrf_field, frame, notice, utilisation};
use super::session::Session;
use super::{
    ConsoleState, api_failure, csrf_refusal, failure, html_response, license_href, loaded_at,
    loaded_note, not_loaded, readable,
};
use crate::admin::api::{changed, with_ops};
use crate::config::LicenseSettings;
use crate::operations::EnterpriseSet;
use crate::operations::license_problems;
use crate::operations::license_report::{self, AuditDay, FactorJson, civil_date};
use lists::Lists;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Range {
    pub from: String,
    pub to: String,
    /// What the last action did (`factors`, `refresh`), to say so.
    pub done: String,
    /// Explain the count: the users billed under this factor (`none`: not billed), or all.
    pub factor: String,
    /// Explain the count: the page of users, from 1.
    pub page: usize,
    /// License problems: this kind only (`no_teams_phone`...), or all.
    pub problem: String,
    /// License problems: the page, from 1.
    pub problems_page: usize,
}

/// The range asked for, or the last 30 days; a malformed date names itself.
fn range(r: &Range) -> Result<(String, String), String> {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let days = i64::try_from(days).unwrap_or(0);
    let pick = |field: &str, given: &str, default: i64| {
        if given.is_empty() {
            return Ok(civil_date(default));
        }
        Date::parse(given)
            .map(|_| given.to_owned())
            .ok_or_else(|| format!("{field}: {given:?} is not a date (YYYY-MM-DD)"))
    };
    let from = pick("from", &r.from, days - 30)?;
    let to = pick("to", &r.to, days)?;
    if from > to {
        return Err(format!("from: {from} is after to ({to})"));
    }
    Ok((from, to))
}

/// A factor's switch as the admin set it: the global default, or this enterprise's override.
fn setting(over: Option<bool>) -> &'static str {
    match over {
        None => "default",
        Some(true) => "on",
        Some(false) => "off",
    }
}

/// Everything the license page of one enterprise shows.
pub struct LicensePage {
    name: String,
    /// When the license snapshot counted from was loaded (RFC 3339).
    loaded_at: String,
    report: license_report::EnterpriseReport,
    enterprise: teamsgw_store::Enterprise,
    audit: Vec<AuditDay>,
    today_row: Vec<AuditDay>,
    users: Vec<license_report::UserExplained>,
    problems: Vec<license_problems::Problem>,
    oc_numbers: Vec<teamsgw_store::OcNumber>,
    from: String,
    to: String,
    warning: u8,
}

impl LicensePage {
    /// The enterprise's count (as `license report`), each user's part in it and its license
    /// problems, from its facts in the license snapshot; its audit rows from `from` to `to`
    /// (few, read from the store).
    pub async fn gather(
        store: &Store,
        licenses: &LicenseSnapshot,
        name: &str,
        license: &LicenseSettings,
        (from, to): (String, String),
    ) -> Result<Self, ProvisionError> {
        let today = license_report::today();
        let facts = licenses
            .enterprise(name)
            .ok_or_else(|| no_enterprise(name))?;
        let (report, users) = license_report::explain(facts, license)?;
        Ok(Self {
            name: name.to_owned(),
            loaded_at: loaded_at(licenses),
            report,
            enterprise: facts.enterprise.clone(),
            oc_numbers: facts.oc_numbers.clone(),
            audit: license_report::history(store, name, &from, &to).await?,
            today_row: license_report::history(store, name, &today, &today).await?,
            users,
            problems: license_problems::problems(facts, license),
            from,
            to,
            warning: license.warning_percent,
        })
    }

    pub fn render(&self, q: &Range, s: &Session) -> Markup {
        let (name, r, e) = (&self.name, &self.report, &self.enterprise);
        let (audit, today_row, users, problems) =
            (&self.audit, &self.today_row, &self.users, &self.problems);
        let (from, to, warning) = (&self.from, &self.to, self.warning);
        let calculated = today_row
            .first()
            .and_then(|d| d.report.calculated_at.clone());
        let href = license_href(name);
        let f = &r.factors;
        // Priority order (licensing.md §1.3): each user counts under the first factor it meets.
        // An Operator Connect enterprise's page is seed 002's: its wording, OC first.
        let oc = e.service == Service::OperatorConnect;
        let factors: [(&str, &str, &FactorJson, Option<Option<bool>>); 4] = if oc {
            [
                (
                    "Managed Users-Operator Connect",
                    "operator_connect",
                    &f.operator_connect,
                    None,
                ),
                (
                    "Managed Users-By LifeCycle Management",
                    "lcm",
                    &f.lcm,
                    Some(e.lcm_factor),
                ),
                (
                    "Managed Users-By User Interface",
                    "ui",
                    &f.ui,
                    Some(e.ui_factor),
                ),
                (
                    "Managed Service Numbers",
                    "service_numbers",
                    &f.service_numbers,
                    Some(e.service_numbers_factor),
                ),
            ]
        } else {
            [
                ("Direct Routing", "direct_routing", &f.direct_routing, None),
                ("LCM", "lcm", &f.lcm, Some(e.lcm_factor)),
                ("UI", "ui", &f.ui, Some(e.ui_factor)),
                (
                    "Service numbers",
                    "service_numbers",
                    &f.service_numbers,
                    Some(e.service_numbers_factor),
                ),
            ]
        };
        let (first_label, first): (&str, fn(&AuditDay) -> &FactorJson) = if oc {
            ("Operator Connect", |d| &d.report.factors.operator_connect)
        } else {
            ("Direct Routing", |d| &d.report.factors.direct_routing)
        };
        let done = match q.done.as_str() {
            "factors" => Some("License factors applied; the figures below are recounted."),
            "refresh" => Some("Licenses refreshed: today's audit row is written."),
            "oc-added" => Some("Operator Connect number added."),
            "oc-assigned" => Some("Operator Connect number assigned."),
            "oc-unassigned" => Some("Operator Connect number unassigned."),
            "oc-released" => Some("Operator Connect number released (kept in the released list)."),
            _ => None,
        };
        let csv = format!("{href}/audit.csv?from={from}&to={to}");
        let lists = Lists {
            href: &href,
            q,
            from,
            to,
        };
        let explained = lists.explain(users);
        let numbers = oc.then(|| oc_numbers::section(&self.oc_numbers, &href, s));
        let problems = lists.problems(problems);
        let body = html! {
            @if let Some(d) = done { (notice("info", d)) }
            dl.facts #license-facts {
                div { dt { "Acquired licenses" } dd #acquired { (r.acquired) } }
                div { dt { "Currently licensed" } dd #currently-licensed { (r.currently_licensed) } }
                div { dt { "Total monitored users" } dd #monitored-users { (r.monitored_users) } }
                div { dt { "Available licenses" } dd #available { (r.available) } }
                div { dt { "License Calculation Time" } dd.time #calculation-time {
                    @match &calculated {
                        Some(t) => time datetime=(t) { (readable(t)) },
                        None => span.muted { "not yet today" },
                    }
                } }
            }
            p { "Utilisation " (utilisation(r.currently_licensed, r.acquired, warning)) }
            (loaded_note(&self.loaded_at))
            h2 { "License factors" }
            div.scroll { table #factors {
                thead { tr { th.num { "Priority" } th { "Factor" } th.num { "Licensed (configured)" } th { "Enabled" } th { "Setting" } } }
                tbody {
                    @for (i, (label, id, factor, over)) in factors.iter().enumerate() {
                        tr #{ "factor-" (id) } {
                            td.num { (i + 1) }
                            td { (label) }
                            td.num #{ "cell-" (id) } { (license_report::cell(factor)) }
                            td.enabled { @if factor.enabled { "yes" } @else { "no" } }
                            td { @match over { None => "always", Some(o) => (setting(*o)) } }
                        }
                    }
                }
            } }
            h2 { "Apply license factors" }
            form.inline #apply-factors method="post" action={ (href) "/factors" } {
                (csrf_field(s))
                @for (label, field, over) in [("LCM", "lcm", e.lcm_factor), ("UI", "ui", e.ui_factor), ("Service numbers", "service_numbers", e.service_numbers_factor)] {
                    label { (label)
                        select name=(field) {
                            @for v in ["default", "on", "off"] {
                                option value=(v) selected[setting(over) == v] { (v) }
                            }
                        }
                    }
                }
                button type="submit" { "Apply license factors" }
            }
            form.inline #refresh method="post" action={ (href) "/refresh" } {
                (csrf_field(s))
                button type="submit" { "Refresh licenses" }
            }
            h2 { "License-Audit" }
            form.inline #audit-range method="get" action=(href) {
                label { "From" input type="date" name="from" value=(from); }
                label { "To" input type="date" name="to" value=(to); }
                button type="submit" { "Get History" }
                a href=(csv) download { "Download CSV" }
            }
            (history_chart(audit))
            div.scroll { table #audit {
                thead { tr {
                    th { "Day" } th.num { "Acquired" } th.num { "Currently licensed" } th.num { "Available" }
                    th.num { "Monitored users" } th.num { (first_label) } th.num { "LCM" } th.num { "UI" } th.num { "Service numbers" }
                } }
                tbody {
                    @for d in audit {
                        tr data-day=(d.day) {
                            td { (d.day) }
                            td.num { (d.report.acquired) } td.num { (d.report.currently_licensed) }
                            td.num { (d.report.available) } td.num { (d.report.monitored_users) }
                            td.num { (license_report::cell(first(d))) }
                            td.num { (license_report::cell(&d.report.factors.lcm)) }
                            td.num { (license_report::cell(&d.report.factors.ui)) }
                            td.num { (license_report::cell(&d.report.factors.service_numbers)) }
                        }
                    }
                    @if audit.is_empty() { tr { td colspan="9" .muted { "No audit rows in this range." } } }
                }
            } }
            (explained)
            @if let Some(n) = numbers { (n) }
            (problems)
        };
        let title = format!("License · {name}");
        frame(&title, Some(s), body)
    }
}

pub async fn page(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<Range>,
) -> Response {
    let range = match range(&q) {
        Ok(r) => r,
        Err(e) => return failure(StatusCode::BAD_REQUEST, Some(&s), &e),
    };
    let Some(licenses) = c.api.provisioning.licenses_current().await else {
        return not_loaded(&s);
    };
    let gathered = with_ops(&c.api, async |ops| {
        LicensePage::gather(
            ops.store,
            &licenses.facts,
            &name,
            &ops.settings.license,
            range,
        )
        .await
    })
    .await;
    match gathered {
        Ok(p) => html_response(StatusCode::OK, p.render(&q, &s)),
        Err(e) => api_failure(&e, &s),
    }
}

fn no_enterprise(name: &str) -> ProvisionError {
    ProvisionError::NotFound {
        field: "enterprise",
        what: "enterprise",
        value: name.to_owned(),
    }
}

#[derive(Deserialize)]
pub struct FactorsForm {
    #[serde(default)]
    csrf: String,
    lcm: String,
    ui: String,
    service_numbers: String,
}

pub async fn apply_factors(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<FactorsForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&c, &s, &form.csrf) {
        return r;
    }
    // The same operation as `enterprise set --license-factor`, which validates the values.
    let req = EnterpriseSet {
        acquired_licenses: None,
        license_factors: vec![
            format!("lcm={}", form.lcm),
            format!("ui={}", form.ui),
            format!("service-numbers={}", form.service_numbers),
        ],
        ..EnterpriseSet::default()
    };
    let result = with_ops(&c.api, async |ops| {
        ops.set_enterprise(&name, &req).await?;
        Ok(ops.store.clone())
    })
    .await;
    match result {
        Ok(store) => {
            changed(&c.api, Some(&store)).await;
            tracing::info!(enterprise = %name, "console: license factors applied");
            Redirect::to(&format!("{}?done=factors", license_href(&name))).into_response()
        }
        Err(e) => api_failure(&e, &s),
    }
}

#[derive(Deserialize)]
pub struct RefreshForm {
    #[serde(default)]
    csrf: String,
}

pub async fn refresh(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<RefreshForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&c, &s, &form.csrf) {
        return r;
    }
    // Recount now means from the database as it is now: reload first, so the page (which
    // counts from the license snapshot, once it has followed this reload) shows what the
    // audit row records.
    let _ = c.api.provisioning.reload().await;
    let result = with_ops(&c.api, async |ops| {
        license_report::record_audit(ops.store, &ops.settings.license, Some(&name)).await
    })
    .await;
    match result {
        Ok(_) => Redirect::to(&format!("{}?done=refresh", license_href(&name))).into_response(),
        Err(e) => api_failure(&e, &s),
    }
}

/// The License-Audit rows of the range as CSV (RFC 4180), one line per day.
pub async fn audit_csv(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<Range>,
) -> Response {
    let (from, to) = match range(&q) {
        Ok(r) => r,
        Err(e) => return failure(StatusCode::BAD_REQUEST, Some(&s), &e),
    };
    let rows = with_ops(&c.api, async |ops| {
        ops.store.enterprise(&name).await?;
        license_report::history(ops.store, &name, &from, &to).await
    })
    .await;
    match rows {
        Ok(rows) => {
            let file: String = name
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            let disposition =
                format!("attachment; filename=\"license-audit-{file}-{from}-{to}.csv\"");
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                csv(&rows),
            )
                .into_response()
        }
        Err(e) => api_failure(&e, &s),
    }
}

fn csv(rows: &[AuditDay]) -> String {
    let mut out = String::from(
        "day,acquired,currently_licensed,available,monitored_users,direct_routing,operator_connect,lcm,ui,service_numbers\r\n",
    );
    for d in rows {
        let r = &d.report;
        let f = &r.factors;
        let cells = [
            d.day.clone(),
            r.acquired.to_string(),
            r.currently_licensed.to_string(),
            r.available.to_string(),
            r.monitored_users.to_string(),
            license_report::cell(&f.direct_routing),
            license_report::cell(&f.operator_connect),
            license_report::cell(&f.lcm),
            license_report::cell(&f.ui),
            license_report::cell(&f.service_numbers),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
