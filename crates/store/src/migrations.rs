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
];

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
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
    let migrator = Migrator::new(Embedded).await?;
    migrator.run(pool).await
}
