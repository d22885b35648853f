//! The daily license audit: one row per enterprise and day holding that day's license report
//! (as JSON the license crate's caller produced; the store does not interpret it). Rows are
//! keyed by enterprise name and survive the enterprise's deletion: billing needs them.

use sqlx::Row;

use crate::Store;
use crate::provision::{ProvisionError, enterprise_id, invalid};

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub report: String,
}

pub(crate) fn validate_day(field: &'static str, day: &str) -> Result<(), ProvisionError> {
    let b = day.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be a date YYYY-MM-DD"))
    }
}

impl Store {
    /// Records (or replaces) the report of `day` for an enterprise.
    pub async fn record_license_audit(
        &self,
        enterprise: &str,
        day: &str,
        report: &str,
    ) -> Result<(), ProvisionError> {
        validate_day("day", day)?;
        let mut tx = self.pool.begin().await?;
        enterprise_id(&mut tx, enterprise).await?;
        sqlx::query("DELETE FROM license_history WHERE enterprise = $1 AND day = $2")
            .bind(enterprise)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO license_history (enterprise, day, report) VALUES ($1, $2, $3)")
            .bind(enterprise)
            .bind(day)
            .bind(report)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit rows of an enterprise (existing, or deleted but audited) from `from` to `to`
    /// inclusive, oldest first.
    pub async fn license_history(
        &self,
        enterprise: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<AuditRow>, ProvisionError> {
        validate_day("from", from)?;
        validate_day("to", to)?;
        if from > to {
            return Err(invalid("to", "must not be before --from"));
        }
        let mut tx = self.pool.begin().await?;
        let known: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM enterprises WHERE name = $1) + \
             (SELECT COUNT(*) FROM license_history WHERE enterprise = $1) AS n",
        )
        .bind(enterprise)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if known == 0 {
            return Err(crate::ProvisionError::NotFound {
                field: "enterprise",
                what: "enterprise (or audit history of one)",
                value: enterprise.to_owned(),
            });
        }
        let rows = sqlx::query(
            "SELECT day, report FROM license_history \
             WHERE enterprise = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(enterprise)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRow {
                    day: row.try_get("day")?,
                    report: row.try_get("report")?,
                })
            })
            .collect()
    }
}
