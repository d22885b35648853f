//! The enterprises overview: one row per enterprise with its licenses (the license report's
//! numbers), what it has provisioned (the routing snapshot), its registrations by state (the
//! registration agent) and its active calls (the call shards). Sorting and filtering are
//! query parameters, so they work without script and a filtered view can be bookmarked.

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{frame, notice, utilisation};
use super::session::Session;
use super::{ConsoleState, api_failure, html_response, license_href};
use crate::admin::api::with_ops;
use crate::daemon::license_monitor::over_threshold;
use crate::operations::license_report::{self, EnterpriseReport};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Part of the enterprise name (any case).
    q: String,
    /// `name` (default), `utilisation` or `licensed`.
    sort: String,
}

/// What the overview shows of one enterprise beyond its license report.
#[derive(Default)]
struct Provisioned {
    direct_routes: usize,
    pbxs: usize,
    users: usize,
    registrations: BTreeMap<&'static str, usize>,
    calls: usize,
}

fn percent(r: &EnterpriseReport) -> u64 {
    match r.acquired {
        0 => u64::from(r.currently_licensed > 0) * 100,
        a => u64::from(r.currently_licensed) * 100 / u64::from(a),
    }
}

pub async fn page(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Query(p): Query<Params>,
) -> Response {
    let reports = with_ops(&c.api, async |ops| {
        license_report::build(ops.store, None, &ops.settings.license).await
    })
    .await;
    let mut reports = match reports {
        Ok(r) => r,
        Err(e) => return api_failure(&e, &s),
    };
    let warning = c.api.settings.load().license.warning_percent;
    let mut by_name: HashMap<String, Provisioned> = HashMap::new();
    if let Some(snap) = c.api.provisioning.snapshot() {
        for d in snap.all_direct_routes() {
            by_name
                .entry(d.enterprise_name.clone())
                .or_default()
                .direct_routes += 1;
        }
        for pbx in snap.all_pbxs() {
            if let Some(name) = snap.enterprise_name(&pbx.enterprise_id) {
                by_name.entry(name.to_owned()).or_default().pbxs += 1;
            }
        }
        for u in snap.all_users() {
            if let Some(name) = snap.enterprise_name(&u.enterprise_id) {
                by_name.entry(name.to_owned()).or_default().users += 1;
            }
        }
    }
    for r in c.api.client.registrations().await {
        let e = by_name.entry(r.enterprise).or_default();
        *e.registrations.entry(r.state).or_insert(0) += 1;
    }
    for call in c.api.calls.calls().await {
        by_name.entry(call.enterprise).or_default().calls += 1;
    }

    let over: Vec<&EnterpriseReport> = reports
        .iter()
        .filter(|r| over_threshold(r.currently_licensed, r.acquired, warning))
        .collect();
    let banner = (!over.is_empty()).then(|| {
        let names: Vec<&str> = over.iter().map(|r| r.enterprise.as_str()).collect();
        format!("Over the {warning} % license warning: {}", names.join(", "))
    });
    let q = p.q.to_lowercase();
    reports.retain(|r| q.is_empty() || r.enterprise.to_lowercase().contains(&q));
    match p.sort.as_str() {
        "utilisation" => reports.sort_by_key(|r| std::cmp::Reverse(percent(r))),
        "licensed" => reports.sort_by_key(|r| std::cmp::Reverse(r.currently_licensed)),
        _ => reports.sort_by(|a, b| a.enterprise.cmp(&b.enterprise)),
    }
    let none = Provisioned::default();
    let body = html! {
        @if let Some(b) = &banner { (notice("warning", b)) }
        form.inline method="get" action="/ui/" {
            label { "Name contains" input type="search" name="q" value=(p.q); }
            label { "Sort by"
                select name="sort" {
                    @for (value, text) in [("name", "Name"), ("utilisation", "Utilisation"), ("licensed", "Currently licensed")] {
                        option value=(value) selected[p.sort == value] { (text) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        div.scroll {
            table #enterprises {
                thead { tr {
                    th { "Enterprise" }
                    th.num { "Acquired" } th.num { "Currently licensed" } th.num { "Available" }
                    th { "Utilisation" }
                    th.num { "Direct routes" } th.num { "PBXs" } th.num { "Users" }
                    th { "Registrations" } th.num { "Active calls" }
                } }
                tbody {
                    @for r in &reports {
                        @let e = by_name.get(&r.enterprise).unwrap_or(&none);
                        tr data-enterprise=(r.enterprise) {
                            td { a href=(license_href(&r.enterprise)) { (r.enterprise) } }
                            td.num.acquired { (r.acquired) }
                            td.num.licensed { (r.currently_licensed) }
                            td.num.available { (r.available) }
                            td { (utilisation(r.currently_licensed, r.acquired, warning)) }
                            td.num { (e.direct_routes) } td.num { (e.pbxs) } td.num { (e.users) }
                            td {
                                @if e.registrations.is_empty() { span.muted { "none" } }
                                @for (state, n) in &e.registrations { (state) " " (n) " " }
                            }
                            td.num { (e.calls) }
                        }
                    }
                    @if reports.is_empty() {
                        tr { td colspan="10" .muted { "No enterprise matches." } }
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, frame("Enterprises", Some(&s), body))
}
