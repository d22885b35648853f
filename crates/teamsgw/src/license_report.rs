//! `teamsgw license report`: reads an enterprise's users, service numbers, LCM templates and
//! direct routes from the store and counts them with `teamsgw_license::factors`
//! (seeds: the license page; licensing.md §1.2–§1.8). Each factor is `counted (configured)`:
//! counted after priority de-duplication (what is billed), configured the raw number.

use serde::Serialize;
use teamsgw_license::factors::{self, Criteria, Factor, ServiceNumber, Switches};
use teamsgw_store::{Enterprise, ProvisionError, Store};

use crate::config::LicenseSettings;

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct Factors {
    pub direct_routing: FactorJson,
    pub lcm: FactorJson,
    pub ui: FactorJson,
    pub service_numbers: FactorJson,
}

/// One enterprise's line of the report (the `--json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct EnterpriseReport {
    pub enterprise: String,
    pub acquired: u32,
    pub currently_licensed: u32,
    pub available: i64,
    pub monitored_users: u32,
    pub factors: Factors,
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

/// The report for one enterprise (`only`) or all of them, ordered by name.
pub async fn build(
    store: &Store,
    only: Option<&str>,
    global: &LicenseSettings,
) -> Result<Vec<EnterpriseReport>, ProvisionError> {
    let enterprises = store.list_enterprises().await?;
    if let Some(name) = only
        && !enterprises.iter().any(|e| e.name == name)
    {
        return Err(ProvisionError::NotFound {
            field: "enterprise",
            what: "enterprise",
            value: name.to_owned(),
        });
    }
    let mut out = Vec::new();
    for e in enterprises
        .iter()
        .filter(|e| only.is_none_or(|n| n == e.name))
    {
        let users = store.list_users(&e.name).await?;
        let input = factors::Enterprise {
            acquired: u32::try_from(e.acquired_licenses).unwrap_or(u32::MAX),
            tenant_id: e.tenant_id.clone(),
            direct_routes: store
                .list_direct_routes(Some(&e.name))
                .await?
                .into_iter()
                .map(|d| d.fqdn)
                .collect(),
            lcm_groups: store
                .list_lcm_templates(&e.name)
                .await?
                .into_iter()
                .map(|t| t.group)
                .collect(),
            users: users
                .into_iter()
                .map(|u| factors::User {
                    upn: u.upn,
                    enterprise_voice: u.ev_enabled,
                    voice_routing_policy: u.voice_routing_policy,
                    pstn_gateway: u.pstn_gateway,
                    groups: u.groups,
                    managed_by_ui: u.managed_by_ui,
                    numbers: vec![u.number],
                })
                .collect(),
            service_numbers: store
                .list_service_numbers(&e.name)
                .await?
                .iter()
                .flat_map(|range| {
                    range.numbers().into_iter().map(|number| ServiceNumber {
                        number,
                        tag: range.tag.clone(),
                    })
                })
                .collect(),
            switches: switches(e, global),
        };
        let r = factors::count(&input, &Criteria::default()).map_err(|err| {
            ProvisionError::Invalid {
                field: "license.criteria",
                rule: err.to_string(),
            }
        })?;
        out.push(EnterpriseReport {
            enterprise: e.name.clone(),
            acquired: r.acquired,
            currently_licensed: r.currently_licensed,
            available: r.available,
            monitored_users: r.monitored_users,
            factors: Factors {
                direct_routing: r.direct_routing.into(),
                lcm: r.lcm.into(),
                ui: r.ui.into(),
                service_numbers: r.service_numbers.into(),
            },
        });
    }
    Ok(out)
}

/// `n1 (n2)`, or `off (n2)` for a switched-off factor.
pub fn cell(f: &FactorJson) -> String {
    if f.enabled {
        format!("{} ({})", f.counted, f.configured)
    } else {
        format!("off ({})", f.configured)
    }
}
