//! Users: a Teams user bridged to an extension on one PBX of its enterprise.
//!
//! The SIP password is sealed with [`PasswordKey`] before it reaches the database and is never
//! read back by listing operations; only the registration agent opens it.

use std::collections::HashMap;

use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{Any, Row, Transaction};

use crate::provision::{ProvisionError, enterprise_id, invalid, new_id, now};
use crate::{PasswordKey, Store};

/// A user as provisioned (`user add`, `user set`, the API, or an import row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub enterprise: String,
    pub pbx: String,
    pub upn: String,
    pub number: String,
    pub extension: String,
    /// Digest user name at the PBX; the extension when `None`.
    pub auth_user: Option<String>,
    pub password: String,
    pub skus: Vec<String>,
    pub ev_enabled: bool,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    pub groups: Vec<String>,
    /// Changed through our CLI/API (license factor 3) rather than only imported.
    pub managed_by_ui: bool,
}

/// A user as listed: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub enterprise: String,
    pub pbx: String,
    pub upn: String,
    pub number: String,
    pub extension: String,
    pub auth_user: String,
    pub skus: Vec<String>,
    pub ev_enabled: bool,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    pub groups: Vec<String>,
    pub managed_by_ui: bool,
    /// Unix seconds of the last change of `skus`, for the license-change cooldown.
    pub last_license_change: Option<i64>,
    /// Disabled users stay provisioned but are unregistered from their PBX.
    pub enabled: bool,
}

/// E.164 (ITU-T E.164 §6): `+`, a country code that does not start with 0, at most 15 digits.
pub fn validate_e164(number: &str) -> Result<String, ProvisionError> {
    let digits = number.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(number.to_owned())
    } else {
        Err(invalid(
            "number",
            format!("{number:?} is not E.164 (+ then 2 to 15 digits, no leading 0)"),
        ))
    }
}

/// A Teams user principal name: `local@domain`.
pub fn validate_upn(upn: &str) -> Result<String, ProvisionError> {
    let ok = upn.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !upn.chars().any(|c| c.is_whitespace() || c.is_control())
            && !domain.contains('@')
    });
    if ok && upn.len() <= 256 {
        Ok(upn.to_ascii_lowercase())
    } else {
        Err(invalid("upn", format!("{upn:?} is not local@domain")))
    }
}

/// Extensions and digest user names become SIP URI user parts: keep them to the unreserved
/// characters every PBX accepts.
pub(crate) fn validate_groups(groups: &[String]) -> Result<(), ProvisionError> {
    if groups.iter().any(|g| g.is_empty() || g.contains(';')) {
        return Err(invalid(
            "group",
            "group names are non-empty and contain no ';'",
        ));
    }
    Ok(())
}

pub(crate) fn seal_password(
    key: &PasswordKey,
    password: &str,
    upn: &str,
) -> Result<String, ProvisionError> {
    if password.is_empty() || password.len() > 256 {
        return Err(invalid("password", "must be 1 to 256 bytes"));
    }
    key.seal(password, &password_context(upn))
        .map_err(|e| invalid("password", e.to_string()))
}

pub(crate) fn validate_sip_user(field: &'static str, value: &str) -> Result<(), ProvisionError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1 to 64 letters, digits or -_.!~*'()+",
        ))
    }
}

pub(crate) fn join(list: &[String]) -> String {
    list.join(";")
}

pub(crate) fn split(text: &str) -> Vec<String> {
    text.split(';')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Context that binds a sealed password to its user (see [`PasswordKey::seal`]).
pub fn password_context(upn: &str) -> String {
    format!("user/{upn}")
}

/// Enterprise and PBX ids by name, so a bulk insert looks each up once.
#[derive(Default)]
struct IdCache {
    enterprises: HashMap<String, String>,
    pbxs: HashMap<(String, String), String>,
}

async fn insert_user(
    tx: &mut Transaction<'static, Any>,
    ids: &mut IdCache,
    user: &NewUser,
    key: &PasswordKey,
) -> Result<User, ProvisionError> {
    let upn = validate_upn(&user.upn)?;
    let number = validate_e164(&user.number)?;
    validate_sip_user("extension", &user.extension)?;
    let auth_user = user
        .auth_user
        .clone()
        .unwrap_or_else(|| user.extension.clone());
    validate_sip_user("auth-user", &auth_user)?;
    validate_groups(&user.groups)?;
    let sealed = seal_password(key, &user.password, &upn)?;
    let mut token = [0u8; 8];
    SystemRandom::new()
        .fill(&mut token)
        .map_err(|_| invalid("id", "the system random generator failed"))?;
    let contact_token: String = token.iter().map(|b| format!("{b:02x}")).collect();

    let enterprise_id = match ids.enterprises.get(&user.enterprise) {
        Some(id) => id.clone(),
        None => {
            let id = enterprise_id(tx, &user.enterprise).await?;
            ids.enterprises.insert(user.enterprise.clone(), id.clone());
            id
        }
    };
    let pbx_key = (enterprise_id.clone(), user.pbx.clone());
    let pbx_id = match ids.pbxs.get(&pbx_key) {
        Some(id) => id.clone(),
        None => {
            let found: Option<String> =
                sqlx::query("SELECT id FROM pbxs WHERE enterprise_id = $1 AND name = $2")
                    .bind(&enterprise_id)
                    .bind(&user.pbx)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|row| row.try_get("id"))
                    .transpose()?;
            let id = found.ok_or_else(|| ProvisionError::NotFound {
                field: "pbx",
                what: "PBX in this enterprise named",
                value: user.pbx.clone(),
            })?;
            ids.pbxs.insert(pbx_key, id.clone());
            id
        }
    };
    let upn_taken: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE upn = $1")
        .bind(&upn)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    if upn_taken > 0 {
        return Err(ProvisionError::Conflict {
            field: "upn",
            value: upn,
        });
    }
    let number_taken: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM users WHERE enterprise_id = $1 AND number = $2")
            .bind(&enterprise_id)
            .bind(&number)
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?;
    if number_taken > 0 {
        return Err(ProvisionError::Conflict {
            field: "number",
            value: number,
        });
    }
    let t = now();
    sqlx::query(
        "INSERT INTO users (id, enterprise_id, pbx_id, upn, number, extension, auth_user, \
         password_sealed, skus, ev_enabled, voice_routing_policy, pstn_gateway, groups, \
         managed_by_ui, last_license_change, contact_token, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(new_id()?)
    .bind(&enterprise_id)
    .bind(&pbx_id)
    .bind(&upn)
    .bind(&number)
    .bind(&user.extension)
    .bind(&auth_user)
    .bind(&sealed)
    .bind(join(&user.skus))
    .bind(i64::from(user.ev_enabled))
    .bind(user.voice_routing_policy.as_deref())
    .bind(user.pstn_gateway.as_deref())
    .bind(join(&user.groups))
    .bind(i64::from(user.managed_by_ui))
    .bind((!user.skus.is_empty()).then_some(t))
    .bind(&contact_token)
    .bind(t)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    Ok(User {
        enterprise: user.enterprise.clone(),
        pbx: user.pbx.clone(),
        upn,
        number,
        extension: user.extension.clone(),
        auth_user,
        skus: user.skus.clone(),
        ev_enabled: user.ev_enabled,
        voice_routing_policy: user.voice_routing_policy.clone(),
        pstn_gateway: user.pstn_gateway.clone(),
        groups: user.groups.clone(),
        managed_by_ui: user.managed_by_ui,
        last_license_change: (!user.skus.is_empty()).then_some(t),
        enabled: true,
    })
}

/// The columns [`user_from_row`] reads, for `FROM users u JOIN pbxs p ON p.id = u.pbx_id`.
pub(crate) const USER_COLUMNS: &str = "p.name AS pbx, u.upn, u.number, u.extension, u.auth_user, \
     u.skus, u.ev_enabled, u.voice_routing_policy, u.pstn_gateway, u.groups, u.managed_by_ui, \
     u.last_license_change, u.enabled";

pub(crate) fn user_from_row(
    enterprise: &str,
    row: &sqlx::any::AnyRow,
) -> Result<User, ProvisionError> {
    Ok(User {
        enterprise: enterprise.to_owned(),
        pbx: row.try_get("pbx")?,
        upn: row.try_get("upn")?,
        number: row.try_get("number")?,
        extension: row.try_get("extension")?,
        auth_user: row.try_get("auth_user")?,
        skus: split(&row.try_get::<String, _>("skus")?),
        ev_enabled: row.try_get::<i64, _>("ev_enabled")? != 0,
        voice_routing_policy: row.try_get("voice_routing_policy")?,
        pstn_gateway: row.try_get("pstn_gateway")?,
        groups: split(&row.try_get::<String, _>("groups")?),
        managed_by_ui: row.try_get::<i64, _>("managed_by_ui")? != 0,
        last_license_change: row.try_get("last_license_change")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    })
}

impl Store {
    /// Adds a user. Rules: the PBX belongs to the user's enterprise, the number is E.164 and
    /// unique in the enterprise, the UPN is unique.
    pub async fn add_user(
        &self,
        user: &NewUser,
        key: &PasswordKey,
    ) -> Result<User, ProvisionError> {
        let mut added = self
            .add_users(std::slice::from_ref(user), key)
            .await
            .map_err(|(_, e)| e)?;
        added.pop().ok_or_else(|| invalid("upn", "no user added"))
    }

    /// Adds users in one transaction: all of them, or none and the index of the first refused
    /// one with the reason.
    pub async fn add_users(
        &self,
        users: &[NewUser],
        key: &PasswordKey,
    ) -> Result<Vec<User>, (usize, ProvisionError)> {
        self.add_users_reporting(users, key, |_| {}).await
    }

    /// [`Store::add_users`] calling `progress` with the number of users inserted so far
    /// (every 1,000 and at the end), for a progress bar.
    pub async fn add_users_reporting(
        &self,
        users: &[NewUser],
        key: &PasswordKey,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<User>, (usize, ProvisionError)> {
        let mut tx = self.pool.begin().await.map_err(|e| (0, e.into()))?;
        let mut ids = IdCache::default();
        let mut added = Vec::with_capacity(users.len());
        for (i, user) in users.iter().enumerate() {
            added.push(
                insert_user(&mut tx, &mut ids, user, key)
                    .await
                    .map_err(|e| (i, e))?,
            );
            if (i + 1) % 1000 == 0 {
                progress(i + 1);
            }
        }
        progress(users.len());
        tx.commit().await.map_err(|e| (users.len(), e.into()))?;
        Ok(added)
    }

    /// Users of an enterprise, ordered by UPN; passwords are never read.
    pub async fn list_users(&self, enterprise: &str) -> Result<Vec<User>, ProvisionError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN pbxs p ON p.id = u.pbx_id \
             WHERE u.enterprise_id = $1 ORDER BY u.upn"
        );
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| user_from_row(enterprise, row))
            .collect()
    }

    /// Deletes a user (a leaf: nothing depends on it).
    pub async fn delete_user(&self, upn: &str) -> Result<(), ProvisionError> {
        let upn = validate_upn(upn)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(crate::oc_numbers::UNASSIGN_USER)
            .bind(&upn)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE upn = $1")
            .bind(&upn)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            return Err(ProvisionError::NotFound {
                field: "upn",
                what: "user",
                value: upn,
            });
        }
        Ok(())
    }

    /// The sealed password of a user, for the registration agent to open.
    pub async fn sealed_password(&self, upn: &str) -> Result<String, ProvisionError> {
        let upn = validate_upn(upn)?;
        let row = sqlx::query("SELECT password_sealed FROM users WHERE upn = $1")
            .bind(&upn)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(ProvisionError::NotFound {
                field: "upn",
                what: "user",
                value: upn,
            })?;
        Ok(row.try_get("password_sealed")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_per_itu_t_e164_section_6() {
        for good in ["+15551234567", "+4930123456", "+12", "+123456789012345"] {
            assert!(validate_e164(good).is_ok(), "{good}");
        }
        for bad in [
            "15551234567",
            "+",
            "+1",
            "+0123456",
            "+1234567890123456",
            "+1555-123",
            "+1 555",
            "tel:+1555",
        ] {
            let err = validate_e164(bad).unwrap_err();
            assert_eq!(err.field(), Some("number"), "{bad}");
        }
    }

    #[test]
    fn upn_and_sip_users() {
        assert_eq!(
            validate_upn("Alice@Acme.Example").unwrap(),
            "alice@acme.example"
        );
        for bad in [
            "alice",
            "@acme.example",
            "alice@acme",
            "al ice@acme.example",
            "a@b@c.example",
        ] {
            assert!(validate_upn(bad).is_err(), "{bad}");
        }
        assert!(validate_sip_user("extension", "1001").is_ok());
        for bad in ["", "10 01", "a@b", "x;y", &"1".repeat(65)] {
            assert!(validate_sip_user("extension", bad).is_err(), "{bad:?}");
        }
    }
}
