//! Operator Connect numbers (issue 32): the requests the CLI, the API and the console share,
//! and the import of Microsoft's `Get-CsPhoneNumberAssignment` output (CSV or JSON).
//!
//! The import takes only `NumberType` `OperatorConnect` rows; every other row is reported with
//! its line and why, as is every refused one. The store decides each row against the rules
//! in one transaction, so a re-import finds every row unchanged.

use serde::{Deserialize, Serialize};
use teamsgw_store::{
    Activation, Assignment, NewOcNumber, NumberSource, OcNumber, ProvisionError, ReleasedOcNumber,
    Written,
};

use super::user_import::Row;
use super::{Provisioner, invalid, license_report};

/// `oc-number add` / `POST /api/v1/oc-numbers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcNumberAdd {
    pub enterprise: String,
    /// `E164` or `E164-E164`.
    pub number: String,
    /// A PstnAssignmentStatus; `UserAssigned` when `user` is given, else `Unassigned`.
    #[serde(default)]
    pub assignment: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// An ActivationState; `Activated` by default.
    #[serde(default)]
    pub activation: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub calling_profile: Option<String>,
    #[serde(default)]
    pub emergency_address: Option<String>,
    /// `YYYY-MM-DD`; today by default.
    #[serde(default)]
    pub acquired_on: Option<String>,
}

/// `oc-number assign` / `PATCH /api/v1/oc-numbers/{number}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcNumberAssign {
    /// A PstnAssignmentStatus; `UserAssigned` when `user` is given.
    pub assignment: Option<String>,
    pub user: Option<String>,
    pub activation: Option<String>,
}

/// What an import did, row by row (`--json`, the API) and in sum.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    pub rows: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Rows that were not OperatorConnect numbers, or broke a rule.
    pub refused: Vec<RefusedRow>,
    pub dry_run: bool,
}

/// A row an import did not take: its line (its position in a JSON array) and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedRow {
    pub line: usize,
    pub reason: String,
}

/// The assignment a request means: the named status, or UserAssigned for a user.
fn assignment_of(
    assignment: Option<&str>,
    user: Option<&str>,
) -> Result<Assignment, ProvisionError> {
    match assignment {
        Some(a) => Assignment::parse(a),
        None if user.is_some() => Ok(Assignment::UserAssigned),
        None => Ok(Assignment::Unassigned),
    }
}

impl Provisioner<'_> {
    pub async fn add_oc_numbers(
        &self,
        req: &OcNumberAdd,
        source: NumberSource,
    ) -> Result<OcNumber, ProvisionError> {
        let n = NewOcNumber {
            enterprise: req.enterprise.clone(),
            range: req.number.clone(),
            assignment: assignment_of(req.assignment.as_deref(), req.user.as_deref())?,
            user: req.user.clone(),
            activation: req
                .activation
                .as_deref()
                .map_or(Ok(Activation::Activated), Activation::parse)?,
            country: req.country.as_ref().map(|c| c.to_ascii_uppercase()),
            city: req.city.clone(),
            calling_profile: req.calling_profile.clone(),
            emergency_address: req.emergency_address.clone(),
            acquired_on: req.acquired_on.clone(),
            source,
        };
        self.store
            .add_oc_numbers(&n, &license_report::today())
            .await
    }

    pub async fn assign_oc_number(
        &self,
        number: &str,
        req: &OcNumberAssign,
    ) -> Result<OcNumber, ProvisionError> {
        if req.assignment.is_none() && req.user.is_none() && req.activation.is_none() {
            return Err(invalid(
                "assignment",
                "nothing to change: give a user, an assignment or an activation state",
            ));
        }
        let activation = req
            .activation
            .as_deref()
            .map(Activation::parse)
            .transpose()?;
        let current = if req.assignment.is_none() && req.user.is_none() {
            None
        } else {
            Some(assignment_of(
                req.assignment.as_deref(),
                req.user.as_deref(),
            )?)
        };
        self.store
            .assign_oc_number(number, current, req.user.as_deref(), activation)
            .await
    }

    pub async fn unassign_oc_number(&self, number: &str) -> Result<OcNumber, ProvisionError> {
        self.store
            .assign_oc_number(number, Some(Assignment::Unassigned), None, None)
            .await
    }

    pub async fn release_oc_numbers(
        &self,
        number: &str,
    ) -> Result<ReleasedOcNumber, ProvisionError> {
        self.store
            .release_oc_numbers(number, &license_report::today())
            .await
    }

    /// Imports `Get-CsPhoneNumberAssignment` rows into an OC enterprise.
    pub async fn import_oc_numbers(
        &self,
        enterprise: &str,
        rows: &[Row],
        dry_run: bool,
    ) -> Result<ImportSummary, ProvisionError> {
        let mut summary = ImportSummary {
            rows: rows.len(),
            dry_run,
            ..ImportSummary::default()
        };
        let mut lines = Vec::new();
        let mut numbers = Vec::new();
        for row in rows {
            match oc_row(row, enterprise) {
                Ok(n) => {
                    lines.push(row.line);
                    numbers.push(n);
                }
                Err(reason) => summary.refused.push(RefusedRow {
                    line: row.line,
                    reason,
                }),
            }
        }
        let outcomes = self
            .store
            .import_oc_numbers(enterprise, &numbers, &license_report::today(), dry_run)
            .await?;
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                Ok(Written::Added) => summary.added += 1,
                Ok(Written::Updated) => summary.updated += 1,
                Ok(Written::Unchanged) => summary.unchanged += 1,
                Err(e) => summary.refused.push(RefusedRow {
                    line,
                    reason: e.to_string(),
                }),
            }
        }
        summary.refused.sort_by_key(|r| r.line);
        Ok(summary)
    }
}

/// The columns of `Get-CsPhoneNumberAssignment` an export writes (and an import reads).
const EXPORT_COLUMNS: [&str; 7] = [
    "TelephoneNumber",
    "NumberType",
    "ActivationState",
    "PstnAssignmentStatus",
    "AssignedPstnTargetId",
    "IsoCountryCode",
    "City",
];

/// One export record per number (a range is expanded), in [`EXPORT_COLUMNS`] order.
fn export_rows(list: &[OcNumber]) -> Vec<[String; 7]> {
    list.iter()
        .flat_map(|n| {
            n.numbers().into_iter().map(move |number| {
                [
                    number,
                    "OperatorConnect".to_owned(),
                    n.activation.as_str().to_owned(),
                    n.assignment.as_str().to_owned(),
                    n.user.clone().unwrap_or_default(),
                    n.country.clone().unwrap_or_default(),
                    n.city.clone().unwrap_or_default(),
                ]
            })
        })
        .collect()
}

/// An export as JSON (`ConvertTo-Json`'s shape), which `import` reads back unchanged.
pub fn export_json(list: &[OcNumber]) -> Result<String, ProvisionError> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = export_rows(list)
        .into_iter()
        .map(|r| {
            EXPORT_COLUMNS
                .iter()
                .zip(r)
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v)))
                .collect()
        })
        .collect();
    serde_json::to_string_pretty(&rows)
        .map(|mut t| {
            t.push('\n');
            t
        })
        .map_err(|e| invalid("output", e.to_string()))
}

/// An export as CSV (RFC 4180, a header row).
pub fn export_csv(list: &[OcNumber]) -> Result<String, ProvisionError> {
    let io = |e: csv::Error| invalid("output", e.to_string());
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(EXPORT_COLUMNS).map_err(io)?;
    for r in export_rows(list) {
        w.write_record(&r).map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| invalid("output", e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| invalid("output", e.to_string()))
}

fn column<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    row.columns
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// One `Get-CsPhoneNumberAssignment` row as an OC number, or why it is not one.
fn oc_row(row: &Row, enterprise: &str) -> Result<NewOcNumber, String> {
    let number = column(row, "telephonenumber").ok_or("TelephoneNumber is missing")?;
    // Microsoft writes numbers with or without the `+`.
    let number = if number.starts_with('+') {
        number.to_owned()
    } else {
        format!("+{number}")
    };
    match column(row, "numbertype") {
        Some(t) if t.eq_ignore_ascii_case("OperatorConnect") => {}
        Some(t) => {
            return Err(format!(
                "{number}: NumberType {t} is not OperatorConnect (only Operator Connect numbers \
                 are imported)"
            ));
        }
        None => return Err(format!("{number}: NumberType is missing")),
    }
    let assignment = column(row, "pstnassignmentstatus")
        .map_or(Ok(Assignment::Unassigned), Assignment::parse)
        .map_err(|e| format!("{number}: PstnAssignmentStatus: {e}"))?;
    let user = match (assignment, column(row, "assignedpstntargetid")) {
        (Assignment::UserAssigned, Some(target)) if target.contains('@') => Some(target.to_owned()),
        (Assignment::UserAssigned, Some(target)) => {
            return Err(format!(
                "{number}: AssignedPstnTargetId {target:?} is not a UPN (teamsgw knows users by \
                 UPN: export it with the user's UserPrincipalName)"
            ));
        }
        (Assignment::UserAssigned, None) => {
            return Err(format!(
                "{number}: UserAssigned without AssignedPstnTargetId"
            ));
        }
        // Conference bridges and voice applications are named by ids teamsgw has no use for.
        _ => None,
    };
    let activation = column(row, "activationstate")
        .map_or(Ok(Activation::Activated), Activation::parse)
        .map_err(|e| format!("{number}: ActivationState: {e}"))?;
    Ok(NewOcNumber {
        enterprise: enterprise.to_owned(),
        range: number,
        assignment,
        user,
        activation,
        country: column(row, "isocountrycode").map(str::to_ascii_uppercase),
        city: column(row, "city").map(str::to_owned),
        calling_profile: None,
        emergency_address: None,
        acquired_on: None,
        source: NumberSource::Import,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        Row {
            line: 2,
            columns: pairs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        }
    }

    /// `FILE:LINE` names the file's line, in CRLF files too (PowerShell on Windows writes
    /// them; the csv crate alone counted one line short there).
    #[test]
    fn rows_carry_their_file_lines_whatever_the_line_ends() {
        for text in ["A,B\r\n1,2\r\n\r\n3,4\r\n", "A,B\n1,2\n\n3,4\n"] {
            let rows = crate::operations::user_import::parse(text).unwrap();
            let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 4], "{text:?}");
        }
    }

    #[test]
    fn only_operator_connect_rows_with_a_upn_are_taken() {
        let oc = row(&[
            ("TelephoneNumber", "14255550100"),
            ("NumberType", "OperatorConnect"),
            ("ActivationState", "Activated"),
            ("PstnAssignmentStatus", "UserAssigned"),
            ("AssignedPstnTargetId", "ann@fabrikam.com"),
            ("IsoCountryCode", "us"),
            ("City", "Redmond"),
        ]);
        let n = oc_row(&oc, "Fabrikam").unwrap();
        assert_eq!(n.range, "+14255550100");
        assert_eq!(n.assignment, Assignment::UserAssigned);
        assert_eq!(n.user.as_deref(), Some("ann@fabrikam.com"));
        assert_eq!(n.country.as_deref(), Some("US"));
        let dr = row(&[
            ("TelephoneNumber", "+14255550101"),
            ("NumberType", "DirectRouting"),
        ]);
        assert!(
            oc_row(&dr, "F")
                .unwrap_err()
                .contains("not OperatorConnect")
        );
        let guid = row(&[
            ("TelephoneNumber", "+14255550102"),
            ("NumberType", "OperatorConnect"),
            ("PstnAssignmentStatus", "UserAssigned"),
            (
                "AssignedPstnTargetId",
                "5c0a8e0e-0000-4000-8000-000000000001",
            ),
        ]);
        assert!(oc_row(&guid, "F").unwrap_err().contains("not a UPN"));
        let bad = row(&[
            ("TelephoneNumber", "+14255550103"),
            ("NumberType", "OperatorConnect"),
            ("PstnAssignmentStatus", "Borrowed"),
        ]);
        assert!(
            oc_row(&bad, "F")
                .unwrap_err()
                .contains("PstnAssignmentStatus")
        );
    }
}
