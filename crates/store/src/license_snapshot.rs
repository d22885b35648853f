//! The license snapshot: what license counting and the license problems read of every
//! enterprise, loaded as a whole and only read afterwards (as the routing snapshot is).
//!
//! It is one transaction with one query per table, not per enterprise: a report over 1,000
//! enterprises was 4,000 round trips, and a page that counts on every view cannot afford to
//! decode 100,000 user rows each time. The daemon loads it with every routing snapshot; the
//! CLI reads the same facts the same way for one enterprise or all.

use std::collections::HashMap;
use std::time::SystemTime;

use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::catalogs::{EnterpriseSku, LcmTemplate, ServiceNumbers};
use crate::direct_routes::{DirectRoute, direct_routes_in};
use crate::oc_numbers::{Activation, Assignment, OcNumber, oc_numbers_in};
use crate::provision::{
    Enterprise, ProvisionError, enterprise_from_row, enterprise_id, u64_column,
};
use crate::users::split;

/// What license counting reads of a user: only these columns, so a count over 100,000 users
/// decodes a fraction of what `list_users` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseFacts {
    pub upn: String,
    pub number: String,
    pub skus: Vec<String>,
    pub ev_enabled: bool,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    pub groups: Vec<String>,
    pub managed_by_ui: bool,
    /// Unix seconds of the last change of `skus`, for the license-change cooldown.
    pub last_license_change: Option<i64>,
    /// The activated UserAssigned Operator Connect number the user holds, if any.
    pub oc_number: Option<String>,
}

/// Everything the license count and the license problems read of one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseFacts {
    pub enterprise: Enterprise,
    /// By part number.
    pub skus: Vec<EnterpriseSku>,
    /// By FQDN.
    pub direct_routes: Vec<DirectRoute>,
    /// By name.
    pub lcm_templates: Vec<LcmTemplate>,
    /// By first number.
    pub service_numbers: Vec<ServiceNumbers>,
    /// By UPN (byte order, whatever the database's collation).
    pub users: Vec<LicenseFacts>,
    /// Operator Connect numbers, by first number.
    pub oc_numbers: Vec<OcNumber>,
}

/// Every enterprise's [`EnterpriseFacts`], by name, as of one load.
#[derive(Debug, Clone)]
pub struct LicenseSnapshot {
    loaded_at: SystemTime,
    enterprises: Vec<EnterpriseFacts>,
}

impl LicenseSnapshot {
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    pub fn enterprises(&self) -> &[EnterpriseFacts] {
        &self.enterprises
    }

    pub fn enterprise(&self, name: &str) -> Option<&EnterpriseFacts> {
        self.enterprises.iter().find(|f| f.enterprise.name == name)
    }
}

impl Store {
    /// Every enterprise's license facts.
    pub async fn load_license_snapshot(&self) -> Result<LicenseSnapshot, ProvisionError> {
        Ok(LicenseSnapshot {
            loaded_at: SystemTime::now(),
            enterprises: self.license_facts(None).await?,
        })
    }

    /// The license facts of enterprise `only` (an unknown name is `NotFound`), or of every
    /// enterprise, ordered by name.
    pub async fn license_facts(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<EnterpriseFacts>, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let filter = match only {
            Some(name) => Some(enterprise_id(&mut tx, name).await?),
            None => None,
        };
        let filter = filter.as_deref();
        let rows = sqlx::query(
            "SELECT id, name, tenant_id, service, acquired_licenses, lcm_factor, ui_factor, \
             service_numbers_factor, emergency_numbers FROM enterprises \
             WHERE $1 IS NULL OR id = $1 ORDER BY name",
        )
        .bind(filter)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        for row in &rows {
            index.insert(row.try_get("id")?, out.len());
            out.push(EnterpriseFacts {
                enterprise: enterprise_from_row(row)?,
                skus: Vec::new(),
                direct_routes: Vec::new(),
                lcm_templates: Vec::new(),
                service_numbers: Vec::new(),
                users: Vec::new(),
                oc_numbers: Vec::new(),
            });
        }
        each_row(
            &mut tx,
            "SELECT enterprise_id, part_number, units, acquired_on FROM enterprise_skus \
             WHERE $1 IS NULL OR enterprise_id = $1 ORDER BY part_number",
            filter,
            &mut out,
            &index,
            |f, row| {
                f.skus.push(EnterpriseSku {
                    part_number: row.try_get("part_number")?,
                    units: u64_column(row, "units", "enterprise_skus")?,
                    acquired_on: row.try_get("acquired_on")?,
                });
                Ok(())
            },
        )
        .await?;
        each_row(
            &mut tx,
            "SELECT enterprise_id, name, group_name FROM lcm_templates \
             WHERE $1 IS NULL OR enterprise_id = $1 ORDER BY name",
            filter,
            &mut out,
            &index,
            |f, row| {
                let enterprise = f.enterprise.name.clone();
                f.lcm_templates.push(LcmTemplate {
                    enterprise,
                    name: row.try_get("name")?,
                    group: row.try_get("group_name")?,
                });
                Ok(())
            },
        )
        .await?;
        each_row(
            &mut tx,
            "SELECT enterprise_id, first_number, last_number, tag FROM service_numbers \
             WHERE $1 IS NULL OR enterprise_id = $1 ORDER BY first_number",
            filter,
            &mut out,
            &index,
            |f, row| {
                let enterprise = f.enterprise.name.clone();
                f.service_numbers.push(ServiceNumbers {
                    enterprise,
                    first: row.try_get("first_number")?,
                    last: row.try_get("last_number")?,
                    tag: row.try_get("tag")?,
                });
                Ok(())
            },
        )
        .await?;
        each_row(
            &mut tx,
            "SELECT enterprise_id, upn, number, skus, ev_enabled, voice_routing_policy, \
             pstn_gateway, groups, managed_by_ui, last_license_change FROM users \
             WHERE $1 IS NULL OR enterprise_id = $1",
            filter,
            &mut out,
            &index,
            |f, row| {
                f.users.push(LicenseFacts {
                    upn: row.try_get("upn")?,
                    number: row.try_get("number")?,
                    skus: split(&row.try_get::<String, _>("skus")?),
                    ev_enabled: row.try_get::<i64, _>("ev_enabled")? != 0,
                    voice_routing_policy: row.try_get("voice_routing_policy")?,
                    pstn_gateway: row.try_get("pstn_gateway")?,
                    groups: split(&row.try_get::<String, _>("groups")?),
                    managed_by_ui: row.try_get::<i64, _>("managed_by_ui")? != 0,
                    last_license_change: row.try_get("last_license_change")?,
                    oc_number: None,
                });
                Ok(())
            },
        )
        .await?;
        let routes = direct_routes_in(&mut tx, filter).await?;
        let oc_numbers = oc_numbers_in(&mut tx, filter).await?;
        tx.commit().await?;
        let by_name: HashMap<String, usize> = out
            .iter()
            .enumerate()
            .map(|(i, f)| (f.enterprise.name.clone(), i))
            .collect();
        for d in routes {
            if let Some(f) = by_name.get(&d.enterprise).and_then(|&i| out.get_mut(i)) {
                f.direct_routes.push(d);
            }
        }
        for n in oc_numbers {
            if let Some(f) = by_name.get(&n.enterprise).and_then(|&i| out.get_mut(i)) {
                f.oc_numbers.push(n);
            }
        }
        for f in &mut out {
            f.users.sort_unstable_by(|a, b| a.upn.cmp(&b.upn));
            // A user's billing number: its activated UserAssigned OC number (licensing.md §1.2).
            let held: HashMap<&str, &str> = f
                .oc_numbers
                .iter()
                .filter(|n| {
                    n.assignment == Assignment::UserAssigned
                        && n.activation == Activation::Activated
                })
                .filter_map(|n| Some((n.user.as_deref()?, n.first.as_str())))
                .collect();
            if !held.is_empty() {
                let numbers: Vec<Option<String>> = f
                    .users
                    .iter()
                    .map(|u| held.get(u.upn.as_str()).map(|n| (*n).to_owned()))
                    .collect();
                for (u, n) in f.users.iter_mut().zip(numbers) {
                    u.oc_number = n;
                }
            }
        }
        Ok(out)
    }
}

/// Runs `sql` (`$1` is the enterprise filter) and hands each row to `add` with the enterprise
/// it belongs to.
async fn each_row(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    filter: Option<&str>,
    out: &mut [EnterpriseFacts],
    index: &HashMap<String, usize>,
    mut add: impl FnMut(&mut EnterpriseFacts, &sqlx::any::AnyRow) -> Result<(), ProvisionError>,
) -> Result<(), ProvisionError> {
    for row in &sqlx::query(sql).bind(filter).fetch_all(&mut **tx).await? {
        if let Some(f) = slot(out, index, row)? {
            add(f, row)?;
        }
    }
    Ok(())
}

/// The enterprise a row belongs to. A row of an enterprise outside `index` cannot exist
/// (foreign keys); it is skipped rather than trusted.
fn slot<'a>(
    out: &'a mut [EnterpriseFacts],
    index: &HashMap<String, usize>,
    row: &sqlx::any::AnyRow,
) -> Result<Option<&'a mut EnterpriseFacts>, ProvisionError> {
    let id: String = row.try_get("enterprise_id")?;
    Ok(index.get(&id).and_then(|&i| out.get_mut(i)))
}
