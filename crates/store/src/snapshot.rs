//! The routing snapshot: an immutable index of the provisioning data the gateway routes by.
//!
//! It is rebuilt from the database as a whole and swapped in atomically by the caller, so a
//! lookup never sees half of a reload and a failed reload leaves the previous snapshot serving.

use std::collections::HashMap as StdHashMap;

/// The maps are built from the database and only read afterwards: network input never inserts,
/// so a fast seeded hash (already linked by sqlx) is safe from hash flooding.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
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
    pub max_cps: Option<u32>,
    /// The enterprise's own emergency numbers (`None`: `calls.emergency_numbers`).
    pub emergency_numbers: Option<Vec<String>>,
}

/// An Operator Connect enterprise: its calls use the carrier trunk, and its users are found
/// by their activated UserAssigned OC numbers (issue 32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConnectEntry {
    pub enterprise_id: String,
    pub enterprise_name: String,
    /// The customer's Microsoft tenant id, which Teams' `X-MS-TenantId` must match.
    pub tenant_id: String,
    pub emergency_numbers: Option<Vec<String>>,
}

/// A PBX as the registration agent and the call layer need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxEntry {
    pub id: String,
    pub enterprise_id: String,
    pub name: String,
    pub domain: String,
    pub proxy: Option<String>,
    pub transport: String,
    pub expires: u32,
    /// Codec preference towards this PBX (`PCMA`, `PCMU`), most preferred first.
    pub codecs: Vec<String>,
    pub number_format: crate::NumberFormat,
    pub country_code: Option<String>,
    pub diversion: bool,
}

/// A user as the gateway routes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub upn: String,
    pub enterprise_id: String,
    pub pbx_id: String,
    pub number: String,
    pub extension: String,
    pub auth_user: String,
    pub contact_token: String,
    /// Still sealed ([`crate::PasswordKey::open`] with [`crate::password_context`] of the UPN):
    /// only the registration agent opens it, when it needs to answer a challenge.
    pub password_sealed: String,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct RoutingSnapshot {
    loaded_at: SystemTime,
    /// Tenant FQDN (lower case) → direct route.
    by_fqdn: HashMap<String, DirectRouteEntry>,
    pbxs: HashMap<String, PbxEntry>,
    users: Vec<UserEntry>,
    /// Enterprise id → name (for metric labels and status output).
    enterprises: HashMap<String, String>,
    /// E.164 → index into `users` of the first user holding it. Numbers are unique per
    /// enterprise only, so a number held in several enterprises has the others in
    /// `by_number_shared` (enterprise id → E.164 → index); a lookup is one probe in the usual
    /// case and allocates nothing.
    by_number: HashMap<String, usize>,
    by_number_shared: HashMap<String, HashMap<String, usize>>,
    /// The user part of our Contact at the PBX → index into `users`.
    by_contact_token: HashMap<String, usize>,
    /// Operator Connect enterprises by id.
    operator_connect: HashMap<String, OperatorConnectEntry>,
    /// Activated UserAssigned OC number → its enterprise's id.
    oc_numbers: HashMap<String, String>,
}

impl RoutingSnapshot {
    pub fn empty() -> Self {
        Self {
            loaded_at: SystemTime::now(),
            by_fqdn: HashMap::default(),
            pbxs: HashMap::default(),
            users: Vec::new(),
            enterprises: HashMap::default(),
            by_number: HashMap::default(),
            by_number_shared: HashMap::default(),
            by_contact_token: HashMap::default(),
            operator_connect: HashMap::default(),
            oc_numbers: HashMap::default(),
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
        match self.by_fqdn.get(fqdn) {
            Some(entry) => Some(entry),
            // Only allocate for the rare mixed-case request.
            None if fqdn.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.by_fqdn.get(&fqdn.to_ascii_lowercase())
            }
            None => None,
        }
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The user holding `number` (E.164) in an enterprise.
    pub fn user_by_number(&self, enterprise_id: &str, number: &str) -> Option<&UserEntry> {
        let first = self
            .by_number
            .get(number)
            .and_then(|&i| self.users.get(i))?;
        if first.enterprise_id == enterprise_id {
            return Some(first);
        }
        self.by_number_shared
            .get(enterprise_id)
            .and_then(|numbers| numbers.get(number))
            .and_then(|&i| self.users.get(i))
    }

    /// The user an incoming PBX request is for, by the user part of the Request-URI.
    pub fn user_by_contact_token(&self, token: &str) -> Option<&UserEntry> {
        self.by_contact_token
            .get(token)
            .and_then(|&i| self.users.get(i))
    }

    pub fn pbx(&self, id: &str) -> Option<&PbxEntry> {
        self.pbxs.get(id)
    }

    /// Every direct route, in no particular order (the call layer's routing view).
    pub fn all_direct_routes(&self) -> impl Iterator<Item = &DirectRouteEntry> {
        self.by_fqdn.values()
    }

    /// Every PBX, in no particular order.
    pub fn all_pbxs(&self) -> impl Iterator<Item = &PbxEntry> {
        self.pbxs.values()
    }

    /// Every user, in no particular order (the registration agent walks them on a reload).
    pub fn all_users(&self) -> &[UserEntry] {
        &self.users
    }

    /// Every Operator Connect enterprise, in no particular order.
    pub fn all_operator_connect(&self) -> impl Iterator<Item = &OperatorConnectEntry> {
        self.operator_connect.values()
    }

    /// Every activated UserAssigned OC number with its enterprise's id: the numbers Teams
    /// calls from on the carrier trunk.
    pub fn oc_user_numbers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.oc_numbers
            .iter()
            .map(|(n, e)| (n.as_str(), e.as_str()))
    }

    pub fn has_enterprise_named(&self, name: &str) -> bool {
        self.enterprises.values().any(|n| n == name)
    }

    pub fn enterprise_name(&self, id: &str) -> Option<&str> {
        self.enterprises.get(id).map(String::as_str)
    }
}

pub(crate) async fn load(pool: &AnyPool) -> Result<RoutingSnapshot, StoreError> {
    let rows = sqlx::query(
        "SELECT e.id AS enterprise_id, e.name AS enterprise_name, e.emergency_numbers, d.fqdn, \
         d.port, d.max_sessions, d.max_cps \
         FROM direct_routes d JOIN enterprises e ON e.id = d.enterprise_id",
    )
    .fetch_all(pool)
    .await?;
    let mut by_fqdn = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
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
        let max_cps: Option<i64> = row.try_get("max_cps")?;
        let max_cps = max_cps
            .map(u32::try_from)
            .transpose()
            .map_err(|_| bad(format!("direct route {fqdn}: max_cps out of range")))?;
        let entry = DirectRouteEntry {
            enterprise_id: row.try_get("enterprise_id")?,
            enterprise_name: row.try_get("enterprise_name")?,
            fqdn: fqdn.clone(),
            port,
            max_sessions,
            max_cps,
            emergency_numbers: row
                .try_get::<Option<String>, _>("emergency_numbers")?
                .map(|s| crate::provision::split_numbers(&s)),
        };
        by_fqdn.insert(fqdn.to_ascii_lowercase(), entry);
    }
    let pbxs = load_pbxs(pool).await?;
    let rows = sqlx::query(
        "SELECT upn, enterprise_id, pbx_id, number, extension, auth_user, contact_token, \
         password_sealed, enabled FROM users",
    )
    .fetch_all(pool)
    .await?;
    let mut users = Vec::with_capacity(rows.len());
    let mut by_number: HashMap<String, usize> =
        HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    let mut by_number_shared: HashMap<String, HashMap<String, usize>> = HashMap::default();
    let mut by_contact_token = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    for (i, row) in rows.iter().enumerate() {
        let user = UserEntry {
            upn: row.try_get("upn")?,
            enterprise_id: row.try_get("enterprise_id")?,
            pbx_id: row.try_get("pbx_id")?,
            number: row.try_get("number")?,
            extension: row.try_get("extension")?,
            auth_user: row.try_get("auth_user")?,
            contact_token: row.try_get("contact_token")?,
            password_sealed: row.try_get("password_sealed")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
        };
        if by_number.contains_key(&user.number) {
            by_number_shared
                .entry(user.enterprise_id.clone())
                .or_default()
                .insert(user.number.clone(), i);
        } else {
            by_number.insert(user.number.clone(), i);
        }
        by_contact_token.insert(user.contact_token.clone(), i);
        users.push(user);
    }
    let mut enterprises = HashMap::default();
    let mut operator_connect = HashMap::default();
    for row in
        sqlx::query("SELECT id, name, tenant_id, service, emergency_numbers FROM enterprises")
            .fetch_all(pool)
            .await?
    {
        let id: String = row.try_get("id")?;
        let name: String = row.try_get("name")?;
        if row.try_get::<String, _>("service")? == crate::Service::OperatorConnect.as_str() {
            let entry = OperatorConnectEntry {
                enterprise_id: id.clone(),
                enterprise_name: name.clone(),
                tenant_id: row.try_get("tenant_id")?,
                emergency_numbers: row
                    .try_get::<Option<String>, _>("emergency_numbers")?
                    .map(|s| crate::provision::split_numbers(&s)),
            };
            operator_connect.insert(id.clone(), entry);
        }
        enterprises.insert(id, name);
    }
    let mut oc_numbers = HashMap::default();
    for row in sqlx::query(
        "SELECT first_number, enterprise_id FROM oc_numbers \
         WHERE assignment = 'UserAssigned' AND activation = 'Activated'",
    )
    .fetch_all(pool)
    .await?
    {
        oc_numbers.insert(row.try_get("first_number")?, row.try_get("enterprise_id")?);
    }
    Ok(RoutingSnapshot {
        loaded_at: SystemTime::now(),
        by_fqdn,
        pbxs,
        users,
        enterprises,
        by_number,
        by_number_shared,
        by_contact_token,
        operator_connect,
        oc_numbers,
    })
}

async fn load_pbxs(pool: &AnyPool) -> Result<HashMap<String, PbxEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, enterprise_id, name, domain, proxy, transport, expires, codecs, number_format, \
         country_code, diversion FROM pbxs",
    )
    .fetch_all(pool)
    .await?;
    let mut pbxs = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    for row in rows {
        let id: String = row.try_get("id")?;
        let expires: i64 = row.try_get("expires")?;
        let expires = u32::try_from(expires).map_err(|_| StoreError::BadRow {
            table: "pbxs",
            problem: format!("PBX {id}: expires {expires} out of range"),
        })?;
        let entry = PbxEntry {
            id: id.clone(),
            enterprise_id: row.try_get("enterprise_id")?,
            name: row.try_get("name")?,
            domain: row.try_get("domain")?,
            proxy: row.try_get("proxy")?,
            transport: row.try_get("transport")?,
            expires,
            codecs: crate::users::split(&row.try_get::<String, _>("codecs")?),
            number_format: crate::provision::number_format_column(&row)?,
            country_code: row.try_get("country_code")?,
            diversion: row.try_get::<i64, _>("diversion")? != 0,
        };
        pbxs.insert(id, entry);
    }
    Ok(pbxs)
}
