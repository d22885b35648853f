//! The OC number inventory's vocabulary: Microsoft's assignment and activation values, the
//! records as written and as stored, and how a stored row reads back.

use sqlx::Row;

use crate::provision::{ProvisionError, invalid};

/// Microsoft's `PstnAssignmentStatus` values an OC number can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Assignment {
    Unassigned,
    UserAssigned,
    ConferenceAssigned,
    VoiceApplicationAssigned,
}

impl Assignment {
    pub const ALL: [Assignment; 4] = [
        Self::Unassigned,
        Self::UserAssigned,
        Self::ConferenceAssigned,
        Self::VoiceApplicationAssigned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "Unassigned",
            Self::UserAssigned => "UserAssigned",
            Self::ConferenceAssigned => "ConferenceAssigned",
            Self::VoiceApplicationAssigned => "VoiceApplicationAssigned",
        }
    }

    /// Microsoft's spelling, any case.
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                invalid(
                    "assignment",
                    format!(
                        "{s:?} is not a PstnAssignmentStatus (Unassigned, UserAssigned, \
                         ConferenceAssigned, VoiceApplicationAssigned)"
                    ),
                )
            })
    }
}

/// Microsoft's `ActivationState` values. Only an `Activated` number counts and carries calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Activated,
    AssignmentPending,
    AssignmentFailed,
    UpdatePending,
    UpdateFailed,
}

impl Activation {
    pub const ALL: [Activation; 5] = [
        Self::Activated,
        Self::AssignmentPending,
        Self::AssignmentFailed,
        Self::UpdatePending,
        Self::UpdateFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activated => "Activated",
            Self::AssignmentPending => "AssignmentPending",
            Self::AssignmentFailed => "AssignmentFailed",
            Self::UpdatePending => "UpdatePending",
            Self::UpdateFailed => "UpdateFailed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                invalid(
                    "activation",
                    format!(
                        "{s:?} is not an ActivationState (Activated, AssignmentPending, \
                         AssignmentFailed, UpdatePending, UpdateFailed)"
                    ),
                )
            })
    }
}

/// Where a number's record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberSource {
    Cli,
    Api,
    Import,
}

impl NumberSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Api => "api",
            Self::Import => "import",
        }
    }
}

/// An OC number or range as written: by `oc-number add`, the API, or an import row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOcNumber {
    pub enterprise: String,
    /// `E164` or `E164-E164`.
    pub range: String,
    pub assignment: Assignment,
    /// The assigned user's UPN: required for UserAssigned, refused otherwise.
    pub user: Option<String>,
    pub activation: Activation,
    pub country: Option<String>,
    pub city: Option<String>,
    pub calling_profile: Option<String>,
    pub emergency_address: Option<String>,
    /// `YYYY-MM-DD`; today when `None`.
    pub acquired_on: Option<String>,
    pub source: NumberSource,
}

/// An OC number or range as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OcNumber {
    pub enterprise: String,
    pub first: String,
    pub last: String,
    pub assignment: Assignment,
    /// The assigned user's UPN (UserAssigned only).
    pub user: Option<String>,
    pub activation: Activation,
    pub country: Option<String>,
    pub city: Option<String>,
    pub calling_profile: Option<String>,
    pub emergency_address: Option<String>,
    pub acquired_on: String,
    pub source: NumberSource,
}

impl OcNumber {
    /// Every number of the range, in order.
    pub fn numbers(&self) -> Vec<String> {
        crate::catalogs::expand(&self.first, &self.last)
    }
}

/// A released number: what it was when released, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleasedOcNumber {
    pub enterprise: String,
    pub first: String,
    pub last: String,
    pub assignment: Assignment,
    pub user: Option<String>,
    pub acquired_on: String,
    pub released_on: String,
}

/// What an import or a write did with one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Written {
    Added,
    Updated,
    Unchanged,
}

pub(super) const COLUMNS: &str = "o.id, o.first_number, o.last_number, o.assignment, u.upn, o.activation, \
     o.country, o.city, o.calling_profile, o.emergency_address, o.acquired_on, o.source";

pub(super) const FROM: &str = "FROM oc_numbers o LEFT JOIN users u ON u.id = o.user_id";

pub(super) fn bad_row(problem: String) -> ProvisionError {
    ProvisionError::Store(crate::StoreError::BadRow {
        table: "oc_numbers",
        problem,
    })
}

pub(super) fn from_row(
    enterprise: &str,
    row: &sqlx::any::AnyRow,
) -> Result<OcNumber, ProvisionError> {
    let text = |c: &str| row.try_get::<String, _>(c);
    let source = match text("source")?.as_str() {
        "cli" => NumberSource::Cli,
        "api" => NumberSource::Api,
        "import" => NumberSource::Import,
        other => return Err(bad_row(format!("unknown source {other:?}"))),
    };
    Ok(OcNumber {
        enterprise: enterprise.to_owned(),
        first: text("first_number")?,
        last: text("last_number")?,
        assignment: Assignment::parse(&text("assignment")?).map_err(|e| bad_row(e.to_string()))?,
        user: row.try_get("upn")?,
        activation: Activation::parse(&text("activation")?).map_err(|e| bad_row(e.to_string()))?,
        country: row.try_get("country")?,
        city: row.try_get("city")?,
        calling_profile: row.try_get("calling_profile")?,
        emergency_address: row.try_get("emergency_address")?,
        acquired_on: text("acquired_on")?,
        source,
    })
}
