//! The Operator Connect number inventory (issue 32; licensing.md §1.2 factor 1 for OC): the
//! numbers an operator uploaded to an OC enterprise's tenant, as Microsoft describes them
//! (`Get-CsPhoneNumberAssignment`: `PstnAssignmentStatus`, `ActivationState`).
//!
//! The rules ([`rules`]) are here so the CLI, the API, the console and an import all obey
//! them. A released number moves to a released list with its date and is never deleted:
//! billing needs the history.

mod model;
mod rules;

use sqlx::{Any, Row, Transaction};

pub use model::{
    Activation, Assignment, NewOcNumber, NumberSource, OcNumber, ReleasedOcNumber, Written,
};

use crate::Store;
use crate::audit::validate_day;
use crate::catalogs::parse_range;
use crate::provision::{ProvisionError, enterprise_id, invalid, new_id, now};
use model::{COLUMNS, FROM, bad_row, from_row};
use rules::{
    OC_CANDIDATE, check_country, check_overlap, check_text, check_user, oc_enterprise, window_start,
};

/// A deleted user's OC number becomes Unassigned (as in Teams when the user goes); these run
/// before the users are deleted, with `$1` the UPN, the PBX id or the enterprise id.
pub(crate) const UNASSIGN_USER: &str = "UPDATE oc_numbers SET assignment = 'Unassigned', \
     user_id = NULL WHERE user_id IN (SELECT id FROM users WHERE upn = $1)";
pub(crate) const UNASSIGN_PBX_USERS: &str = "UPDATE oc_numbers SET assignment = 'Unassigned', \
     user_id = NULL WHERE user_id IN (SELECT id FROM users WHERE pbx_id = $1)";
pub(crate) const UNASSIGN_ENTERPRISE_USERS: &str = "UPDATE oc_numbers SET assignment = \
     'Unassigned', user_id = NULL WHERE user_id IN (SELECT id FROM users WHERE enterprise_id = $1)";

/// Assigning a user an OC number makes it the user's number (its LineURI in Teams).
async fn set_line_uri(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    number: &str,
) -> Result<(), ProvisionError> {
    sqlx::query("UPDATE users SET number = $1, updated_at = $2 WHERE id = $3")
        .bind(number)
        .bind(now())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The stored row holding `number` (a single number or inside a range), with its enterprise.
async fn find(
    tx: &mut Transaction<'static, Any>,
    number: &str,
) -> Result<(String, String, OcNumber), ProvisionError> {
    // OC_CANDIDATE's FROM joins users too, for the UPN.
    let sql = format!(
        "SELECT o.enterprise_id, e.name AS enterprise, {COLUMNS} {} ",
        OC_CANDIDATE.replacen(
            "FROM oc_numbers o",
            "FROM oc_numbers o LEFT JOIN users u ON u.id = o.user_id",
            1
        )
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(number)
        .bind(window_start(number))
        .bind(i64::try_from(number.len()).unwrap_or(i64::MAX))
        .fetch_optional(&mut **tx)
        .await?
        .filter(|row| {
            row.try_get::<String, _>("last_number")
                .is_ok_and(|last| last.as_str() >= number)
        })
        .ok_or_else(|| ProvisionError::NotFound {
            field: "number",
            what: "OC number",
            value: number.to_owned(),
        })?;
    let enterprise: String = row.try_get("enterprise")?;
    Ok((
        row.try_get("id")?,
        row.try_get("enterprise_id")?,
        from_row(&enterprise, &row)?,
    ))
}

/// Moves every OC number of an enterprise to the released list (the enterprise is going).
pub(crate) async fn release_all(
    tx: &mut Transaction<'static, Any>,
    enterprise_id: &str,
    enterprise: &str,
) -> Result<(), ProvisionError> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE o.enterprise_id = $1");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(enterprise_id)
        .fetch_all(&mut **tx)
        .await?;
    let today = crate::dates::today();
    for row in &rows {
        let number = from_row(enterprise, row)?;
        let id: String = row.try_get("id")?;
        move_to_released(tx, &id, &number, &today).await?;
    }
    Ok(())
}

async fn move_to_released(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    n: &OcNumber,
    today: &str,
) -> Result<(), ProvisionError> {
    sqlx::query(
        "INSERT INTO oc_numbers_released (enterprise, first_number, last_number, assignment, \
         upn, acquired_on, released_on, released_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&n.enterprise)
    .bind(&n.first)
    .bind(&n.last)
    .bind(n.assignment.as_str())
    .bind(n.user.as_deref())
    .bind(&n.acquired_on)
    .bind(today)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM oc_numbers WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A single number inside a range of the enterprise: unchanged when the import says what the
/// range says, refused otherwise (a range changes as a whole).
async fn inside_range(
    tx: &mut Transaction<'static, Any>,
    enterprise_id: &str,
    number: &str,
    n: &NewOcNumber,
) -> Result<Option<(Written, OcNumber)>, ProvisionError> {
    let Ok((_, owner, range)) = find(tx, number).await else {
        return Ok(None);
    };
    if owner != enterprise_id || range.first == range.last {
        return Ok(None);
    }
    let same = range.assignment == n.assignment
        && n.user.is_none()
        && range.activation == n.activation
        && range.country == n.country
        && range.city == n.city;
    if same {
        Ok(Some((Written::Unchanged, range)))
    } else {
        Err(invalid(
            "number",
            format!(
                "{number} is inside range {}-{}, which changes as a whole",
                range.first, range.last
            ),
        ))
    }
}

/// Writes one number (new, or the same range of the same enterprise again) after every rule;
/// the import and `add` share it.
async fn write(
    tx: &mut Transaction<'static, Any>,
    enterprise_id: &str,
    n: &NewOcNumber,
    today: &str,
) -> Result<(Written, OcNumber), ProvisionError> {
    let (first, last) = parse_range(&n.range)?;
    check_country(n.country.as_deref())?;
    for (field, value) in [
        ("city", n.city.as_deref()),
        ("calling-profile", n.calling_profile.as_deref()),
        ("emergency-address", n.emergency_address.as_deref()),
    ] {
        check_text(field, value)?;
    }
    if let Some(day) = &n.acquired_on {
        validate_day("acquired-on", day)?;
    }
    // An export lists a range number by number: importing it back finds each inside its range.
    if n.source == NumberSource::Import
        && first == last
        && let Some(inside) = inside_range(tx, enterprise_id, &first, n).await?
    {
        return Ok(inside);
    }
    let existing = sqlx::query(
        "SELECT id, enterprise_id, last_number FROM oc_numbers WHERE first_number = $1",
    )
    .bind(&first)
    .fetch_optional(&mut **tx)
    .await?;
    let existing_id = match &existing {
        Some(row) => {
            let owner: String = row.try_get("enterprise_id")?;
            let stored_last: String = row.try_get("last_number")?;
            if owner != enterprise_id || stored_last != last {
                // Another enterprise's number, or another range: the overlap check names it.
                check_overlap(tx, &first, &last).await?;
            }
            Some(row.try_get::<String, _>("id")?)
        }
        None => {
            check_overlap(tx, &first, &last).await?;
            None
        }
    };
    let user_id = match (n.assignment, &n.user) {
        (Assignment::UserAssigned, Some(upn)) => Some(
            check_user(
                tx,
                enterprise_id,
                &first,
                &last,
                upn,
                existing_id.as_deref(),
            )
            .await?,
        ),
        (Assignment::UserAssigned, None) => {
            return Err(invalid("user", "a UserAssigned number names its user"));
        }
        (_, Some(_)) => {
            return Err(invalid("user", "only a UserAssigned number names a user"));
        }
        (_, None) => None,
    };
    let acquired_on = n.acquired_on.clone().unwrap_or_else(|| today.to_owned());
    let written = match &existing_id {
        Some(id) => {
            let sql = format!("SELECT {COLUMNS} {FROM} WHERE o.id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
            let before = from_row(&n.enterprise, &row)?;
            let same = before.assignment == n.assignment
                && before.user.as_deref()
                    == n.user.as_deref().map(str::to_ascii_lowercase).as_deref()
                && before.activation == n.activation
                && before.country == n.country
                && before.city == n.city
                && before.calling_profile == n.calling_profile
                && before.emergency_address == n.emergency_address
                && n.acquired_on
                    .as_ref()
                    .is_none_or(|d| *d == before.acquired_on);
            if same {
                return Ok((Written::Unchanged, before));
            }
            sqlx::query(
                "UPDATE oc_numbers SET assignment = $1, user_id = $2, activation = $3, \
                 country = $4, city = $5, calling_profile = $6, emergency_address = $7, \
                 acquired_on = $8 WHERE id = $9",
            )
            .bind(n.assignment.as_str())
            .bind(user_id.as_deref())
            .bind(n.activation.as_str())
            .bind(n.country.as_deref())
            .bind(n.city.as_deref())
            .bind(n.calling_profile.as_deref())
            .bind(n.emergency_address.as_deref())
            .bind(n.acquired_on.as_deref().unwrap_or(&before.acquired_on))
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Written::Updated
        }
        None => {
            sqlx::query(
                "INSERT INTO oc_numbers (id, enterprise_id, first_number, last_number, \
                 assignment, user_id, activation, country, city, calling_profile, \
                 emergency_address, acquired_on, source, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(new_id()?)
            .bind(enterprise_id)
            .bind(&first)
            .bind(&last)
            .bind(n.assignment.as_str())
            .bind(user_id.as_deref())
            .bind(n.activation.as_str())
            .bind(n.country.as_deref())
            .bind(n.city.as_deref())
            .bind(n.calling_profile.as_deref())
            .bind(n.emergency_address.as_deref())
            .bind(&acquired_on)
            .bind(n.source.as_str())
            .bind(now())
            .execute(&mut **tx)
            .await?;
            Written::Added
        }
    };
    if let Some(user_id) = &user_id {
        set_line_uri(tx, user_id, &first).await?;
    }
    let (_, _, stored) = find(tx, &first).await?;
    Ok((written, stored))
}

/// Every OC number of enterprise `only` (its id) or of all, with its enterprise's name, by
/// first number: for the license snapshot.
pub(crate) async fn oc_numbers_in(
    tx: &mut Transaction<'static, Any>,
    only: Option<&str>,
) -> Result<Vec<OcNumber>, ProvisionError> {
    let sql = format!(
        "SELECT e.name AS enterprise, {COLUMNS} {FROM} JOIN enterprises e \
         ON e.id = o.enterprise_id WHERE $1 IS NULL OR o.enterprise_id = $1 \
         ORDER BY o.first_number"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(only)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| from_row(&row.try_get::<String, _>("enterprise")?, row))
        .collect()
}

/// One import row's outcome: what was written, or why the row was refused.
pub type RowOutcome = Result<Written, ProvisionError>;

impl Store {
    /// Adds an OC number or range to an Operator Connect enterprise.
    pub async fn add_oc_numbers(
        &self,
        n: &NewOcNumber,
        today: &str,
    ) -> Result<OcNumber, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = oc_enterprise(&mut tx, &n.enterprise).await?;
        let (first, last) = parse_range(&n.range)?;
        if sqlx::query("SELECT id FROM oc_numbers WHERE first_number = $1")
            .bind(&first)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            let range = if first == last {
                first
            } else {
                format!("{first}-{last}")
            };
            return Err(ProvisionError::Conflict {
                field: "number",
                value: range,
            });
        }
        let (_, stored) = write(&mut tx, &id, n, today).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Writes import rows in one transaction: each good row is written (or found unchanged),
    /// each refused row gets its reason and writes nothing. A dry run decides the same and
    /// writes nothing at all.
    pub async fn import_oc_numbers(
        &self,
        enterprise: &str,
        rows: &[NewOcNumber],
        today: &str,
        dry_run: bool,
    ) -> Result<Vec<RowOutcome>, ProvisionError> {
        let mut tx = self.pool.begin().await?;
        let id = oc_enterprise(&mut tx, enterprise).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            // Every rule is checked before the row writes, so a refused row leaves nothing.
            out.push(write(&mut tx, &id, row, today).await.map(|(w, _)| w));
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// Sets a number's assignment: UserAssigned with `user` (which becomes the user's number),
    /// or another status without one (`None`: keep it). `activation` changes too when given.
    pub async fn assign_oc_number(
        &self,
        number: &str,
        assignment: Option<Assignment>,
        user: Option<&str>,
        activation: Option<Activation>,
    ) -> Result<OcNumber, ProvisionError> {
        let number = crate::users::validate_e164(number)?;
        let mut tx = self.pool.begin().await?;
        let (row_id, enterprise_id, before) = find(&mut tx, &number).await?;
        let Some(assignment) = assignment else {
            // Only the activation state changes.
            sqlx::query("UPDATE oc_numbers SET activation = $1 WHERE id = $2")
                .bind(activation.unwrap_or(before.activation).as_str())
                .bind(&row_id)
                .execute(&mut *tx)
                .await?;
            let (_, _, after) = find(&mut tx, &number).await?;
            tx.commit().await?;
            return Ok(after);
        };
        if (before.first != number || before.last != number)
            && (assignment != Assignment::Unassigned || user.is_some())
        {
            return Err(invalid(
                "number",
                format!(
                    "{number} is in range {}-{}; only a single number is assigned",
                    before.first, before.last
                ),
            ));
        }
        let user_id = match (assignment, user) {
            (Assignment::UserAssigned, Some(upn)) => Some(
                check_user(
                    &mut tx,
                    &enterprise_id,
                    &number,
                    &number,
                    upn,
                    Some(&row_id),
                )
                .await?,
            ),
            (Assignment::UserAssigned, None) => {
                return Err(invalid("user", "a UserAssigned number names its user"));
            }
            (_, Some(_)) => {
                return Err(invalid("user", "only a UserAssigned number names a user"));
            }
            (_, None) => None,
        };
        sqlx::query(
            "UPDATE oc_numbers SET assignment = $1, user_id = $2, activation = $3 WHERE id = $4",
        )
        .bind(assignment.as_str())
        .bind(user_id.as_deref())
        .bind(activation.unwrap_or(before.activation).as_str())
        .bind(&row_id)
        .execute(&mut *tx)
        .await?;
        if let Some(user_id) = &user_id {
            set_line_uri(&mut tx, user_id, &number).await?;
        }
        let (_, _, after) = find(&mut tx, &number).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Moves a number (or the range it starts) to the released list, dated `today`.
    pub async fn release_oc_numbers(
        &self,
        number: &str,
        today: &str,
    ) -> Result<ReleasedOcNumber, ProvisionError> {
        let number = crate::users::validate_e164(number)?;
        validate_day("today", today)?;
        let mut tx = self.pool.begin().await?;
        let (row_id, _, n) = find(&mut tx, &number).await?;
        if n.first != number {
            return Err(invalid(
                "number",
                format!(
                    "{number} is inside range {}-{}; release the range by its first number",
                    n.first, n.last
                ),
            ));
        }
        move_to_released(&mut tx, &row_id, &n, today).await?;
        tx.commit().await?;
        Ok(ReleasedOcNumber {
            enterprise: n.enterprise,
            first: n.first,
            last: n.last,
            assignment: n.assignment,
            user: n.user,
            acquired_on: n.acquired_on,
            released_on: today.to_owned(),
        })
    }

    /// An enterprise's OC numbers, by first number.
    pub async fn list_oc_numbers(&self, enterprise: &str) -> Result<Vec<OcNumber>, ProvisionError> {
        let sql =
            format!("SELECT {COLUMNS} {FROM} WHERE o.enterprise_id = $1 ORDER BY o.first_number");
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(|r| from_row(enterprise, r)).collect()
    }

    /// Numbers released from an enterprise (which may since have been deleted), oldest first.
    pub async fn list_released_oc_numbers(
        &self,
        enterprise: &str,
    ) -> Result<Vec<ReleasedOcNumber>, ProvisionError> {
        let rows = sqlx::query(
            "SELECT first_number, last_number, assignment, upn, acquired_on, released_on \
             FROM oc_numbers_released WHERE enterprise = $1 ORDER BY released_at, first_number",
        )
        .bind(enterprise)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReleasedOcNumber {
                    enterprise: enterprise.to_owned(),
                    first: row.try_get("first_number")?,
                    last: row.try_get("last_number")?,
                    assignment: Assignment::parse(&row.try_get::<String, _>("assignment")?)
                        .map_err(|e| bad_row(e.to_string()))?,
                    user: row.try_get("upn")?,
                    acquired_on: row.try_get("acquired_on")?,
                    released_on: row.try_get("released_on")?,
                })
            })
            .collect()
    }
}
