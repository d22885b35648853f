//! The schema migrations, embedded in the binary so a single file is enough to run teamsgw.
//!
//! One portable folder (`crates/store/migrations`) serves SQLite and PostgreSQL. Migrations are
//! append-only: a released migration is never edited (sqlx checks its checksum).

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// (version, description, SQL) in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "enterprises and direct routes",
        include_str!("../migrations/0001_enterprises_and_direct_routes.sql"),
    ),
    (
        2,
        "provisioning model and license data",
        include_str!("../migrations/0002_provisioning.sql"),
    ),
    (
        3,
        "license change times of direct-route users",
        include_str!("../migrations/0003_license_changes.sql"),
    ),
    (
        4,
        "users can be disabled",
        include_str!("../migrations/0004_user_enabled.sql"),
    ),
    (
        5,
        "license history kept by enterprise name",
        include_str!("../migrations/0005_license_history.sql"),
    ),
    (
        6,
        "call detail records",
        include_str!("../migrations/0006_cdrs.sql"),
    ),
    (
        7,
        "PBX number format and country code",
        include_str!("../migrations/0007_pbx_numbering.sql"),
    ),
    (
        8,
        "PBX Diversion header",
        include_str!("../migrations/0008_pbx_diversion.sql"),
    ),
    (
        9,
        "CDR emergency mark",
        include_str!("../migrations/0009_cdr_emergency.sql"),
    ),
    (
        10,
        "CDR lost BYE",
        include_str!("../migrations/0010_cdr_bye_lost.sql"),
    ),
    (
        11,
        "enterprise emergency numbers",
        include_str!("../migrations/0011_enterprise_emergency_numbers.sql"),
    ),
    (
        12,
        "direct route max cps",
        include_str!("../migrations/0012_direct_route_max_cps.sql"),
    ),
    (
        13,
        "operator connect",
        include_str!("../migrations/0013_operator_connect.sql"),
    ),
    (
        14,
        "CDR service type, service numbers by first number",
        include_str!("../migrations/0014_cdr_service.sql"),
    ),
];

/// The migrations of a prefix of [`MIGRATIONS`] (all of them but in tests).
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub(crate) async fn run(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = Migrator::new(Embedded(MIGRATIONS)).await?;
    migrator.run(pool).await
}

/// The migrations up to and including `version` only (migration tests start there).
pub(crate) async fn run_to(
    pool: &AnyPool,
    version: i64,
) -> Result<(), sqlx::migrate::MigrateError> {
    let end = MIGRATIONS.iter().take_while(|m| m.0 <= version).count();
    Migrator::new(Embedded(&MIGRATIONS[..end]))
        .await?
        .run(pool)
        .await
}

#[cfg(test)]
mod tests {
    use crate::{Service, Store};

    /// Issue 32: a database of schema 12 with a customer on it migrates to Operator Connect's
    /// schema with that customer a Direct Routing enterprise, exactly as before
    /// (`tests/database.rs` does the same on PostgreSQL).
    #[tokio::test]
    async fn schema_12_with_data_migrates_and_existing_enterprises_stay_direct_routing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        Store::seed_old_schema(&url, 12, &SCHEMA_12_CUSTOMER)
            .await
            .unwrap();
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            super::MIGRATIONS.len() as i64
        );
        let e = store.enterprise("Contoso").await.unwrap();
        assert_eq!(e.service, Service::DirectRouting);
        assert_eq!(e.acquired_licenses, 50);
        let routes = store.list_direct_routes(Some("Contoso")).await.unwrap();
        assert_eq!(routes.len(), 1);
        assert!(store.list_oc_numbers("Contoso").await.unwrap().is_empty());
    }

    /// A customer with a direct route, as schema 12 stores it.
    pub const SCHEMA_12_CUSTOMER: [&str; 2] = [
        "INSERT INTO enterprises (id, name, tenant_id, acquired_licenses, created_at) \
         VALUES ('e1', 'Contoso', '0e1b2c3d-1111-2222-3333-444455556666', 50, 0)",
        "INSERT INTO direct_routes (id, enterprise_id, fqdn, port, created_at) \
         VALUES ('d1', 'e1', 'contoso.teams.carrier.example', 5061, 0)",
    ];
}
