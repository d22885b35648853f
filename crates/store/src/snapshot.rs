//! The routing snapshot: an immutable index of the provisioning data the gateway routes by.
//!
//! It is rebuilt from the database as a whole and swapped in atomically by the caller, so a
//! lookup never sees half of a reload and a failed reload leaves the previous snapshot serving.

use std::collections::HashMap;
use std::time::SystemTime;

use sqlx::{AnyPool, Row};

use crate::StoreError;

/// One Direct Route as the gateway needs it to identify a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRouteEntry {
    pub enterprise_id: String,
    pub enterprise_name: String,
    pub fqdn: String,
    pub port: u16,
    pub max_sessions: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct RoutingSnapshot {
    loaded_at: SystemTime,
    /// Tenant FQDN (lower case) → direct route.
    by_fqdn: HashMap<String, DirectRouteEntry>,
}

impl RoutingSnapshot {
    pub fn empty() -> Self {
        Self {
            loaded_at: SystemTime::now(),
            by_fqdn: HashMap::new(),
        }
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    pub fn direct_routes(&self) -> usize {
        self.by_fqdn.len()
    }

    /// The direct route for a tenant FQDN (case-insensitive, as DNS names are).
    pub fn direct_route(&self, fqdn: &str) -> Option<&DirectRouteEntry> {
        self.by_fqdn.get(&fqdn.to_ascii_lowercase())
    }
}

pub(crate) async fn load(pool: &AnyPool) -> Result<RoutingSnapshot, StoreError> {
    let rows = sqlx::query(
        "SELECT e.id AS enterprise_id, e.name AS enterprise_name, d.fqdn, d.port, d.max_sessions \
         FROM direct_routes d JOIN enterprises e ON e.id = d.enterprise_id",
    )
    .fetch_all(pool)
    .await?;
    let mut by_fqdn = HashMap::with_capacity(rows.len());
    for row in rows {
        let bad = |problem: String| StoreError::BadRow {
            table: "direct_routes",
            problem,
        };
        let fqdn: String = row.try_get("fqdn")?;
        let port: i64 = row.try_get("port")?;
        let port = u16::try_from(port)
            .map_err(|_| bad(format!("direct route {fqdn}: port {port} out of range")))?;
        let max_sessions: Option<i64> = row.try_get("max_sessions")?;
        let max_sessions = max_sessions
            .map(u32::try_from)
            .transpose()
            .map_err(|_| bad(format!("direct route {fqdn}: max_sessions out of range")))?;
        let entry = DirectRouteEntry {
            enterprise_id: row.try_get("enterprise_id")?,
            enterprise_name: row.try_get("enterprise_name")?,
            fqdn: fqdn.clone(),
            port,
            max_sessions,
        };
        by_fqdn.insert(fqdn.to_ascii_lowercase(), entry);
    }
    Ok(RoutingSnapshot {
        loaded_at: SystemTime::now(),
        by_fqdn,
    })
}
