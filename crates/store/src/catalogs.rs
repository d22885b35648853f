//! Service numbers and LifeCycle-Management templates: the two per-enterprise lists the
//! license counters read besides users (licensing.md §1.2, factors 2 and 4).

use sqlx::Row;

use crate::Store;
use crate::provision::{ProvisionError, enterprise_id, invalid, new_id, u64_column};
use crate::users::validate_e164;

/// A service number or a contiguous range of them (`first` = `last` for a single number).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceNumbers {
    pub enterprise: String,
    pub first: String,
    pub last: String,
    /// Dial-plan tag; numbers whose tag matches the direct-route criteria are not counted.
    pub tag: String,
}

/// Ranges larger than this are almost certainly a typo in one end.
pub const MAX_RANGE: u64 = 10_000;

impl ServiceNumbers {
    /// Every number in the range, in order.
    pub fn numbers(&self) -> Vec<String> {
        expand(&self.first, &self.last)
    }
}

/// Every number from `first` to `last` (same-length E.164), in order.
pub(crate) fn expand(first: &str, last: &str) -> Vec<String> {
    let (Some(a), Some(b)) = (digits(first), digits(last)) else {
        return vec![first.to_owned()];
    };
    let width = first.len() - 1;
    (a..=b).map(|n| format!("+{n:0width$}")).collect()
}

fn digits(e164: &str) -> Option<u64> {
    e164.strip_prefix('+')?.parse().ok()
}

/// `E164` or `E164-E164`: both ends E.164 of the same length, ascending, at most
/// [`MAX_RANGE`] numbers.
pub fn parse_range(range: &str) -> Result<(String, String), ProvisionError> {
    let (first, last) = range.split_once('-').unwrap_or((range, range));
    let first = validate_e164(first.trim())?;
    let last = validate_e164(last.trim())?;
    let (a, b) = match (digits(&first), digits(&last)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(invalid("number", "not E.164")),
    };
    if first.len() != last.len() || b < a {
        return Err(invalid(
            "number",
            "a range is FIRST-LAST with both ends the same length and FIRST <= LAST",
        ));
    }
    if b - a + 1 > MAX_RANGE {
        return Err(invalid(
            "number",
            format!("a range holds at most {MAX_RANGE} numbers"),
        ));
    }
    Ok((first, last))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LcmTemplate {
    pub enterprise: String,
    pub name: String,
    pub group: String,
}

/// Units of a Microsoft SKU the enterprise bought, and when (which decides whether a Business
/// suite includes Teams; licensing.md §3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnterpriseSku {
    pub part_number: String,
    pub units: u64,
    /// `YYYY-MM-DD`.
    pub acquired_on: Option<String>,
}

impl Store {
    /// Records the units of a SKU an enterprise holds; adding a SKU it already holds replaces
    /// its units and date. The caller validates the part number against the catalogue.
    pub async fn set_enterprise_sku(
        &self,
        enterprise: &str,
        sku: &EnterpriseSku,
    ) -> Result<(), ProvisionError> {
        let units = i64::try_from(sku.units).map_err(|_| invalid("units", "too large"))?;
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        sqlx::query("DELETE FROM enterprise_skus WHERE enterprise_id = $1 AND part_number = $2")
            .bind(&id)
            .bind(&sku.part_number)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO enterprise_skus (enterprise_id, part_number, units, acquired_on) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&sku.part_number)
        .bind(units)
        .bind(sku.acquired_on.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_enterprise_skus(
        &self,
        enterprise: &str,
    ) -> Result<Vec<EnterpriseSku>, ProvisionError> {
        let rows = self
            .enterprise_rows(
                enterprise,
                "SELECT part_number, units, acquired_on FROM enterprise_skus \
                 WHERE enterprise_id = $1 ORDER BY part_number",
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EnterpriseSku {
                    part_number: row.try_get("part_number")?,
                    units: u64_column(row, "units", "enterprise_skus")?,
                    acquired_on: row.try_get("acquired_on")?,
                })
            })
            .collect()
    }

    /// Adds a service number or range; refused when it overlaps one the enterprise has.
    pub async fn add_service_numbers(
        &self,
        enterprise: &str,
        range: &str,
        tag: &str,
    ) -> Result<ServiceNumbers, ProvisionError> {
        let (first, last) = parse_range(range)?;
        if tag.trim().is_empty() || tag.len() > 200 {
            return Err(invalid("tag", "must be 1 to 200 characters"));
        }
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        // Same-length E.164 strings order like their numbers, so overlap is a string compare.
        let overlapping = sqlx::query(
            "SELECT first_number, last_number FROM service_numbers WHERE enterprise_id = $1 \
             AND LENGTH(first_number) = $2 AND first_number <= $3 AND last_number >= $4",
        )
        .bind(&id)
        .bind(i64::try_from(first.len()).unwrap_or(i64::MAX))
        .bind(&last)
        .bind(&first)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = overlapping {
            let a: String = row.try_get("first_number")?;
            let b: String = row.try_get("last_number")?;
            return Err(ProvisionError::Conflict {
                field: "number",
                value: format!("{range} overlaps {a}-{b}"),
            });
        }
        // Nor may it overlap an Operator Connect number (issue 32: one number, one use).
        let oc = sqlx::query(
            "SELECT o.first_number, o.last_number, e.name FROM oc_numbers o \
             JOIN enterprises e ON e.id = o.enterprise_id WHERE LENGTH(o.first_number) = $1 \
             AND o.first_number <= $2 AND o.last_number >= $3",
        )
        .bind(i64::try_from(first.len()).unwrap_or(i64::MAX))
        .bind(&last)
        .bind(&first)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = oc {
            let (a, b, owner): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            return Err(ProvisionError::Conflict {
                field: "number",
                value: format!("{range} overlaps an OC number of enterprise {owner:?}: {a}-{b}"),
            });
        }
        sqlx::query(
            "INSERT INTO service_numbers (id, enterprise_id, first_number, last_number, tag) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(new_id()?)
        .bind(&id)
        .bind(&first)
        .bind(&last)
        .bind(tag)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ServiceNumbers {
            enterprise: enterprise.to_owned(),
            first,
            last,
            tag: tag.to_owned(),
        })
    }

    pub async fn list_service_numbers(
        &self,
        enterprise: &str,
    ) -> Result<Vec<ServiceNumbers>, ProvisionError> {
        let rows = self
            .enterprise_rows(
                enterprise,
                "SELECT first_number, last_number, tag FROM service_numbers \
                 WHERE enterprise_id = $1 ORDER BY first_number",
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ServiceNumbers {
                    enterprise: enterprise.to_owned(),
                    first: row.try_get("first_number")?,
                    last: row.try_get("last_number")?,
                    tag: row.try_get("tag")?,
                })
            })
            .collect()
    }

    /// Adds an LCM template: members of `group` count under factor 2.
    pub async fn add_lcm_template(
        &self,
        enterprise: &str,
        name: &str,
        group: &str,
    ) -> Result<LcmTemplate, ProvisionError> {
        for (field, value) in [("name", name), ("group", group)] {
            if value.trim().is_empty() || value.len() > 200 || value.contains(';') {
                return Err(invalid(field, "must be 1 to 200 characters without ';'"));
            }
        }
        let mut tx = self.pool.begin().await?;
        let id = enterprise_id(&mut tx, enterprise).await?;
        let taken: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM lcm_templates WHERE enterprise_id = $1 AND name = $2",
        )
        .bind(&id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if taken > 0 {
            return Err(ProvisionError::Conflict {
                field: "name",
                value: name.to_owned(),
            });
        }
        sqlx::query(
            "INSERT INTO lcm_templates (id, enterprise_id, name, group_name) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_id()?)
        .bind(&id)
        .bind(name)
        .bind(group)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LcmTemplate {
            enterprise: enterprise.to_owned(),
            name: name.to_owned(),
            group: group.to_owned(),
        })
    }

    pub async fn list_lcm_templates(
        &self,
        enterprise: &str,
    ) -> Result<Vec<LcmTemplate>, ProvisionError> {
        let rows = self
            .enterprise_rows(
                enterprise,
                "SELECT name, group_name FROM lcm_templates WHERE enterprise_id = $1 ORDER BY name",
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LcmTemplate {
                    enterprise: enterprise.to_owned(),
                    name: row.try_get("name")?,
                    group: row.try_get("group_name")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("+15550100").unwrap(),
            ("+15550100".into(), "+15550100".into())
        );
        let (first, last) = parse_range("+15550100-+15550109").unwrap();
        let range = ServiceNumbers {
            enterprise: "E".into(),
            first,
            last,
            tag: "FAX".into(),
        };
        let numbers = range.numbers();
        assert_eq!(numbers.len(), 10);
        assert_eq!(numbers[9], "+15550109");
        for bad in [
            "+15550109-+15550100",
            "+15550100-+155501000",
            "+1555-+1555999999",
            "15550100",
            "+15550100-",
        ] {
            let err = parse_range(bad).unwrap_err();
            assert_eq!(err.field(), Some("number"), "{bad}");
        }
    }
}
