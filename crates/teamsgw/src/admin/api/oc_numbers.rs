//! `/api/v1/oc-numbers`: the Operator Connect number inventory (issue 32), the same
//! operations as `teamsgw oc-number` through [`crate::operations::oc_numbers`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use teamsgw_store::NumberSource;

use super::openapi::{
    counter, day, e164, enterprise_query, list_of, nullable_string, object, ok, op, path_param,
    query, schema_ref, string, upn,
};
use super::{ApiResult, ApiState, Body, EnterpriseFilter, Params, Segments, change, read};
use crate::operations::oc_numbers::{self, OcNumberAdd, OcNumberAssign};
use crate::operations::user_import;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/oc-numbers", get(list).post(add))
        .route("/oc-numbers/released", get(released))
        .route("/oc-numbers/import", post(import))
        .route("/oc-numbers/export", get(export))
        .route("/oc-numbers/{number}", patch(assign).delete(release))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    enterprise: String,
    #[serde(default)]
    dry_run: bool,
}

async fn list(State(s): State<ApiState>, Params(q): Params<EnterpriseFilter>) -> ApiResult {
    read(&s, async |ops| {
        ops.store.list_oc_numbers(&q.enterprise).await
    })
    .await
}

async fn released(State(s): State<ApiState>, Params(q): Params<EnterpriseFilter>) -> ApiResult {
    read(&s, async |ops| {
        ops.store.list_released_oc_numbers(&q.enterprise).await
    })
    .await
}

async fn add(State(s): State<ApiState>, Body(req): Body<OcNumberAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.add_oc_numbers(&req, NumberSource::Api).await
    })
    .await
}

async fn assign(
    State(s): State<ApiState>,
    Segments(number): Segments<String>,
    Body(req): Body<OcNumberAssign>,
) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.assign_oc_number(&number, &req).await
    })
    .await
}

/// Releasing moves the number to the released list (it is never deleted): the answer is the
/// released record.
async fn release(State(s): State<ApiState>, Segments(number): Segments<String>) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.release_oc_numbers(&number).await
    })
    .await
}

/// The enterprise's numbers in the `Get-CsPhoneNumberAssignment` shape (one object per
/// number), which `import` reads back unchanged.
async fn export(State(s): State<ApiState>, Params(q): Params<EnterpriseFilter>) -> ApiResult {
    let text = super::with_ops(&s, async |ops| {
        oc_numbers::export_json(&ops.store.list_oc_numbers(&q.enterprise).await?)
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}

/// The body is `Get-CsPhoneNumberAssignment` output as JSON (`ConvertTo-Json`): an array of
/// objects. Refused rows are in the answer; the good ones are written unless `dry_run`.
async fn import(
    State(s): State<ApiState>,
    Params(q): Params<ImportQuery>,
    Body(rows): Body<serde_json::Value>,
) -> ApiResult {
    let rows = user_import::parse(&rows.to_string())?;
    if q.dry_run {
        read(&s, async |ops| {
            ops.import_oc_numbers(&q.enterprise, &rows, true).await
        })
        .await
    } else {
        change(&s, StatusCode::OK, async |ops| {
            ops.import_oc_numbers(&q.enterprise, &rows, false).await
        })
        .await
    }
}

/// The OpenAPI schemas of these operations.
pub(super) fn openapi_schemas() -> Value {
    let assignment = json!({"type": "string", "enum": ["Unassigned", "UserAssigned", "ConferenceAssigned", "VoiceApplicationAssigned"]});
    let activation = json!({"type": "string", "enum": ["Activated", "AssignmentPending", "AssignmentFailed", "UpdatePending", "UpdateFailed"]});
    let range = json!({"type": "string", "example": "+14255550100-+14255550199"});
    json!({
        "OcNumber": object(
            json!({
                "enterprise": string(), "first": e164(), "last": e164(),
                "assignment": assignment, "user": nullable_string(), "activation": activation,
                "country": nullable_string(), "city": nullable_string(),
                "calling_profile": nullable_string(), "emergency_address": nullable_string(),
                "acquired_on": day(),
                "source": {"type": "string", "enum": ["cli", "api", "import"]},
            }),
            &["enterprise", "first", "last", "assignment", "user", "activation", "country",
              "city", "calling_profile", "emergency_address", "acquired_on", "source"],
            false,
        ),
        "ReleasedOcNumber": object(
            json!({
                "enterprise": string(), "first": e164(), "last": e164(),
                "assignment": assignment, "user": nullable_string(),
                "acquired_on": day(), "released_on": day(),
            }),
            &["enterprise", "first", "last", "assignment", "user", "acquired_on", "released_on"],
            false,
        ),
        "OcNumberAdd": object(
            json!({
                "enterprise": string(), "number": range, "assignment": assignment,
                "user": upn(), "activation": activation,
                "country": {"type": "string", "pattern": "^[A-Za-z]{2}$", "example": "US"},
                "city": string(), "calling_profile": string(), "emergency_address": string(),
                "acquired_on": day(),
            }),
            &["enterprise", "number"],
            true,
        ),
        "OcNumberAssign": object(
            json!({"assignment": assignment, "user": upn(), "activation": activation}),
            &[],
            true,
        ),
        "PhoneNumberAssignments": {
            "type": "array",
            "description": "Get-CsPhoneNumberAssignment output as JSON: TelephoneNumber, NumberType, ActivationState, PstnAssignmentStatus, AssignedPstnTargetId (the user's UPN), IsoCountryCode, City",
            "items": {"type": "object"},
        },
        "ImportSummary": object(
            json!({
                "rows": counter(), "added": counter(), "updated": counter(),
                "unchanged": counter(), "dry_run": {"type": "boolean"},
                "refused": {"type": "array", "items": object(
                    json!({"line": counter(), "reason": string()}), &["line", "reason"], false,
                )},
            }),
            &["rows", "added", "updated", "unchanged", "refused", "dry_run"],
            false,
        ),
    })
}

/// The OpenAPI paths of these operations.
pub(super) fn openapi_paths() -> Value {
    let fine = |name: &str| ok("200", "OK.", Some(schema_ref(name)));
    json!({
        "/oc-numbers": {
            "get": op("List an Operator Connect enterprise's numbers", vec![enterprise_query(true)], None, ok("200", "OK.", list_of("OcNumber"))),
            "post": op("Add an OC number or range", vec![], Some("OcNumberAdd"), ok("201", "Created.", Some(schema_ref("OcNumber")))),
        },
        "/oc-numbers/released": {
            "get": op("Numbers an enterprise released (kept for billing)", vec![enterprise_query(true)], None, ok("200", "OK.", list_of("ReleasedOcNumber"))),
        },
        "/oc-numbers/export": {
            "get": op("An enterprise's numbers as Get-CsPhoneNumberAssignment JSON (import reads it back)", vec![enterprise_query(true)], None, fine("PhoneNumberAssignments")),
        },
        "/oc-numbers/import": {
            "post": op(
                "Import Get-CsPhoneNumberAssignment output (OperatorConnect rows only)",
                vec![enterprise_query(true), query("dry_run", false, json!({"type": "boolean"}))],
                Some("PhoneNumberAssignments"),
                fine("ImportSummary"),
            ),
        },
        "/oc-numbers/{number}": {
            "parameters": [path_param("number")],
            "patch": op("Assign a number (or change its activation state)", vec![], Some("OcNumberAssign"), fine("OcNumber")),
            "delete": op("Release a number or the range starting at it", vec![], None, fine("ReleasedOcNumber")),
        },
    })
}
