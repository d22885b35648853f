//! The provisioning database of teamsgw and the routing snapshot built from it.
//!
//! Owns: the schema and its migrations (one portable folder, run through sqlx's `Any` driver on
//! an embedded SQLite file by default or on PostgreSQL), the domain model (Enterprise → Direct
//! Route → PBX → Users), the provisioning rules, SIP passwords sealed at rest
//! ([`PasswordKey`]), the license audit history and call detail records (stored, not
//! interpreted), change
//! notifications between processes on PostgreSQL ([`ChangeListener`]), and
//! [`RoutingSnapshot`], the immutable index the gateway routes from, and [`LicenseSnapshot`],
//! every enterprise's license facts in one read, and the Operator Connect number inventory.
//!
//! Must never know: SIP, SDP, media or sockets (store never imports them), HTTP, license rules
//! (the license crate owns them; callers check SKUs before storing and choose a direct route's
//! units from the pool the store counts), or how the daemon is signalled. Callers decide when
//! to reload; this crate only builds snapshots.

mod audit;
mod catalogs;
mod cdrs;
mod changes;
mod changes_feed;
mod dates;
mod direct_routes;
mod license_snapshot;
mod migrations;
mod oc_numbers;
mod password;
mod provision;
mod service;
mod snapshot;
mod users;

pub use audit::AuditRow;
pub use catalogs::{EnterpriseSku, LcmTemplate, MAX_RANGE, ServiceNumbers, parse_range};
pub use cdrs::{Cdr, CdrFilter, CdrLeg};
pub use changes::{PbxChange, UserChange};
pub use changes_feed::ChangeListener;
pub use dates::{civil_date, today};
pub use direct_routes::{DirectRoute, DirectRouteChange, MAX_CPS, NewDirectRoute, PoolUnit};
pub use license_snapshot::{EnterpriseFacts, LicenseFacts, LicenseSnapshot};
pub use oc_numbers::{
    Activation, Assignment, NewOcNumber, NumberSource, OcNumber, ReleasedOcNumber, RowOutcome,
    Written,
};
pub use password::{PasswordKey, PasswordKeyError, SealError};
pub use provision::{
    Children, Enterprise, LicenseFactor, NumberFormat, PBX_CODECS, Pbx, ProvisionError,
    RELAYED_CODECS, Service, Transport, validate_codecs, validate_country_code,
    validate_emergency_numbers, validate_tenant_fqdn, validate_tenant_id,
};
pub use snapshot::{DirectRouteEntry, OperatorConnectEntry, PbxEntry, RoutingSnapshot, UserEntry};
pub use users::{NewUser, User, password_context, validate_e164, validate_upn};

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// Which engine a [`Store`] talks to. SQL is portable; this only matters for URL handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `database.url` selects, or `None` when the scheme is not supported.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url: unsupported scheme in {0:?} (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("cannot create the directory for the SQLite file {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the SQLite file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("bad provisioning row in {table}: {problem}")]
    BadRow {
        table: &'static str,
        problem: String,
    },
}

/// A connection pool to the provisioning database with the schema migrated.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects, creating the SQLite file (and its directory) when missing, and migrates the
    /// schema to the version this build expects.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url).await?;
        migrations::run(&store.pool).await?;
        Ok(store)
    }

    /// For migration tests: the database at `url` migrated only to schema `version`, with the
    /// `seed` statements (data in that schema) run after; [`Store::open`] then migrates it the
    /// rest of the way, as an upgrade does.
    #[doc(hidden)]
    pub async fn seed_old_schema(url: &str, version: i64, seed: &[&str]) -> Result<(), StoreError> {
        let store = Self::connect(url).await?;
        migrations::run_to(&store.pool, version).await?;
        for sql in seed {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(&store.pool)
                .await
                .map_err(StoreError::Query)?;
        }
        store.pool.close().await;
        Ok(())
    }

    async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend =
            Backend::from_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite has one writer; more connections only add lock contention.
                Backend::Sqlite => 1,
                Backend::Postgres => 8,
            })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The schema version the database is at (the highest applied migration).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("v")?.unwrap_or(0))
    }

    /// Reads everything the gateway routes by into a new immutable snapshot.
    pub async fn load_snapshot(&self) -> Result<RoutingSnapshot, StoreError> {
        snapshot::load(&self.pool).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite URLs get `mode=rwc` (create when missing) and their directory created, so the
/// embedded default works on a fresh machine.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    create_private(Path::new(path))?;
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    Ok(match (query, has_mode) {
        (_, true) => url.to_owned(),
        (Some(_), false) => format!("{url}&mode=rwc"),
        (None, false) => format!("{url}?mode=rwc"),
    })
}

/// Creates a missing database file readable by its owner only (0600): it holds the sealed
/// SIP passwords and every CDR. SQLite gives its journal the database file's mode, so the
/// process umask never decides. An existing file keeps the mode its operator gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl FromStr for Backend {
    type Err = StoreError;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::from_url(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://var/x.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
        assert_eq!(Backend::from_url("var/x.db"), None);
    }

    #[test]
    fn sqlite_url_gets_create_mode_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/x.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(file.parent().unwrap().is_dir());
        let ro = format!("{url}?mode=ro");
        assert_eq!(prepare_sqlite_url(&ro).unwrap(), ro);
    }

    #[tokio::test]
    async fn fresh_sqlite_file_is_created_migrated_and_loads_an_empty_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("var/teamsgw.db");
        let store = Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert!(file.exists());
        // Issue 31 §9: created for its owner only, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert_eq!(store.schema_version().await.unwrap(), 14);
        let snapshot = store.load_snapshot().await.unwrap();
        assert_eq!(snapshot.direct_routes(), 0);
        store.close().await;

        // Reopening an already migrated database is a no-op.
        let store = Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert_eq!(store.schema_version().await.unwrap(), 14);
    }
}
