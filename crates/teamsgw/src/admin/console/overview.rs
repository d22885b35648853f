//! The enterprises overview: one row per enterprise with its licenses (the license report's
//! numbers), what it has provisioned (the routing snapshot), its registrations by state (the
//! registration agent) and its active calls (the call shards). Sorting and filtering are
//! query parameters, so they work without script and a filtered view can be bookmarked.

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use teamsgw_gateway::call::CallView;
use teamsgw_gateway::client::RegistrationView;
use teamsgw_store::{ProvisionError, RoutingSnapshot, Service};

use super::layout::{frame, notice, utilisation, utilisation_percent};
use super::session::Session;
use super::{
    ConsoleState, api_failure, html_response, license_href, loaded_at, loaded_note, not_loaded,
};
use crate::config::LicenseSettings;
use crate::daemon::license_monitor::over_threshold;
use crate::operations::license_report::{CountedLicenses, EnterpriseReport};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Part of the enterprise name (any case).
    pub q: String,
    /// `name` (default), `utilisation` or `licensed`.
    pub sort: String,
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

/// Everything the overview shows, gathered from the same sources as the CLI and the API.
pub struct Overview {
    reports: Vec<EnterpriseReport>,
    /// Enterprise name → how it reaches Teams.
    services: HashMap<String, Service>,
    by_name: HashMap<String, Provisioned>,
    warning_percent: u8,
    loaded_at: String,
}

impl Overview {
    /// The license report of every enterprise (as `license report`, from the license
    /// snapshot), what the routing snapshot holds of each, and the live registrations and
    /// calls.
    pub fn gather(
        licenses: &CountedLicenses,
        snapshot: Option<&RoutingSnapshot>,
        registrations: Vec<RegistrationView>,
        calls: Vec<CallView>,
        license: &LicenseSettings,
    ) -> Result<Self, ProvisionError> {
        let reports = licenses.reports(license)?.into_owned();
        let mut by_name: HashMap<String, Provisioned> = HashMap::new();
        if let Some(snap) = snapshot {
            for d in snap.all_direct_routes() {
                by_name
                    .entry(d.enterprise_name.clone())
                    .or_default()
                    .direct_routes += 1;
            }
            // Names by id once: the users are many, their enterprises few.
            let mut names: HashMap<&str, &str> = HashMap::new();
            for pbx in snap.all_pbxs() {
                if let Some(name) = snap.enterprise_name(&pbx.enterprise_id) {
                    names.insert(&pbx.enterprise_id, name);
                    by_name.entry(name.to_owned()).or_default().pbxs += 1;
                }
            }
            let mut users: HashMap<&str, usize> = HashMap::new();
            for u in snap.all_users() {
                *users.entry(&u.enterprise_id).or_insert(0) += 1;
            }
            for (id, n) in users {
                let name = names.get(id).copied().or_else(|| snap.enterprise_name(id));
                if let Some(name) = name {
                    by_name.entry(name.to_owned()).or_default().users += n;
                }
            }
        }
        for r in registrations {
            let e = by_name.entry(r.enterprise).or_default();
            *e.registrations.entry(r.state).or_insert(0) += 1;
        }
        for call in calls {
            by_name.entry(call.enterprise).or_default().calls += 1;
        }
        let services = licenses
            .facts
            .enterprises()
            .iter()
            .map(|f| (f.enterprise.name.clone(), f.enterprise.service))
            .collect();
        Ok(Self {
            reports,
            services,
            by_name,
            warning_percent: license.warning_percent,
            loaded_at: loaded_at(&licenses.facts),
        })
    }

    /// The page, filtered and sorted as `p` asks.
    pub fn render(&self, p: &Params, session: &Session) -> Markup {
        let warning = self.warning_percent;
        let over: Vec<&str> = self
            .reports
            .iter()
            .filter(|r| over_threshold(r.currently_licensed, r.acquired, warning))
            .map(|r| r.enterprise.as_str())
            .collect();
        let banner = (!over.is_empty())
            .then(|| format!("Over the {warning} % license warning: {}", over.join(", ")));
        let q = p.q.to_lowercase();
        let mut reports: Vec<&EnterpriseReport> = self
            .reports
            .iter()
            .filter(|r| q.is_empty() || r.enterprise.to_lowercase().contains(&q))
            .collect();
        match p.sort.as_str() {
            "utilisation" => reports.sort_by_key(|r| {
                std::cmp::Reverse(utilisation_percent(r.currently_licensed, r.acquired))
            }),
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
            (loaded_note(&self.loaded_at))
            div.scroll {
                table #enterprises {
                    thead { tr {
                        th { "Enterprise" } th { "Service" }
                        th.num { "Acquired" } th.num { "Currently licensed" } th.num { "Available" }
                        th { "Utilisation" }
                        th.num { "Direct routes" } th.num { "PBXs" } th.num { "Users" }
                        th { "Registrations" } th.num { "Active calls" }
                    } }
                    tbody {
                        @for r in &reports {
                            @let e = self.by_name.get(&r.enterprise).unwrap_or(&none);
                            tr data-enterprise=(r.enterprise) {
                                td { a href=(license_href(&r.enterprise)) { (r.enterprise) } }
                                td.service { @match self.services.get(&r.enterprise) {
                                    Some(Service::OperatorConnect) => "Operator Connect",
                                    _ => "Direct Routing",
                                } }
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
                            tr { td colspan="11" .muted { "No enterprise matches." } }
                        }
                    }
                }
            }
        };
        frame("Enterprises", Some(session), body)
    }
}

pub async fn page(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Query(p): Query<Params>,
) -> Response {
    let Some(licenses) = c.api.provisioning.licenses_current().await else {
        return not_loaded(&s);
    };
    let snapshot = c.api.provisioning.snapshot();
    let registrations = c.api.client.registrations().await;
    let calls = c.api.calls.calls().await;
    let settings = c.api.settings.load();
    let gathered = Overview::gather(
        &licenses,
        snapshot.as_deref(),
        registrations,
        calls,
        &settings.license,
    );
    match gathered {
        Ok(o) => html_response(StatusCode::OK, o.render(&p, &s)),
        Err(e) => api_failure(&e.into(), &s),
    }
}
