//! The inventory's rules, each refusal naming the field and the rule: an OC enterprise, free
//! text and dates in shape, no overlap with any OC or service number of any enterprise, and a
//! UserAssigned number that is one number of a user holding no other.

use sqlx::{Any, Row, Transaction};

use crate::catalogs::MAX_RANGE;
use crate::provision::{ProvisionError, Service, enterprise_id, invalid, service_of};
use crate::users::validate_upn;

/// A free-text attribute: at most 200 characters, no control characters.
pub(super) fn check_text(field: &'static str, value: Option<&str>) -> Result<(), ProvisionError> {
    match value {
        Some(v) if v.len() > 200 || v.chars().any(char::is_control) => Err(invalid(
            field,
            "must be at most 200 characters without control characters",
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_country(country: Option<&str>) -> Result<(), ProvisionError> {
    match country {
        Some(c) if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) => Err(invalid(
            "country",
            format!("{c:?} is not an ISO 3166-1 alpha-2 country code"),
        )),
        _ => Ok(()),
    }
}

/// The id of an OC enterprise; a Direct Routing one is refused.
pub(super) async fn oc_enterprise(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<String, ProvisionError> {
    let id = enterprise_id(tx, name).await?;
    if service_of(tx, &id).await? != Service::OperatorConnect {
        return Err(invalid(
            "enterprise",
            format!(
                "{name:?} is a Direct Routing enterprise; OC numbers belong to Operator Connect \
                 enterprises (enterprise set --service operator-connect while it has no users)"
            ),
        ));
    }
    Ok(id)
}

/// The lowest first number of a range that can reach `first`: ranges hold at most
/// [`MAX_RANGE`] numbers. Same-length E.164 strings order like their numbers.
pub(super) fn window_start(first: &str) -> String {
    let digits = first.strip_prefix('+').unwrap_or(first);
    match digits.parse::<u64>() {
        Ok(n) => format!(
            "+{:0width$}",
            n.saturating_sub(MAX_RANGE - 1),
            width = digits.len()
        ),
        Err(_) => first.to_owned(),
    }
}

/// The OC range of any enterprise that could hold numbers from `first` to `last`: OC ranges
/// never overlap, so it is the one starting last at or before `last` (one index probe, not a
/// scan: an import of 50,000 numbers must not be quadratic). Its own caller checks its end.
pub(super) const OC_CANDIDATE: &str = "FROM oc_numbers o JOIN enterprises e ON e.id = o.enterprise_id \
     WHERE o.first_number <= $1 AND o.first_number >= $2 AND LENGTH(o.first_number) = $3 \
     ORDER BY o.first_number DESC LIMIT 1";

/// Refuses a range that overlaps an OC number or a service number of any enterprise.
pub(super) async fn check_overlap(
    tx: &mut Transaction<'static, Any>,
    first: &str,
    last: &str,
) -> Result<(), ProvisionError> {
    let len = i64::try_from(first.len()).unwrap_or(i64::MAX);
    let lo = window_start(first);
    let oc = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT o.first_number, o.last_number, e.name {OC_CANDIDATE}"
    )))
    .bind(last)
    .bind(&lo)
    .bind(len)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| (row, "an OC number"));
    // Service ranges of different enterprises may overlap each other: every one in the
    // window is a candidate (they are few).
    let service = || {
        sqlx::query(
            "SELECT s.first_number, s.last_number, e.name FROM service_numbers s \
             JOIN enterprises e ON e.id = s.enterprise_id WHERE s.first_number <= $1 \
             AND s.first_number >= $2 AND LENGTH(s.first_number) = $3 AND s.last_number >= $4 \
             LIMIT 1",
        )
        .bind(last)
        .bind(&lo)
        .bind(len)
        .bind(first)
    };
    let found = match oc {
        Some((row, what)) if row.try_get::<String, _>(1)?.as_str() >= first => Some((row, what)),
        _ => service()
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| (row, "a service number")),
    };
    if let Some((row, what)) = found {
        let (a, b): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let owner: String = row.try_get(2)?;
        let range = if a == b { a } else { format!("{a}-{b}") };
        return Err(ProvisionError::Conflict {
            field: "number",
            value: format!("{first}-{last} overlaps {what} of enterprise {owner:?}: {range}"),
        });
    }
    Ok(())
}

/// The checks of a user assignment: one number, a user of the enterprise holding no other OC
/// number, and no other user of the enterprise with that number. Returns the user's id.
pub(super) async fn check_user(
    tx: &mut Transaction<'static, Any>,
    enterprise_id: &str,
    first: &str,
    last: &str,
    upn: &str,
    row_id: Option<&str>,
) -> Result<String, ProvisionError> {
    if first != last {
        return Err(invalid(
            "number",
            "a UserAssigned number is one number, not a range",
        ));
    }
    let upn = validate_upn(upn).map_err(|_| invalid("user", format!("{upn:?} is not a UPN")))?;
    let user: Option<String> =
        sqlx::query("SELECT id FROM users WHERE upn = $1 AND enterprise_id = $2")
            .bind(&upn)
            .bind(enterprise_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?;
    let user = user.ok_or_else(|| {
        invalid(
            "user",
            format!("no user {upn:?} in this enterprise (a UserAssigned number names one)"),
        )
    })?;
    let held: Option<String> =
        sqlx::query("SELECT first_number FROM oc_numbers WHERE user_id = $1 AND id <> $2")
            .bind(&user)
            .bind(row_id.unwrap_or(""))
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("first_number"))
            .transpose()?;
    if let Some(held) = held {
        return Err(invalid(
            "user",
            format!("{upn:?} already holds OC number {held}; a user holds at most one"),
        ));
    }
    let other: Option<String> =
        sqlx::query("SELECT upn FROM users WHERE enterprise_id = $1 AND number = $2 AND id <> $3")
            .bind(enterprise_id)
            .bind(first)
            .bind(&user)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("upn"))
            .transpose()?;
    if let Some(other) = other {
        return Err(invalid(
            "number",
            format!("{first} is the number of user {other:?}; numbers are unique in an enterprise"),
        ));
    }
    Ok(user)
}
