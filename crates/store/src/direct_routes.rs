//! Direct routes (derived trunks) and the licenses their Microsoft user holds.
//!
//! A direct route's FQDN only becomes usable in the customer's tenant once a licensed user lives
//! in that domain (licensing.md §2.3), so creating a route assigns units from the enterprise's
//! pool in the same transaction that inserts it. Which units is a license rule: the caller
//! passes the choice in as a closure and this module only counts and records.

use sqlx::{Any, Row, Transaction};

use crate::oc_numbers::UNASSIGN_ENTERPRISE_USERS;
use crate::provision::{
    ProvisionError, Service, count, enterprise_id, invalid, new_id, now, service_of, u64_column,
    validate_tenant_fqdn,
};
use crate::users::split;
use crate::{Store, StoreError, validate_upn};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectRoute {
    pub enterprise: String,
    pub fqdn: String,
    pub port: u16,
    pub max_sessions: Option<u32>,
    /// New calls per second admitted (emergency calls exempt).
    pub max_cps: Option<u32>,
    /// The Microsoft user that anchors the FQDN's domain in the tenant.
    pub ms_user: Option<String>,
    /// SKU part numbers assigned to `ms_user` from the enterprise's pool.
    pub licenses: Vec<String>,
    /// Unix seconds of the last license change of `ms_user`.
    pub last_license_change: Option<i64>,
}

/// A direct route to create.
#[derive(Debug, Clone)]
pub struct NewDirectRoute {
    pub enterprise: String,
    pub fqdn: String,
    /// `teams.base_fqdn`: the FQDN must be one label under it.
    pub base_fqdn: String,
    pub port: u16,
    pub max_sessions: Option<u32>,
    pub max_cps: Option<u32>,
    /// Default `donotdelete@<fqdn>`, the convention of hosted Teams portals.
    pub ms_user: Option<String>,
}

/// One SKU of an enterprise's pool as seen when assigning licenses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUnit {
    pub part_number: String,
    pub units: u64,
    pub acquired_on: Option<String>,
    /// Units already held by users and direct-route users of the enterprise.
    pub assigned: u64,
}

impl Store {
    /// Adds a direct route; see [`validate_tenant_fqdn`]. `assign` picks the part numbers for
    /// the route's Microsoft user from the pool; its error aborts the whole change.
    pub async fn add_direct_route(
        &self,
        route: &NewDirectRoute,
        assign: impl FnOnce(&[PoolUnit]) -> Result<Vec<String>, ProvisionError>,
    ) -> Result<DirectRoute, ProvisionError> {
        let fqdn = validate_tenant_fqdn(&route.fqdn, &route.base_fqdn)?;
        if route.port == 0 {
            return Err(invalid("port", "must be 1-65535"));
        }
        check_limits(route.max_sessions, route.max_cps, "omit for no limit")?;
        let ms_user = match &route.ms_user {
            Some(upn) => validate_upn(upn)
                .map_err(|_| invalid("ms-user", format!("{upn:?} is not a UPN (local@domain)")))?,
            None => format!("donotdelete@{fqdn}"),
        };
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, &route.enterprise).await?;
        if service_of(&mut tx, &id).await? == Service::OperatorConnect {
            return Err(invalid(
                "enterprise",
                format!(
                    "{:?} is an Operator Connect enterprise: its calls use the carrier trunk \
                     (teams.base_fqdn), and direct routes belong to Direct Routing",
                    route.enterprise
                ),
            ));
        }
        if count(
            &mut tx,
            "SELECT COUNT(*) AS n FROM direct_routes WHERE fqdn = $1",
            &fqdn,
        )
        .await?
            > 0
        {
            return Err(ProvisionError::Conflict {
                field: "fqdn",
                value: fqdn,
            });
        }
        let pool = pool(&mut tx, &id).await?;
        let licenses = assign(&pool)?;
        let route_id = new_id()?;
        let t = now();
        sqlx::query(
            "INSERT INTO direct_routes (id, enterprise_id, fqdn, port, max_sessions, max_cps, \
             ms_user, last_license_change, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&route_id)
        .bind(&id)
        .bind(&fqdn)
        .bind(i64::from(route.port))
        .bind(route.max_sessions.map(i64::from))
        .bind(route.max_cps.map(i64::from))
        .bind(&ms_user)
        .bind((!licenses.is_empty()).then_some(t))
        .bind(t)
        .execute(&mut *tx)
        .await?;
        for part in &licenses {
            sqlx::query(
                "INSERT INTO direct_route_licenses (direct_route_id, part_number) VALUES ($1, $2)",
            )
            .bind(&route_id)
            .bind(part)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(DirectRoute {
            enterprise: route.enterprise.clone(),
            fqdn,
            port: route.port,
            max_sessions: route.max_sessions,
            max_cps: route.max_cps,
            ms_user: Some(ms_user),
            last_license_change: (!licenses.is_empty()).then_some(t),
            licenses,
        })
    }

    /// Direct routes, of one enterprise or all, ordered by FQDN.
    pub async fn list_direct_routes(
        &self,
        enterprise: Option<&str>,
    ) -> Result<Vec<DirectRoute>, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let filter = match enterprise {
            Some(name) => Some(enterprise_id(&mut tx, name).await?),
            None => None,
        };
        let routes = direct_routes_in(&mut tx, filter.as_deref()).await?;
        tx.commit().await?;
        Ok(routes)
    }

    /// Deletes a direct route and returns its licenses to the pool. The last route of an
    /// enterprise that has PBXs is refused unless `cascade` (which also deletes the PBXs and
    /// their users): without a route they could never be reached.
    pub async fn delete_direct_route(
        &self,
        fqdn: &str,
        cascade: bool,
    ) -> Result<(), ProvisionError> {
        let fqdn = fqdn.trim_end_matches('.').to_ascii_lowercase();
        let mut tx = self.pool.begin().await?;
        let (id, enterprise) = route_ids(&mut tx, &fqdn).await?;
        let routes = count(
            &mut tx,
            "SELECT COUNT(*) AS n FROM direct_routes WHERE enterprise_id = $1",
            &enterprise,
        )
        .await?;
        if routes == 1 {
            let pbxs = count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM pbxs WHERE enterprise_id = $1",
                &enterprise,
            )
            .await?;
            if pbxs > 0 && !cascade {
                return Err(ProvisionError::HasChildren {
                    what: "direct route",
                    name: fqdn,
                    children: format!("{pbxs} PBXs that need a direct route"),
                });
            }
            for sql in [
                UNASSIGN_ENTERPRISE_USERS,
                "DELETE FROM users WHERE enterprise_id = $1",
                "DELETE FROM pbxs WHERE enterprise_id = $1",
            ] {
                sqlx::query(sql).bind(&enterprise).execute(&mut *tx).await?;
            }
        }
        for sql in [
            "DELETE FROM direct_route_licenses WHERE direct_route_id = $1",
            "DELETE FROM direct_routes WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A change to a direct route's limits; `Some(None)` removes a limit.
#[derive(Debug, Clone, Default)]
pub struct DirectRouteChange {
    pub max_sessions: Option<Option<u32>>,
    pub max_cps: Option<Option<u32>>,
}

/// The largest `max_cps`: more new calls a second than one node sets up, so a typo cannot
/// pass for a limit.
pub const MAX_CPS: u32 = 10_000;

/// A limit is at least 1 (`no_limit` says how to have none); calls per second at most [`MAX_CPS`].
fn check_limits(
    max_sessions: Option<u32>,
    max_cps: Option<u32>,
    no_limit: &str,
) -> Result<(), ProvisionError> {
    if max_sessions == Some(0) {
        return Err(invalid(
            "max-sessions",
            format!("must be at least 1 ({no_limit})"),
        ));
    }
    match max_cps {
        Some(0) => Err(invalid(
            "max-cps",
            format!("must be at least 1 ({no_limit})"),
        )),
        Some(n) if n > MAX_CPS => Err(invalid(
            "max-cps",
            format!("must be at most {MAX_CPS} new calls per second"),
        )),
        _ => Ok(()),
    }
}

impl Store {
    /// Changes a direct route's call limits; the gateway applies them from the next snapshot
    /// to new calls (calls that are up are never cut).
    pub async fn set_direct_route(
        &self,
        fqdn: &str,
        change: &DirectRouteChange,
    ) -> Result<DirectRoute, ProvisionError> {
        check_limits(
            change.max_sessions.flatten(),
            change.max_cps.flatten(),
            "0 removes the limit",
        )?;
        let fqdn = fqdn.trim_end_matches('.').to_ascii_lowercase();
        let mut tx = self.pool.begin().await?;
        let (id, enterprise) = route_ids(&mut tx, &fqdn).await?;
        for (sql, value) in [
            (
                "UPDATE direct_routes SET max_sessions = $1 WHERE id = $2",
                change.max_sessions,
            ),
            (
                "UPDATE direct_routes SET max_cps = $1 WHERE id = $2",
                change.max_cps,
            ),
        ] {
            let Some(value) = value else { continue };
            sqlx::query(sql)
                .bind(value.map(i64::from))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let route = direct_routes_in(&mut tx, Some(&enterprise))
            .await?
            .into_iter()
            .find(|d| d.fqdn == fqdn);
        tx.commit().await?;
        route.ok_or_else(|| ProvisionError::NotFound {
            field: "fqdn",
            what: "direct route",
            value: fqdn,
        })
    }
}

/// A direct route's id and its enterprise's id, by (normalised) FQDN.
async fn route_ids(
    tx: &mut Transaction<'static, Any>,
    fqdn: &str,
) -> Result<(String, String), ProvisionError> {
    let row = sqlx::query("SELECT id, enterprise_id FROM direct_routes WHERE fqdn = $1")
        .bind(fqdn)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| ProvisionError::NotFound {
            field: "fqdn",
            what: "direct route",
            value: fqdn.to_owned(),
        })?;
    Ok((row.try_get("id")?, row.try_get("enterprise_id")?))
}

/// The enterprise's SKUs with the units its users and direct-route users already hold.
async fn pool(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    enterprise_id: &str,
) -> Result<Vec<PoolUnit>, ProvisionError> {
    let skus = sqlx::query(
        "SELECT part_number, units, acquired_on FROM enterprise_skus \
         WHERE enterprise_id = $1 ORDER BY part_number",
    )
    .bind(enterprise_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut pool = skus
        .iter()
        .map(|row| {
            Ok(PoolUnit {
                part_number: row.try_get("part_number")?,
                units: u64_column(row, "units", "enterprise_skus")?,
                acquired_on: row.try_get("acquired_on")?,
                assigned: 0,
            })
        })
        .collect::<Result<Vec<_>, ProvisionError>>()?;
    let mut holders: Vec<String> = sqlx::query(
        "SELECT l.part_number FROM direct_route_licenses l \
         JOIN direct_routes d ON d.id = l.direct_route_id WHERE d.enterprise_id = $1",
    )
    .bind(enterprise_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.try_get("part_number"))
    .collect::<Result<_, _>>()?;
    for row in sqlx::query("SELECT skus FROM users WHERE enterprise_id = $1")
        .bind(enterprise_id)
        .fetch_all(&mut **tx)
        .await?
    {
        holders.extend(split(&row.try_get::<String, _>("skus")?));
    }
    for part in holders {
        if let Some(unit) = pool
            .iter_mut()
            .find(|u| u.part_number.eq_ignore_ascii_case(&part))
        {
            unit.assigned += 1;
        }
    }
    Ok(pool)
}

/// The direct routes of enterprise id `filter` (all when `None`) with their licenses, ordered
/// by FQDN, read inside `tx`.
pub(crate) async fn direct_routes_in(
    tx: &mut Transaction<'static, Any>,
    filter: Option<&str>,
) -> Result<Vec<DirectRoute>, ProvisionError> {
    let rows = sqlx::query(
        "SELECT d.id, e.name AS enterprise, d.fqdn, d.port, d.max_sessions, d.max_cps, \
         d.ms_user, d.last_license_change FROM direct_routes d JOIN enterprises e ON e.id = d.enterprise_id \
         WHERE $1 IS NULL OR d.enterprise_id = $1 ORDER BY d.fqdn",
    )
    .bind(filter)
    .fetch_all(&mut **tx)
    .await?;
    let licenses = sqlx::query(
        "SELECT l.direct_route_id, l.part_number FROM direct_route_licenses l \
         JOIN direct_routes d ON d.id = l.direct_route_id \
         WHERE $1 IS NULL OR d.enterprise_id = $1 ORDER BY l.part_number",
    )
    .bind(filter)
    .fetch_all(&mut **tx)
    .await?;
    let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
    for row in &licenses {
        held.entry(row.try_get("direct_route_id")?)
            .or_default()
            .push(row.try_get("part_number")?);
    }
    rows.iter()
        .map(|row| {
            let port = u64_column(row, "port", "direct_routes")?;
            let max_sessions: Option<i64> = row.try_get("max_sessions")?;
            let max_cps: Option<i64> = row.try_get("max_cps")?;
            let bad = |column: &str| {
                ProvisionError::Store(StoreError::BadRow {
                    table: "direct_routes",
                    problem: format!("{column} out of range"),
                })
            };
            let id: String = row.try_get("id")?;
            Ok(DirectRoute {
                enterprise: row.try_get("enterprise")?,
                fqdn: row.try_get("fqdn")?,
                port: u16::try_from(port).map_err(|_| bad("port"))?,
                max_sessions: max_sessions
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| bad("max_sessions"))?,
                max_cps: max_cps
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| bad("max_cps"))?,
                ms_user: row.try_get("ms_user")?,
                licenses: held.remove(&id).unwrap_or_default(),
                last_license_change: row.try_get("last_license_change")?,
            })
        })
        .collect()
}
