//! Provisioning operations and their rules (seeds: Enterprise → Direct Route → PBX → Users).
//!
//! Every operation validates its input before touching the database and runs in one
//! transaction, so a refused change leaves nothing behind. Errors carry the field and the rule
//! they broke because the CLI prints them and the API returns them as `{error, field, rule}`.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{Any, Row, Transaction};

pub use crate::service::Service;
use crate::service::change_service;
pub(crate) use crate::service::service_of;
use crate::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("{field}: no {what} {value:?}")]
    NotFound {
        field: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("{field}: {value:?} already exists")]
    Conflict { field: &'static str, value: String },
    #[error("{what} {name:?} still has {children}; delete those first or pass --cascade")]
    HasChildren {
        what: &'static str,
        name: String,
        children: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProvisionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

impl ProvisionError {
    /// The input field at fault, for `{error, field, rule}` answers; `None` for database errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. }
            | Self::NotFound { field, .. }
            | Self::Conflict { field, .. } => Some(field),
            Self::HasChildren { .. } => Some("cascade"),
            Self::Store(_) => None,
        }
    }
}

pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        rule: rule.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Enterprise {
    pub name: String,
    pub tenant_id: String,
    pub service: Service,
    pub acquired_licenses: u64,
    /// License-factor overrides: `None` follows the global `[license]` switch.
    pub lcm_factor: Option<bool>,
    pub ui_factor: Option<bool>,
    pub service_numbers_factor: Option<bool>,
    /// The enterprise's own emergency numbers; `None` follows `calls.emergency_numbers`.
    pub emergency_numbers: Option<Vec<String>>,
}

/// The optional license factors an enterprise can switch (licensing.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseFactor {
    Lcm,
    Ui,
    ServiceNumbers,
}

impl LicenseFactor {
    /// `lcm|ui|service-numbers=on|off|default`, the `--license-factor` syntax.
    pub fn parse_setting(s: &str) -> Result<(Self, Option<bool>), ProvisionError> {
        let rule = "is FACTOR=on|off|default with FACTOR one of lcm, ui, service-numbers";
        let (factor, value) = s
            .split_once('=')
            .ok_or_else(|| invalid("license-factor", rule))?;
        let factor = match factor.trim() {
            "lcm" => Self::Lcm,
            "ui" => Self::Ui,
            "service-numbers" => Self::ServiceNumbers,
            _ => return Err(invalid("license-factor", rule)),
        };
        let value = match value.trim() {
            "on" => Some(true),
            "off" => Some(false),
            "default" => None,
            _ => return Err(invalid("license-factor", rule)),
        };
        Ok((factor, value))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            _ => Err(invalid("transport", "must be udp, tcp or tls")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// How a PBX writes the called number of a call from Teams (issue: "the PBX's number format").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberFormat {
    /// `+4930123456`: the `+` is kept.
    #[default]
    E164,
    /// `4930123456`: the `+` is dropped.
    Digits,
}

impl NumberFormat {
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        match s.to_ascii_lowercase().as_str() {
            "e164" => Ok(Self::E164),
            "digits" => Ok(Self::Digits),
            _ => Err(invalid("number_format", "must be e164 or digits")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::E164 => "e164",
            Self::Digits => "digits",
        }
    }
}

/// An E.164 country calling code: 1 to 3 digits, not starting with 0 (ITU-T E.164 §6.2.1).
pub fn validate_country_code(code: &str) -> Result<(), ProvisionError> {
    let ok = (1..=3).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_digit())
        && !code.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "country_code",
            format!(
                "{code:?} is not a country calling code: 1 to 3 digits, no leading 0, no + (E.164 §6.2.1)"
            ),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pbx {
    pub enterprise: String,
    pub name: String,
    pub domain: String,
    pub proxy: Option<String>,
    pub transport: Transport,
    pub expires: u32,
    /// Codecs in preference order, of [`RELAYED_CODECS`]: teamsgw never transcodes.
    pub codecs: Vec<String>,
    pub number_format: NumberFormat,
    /// Turns the PBX's national caller numbers into E.164 towards Teams.
    pub country_code: Option<String>,
    /// Calls from Teams carry their call history as a Diversion header.
    pub diversion: bool,
}

/// A PBX's codecs when none are given: G.711, as before G.722 and G.729 were relayed.
pub const PBX_CODECS: [&str; 2] = ["PCMA", "PCMU"];

/// The codecs a PBX may be given: those Teams' SBC leg also speaks (reference §4.4), relayed
/// end to end without transcoding. SILK stays on the Teams side: no PBX speaks it.
pub const RELAYED_CODECS: [&str; 4] = ["G722", "PCMA", "PCMU", "G729"];

/// Upper-cases and checks a codec preference list.
pub fn validate_codecs(codecs: &[String]) -> Result<Vec<String>, ProvisionError> {
    let mut out: Vec<String> = Vec::new();
    for c in codecs {
        let c = c.trim().to_ascii_uppercase();
        if !RELAYED_CODECS.contains(&c.as_str()) {
            return Err(invalid(
                "codecs",
                format!(
                    "{c:?} is not G722, PCMA, PCMU or G729 (teamsgw relays what Teams also \
                     speaks, without transcoding)"
                ),
            ));
        }
        if out.contains(&c) {
            return Err(invalid("codecs", format!("{c} is listed twice")));
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(invalid("codecs", "at least one of G722, PCMA, PCMU, G729"));
    }
    Ok(out)
}

/// A Microsoft tenant id: a GUID, `8-4-4-4-12` hex digits.
pub fn validate_tenant_id(id: &str) -> Result<String, ProvisionError> {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths_ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    if !lengths_ok
        || !groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(invalid(
            "tenant-id",
            "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        ));
    }
    Ok(id.to_ascii_lowercase())
}

/// A tenant FQDN is the derived-trunk subdomain of the carrier base FQDN: exactly one label of
/// letters, digits, `_` or `-`, at most 63 characters, in front of `base_fqdn`
/// (reference: teams-direct-routing.md §4, derived trunks and label rules).
pub fn validate_tenant_fqdn(fqdn: &str, base_fqdn: &str) -> Result<String, ProvisionError> {
    let fqdn = fqdn.trim_end_matches('.').to_ascii_lowercase();
    let base = base_fqdn.trim_end_matches('.').to_ascii_lowercase();
    let label = fqdn
        .strip_suffix(&base)
        .and_then(|l| l.strip_suffix('.'))
        .ok_or_else(|| {
            invalid(
                "fqdn",
                format!("must be a subdomain of the carrier base FQDN {base}"),
            )
        })?;
    if label.is_empty() || label.contains('.') {
        return Err(invalid(
            "fqdn",
            format!("must be a single label directly under {base}"),
        ));
    }
    if label.len() > 63 {
        return Err(invalid(
            "fqdn",
            "the customer label is at most 63 characters",
        ));
    }
    let ldh = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !label.chars().all(ldh) || label.starts_with('-') || label.ends_with('-') {
        return Err(invalid(
            "fqdn",
            "the customer label takes letters, digits, '_' and '-' (not at either end)",
        ));
    }
    if fqdn.len() > 253 {
        return Err(invalid("fqdn", "a DNS name is at most 253 characters"));
    }
    Ok(fqdn)
}

pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), ProvisionError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(field, "must be 1 to 200 printable characters"));
    }
    Ok(())
}

/// A SIP host with an optional port: a DNS name or IPv4 address (`[v6]` in brackets).
pub(crate) fn validate_host_port(field: &'static str, value: &str) -> Result<(), ProvisionError> {
    let host = match value.rsplit_once(':') {
        Some((host, port)) if !value.ends_with(']') => {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid(field, "port must be 1-65535"))?;
            host
        }
        _ => value,
    };
    let ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be HOST or HOST:PORT (a DNS name or an IP address)",
        ))
    }
}

pub(crate) fn new_id() -> Result<String, ProvisionError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| invalid("id", "the system random generator failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) async fn enterprise_id(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<String, ProvisionError> {
    let row = sqlx::query("SELECT id FROM enterprises WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(row.try_get("id")?),
        None => Err(ProvisionError::NotFound {
            field: "enterprise",
            what: "enterprise",
            value: name.to_owned(),
        }),
    }
}

pub(crate) async fn count(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    id: &str,
) -> Result<i64, ProvisionError> {
    let row = sqlx::query(sql).bind(id).fetch_one(&mut **tx).await?;
    Ok(row.try_get("n")?)
}

pub(crate) fn u64_column(
    row: &sqlx::any::AnyRow,
    column: &str,
    table: &'static str,
) -> Result<u64, ProvisionError> {
    let v: i64 = row.try_get(column)?;
    u64::try_from(v).map_err(|_| {
        ProvisionError::Store(StoreError::BadRow {
            table,
            problem: format!("{column} is negative ({v})"),
        })
    })
}

pub(crate) fn enterprise_from_row(row: &sqlx::any::AnyRow) -> Result<Enterprise, ProvisionError> {
    let service: String = row.try_get("service")?;
    Ok(Enterprise {
        name: row.try_get("name")?,
        tenant_id: row.try_get("tenant_id")?,
        service: Service::parse(&service).map_err(|_| {
            ProvisionError::Store(StoreError::BadRow {
                table: "enterprises",
                problem: format!("unknown service {service:?}"),
            })
        })?,
        acquired_licenses: u64_column(row, "acquired_licenses", "enterprises")?,
        lcm_factor: flag(row, "lcm_factor")?,
        ui_factor: flag(row, "ui_factor")?,
        service_numbers_factor: flag(row, "service_numbers_factor")?,
        emergency_numbers: row
            .try_get::<Option<String>, _>("emergency_numbers")?
            .map(|s| split_numbers(&s)),
    })
}

/// A stored comma-separated number list.
pub(crate) fn split_numbers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Emergency numbers: 1 to 16 of them, each 1-15 digits with an optional `+` (E.164 §6).
pub fn validate_emergency_numbers(numbers: &[String]) -> Result<(), ProvisionError> {
    if numbers.is_empty() || numbers.len() > 16 {
        return Err(invalid(
            "emergency-numbers",
            "must list 1 to 16 numbers (or \"default\" to follow calls.emergency_numbers)",
        ));
    }
    for n in numbers {
        let digits = n.strip_prefix('+').unwrap_or(n);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "emergency-numbers",
                format!("{n:?} is not a number of 1-15 digits (E.164 §6)"),
            ));
        }
    }
    Ok(())
}

fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<bool>, ProvisionError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}

/// How much lives under an enterprise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Children {
    pub direct_routes: u64,
    pub pbxs: u64,
    pub users: u64,
    pub service_numbers: u64,
    pub lcm_templates: u64,
    pub oc_numbers: u64,
}

impl Children {
    /// `"2 PBXs, 40 users"`-style parts for the non-zero counts.
    fn describe(&self) -> Vec<String> {
        [
            (self.direct_routes, "direct routes"),
            (self.pbxs, "PBXs"),
            (self.users, "users"),
            (self.service_numbers, "service numbers"),
            (self.lcm_templates, "LCM templates"),
            (self.oc_numbers, "Operator Connect numbers"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
    }
}

async fn children(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<Children, ProvisionError> {
    const SQL: [&str; 6] = [
        "SELECT COUNT(*) AS n FROM direct_routes WHERE enterprise_id = $1",
        "SELECT COUNT(*) AS n FROM pbxs WHERE enterprise_id = $1",
        "SELECT COUNT(*) AS n FROM users WHERE enterprise_id = $1",
        "SELECT COUNT(*) AS n FROM service_numbers WHERE enterprise_id = $1",
        "SELECT COUNT(*) AS n FROM lcm_templates WHERE enterprise_id = $1",
        "SELECT COUNT(*) AS n FROM oc_numbers WHERE enterprise_id = $1",
    ];
    let mut n = [0u64; 6];
    for (slot, sql) in n.iter_mut().zip(SQL) {
        *slot = u64::try_from(count(tx, sql, id).await?).unwrap_or(0);
    }
    let [
        direct_routes,
        pbxs,
        users,
        service_numbers,
        lcm_templates,
        oc_numbers,
    ] = n;
    Ok(Children {
        direct_routes,
        pbxs,
        users,
        service_numbers,
        lcm_templates,
        oc_numbers,
    })
}

impl Store {
    /// What lives under enterprise `name` (counts only: `enterprise show` must not read
    /// 100,000 users to say how many there are).
    pub async fn enterprise_children(&self, name: &str) -> Result<Children, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, name).await?;
        let c = children(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Rows of `sql` (`$1` = the enterprise's id) for the enterprise named `name`; refused
    /// with `enterprise: no enterprise ...` when there is none.
    pub(crate) async fn enterprise_rows(
        &self,
        name: &str,
        sql: &'static str,
    ) -> Result<Vec<sqlx::any::AnyRow>, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, name).await?;
        let rows = sqlx::query(sql).bind(&id).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Adds a Direct Routing enterprise.
    pub async fn add_enterprise(
        &self,
        name: &str,
        tenant_id: &str,
        acquired_licenses: u64,
    ) -> Result<Enterprise, ProvisionError> {
        self.add_enterprise_as(name, tenant_id, acquired_licenses, Service::DirectRouting)
            .await
    }

    /// Adds an enterprise served by `service`.
    pub async fn add_enterprise_as(
        &self,
        name: &str,
        tenant_id: &str,
        acquired_licenses: u64,
        service: Service,
    ) -> Result<Enterprise, ProvisionError> {
        validate_name("name", name)?;
        let tenant_id = validate_tenant_id(tenant_id)?;
        let acquired = i64::try_from(acquired_licenses)
            .map_err(|_| invalid("acquired-licenses", "too large"))?;
        let mut tx = self.pool.begin().await?;
        for (field, sql, value) in [
            (
                "name",
                "SELECT COUNT(*) AS n FROM enterprises WHERE name = $1",
                name,
            ),
            (
                "tenant-id",
                "SELECT COUNT(*) AS n FROM enterprises WHERE tenant_id = $1",
                tenant_id.as_str(),
            ),
        ] {
            if count(&mut tx, sql, value).await? > 0 {
                return Err(ProvisionError::Conflict {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        sqlx::query(
            "INSERT INTO enterprises (id, name, tenant_id, acquired_licenses, service, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id()?)
        .bind(name)
        .bind(&tenant_id)
        .bind(acquired)
        .bind(service.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Enterprise {
            name: name.to_owned(),
            tenant_id,
            service,
            acquired_licenses,
            lcm_factor: None,
            ui_factor: None,
            service_numbers_factor: None,
            emergency_numbers: None,
        })
    }

    pub async fn list_enterprises(&self) -> Result<Vec<Enterprise>, ProvisionError> {
        let rows =
            sqlx::query("SELECT name, tenant_id, service, acquired_licenses, lcm_factor, ui_factor, service_numbers_factor, emergency_numbers FROM enterprises ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(enterprise_from_row).collect()
    }

    /// Changes acquired licenses, license-factor overrides (`Some(None)` = follow the
    /// global switch again), the emergency numbers (`Some(None)` = follow
    /// `calls.emergency_numbers` again) and/or the service type.
    pub async fn set_enterprise(
        &self,
        name: &str,
        acquired_licenses: Option<u64>,
        factors: &[(LicenseFactor, Option<bool>)],
        emergency_numbers: Option<Option<&[String]>>,
        service: Option<Service>,
    ) -> Result<Enterprise, ProvisionError> {
        if let Some(Some(numbers)) = emergency_numbers {
            validate_emergency_numbers(numbers)?;
        }
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, name).await?;
        if let Some(service) = service {
            change_service(&mut tx, &id, name, service).await?;
        }
        if let Some(numbers) = emergency_numbers {
            sqlx::query("UPDATE enterprises SET emergency_numbers = $1 WHERE id = $2")
                .bind(numbers.map(|n| n.join(",")))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(n) = acquired_licenses {
            let n = i64::try_from(n).map_err(|_| invalid("acquired-licenses", "too large"))?;
            sqlx::query("UPDATE enterprises SET acquired_licenses = $1 WHERE id = $2")
                .bind(n)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        for (factor, value) in factors {
            let sql = match factor {
                LicenseFactor::Lcm => "UPDATE enterprises SET lcm_factor = $1 WHERE id = $2",
                LicenseFactor::Ui => "UPDATE enterprises SET ui_factor = $1 WHERE id = $2",
                LicenseFactor::ServiceNumbers => {
                    "UPDATE enterprises SET service_numbers_factor = $1 WHERE id = $2"
                }
            };
            sqlx::query(sql)
                .bind(value.map(i64::from))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.list_enterprises()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ProvisionError::NotFound {
                field: "enterprise",
                what: "enterprise",
                value: name.to_owned(),
            })
    }

    /// Deletes an enterprise; with children (direct routes, PBXs, users, ...) only when
    /// `cascade`, and then everything under it in the same transaction.
    pub async fn delete_enterprise(&self, name: &str, cascade: bool) -> Result<(), ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, name).await?;
        let children = children(&mut tx, &id).await?.describe();
        if !children.is_empty() && !cascade {
            return Err(ProvisionError::HasChildren {
                what: "enterprise",
                name: name.to_owned(),
                children: children.join(", "),
            });
        }
        // Its Operator Connect numbers go to the released list: billing keeps their history.
        crate::oc_numbers::release_all(&mut tx, &id, name).await?;
        // Children first: foreign keys point upwards.
        for sql in [
            "DELETE FROM users WHERE enterprise_id = $1",
            "DELETE FROM pbxs WHERE enterprise_id = $1",
            "DELETE FROM direct_route_licenses WHERE direct_route_id IN \
             (SELECT id FROM direct_routes WHERE enterprise_id = $1)",
            "DELETE FROM direct_routes WHERE enterprise_id = $1",
            "DELETE FROM service_numbers WHERE enterprise_id = $1",
            "DELETE FROM lcm_templates WHERE enterprise_id = $1",
            "DELETE FROM enterprise_skus WHERE enterprise_id = $1",
            "DELETE FROM enterprises WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a PBX. The seeds' order is Enterprise → Direct Route → PBX: a PBX needs an
    /// enterprise that already has a direct route, or its users could never be reached.
    pub async fn add_pbx(&self, pbx: &Pbx) -> Result<(), ProvisionError> {
        validate_name("name", &pbx.name)?;
        validate_host_port("domain", &pbx.domain)?;
        if let Some(proxy) = &pbx.proxy {
            validate_host_port("proxy", proxy)?;
        }
        if !(60..=86_400).contains(&pbx.expires) {
            return Err(invalid("expires", "must be 60 to 86400 seconds"));
        }
        let codecs = validate_codecs(&pbx.codecs)?;
        if let Some(code) = &pbx.country_code {
            validate_country_code(code)?;
        }
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, &pbx.enterprise).await?;
        // An Operator Connect enterprise's calls use the carrier trunk: no direct route first.
        if service_of(&mut tx, &id).await? == Service::DirectRouting
            && count(
                &mut tx,
                "SELECT COUNT(*) AS n FROM direct_routes WHERE enterprise_id = $1",
                &id,
            )
            .await?
                == 0
        {
            return Err(invalid(
                "enterprise",
                format!(
                    "enterprise {:?} has no direct route yet (Enterprise → Direct Route → PBX)",
                    pbx.enterprise
                ),
            ));
        }
        let taken =
            sqlx::query("SELECT COUNT(*) AS n FROM pbxs WHERE enterprise_id = $1 AND name = $2")
                .bind(&id)
                .bind(&pbx.name)
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("n")?;
        if taken > 0 {
            return Err(ProvisionError::Conflict {
                field: "name",
                value: pbx.name.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO pbxs (id, enterprise_id, name, domain, proxy, transport, expires, codecs, \
             number_format, country_code, diversion, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(new_id()?)
        .bind(&id)
        .bind(&pbx.name)
        .bind(pbx.domain.to_ascii_lowercase())
        .bind(pbx.proxy.as_deref())
        .bind(pbx.transport.as_str())
        .bind(i64::from(pbx.expires))
        .bind(codecs.join(";"))
        .bind(pbx.number_format.as_str())
        .bind(pbx.country_code.as_deref())
        .bind(i64::from(pbx.diversion))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_pbxs(&self, enterprise: &str) -> Result<Vec<Pbx>, ProvisionError> {
        let rows = self
            .enterprise_rows(
                enterprise,
                "SELECT name, domain, proxy, transport, expires, codecs, number_format, country_code, \
                 diversion FROM pbxs WHERE enterprise_id = $1 ORDER BY name",
            )
            .await?;
        rows.iter()
            .map(|row| {
                let transport: String = row.try_get("transport")?;
                let expires = u64_column(row, "expires", "pbxs")?;
                Ok(Pbx {
                    enterprise: enterprise.to_owned(),
                    name: row.try_get("name")?,
                    domain: row.try_get("domain")?,
                    proxy: row.try_get("proxy")?,
                    transport: Transport::parse(&transport).map_err(|_| StoreError::BadRow {
                        table: "pbxs",
                        problem: format!("unknown transport {transport:?}"),
                    })?,
                    expires: u32::try_from(expires).map_err(|_| StoreError::BadRow {
                        table: "pbxs",
                        problem: format!("expires {expires} out of range"),
                    })?,
                    codecs: crate::users::split(&row.try_get::<String, _>("codecs")?),
                    number_format: number_format_column(row)?,
                    country_code: row.try_get("country_code")?,
                    diversion: row.try_get::<i64, _>("diversion")? != 0,
                })
            })
            .collect()
    }
}

/// The `number_format` column of a `pbxs` row.
pub(crate) fn number_format_column(row: &sqlx::any::AnyRow) -> Result<NumberFormat, StoreError> {
    let text: String = row.try_get("number_format")?;
    NumberFormat::parse(&text).map_err(|_| StoreError::BadRow {
        table: "pbxs",
        problem: format!("unknown number_format {text:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "teams.carrier.example";

    #[test]
    fn tenant_fqdn_is_one_label_under_the_base() {
        assert_eq!(
            validate_tenant_fqdn("Cust1.Teams.Carrier.Example.", BASE).unwrap(),
            "cust1.teams.carrier.example"
        );
        assert!(validate_tenant_fqdn("cust_1-a.teams.carrier.example", BASE).is_ok());
        let label63 = "a".repeat(63);
        assert!(validate_tenant_fqdn(&format!("{label63}.{BASE}"), BASE).is_ok());
        for bad in [
            "teams.carrier.example",
            "x.y.teams.carrier.example",
            "cust1.other.example",
            "cust1teams.carrier.example",
            "-cust.teams.carrier.example",
            "cu st.teams.carrier.example",
            &format!("{}.{BASE}", "a".repeat(64)),
        ] {
            let err = validate_tenant_fqdn(bad, BASE).unwrap_err();
            assert_eq!(err.field(), Some("fqdn"), "{bad}");
        }
    }

    #[test]
    fn tenant_id_is_a_guid() {
        assert_eq!(
            validate_tenant_id("0E1B2C3D-1111-2222-3333-444455556666").unwrap(),
            "0e1b2c3d-1111-2222-3333-444455556666"
        );
        for bad in [
            "",
            "acme",
            "0e1b2c3d-1111-2222-3333-44445555666",
            "0e1b2c3d-1111-2222-3333-44445555666g",
        ] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pbx_hosts() {
        for good in [
            "pbx.acme.example",
            "pbx.acme.example:5080",
            "10.0.0.1",
            "[2001:db8::1]:5060",
        ] {
            assert!(validate_host_port("proxy", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "pbx..acme",
            "pbx.acme:0",
            "pbx.acme:99999",
            "pbx acme",
            "[zz]",
        ] {
            assert!(validate_host_port("proxy", bad).is_err(), "{bad}");
        }
    }
}
