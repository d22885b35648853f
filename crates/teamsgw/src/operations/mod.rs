//! The provisioning operations behind both the CLI and the REST API, so a rule holds the same
//! way whichever door a change comes through: license checks (Teams + Teams Phone, the
//! direct route's units from the pool, the license-change cooldown), password sealing, and
//! the store's own rules. Requests are plain serde structs: the API decodes them from JSON,
//! the CLI builds them from its arguments.

pub mod license_problems;
pub mod license_report;
pub mod oc_numbers;
pub mod user_import;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use teamsgw_license::catalogue as license;
use teamsgw_store::{
    DirectRoute, DirectRouteChange, Enterprise, EnterpriseSku, LicenseFactor, NewDirectRoute,
    NewUser, NumberFormat, PasswordKey, PasswordKeyError, Pbx, PbxChange, PoolUnit, ProvisionError,
    Service, Store, Transport, User, UserChange,
};

use crate::config::Settings;

pub fn invalid(field: &'static str, rule: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        rule: rule.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseAdd {
    pub name: String,
    pub tenant_id: String,
    pub acquired_licenses: u64,
    /// `direct-routing` (the default) or `operator-connect`.
    #[serde(default)]
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnterpriseSet {
    pub acquired_licenses: Option<u64>,
    /// `lcm|ui|service-numbers=on|off|default`.
    pub license_factors: Vec<String>,
    /// `911,933,...`, or `default` to follow `calls.emergency_numbers`.
    pub emergency_numbers: Option<String>,
    /// `direct-routing` or `operator-connect`; only while the enterprise has no users.
    pub service: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuAdd {
    pub sku: String,
    pub units: u64,
    pub acquired_on: Option<String>,
}

/// `enterprise show`: the enterprise with what it holds and how much lives under it.
#[derive(Debug, Clone, Serialize)]
pub struct EnterpriseDetail {
    #[serde(flatten)]
    pub enterprise: Enterprise,
    pub skus: Vec<EnterpriseSku>,
    pub direct_routes: Vec<DirectRoute>,
    pub pbxs: u64,
    pub users: u64,
    pub service_numbers: u64,
    pub lcm_templates: u64,
    pub oc_numbers: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectRouteAdd {
    pub enterprise: String,
    pub fqdn: String,
    #[serde(default = "default_sip_tls_port")]
    pub port: u16,
    pub max_sessions: Option<u32>,
    /// New calls per second, both directions (emergency calls exempt).
    pub max_cps: Option<u32>,
    pub ms_user: Option<String>,
}

/// A change to a direct route's limits: a number sets one, 0 removes it, absent keeps it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectRouteSet {
    pub max_sessions: Option<u32>,
    pub max_cps: Option<u32>,
}

fn default_sip_tls_port() -> u16 {
    5061
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbxAdd {
    pub enterprise: String,
    pub name: String,
    pub domain: String,
    pub proxy: Option<String>,
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_expires")]
    pub expires: u32,
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    #[serde(default = "default_number_format")]
    pub number_format: String,
    pub country_code: Option<String>,
    /// Calls from Teams carry their History-Info as Diversion (RFC 7544).
    #[serde(default)]
    pub diversion: bool,
}

fn default_number_format() -> String {
    "e164".to_owned()
}

fn default_codecs() -> Vec<String> {
    teamsgw_store::PBX_CODECS.map(str::to_owned).to_vec()
}

fn default_transport() -> String {
    "udp".to_owned()
}

fn default_expires() -> u32 {
    600
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PbxSet {
    pub domain: Option<String>,
    /// Empty string: no proxy (send to the domain).
    pub proxy: Option<String>,
    pub transport: Option<String>,
    pub expires: Option<u32>,
    pub codecs: Option<Vec<String>>,
    pub number_format: Option<String>,
    /// Empty string: no country code.
    pub country_code: Option<String>,
    pub diversion: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    pub enterprise: String,
    pub pbx: String,
    pub upn: String,
    pub number: String,
    pub extension: String,
    pub auth_user: Option<String>,
    pub password: String,
    #[serde(default)]
    pub skus: Vec<String>,
    #[serde(default)]
    pub ev_enabled: bool,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserSet {
    pub pbx: Option<String>,
    pub number: Option<String>,
    pub extension: Option<String>,
    pub auth_user: Option<String>,
    pub password: Option<String>,
    pub skus: Option<Vec<String>>,
    pub ev_enabled: Option<bool>,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    pub groups: Option<Vec<String>>,
    /// `false`: unregister from the PBX and take no calls; `true` again to resume.
    pub enabled: Option<bool>,
    /// Override the license-change cooldown.
    pub force: bool,
}

/// The operations, bound to a store and the settings they need (base FQDN, password key,
/// license rules).
pub struct Provisioner<'a> {
    pub store: &'a Store,
    pub settings: &'a Settings,
}

impl Provisioner<'_> {
    pub async fn add_enterprise(&self, req: &EnterpriseAdd) -> Result<Enterprise, ProvisionError> {
        let service = req.service.as_deref().map(Service::parse).transpose()?;
        self.store
            .add_enterprise_as(
                &req.name,
                &req.tenant_id,
                req.acquired_licenses,
                service.unwrap_or_default(),
            )
            .await
    }

    pub async fn set_enterprise(
        &self,
        name: &str,
        req: &EnterpriseSet,
    ) -> Result<Enterprise, ProvisionError> {
        let factors = req
            .license_factors
            .iter()
            .map(|s| LicenseFactor::parse_setting(s))
            .collect::<Result<Vec<_>, _>>()?;
        let numbers: Option<Option<Vec<String>>> = req.emergency_numbers.as_deref().map(|s| {
            (s.trim() != "default").then(|| s.split(',').map(|n| n.trim().to_owned()).collect())
        });
        let service = req.service.as_deref().map(Service::parse).transpose()?;
        if req.acquired_licenses.is_none()
            && factors.is_empty()
            && numbers.is_none()
            && service.is_none()
        {
            return Err(invalid(
                "acquired-licenses",
                "nothing to change: give acquired licenses, a license factor, emergency numbers \
                 or the service type",
            ));
        }
        self.store
            .set_enterprise(
                name,
                req.acquired_licenses,
                &factors,
                numbers.as_ref().map(|n| n.as_deref()),
                service,
            )
            .await
    }

    pub async fn add_enterprise_sku(
        &self,
        name: &str,
        req: &SkuAdd,
    ) -> Result<EnterpriseSku, ProvisionError> {
        let part = license::lookup(&req.sku)
            .ok_or_else(|| invalid("sku", format!("unknown SKU part number {:?}", req.sku)))?;
        if let Some(date) = &req.acquired_on
            && license::Date::parse(date).is_none()
        {
            return Err(invalid("acquired-on", "must be a date YYYY-MM-DD"));
        }
        let record = EnterpriseSku {
            part_number: part.part_number.to_owned(),
            units: req.units,
            acquired_on: req.acquired_on.clone(),
        };
        self.store.set_enterprise_sku(name, &record).await?;
        Ok(record)
    }

    pub async fn show_enterprise(&self, name: &str) -> Result<EnterpriseDetail, ProvisionError> {
        let enterprise = self.store.enterprise(name).await?;
        let children = self.store.enterprise_children(name).await?;
        Ok(EnterpriseDetail {
            skus: self.store.list_enterprise_skus(name).await?,
            direct_routes: self.store.list_direct_routes(Some(name)).await?,
            pbxs: children.pbxs,
            users: children.users,
            service_numbers: children.service_numbers,
            lcm_templates: children.lcm_templates,
            oc_numbers: children.oc_numbers,
            enterprise,
        })
    }

    /// Creates the route and assigns its Microsoft user one inclusive unit, or one Teams and
    /// one Teams Phone unit, from the enterprise's pool (licensing.md §2.3).
    pub async fn add_direct_route(
        &self,
        req: &DirectRouteAdd,
    ) -> Result<DirectRoute, ProvisionError> {
        let route = NewDirectRoute {
            enterprise: req.enterprise.clone(),
            fqdn: req.fqdn.clone(),
            base_fqdn: self.settings.teams.base_fqdn.clone(),
            port: req.port,
            max_sessions: req.max_sessions,
            max_cps: req.max_cps,
            ms_user: req.ms_user.clone(),
        };
        self.store.add_direct_route(&route, assign_from_pool).await
    }

    /// Changes a direct route's limits; new calls see them after the next snapshot reload.
    pub async fn set_direct_route(
        &self,
        fqdn: &str,
        req: &DirectRouteSet,
    ) -> Result<DirectRoute, ProvisionError> {
        if req.max_sessions.is_none() && req.max_cps.is_none() {
            return Err(invalid(
                "max-sessions",
                "nothing to change: give max-sessions or max-cps (0 removes a limit)",
            ));
        }
        let limit = |n: Option<u32>| n.map(|n| (n > 0).then_some(n));
        let change = DirectRouteChange {
            max_sessions: limit(req.max_sessions),
            max_cps: limit(req.max_cps),
        };
        self.store.set_direct_route(fqdn, &change).await
    }

    pub async fn add_pbx(&self, req: &PbxAdd) -> Result<Pbx, ProvisionError> {
        let pbx = Pbx {
            enterprise: req.enterprise.clone(),
            name: req.name.clone(),
            domain: req.domain.clone(),
            proxy: req.proxy.clone(),
            transport: Transport::parse(&req.transport)?,
            expires: req.expires,
            codecs: req.codecs.clone(),
            number_format: NumberFormat::parse(&req.number_format)?,
            country_code: req.country_code.clone(),
            diversion: req.diversion,
        };
        self.store.add_pbx(&pbx).await?;
        Ok(pbx)
    }

    pub async fn set_pbx(
        &self,
        enterprise: &str,
        name: &str,
        req: &PbxSet,
    ) -> Result<Pbx, ProvisionError> {
        let change = PbxChange {
            domain: req.domain.clone(),
            proxy: req.proxy.clone(),
            transport: req.transport.as_deref().map(Transport::parse).transpose()?,
            expires: req.expires,
            codecs: req.codecs.clone(),
            number_format: req
                .number_format
                .as_deref()
                .map(NumberFormat::parse)
                .transpose()?,
            country_code: req.country_code.clone(),
            diversion: req.diversion,
        };
        if change.domain.is_none()
            && change.proxy.is_none()
            && change.transport.is_none()
            && change.expires.is_none()
            && change.codecs.is_none()
            && change.number_format.is_none()
            && change.country_code.is_none()
            && change.diversion.is_none()
        {
            return Err(invalid(
                "domain",
                "nothing to change: give domain, proxy, transport, expires, codecs, \
                 number_format, country_code or diversion",
            ));
        }
        self.store.set_pbx(enterprise, name, &change).await
    }

    /// Adds a user changed "by UI" (license factor 3) after checking its SKUs.
    pub async fn add_user(&self, req: &UserAdd) -> Result<(User, Vec<String>), ProvisionError> {
        let dates =
            user_import::sku_dates(&self.store.list_enterprise_skus(&req.enterprise).await?);
        let warnings =
            user_import::check_user_skus(&req.skus, &dates).map_err(|e| invalid("sku", e))?;
        let user = NewUser {
            enterprise: req.enterprise.clone(),
            pbx: req.pbx.clone(),
            upn: req.upn.clone(),
            number: req.number.clone(),
            extension: req.extension.clone(),
            auth_user: req.auth_user.clone(),
            password: req.password.clone(),
            skus: req.skus.clone(),
            ev_enabled: req.ev_enabled,
            voice_routing_policy: req.voice_routing_policy.clone(),
            pstn_gateway: req.pstn_gateway.clone(),
            groups: req.groups.clone(),
            managed_by_ui: true,
        };
        let key = self.password_key()?;
        Ok((self.store.add_user(&user, &key).await?, warnings))
    }

    /// Changes a user. New SKUs are checked like `add_user`; a license change within
    /// `license.change_cooldown_hours` of the previous one is refused unless `force`.
    pub async fn set_user(
        &self,
        upn: &str,
        req: &UserSet,
    ) -> Result<(User, Vec<String>), ProvisionError> {
        let change = UserChange {
            pbx: req.pbx.clone(),
            number: req.number.clone(),
            extension: req.extension.clone(),
            auth_user: req.auth_user.clone(),
            password: req.password.clone(),
            skus: req.skus.clone(),
            ev_enabled: req.ev_enabled,
            voice_routing_policy: req.voice_routing_policy.clone(),
            pstn_gateway: req.pstn_gateway.clone(),
            groups: req.groups.clone(),
            enabled: req.enabled,
        };
        if change.is_empty() {
            return Err(invalid("upn", "nothing to change"));
        }
        let mut warnings = Vec::new();
        if let Some(skus) = &req.skus {
            let current = self.store.user(upn).await?;
            let dates = user_import::sku_dates(
                &self.store.list_enterprise_skus(&current.enterprise).await?,
            );
            warnings = user_import::check_user_skus(skus, &dates).map_err(|e| invalid("sku", e))?;
        }
        let key = req
            .password
            .is_some()
            .then(|| self.password_key())
            .transpose()?;
        let cooldown = self.settings.license.cooldown();
        let user = self
            .store
            .update_user(upn, &change, key.as_ref(), |current| {
                check_cooldown(
                    &current.upn,
                    current.last_license_change,
                    cooldown,
                    req.force,
                )
            })
            .await?;
        Ok((user, warnings))
    }

    /// Loads the password key, creating the key file on first use.
    pub fn password_key(&self) -> Result<PasswordKey, ProvisionError> {
        password_key(&self.settings.database.password_key)
    }
}

/// Refuses a license change within `cooldown` of the last one unless `force` (Microsoft
/// propagates license changes slowly: licensing.md §2.7).
fn check_cooldown(
    holder: &str,
    last_change: Option<i64>,
    cooldown: Duration,
    force: bool,
) -> Result<(), ProvisionError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let since = last_change.map(|t| Duration::from_secs(now.saturating_sub(t.max(0) as u64)));
    match license::cooldown_remaining(since, cooldown, force) {
        None => Ok(()),
        Some(left) => {
            let minutes = left.as_secs().div_ceil(60);
            Err(invalid(
                "sku",
                format!(
                    "the licenses of {holder} changed less than {} h ago; the next change is \
                     allowed in {}h{:02}m (Microsoft propagates license changes slowly); \
                     force it with --force",
                    cooldown.as_secs() / 3600,
                    minutes / 60,
                    minutes % 60
                ),
            ))
        }
    }
}

/// The license choice for a new direct route's Microsoft user, as part numbers.
fn assign_from_pool(pool: &[PoolUnit]) -> Result<Vec<String>, ProvisionError> {
    let entries: Vec<license::PoolEntry> = pool
        .iter()
        .map(|u| license::PoolEntry {
            holding: license::Holding {
                part_number: u.part_number.clone(),
                acquired_on: u.acquired_on.as_deref().and_then(license::Date::parse),
            },
            units: u32::try_from(u.units).unwrap_or(u32::MAX),
            assigned: u32::try_from(u.assigned).unwrap_or(u32::MAX),
        })
        .collect();
    let picked = license::pick_for_direct_route(&entries).map_err(|e| {
        invalid(
            "enterprise",
            format!(
                "cannot license the direct route's Microsoft user: {e}; add units with \
                 `enterprise sku add`"
            ),
        )
    })?;
    Ok(picked.into_iter().map(|h| h.part_number).collect())
}

/// Loads the password key, creating the key file on first use.
pub fn password_key(source: &str) -> Result<PasswordKey, ProvisionError> {
    let key_error = |e: PasswordKeyError| invalid("database.password_key", e.to_string());
    if let Some(path) = source.strip_prefix("file:") {
        let path = std::path::Path::new(path);
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    invalid("database.password_key", format!("{}: {e}", dir.display()))
                })?;
            }
            PasswordKey::generate_file(path).map_err(key_error)?;
            tracing::warn!(
                path = %path.display(),
                "generated the password key; back it up with the database"
            );
            eprintln!(
                "note: generated the password key {}; back it up with the database",
                path.display()
            );
        }
    }
    PasswordKey::load(source).map_err(key_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn ago(secs: u64) -> Option<i64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        i64::try_from(now - secs).ok()
    }

    /// licensing.md §2.7: license changes take up to 24 h to propagate.
    #[test]
    fn cooldown_refuses_a_second_change_with_the_time_left() {
        assert!(check_cooldown("a@b.c", None, DAY, false).is_ok());
        let err = check_cooldown("a@b.c", ago(3600), DAY, false).unwrap_err();
        assert_eq!(err.field(), Some("sku"));
        assert!(err.to_string().contains("23h00m"), "{err}");
        assert!(check_cooldown("a@b.c", ago(3600), DAY, true).is_ok());
        assert!(check_cooldown("a@b.c", ago(25 * 3600), DAY, false).is_ok());
    }
}
