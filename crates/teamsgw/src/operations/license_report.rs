//! `teamsgw license report`: reads an enterprise's users, service numbers, LCM templates and
//! direct routes from the store and counts them with `teamsgw_license::factors`
//! (seeds: the license page; licensing.md §1.2–§1.8). Each factor is `counted (configured)`:
//! counted after priority de-duplication (what is billed), configured the raw number.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use teamsgw_license::factors::{self, Factor, ServiceNumber, Switches};
use teamsgw_store::{Enterprise, EnterpriseFacts, LicenseSnapshot, ProvisionError, Service, Store};

use crate::config::LicenseSettings;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorJson {
    pub counted: u32,
    pub configured: u32,
    pub enabled: bool,
}

impl From<Factor> for FactorJson {
    fn from(f: Factor) -> Self {
        Self {
            counted: f.counted,
            configured: f.configured,
            enabled: f.enabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factors {
    pub direct_routing: FactorJson,
    /// Factor 1 of an Operator Connect enterprise. Audit rows recorded before it existed
    /// read it as zero and off.
    #[serde(default)]
    pub operator_connect: FactorJson,
    pub lcm: FactorJson,
    pub ui: FactorJson,
    pub service_numbers: FactorJson,
}

/// One enterprise's line of the report (the `--json` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseReport {
    pub enterprise: String,
    pub acquired: u32,
    pub currently_licensed: u32,
    pub available: i64,
    pub monitored_users: u32,
    pub factors: Factors,
    /// When the count was recorded as the day's audit row (RFC 3339, UTC): the License
    /// Calculation Time of the seeds' license page. Absent from a count made on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calculated_at: Option<String>,
}

fn switches(e: &Enterprise, global: &LicenseSettings) -> Switches {
    Switches {
        lcm: e.lcm_factor.unwrap_or(global.lcm_factor),
        ui: e.ui_factor.unwrap_or(global.ui_factor),
        service_numbers: e
            .service_numbers_factor
            .unwrap_or(global.service_numbers_factor),
    }
}

/// What `teamsgw_license::factors` counts for one enterprise, from its facts (read by the
/// CLI from the store, by the console from the daemon's license snapshot: the same facts).
fn input(f: &EnterpriseFacts, global: &LicenseSettings) -> factors::Enterprise {
    let e = &f.enterprise;
    factors::Enterprise {
        acquired: u32::try_from(e.acquired_licenses).unwrap_or(u32::MAX),
        tenant_id: e.tenant_id.clone(),
        direct_routes: f.direct_routes.iter().map(|d| d.fqdn.clone()).collect(),
        lcm_groups: f.lcm_templates.iter().map(|t| t.group.clone()).collect(),
        users: f
            .users
            .iter()
            .map(|u| factors::User {
                upn: u.upn.clone(),
                enterprise_voice: u.ev_enabled,
                voice_routing_policy: u.voice_routing_policy.clone(),
                pstn_gateway: u.pstn_gateway.clone(),
                groups: u.groups.clone(),
                managed_by_ui: u.managed_by_ui,
                numbers: vec![u.number.clone()],
                operator_connect: u.oc_number.is_some(),
            })
            .collect(),
        service_numbers: f
            .service_numbers
            .iter()
            .flat_map(|range| {
                range.numbers().into_iter().map(|number| ServiceNumber {
                    number,
                    tag: range.tag.clone(),
                })
            })
            .collect(),
        switches: switches(e, global),
        operator_connect: e.service == Service::OperatorConnect,
    }
}

fn criteria_error(err: factors::CriteriaError) -> ProvisionError {
    ProvisionError::Invalid {
        field: "license.criteria",
        rule: err.to_string(),
    }
}

/// The report for one enterprise (`only`) or all of them, ordered by name, read from the store.
pub async fn build(
    store: &Store,
    only: Option<&str>,
    global: &LicenseSettings,
) -> Result<Vec<EnterpriseReport>, ProvisionError> {
    reports(&store.license_facts(only).await?, global)
}

/// The report of each enterprise of `facts`, in their order.
pub fn reports(
    facts: &[EnterpriseFacts],
    global: &LicenseSettings,
) -> Result<Vec<EnterpriseReport>, ProvisionError> {
    facts
        .iter()
        .map(|f| report_of(&f.enterprise, &input(f, global), global))
        .collect()
}

/// A license snapshot with every enterprise's report, counted once (the daemon does it at
/// each reload, so a page of 1,000 enterprises does not count 100,000 users per view).
#[derive(Debug)]
pub struct CountedLicenses {
    pub facts: Arc<LicenseSnapshot>,
    /// The `[license]` settings `reports` were counted under.
    counted_under: LicenseSettings,
    /// In the order of `facts.enterprises()`.
    reports: Vec<EnterpriseReport>,
}

impl CountedLicenses {
    pub fn count(
        facts: Arc<LicenseSnapshot>,
        settings: &LicenseSettings,
    ) -> Result<Self, ProvisionError> {
        let reports = reports(facts.enterprises(), settings)?;
        Ok(Self {
            facts,
            counted_under: settings.clone(),
            reports,
        })
    }

    /// Every enterprise's report under `settings`: the stored count, or a recount when the
    /// settings changed since (a SIGHUP whose snapshot reload failed).
    pub fn reports(
        &self,
        settings: &LicenseSettings,
    ) -> Result<Cow<'_, [EnterpriseReport]>, ProvisionError> {
        if *settings == self.counted_under {
            Ok(Cow::Borrowed(&self.reports))
        } else {
            reports(self.facts.enterprises(), settings).map(Cow::Owned)
        }
    }
}

fn report_of(
    e: &Enterprise,
    input: &factors::Enterprise,
    global: &LicenseSettings,
) -> Result<EnterpriseReport, ProvisionError> {
    let r = factors::count(input, &global.criteria()).map_err(criteria_error)?;
    Ok(EnterpriseReport {
        enterprise: e.name.clone(),
        acquired: r.acquired,
        currently_licensed: r.currently_licensed,
        available: r.available,
        monitored_users: r.monitored_users,
        factors: Factors {
            direct_routing: r.direct_routing.into(),
            operator_connect: r.operator_connect.into(),
            lcm: r.lcm.into(),
            ui: r.ui.into(),
            service_numbers: r.service_numbers.into(),
        },
        calculated_at: None,
    })
}

/// One user's part in an enterprise's count: the factors it meets and the one it is billed
/// under (`None`: not billed), from the same counting as [`build`].
#[derive(Debug, Clone, Serialize)]
pub struct UserExplained {
    pub upn: String,
    pub number: String,
    pub direct_routing: bool,
    /// The activated UserAssigned OC number that bills the user under Operator Connect.
    pub operator_connect: Option<String>,
    pub lcm: bool,
    pub ui: bool,
    pub billed: Option<&'static str>,
}

/// The report of an enterprise (as [`build`]) and every user with its part in the count, in
/// UPN order, from one input.
pub fn explain(
    f: &EnterpriseFacts,
    global: &LicenseSettings,
) -> Result<(EnterpriseReport, Vec<UserExplained>), ProvisionError> {
    let input = input(f, global);
    let report = report_of(&f.enterprise, &input, global)?;
    let x = factors::explain(&input, &global.criteria()).map_err(criteria_error)?;
    // The facts' users are in UPN order already, and `explain` keeps their order.
    let users = input
        .users
        .into_iter()
        .zip(x.users)
        .zip(&f.users)
        .map(|((u, x), facts)| UserExplained {
            upn: u.upn,
            number: u.numbers.into_iter().next().unwrap_or_default(),
            direct_routing: x.direct_routing,
            operator_connect: facts.oc_number.clone().filter(|_| x.operator_connect),
            lcm: x.lcm,
            ui: x.ui,
            billed: x.billed.map(factors::Billed::as_str),
        })
        .collect();
    Ok((report, users))
}

/// `n1 (n2)`, or `off (n2)` for a switched-off factor.
pub fn cell(f: &FactorJson) -> String {
    if f.enabled {
        format!("{} ({})", f.counted, f.configured)
    } else {
        format!("off ({})", f.configured)
    }
}

/// One day of `license history`: the report the daemon recorded that day.
#[derive(Debug, Clone, Serialize)]
pub struct AuditDay {
    pub day: String,
    pub report: EnterpriseReport,
}

/// The audit rows of an enterprise between two dates (inclusive).
pub async fn history(
    store: &Store,
    enterprise: &str,
    from: &str,
    to: &str,
) -> Result<Vec<AuditDay>, ProvisionError> {
    store
        .license_history(enterprise, from, to)
        .await?
        .into_iter()
        .map(|row| {
            let report = serde_json::from_str(&row.report).map_err(|e| {
                ProvisionError::Store(teamsgw_store::StoreError::BadRow {
                    table: "license_history",
                    problem: format!("report of {} is not a license report: {e}", row.day),
                })
            })?;
            Ok(AuditDay {
                day: row.day,
                report,
            })
        })
        .collect()
}

/// Counts every enterprise (or `only` that one) and records today's audit row for each
/// (UTC day), stamped with the time of the count.
pub async fn record_audit(
    store: &Store,
    global: &LicenseSettings,
    only: Option<&str>,
) -> Result<Vec<EnterpriseReport>, ProvisionError> {
    let mut reports = build(store, only, global).await?;
    let day = today();
    let now = now_rfc3339();
    for r in &mut reports {
        r.calculated_at = Some(now.clone());
        let json = serde_json::to_string(r).map_err(|e| ProvisionError::Invalid {
            field: "report",
            rule: e.to_string(),
        })?;
        store
            .record_license_audit(&r.enterprise, &day, &json)
            .await?;
    }
    Ok(reports)
}

/// Now as RFC 3339 in UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    rfc3339(ms)
}

/// Milliseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let day = civil_date(i64::try_from(secs / 86_400).unwrap_or(0));
    let t = secs % 86_400;
    format!(
        "{day}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        ms % 1000
    )
}

pub use teamsgw_store::{civil_date, today};
