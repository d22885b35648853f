//! Changing and removing what provisioning created: `show`, `set` and `delete` of enterprises,
//! PBXs, users, service numbers and LCM templates (direct routes live in `direct_routes`).
//!
//! Same contract as the adds: validate first, one transaction, errors name field and rule.

use sqlx::Row;

use crate::provision::{ProvisionError, count, enterprise_id, invalid, now, validate_host_port};
use crate::users::{
    USER_COLUMNS, join, seal_password, user_from_row, validate_groups, validate_sip_user,
};
use crate::{Enterprise, PasswordKey, Store, Transport, User, validate_e164, validate_upn};

/// A change to a PBX: `None` keeps the current value; `proxy: Some("")` removes the proxy.
#[derive(Debug, Clone, Default)]
pub struct PbxChange {
    pub domain: Option<String>,
    pub proxy: Option<String>,
    pub transport: Option<Transport>,
    pub expires: Option<u32>,
    pub codecs: Option<Vec<String>>,
    pub number_format: Option<crate::NumberFormat>,
    /// `Some("")` removes the country code.
    pub country_code: Option<String>,
    pub diversion: Option<bool>,
}

/// A change to a user: `None` keeps the current value; an empty policy or gateway clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
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
    pub enabled: Option<bool>,
}

impl UserChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn not_found(field: &'static str, what: &'static str, value: &str) -> ProvisionError {
    ProvisionError::NotFound {
        field,
        what,
        value: value.to_owned(),
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_uppercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(a) == norm(b)
}

/// The id of PBX `name` of an enterprise; refused naming `field` when it has none.
async fn pbx_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    enterprise_id: &str,
    field: &'static str,
    name: &str,
) -> Result<String, ProvisionError> {
    let row = sqlx::query("SELECT id FROM pbxs WHERE enterprise_id = $1 AND name = $2")
        .bind(enterprise_id)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found(field, "PBX in this enterprise named", name))?;
    Ok(row.try_get("id")?)
}

impl Store {
    pub async fn enterprise(&self, name: &str) -> Result<Enterprise, ProvisionError> {
        self.list_enterprises()
            .await?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| not_found("enterprise", "enterprise", name))
    }

    pub async fn set_pbx(
        &self,
        enterprise: &str,
        name: &str,
        change: &PbxChange,
    ) -> Result<crate::Pbx, ProvisionError> {
        if let Some(domain) = &change.domain {
            validate_host_port("domain", domain)?;
        }
        if let Some(proxy) = change.proxy.as_deref().filter(|p| !p.is_empty()) {
            validate_host_port("proxy", proxy)?;
        }
        if let Some(expires) = change.expires
            && !(60..=86_400).contains(&expires)
        {
            return Err(invalid("expires", "must be 60 to 86400 seconds"));
        }
        let codecs = change
            .codecs
            .as_deref()
            .map(crate::validate_codecs)
            .transpose()?;
        if let Some(code) = change.country_code.as_deref().filter(|c| !c.is_empty()) {
            crate::validate_country_code(code)?;
        }
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let pbx_id = pbx_id(&mut tx, &id, "name", name).await?;
        sqlx::query(
            "UPDATE pbxs SET domain = COALESCE($1, domain), transport = COALESCE($2, transport), \
             expires = COALESCE($3, expires), codecs = COALESCE($4, codecs), \
             number_format = COALESCE($5, number_format), diversion = COALESCE($6, diversion) \
             WHERE id = $7",
        )
        .bind(change.domain.as_ref().map(|d| d.to_ascii_lowercase()))
        .bind(change.transport.map(Transport::as_str))
        .bind(change.expires.map(i64::from))
        .bind(codecs.map(|c| c.join(";")))
        .bind(change.number_format.map(crate::NumberFormat::as_str))
        .bind(change.diversion.map(i64::from))
        .bind(&pbx_id)
        .execute(&mut *tx)
        .await?;
        if let Some(proxy) = &change.proxy {
            sqlx::query("UPDATE pbxs SET proxy = $1 WHERE id = $2")
                .bind((!proxy.is_empty()).then_some(proxy.as_str()))
                .bind(&pbx_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(code) = &change.country_code {
            sqlx::query("UPDATE pbxs SET country_code = $1 WHERE id = $2")
                .bind((!code.is_empty()).then_some(code.as_str()))
                .bind(&pbx_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.list_pbxs(enterprise)
            .await?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| not_found("name", "PBX in this enterprise named", name))
    }

    /// Deletes a PBX; refused while users are on it unless `cascade` (deletes them too).
    pub async fn delete_pbx(
        &self,
        enterprise: &str,
        name: &str,
        cascade: bool,
    ) -> Result<(), ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let pbx_id = pbx_id(&mut tx, &id, "name", name).await?;
        let users = count(
            &mut tx,
            "SELECT COUNT(*) AS n FROM users WHERE pbx_id = $1",
            &pbx_id,
        )
        .await?;
        if users > 0 && !cascade {
            return Err(ProvisionError::HasChildren {
                what: "PBX",
                name: name.to_owned(),
                children: format!("{users} users"),
            });
        }
        for sql in [
            crate::oc_numbers::UNASSIGN_PBX_USERS,
            "DELETE FROM users WHERE pbx_id = $1",
            "DELETE FROM pbxs WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&pbx_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One user by UPN (never its password).
    pub async fn user(&self, upn: &str) -> Result<User, ProvisionError> {
        let upn = validate_upn(upn)?;
        let sql = format!(
            "SELECT e.name AS enterprise, {USER_COLUMNS} FROM users u \
             JOIN pbxs p ON p.id = u.pbx_id JOIN enterprises e ON e.id = u.enterprise_id \
             WHERE u.upn = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&upn)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("upn", "user", &upn))?;
        let enterprise: String = row.try_get("enterprise")?;
        user_from_row(&enterprise, &row)
    }

    /// Changes a user; it becomes managed by UI (license factor 3). When the SKUs change,
    /// `license_change` sees the user as it is (its last license change included) and may
    /// refuse: the cooldown and SKU rules are the license crate's, not the store's.
    pub async fn update_user(
        &self,
        upn: &str,
        change: &UserChange,
        key: Option<&PasswordKey>,
        license_change: impl FnOnce(&User) -> Result<(), ProvisionError>,
    ) -> Result<User, ProvisionError> {
        let current = self.user(upn).await?;
        let number = match &change.number {
            Some(n) => validate_e164(n)?,
            None => current.number.clone(),
        };
        let extension = change
            .extension
            .clone()
            .unwrap_or(current.extension.clone());
        validate_sip_user("extension", &extension)?;
        let auth_user = change
            .auth_user
            .clone()
            .unwrap_or(current.auth_user.clone());
        validate_sip_user("auth-user", &auth_user)?;
        let groups = change.groups.clone().unwrap_or(current.groups.clone());
        validate_groups(&groups)?;
        let sealed = match (&change.password, key) {
            (Some(p), Some(key)) => Some(seal_password(key, p, &current.upn)?),
            (Some(_), None) => return Err(invalid("password", "no password key to seal it with")),
            (None, _) => None,
        };
        let licenses_changed = change
            .skus
            .as_ref()
            .is_some_and(|skus| !same_set(skus, &current.skus));
        if licenses_changed {
            license_change(&current)?;
        }
        let skus = change.skus.clone().unwrap_or(current.skus.clone());
        let optional = |new: &Option<String>, old: &Option<String>| match new {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(v.clone()),
            None => old.clone(),
        };
        let policy = optional(&change.voice_routing_policy, &current.voice_routing_policy);
        let gateway = optional(&change.pstn_gateway, &current.pstn_gateway);
        let ev_enabled = change.ev_enabled.unwrap_or(current.ev_enabled);
        let enabled = change.enabled.unwrap_or(current.enabled);

        let mut tx = self.pool.begin().await?;
        let enterprise = enterprise_id(&mut tx, &current.enterprise).await?;
        let pbx = change.pbx.as_deref().unwrap_or(&current.pbx);
        let pbx_id = pbx_id(&mut tx, &enterprise, "pbx", pbx).await?;
        let taken: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM users WHERE enterprise_id = $1 AND number = $2 AND upn <> $3",
        )
        .bind(&enterprise)
        .bind(&number)
        .bind(&current.upn)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if taken > 0 {
            return Err(ProvisionError::Conflict {
                field: "number",
                value: number,
            });
        }
        let t = now();
        sqlx::query(
            "UPDATE users SET pbx_id = $1, number = $2, extension = $3, auth_user = $4, \
             skus = $5, ev_enabled = $6, voice_routing_policy = $7, pstn_gateway = $8, \
             groups = $9, managed_by_ui = 1, updated_at = $10, enabled = $11 WHERE upn = $12",
        )
        .bind(&pbx_id)
        .bind(&number)
        .bind(&extension)
        .bind(&auth_user)
        .bind(join(&skus))
        .bind(i64::from(ev_enabled))
        .bind(policy.as_deref())
        .bind(gateway.as_deref())
        .bind(join(&groups))
        .bind(t)
        .bind(i64::from(enabled))
        .bind(&current.upn)
        .execute(&mut *tx)
        .await?;
        if let Some(sealed) = &sealed {
            sqlx::query("UPDATE users SET password_sealed = $1 WHERE upn = $2")
                .bind(sealed)
                .bind(&current.upn)
                .execute(&mut *tx)
                .await?;
        }
        if licenses_changed {
            sqlx::query("UPDATE users SET last_license_change = $1 WHERE upn = $2")
                .bind(t)
                .bind(&current.upn)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(&current.upn).await
    }

    /// Deletes the service-number entry that starts at `first` (a number or the first of a range).
    pub async fn delete_service_numbers(
        &self,
        enterprise: &str,
        first: &str,
    ) -> Result<(), ProvisionError> {
        let first = validate_e164(first)?;
        self.delete_one(
            enterprise,
            "DELETE FROM service_numbers WHERE enterprise_id = $1 AND first_number = $2",
            &first,
            not_found("number", "service number or range starting at", &first),
        )
        .await
    }

    pub async fn delete_lcm_template(
        &self,
        enterprise: &str,
        name: &str,
    ) -> Result<(), ProvisionError> {
        self.delete_one(
            enterprise,
            "DELETE FROM lcm_templates WHERE enterprise_id = $1 AND name = $2",
            name,
            not_found("name", "LCM template", name),
        )
        .await
    }

    async fn delete_one(
        &self,
        enterprise: &str,
        sql: &'static str,
        key: &str,
        missing: ProvisionError,
    ) -> Result<(), ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let done = sqlx::query(sql)
            .bind(&id)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(missing);
        }
        tx.commit().await?;
        Ok(())
    }
}
