//! An enterprise's service type (issue 32): Direct Routing through its own derived trunk, or
//! Operator Connect through the carrier trunk; and the rule for changing it.

use sqlx::{Any, Row, Transaction};

use crate::provision::{ProvisionError, count, invalid};

/// How an enterprise reaches Teams (licensing.md §1.1, §1.2). Direct Routing: through its
/// own derived trunk (a direct route). Operator Connect: through the carrier trunk
/// (`teams.base_fqdn`), with numbers the operator uploaded to the customer's tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    #[default]
    DirectRouting,
    OperatorConnect,
}

impl Service {
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "direct-routing" => Ok(Self::DirectRouting),
            "operator-connect" => Ok(Self::OperatorConnect),
            _ => Err(invalid(
                "service",
                format!("{s:?} is not direct-routing or operator-connect"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DirectRouting => "direct-routing",
            Self::OperatorConnect => "operator-connect",
        }
    }
}

/// The service type of the enterprise with id `id`.
pub(crate) async fn service_of(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<Service, ProvisionError> {
    let row = sqlx::query("SELECT service FROM enterprises WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let service: String = row.try_get("service")?;
    Service::parse(&service)
}

/// Changes an enterprise's service type. Only while it has no users: their license factor
/// and how their calls reach Teams both follow the type. Direct routes belong to Direct
/// Routing, OC numbers to Operator Connect, so those go first too.
pub(crate) async fn change_service(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    name: &str,
    service: Service,
) -> Result<(), ProvisionError> {
    if service_of(tx, id).await? == service {
        return Ok(());
    }
    let blockers = [
        (
            "SELECT COUNT(*) AS n FROM users WHERE enterprise_id = $1",
            "users",
        ),
        (
            "SELECT COUNT(*) AS n FROM direct_routes WHERE enterprise_id = $1",
            "direct routes (Direct Routing only)",
        ),
        (
            "SELECT COUNT(*) AS n FROM oc_numbers WHERE enterprise_id = $1",
            "Operator Connect numbers",
        ),
    ];
    for (sql, what) in blockers {
        let n = count(tx, sql, id).await?;
        if n > 0 {
            return Err(invalid(
                "service",
                format!(
                    "the service type changes only while the enterprise has no users, direct \
                     routes or OC numbers; {name:?} has {n} {what}"
                ),
            ));
        }
    }
    sqlx::query("UPDATE enterprises SET service = $1 WHERE id = $2")
        .bind(service.as_str())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
