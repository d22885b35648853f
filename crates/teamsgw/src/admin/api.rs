//! The REST API under `/api/v1`: the CLI's provisioning operations over HTTP with the same
//! JSON, for portals and automation. Every request needs `Authorization: Bearer <admin.token>`
//! (no token configured: every request is refused); the description is served unauthenticated
//! at `/api/v1/openapi.json`.
//!
//! Errors are `{"error", "field", "rule"}` with 400 (bad input), 401 (token), 404 (unknown
//! thing), 409 (exists / has children) or 503 (database unavailable). A successful change is
//! announced to other daemons (PostgreSQL NOTIFY) and reloads this daemon's routing snapshot
//! before the response is sent, so the next call routes with it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use teamsgw_store::{ProvisionError, Store, StoreError};

use crate::config::Settings;
use crate::daemon::provisioning::Provisioning;
use crate::operations::license_report;
use crate::operations::{
    DirectRouteAdd, DirectRouteSet, EnterpriseAdd, EnterpriseSet, PbxAdd, PbxSet, Provisioner,
    SkuAdd, UserAdd, UserSet,
};
use teamsgw_gateway::call_driver::CallsHandle;
use teamsgw_gateway::client::ClientHandle;

mod oc_numbers;
mod openapi;

#[derive(Clone)]
pub struct ApiState {
    pub provisioning: Arc<Provisioning>,
    pub settings: Arc<ArcSwap<Settings>>,
    /// The registration agent and trunk health (live state, not the database).
    pub client: ClientHandle,
    /// The call shards (live calls).
    pub calls: CallsHandle,
    /// Wrong admin tokens per source, for the console and the API alike.
    pub throttle: Arc<super::throttle::Throttle>,
}

pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/enterprises", get(list_enterprises).post(add_enterprise))
        .route(
            "/enterprises/{name}",
            get(show_enterprise)
                .patch(set_enterprise)
                .delete(delete_enterprise),
        )
        .route("/enterprises/{name}/skus", post(add_sku))
        .route(
            "/direct-routes",
            get(list_direct_routes).post(add_direct_route),
        )
        .route(
            "/direct-routes/{fqdn}",
            patch(set_direct_route).delete(delete_direct_route),
        )
        .route("/pbxs", get(list_pbxs).post(add_pbx))
        .route(
            "/pbxs/{enterprise}/{name}",
            patch(set_pbx).delete(delete_pbx),
        )
        .route("/users", get(list_users).post(add_user))
        .route(
            "/users/{upn}",
            get(show_user).patch(set_user).delete(delete_user),
        )
        .route(
            "/service-numbers",
            get(list_service_numbers).post(add_service_numbers),
        )
        .route(
            "/service-numbers/{enterprise}/{number}",
            axum::routing::delete(delete_service_numbers),
        )
        .route(
            "/lcm-templates",
            get(list_lcm_templates).post(add_lcm_template),
        )
        .route(
            "/lcm-templates/{enterprise}/{name}",
            axum::routing::delete(delete_lcm_template),
        )
        .merge(oc_numbers::routes())
        .route("/license/report", get(license_report))
        .route("/license/history", get(license_history))
        .route("/registrations", get(registrations))
        .route("/trunk", get(trunk))
        .route("/calls", get(calls))
        .route("/cdrs", get(cdrs))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    Router::new()
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .merge(protected)
}

/// An API error: status plus `{error, field, rule}`.
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
    rule: String,
}

impl ApiError {
    /// The status and the message naming the field and the rule (for the console's pages).
    pub fn explain(&self) -> (StatusCode, &str) {
        (self.status, &self.error)
    }

    /// 429: the source sent too many wrong tokens ([`super::throttle`]).
    pub fn locked_out(left: std::time::Duration) -> Self {
        let seconds = left.as_secs() + 1;
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: format!(
                "too many wrong admin tokens from this address: locked out for {seconds} s"
            ),
            field: Some("Authorization".into()),
            rule: format!(
                "{} wrong tokens within {} s lock a source out for {} s, whatever the token",
                super::throttle::FAILURES,
                super::throttle::WINDOW.as_secs(),
                super::throttle::LOCKOUT.as_secs()
            ),
        }
    }

    fn bad_request(field: impl Into<String>, rule: impl Into<String>) -> Self {
        let rule = rule.into();
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            error: format!("{field}: {rule}"),
            field: Some(field),
            rule,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "field": self.field, "rule": self.rule});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(super::throttle::LOCKOUT.as_secs()),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        let status = match &e {
            ProvisionError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ProvisionError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProvisionError::Conflict { .. } | ProvisionError::HasChildren { .. } => {
                StatusCode::CONFLICT
            }
            ProvisionError::Store(StoreError::BadRow { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ProvisionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let rule = match &e {
            ProvisionError::Invalid { rule, .. } => rule.clone(),
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "API request failed");
        }
        Self {
            status,
            error: e.to_string(),
            field: e.field().map(str::to_owned),
            rule,
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// `Json<T>` whose rejections are API errors naming the field serde complained about.
pub struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(body_error(&rejection)),
        }
    }
}

fn body_error(rejection: &JsonRejection) -> ApiError {
    let text = rejection.body_text();
    // serde names the field in backticks: "missing field `name`", "unknown field `x`".
    let field = text
        .split('`')
        .nth(1)
        .filter(|f| !f.is_empty() && f.len() < 64)
        .unwrap_or("body")
        .to_owned();
    let rule = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON (Content-Type: application/json)".to_owned()
        }
        _ => text,
    };
    ApiError::bad_request(field, rule)
}

/// `Query<T>` with API-error rejections.
pub struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request("query", e.body_text()))
    }
}

/// `Path<T>` with API-error rejections.
pub struct Segments<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request("path", e.body_text()))
    }
}

async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let settings = state.settings.load();
    let Some(expected) = settings.admin.token.as_deref().filter(|t| !t.is_empty()) else {
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "the API is disabled: admin.token is not set".into(),
            field: Some("admin.token".into()),
            rule: "set admin.token in the configuration to enable /api/v1".into(),
        }
        .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let now = std::time::Instant::now();
    let source = super::peer(request.extensions());
    if let Some(left) = source.and_then(|s| state.throttle.locked(s, now)) {
        return ApiError::locked_out(left).into_response();
    }
    if !same_secret(given.as_bytes(), expected.as_bytes()) {
        // A request without a token is a client misconfigured, not a guess.
        if let Some(s) = source.filter(|_| !given.is_empty()) {
            state.throttle.failed(s, now);
        }
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "missing or wrong bearer token".into(),
            field: Some("Authorization".into()),
            rule: "send Authorization: Bearer <admin.token>".into(),
        }
        .into_response();
    }
    if let Some(s) = source {
        state.throttle.succeeded(s);
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not reveal how much matched.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// Runs `op` with a connected store and the current settings.
pub(super) async fn with_ops<T>(
    state: &ApiState,
    op: impl AsyncFnOnce(&Provisioner<'_>) -> Result<T, ProvisionError>,
) -> Result<T, ApiError> {
    let store = state.provisioning.store().await.map_err(|e| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: e.clone(),
        field: None,
        rule: e,
    })?;
    let settings = state.settings.load_full();
    let ops = Provisioner {
        store: &store,
        settings: &settings,
    };
    Ok(op(&ops).await?)
}

/// After a committed change: tell other daemons, and swap in a new snapshot here.
pub(super) async fn changed(state: &ApiState, store: Option<&Store>) {
    if let Some(store) = store {
        store.notify_changed().await;
    }
    let _ = state.provisioning.reload().await;
}

async fn change<T: serde::Serialize>(
    state: &ApiState,
    status: StatusCode,
    op: impl AsyncFnOnce(&Provisioner<'_>) -> Result<T, ProvisionError>,
) -> ApiResult {
    let (value, store) =
        with_ops(state, async |ops| Ok((op(ops).await?, ops.store.clone()))).await?;
    changed(state, Some(&store)).await;
    Ok(if status == StatusCode::NO_CONTENT {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (status, Json(value)).into_response()
    })
}

async fn read<T: serde::Serialize>(
    state: &ApiState,
    op: impl AsyncFnOnce(&Provisioner<'_>) -> Result<T, ProvisionError>,
) -> ApiResult {
    Ok(Json(with_ops(state, op).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterpriseFilter {
    enterprise: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionalEnterprise {
    enterprise: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Cascade {
    cascade: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceNumbersAdd {
    enterprise: String,
    number: String,
    tag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LcmTemplateAdd {
    enterprise: String,
    name: String,
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryRange {
    enterprise: String,
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CdrQuery {
    enterprise: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn list_enterprises(State(s): State<ApiState>) -> ApiResult {
    read(&s, async |ops| ops.store.list_enterprises().await).await
}

async fn add_enterprise(State(s): State<ApiState>, Body(req): Body<EnterpriseAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.add_enterprise(&req).await
    })
    .await
}

async fn show_enterprise(State(s): State<ApiState>, Segments(name): Segments<String>) -> ApiResult {
    read(&s, async |ops| ops.show_enterprise(&name).await).await
}

async fn set_enterprise(
    State(s): State<ApiState>,
    Segments(name): Segments<String>,
    Body(req): Body<EnterpriseSet>,
) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.set_enterprise(&name, &req).await
    })
    .await
}

async fn delete_enterprise(
    State(s): State<ApiState>,
    Segments(name): Segments<String>,
    Params(q): Params<Cascade>,
) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_enterprise(&name, q.cascade).await
    })
    .await
}

async fn add_sku(
    State(s): State<ApiState>,
    Segments(name): Segments<String>,
    Body(req): Body<SkuAdd>,
) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.add_enterprise_sku(&name, &req).await
    })
    .await
}

async fn list_direct_routes(
    State(s): State<ApiState>,
    Params(q): Params<OptionalEnterprise>,
) -> ApiResult {
    read(&s, async |ops| {
        ops.store.list_direct_routes(q.enterprise.as_deref()).await
    })
    .await
}

async fn add_direct_route(State(s): State<ApiState>, Body(req): Body<DirectRouteAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.add_direct_route(&req).await
    })
    .await
}

async fn set_direct_route(
    State(s): State<ApiState>,
    Segments(fqdn): Segments<String>,
    Body(req): Body<DirectRouteSet>,
) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.set_direct_route(&fqdn, &req).await
    })
    .await
}

async fn delete_direct_route(
    State(s): State<ApiState>,
    Segments(fqdn): Segments<String>,
    Params(q): Params<Cascade>,
) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_direct_route(&fqdn, q.cascade).await
    })
    .await
}

async fn list_pbxs(State(s): State<ApiState>, Params(q): Params<EnterpriseFilter>) -> ApiResult {
    read(&s, async |ops| ops.store.list_pbxs(&q.enterprise).await).await
}

async fn add_pbx(State(s): State<ApiState>, Body(req): Body<PbxAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| ops.add_pbx(&req).await).await
}

async fn set_pbx(
    State(s): State<ApiState>,
    Segments((enterprise, name)): Segments<(String, String)>,
    Body(req): Body<PbxSet>,
) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.set_pbx(&enterprise, &name, &req).await
    })
    .await
}

async fn delete_pbx(
    State(s): State<ApiState>,
    Segments((enterprise, name)): Segments<(String, String)>,
    Params(q): Params<Cascade>,
) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_pbx(&enterprise, &name, q.cascade).await
    })
    .await
}

async fn list_users(State(s): State<ApiState>, Params(q): Params<EnterpriseFilter>) -> ApiResult {
    read(&s, async |ops| ops.store.list_users(&q.enterprise).await).await
}

async fn add_user(State(s): State<ApiState>, Body(req): Body<UserAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.add_user(&req).await.map(|(user, _)| user)
    })
    .await
}

async fn show_user(State(s): State<ApiState>, Segments(upn): Segments<String>) -> ApiResult {
    read(&s, async |ops| ops.store.user(&upn).await).await
}

async fn set_user(
    State(s): State<ApiState>,
    Segments(upn): Segments<String>,
    Body(req): Body<UserSet>,
) -> ApiResult {
    change(&s, StatusCode::OK, async |ops| {
        ops.set_user(&upn, &req).await.map(|(user, _)| user)
    })
    .await
}

async fn delete_user(State(s): State<ApiState>, Segments(upn): Segments<String>) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_user(&upn).await
    })
    .await
}

async fn list_service_numbers(
    State(s): State<ApiState>,
    Params(q): Params<EnterpriseFilter>,
) -> ApiResult {
    read(&s, async |ops| {
        ops.store.list_service_numbers(&q.enterprise).await
    })
    .await
}

async fn add_service_numbers(
    State(s): State<ApiState>,
    Body(req): Body<ServiceNumbersAdd>,
) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.store
            .add_service_numbers(&req.enterprise, &req.number, &req.tag)
            .await
    })
    .await
}

async fn delete_service_numbers(
    State(s): State<ApiState>,
    Segments((enterprise, number)): Segments<(String, String)>,
) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_service_numbers(&enterprise, &number).await
    })
    .await
}

async fn list_lcm_templates(
    State(s): State<ApiState>,
    Params(q): Params<EnterpriseFilter>,
) -> ApiResult {
    read(&s, async |ops| {
        ops.store.list_lcm_templates(&q.enterprise).await
    })
    .await
}

async fn add_lcm_template(State(s): State<ApiState>, Body(req): Body<LcmTemplateAdd>) -> ApiResult {
    change(&s, StatusCode::CREATED, async |ops| {
        ops.store
            .add_lcm_template(&req.enterprise, &req.name, &req.group)
            .await
    })
    .await
}

async fn delete_lcm_template(
    State(s): State<ApiState>,
    Segments((enterprise, name)): Segments<(String, String)>,
) -> ApiResult {
    change(&s, StatusCode::NO_CONTENT, async |ops| {
        ops.store.delete_lcm_template(&enterprise, &name).await
    })
    .await
}

async fn license_report(
    State(s): State<ApiState>,
    Params(q): Params<OptionalEnterprise>,
) -> ApiResult {
    read(&s, async |ops| {
        license_report::build(ops.store, q.enterprise.as_deref(), &ops.settings.license).await
    })
    .await
}

async fn license_history(State(s): State<ApiState>, Params(q): Params<HistoryRange>) -> ApiResult {
    read(&s, async |ops| {
        license_report::history(ops.store, &q.enterprise, &q.from, &q.to).await
    })
    .await
}

async fn registrations(
    State(s): State<ApiState>,
    Params(q): Params<OptionalEnterprise>,
) -> ApiResult {
    let mut list = s.client.registrations().await;
    if let Some(e) = &q.enterprise {
        if !s
            .provisioning
            .snapshot()
            .is_some_and(|snap| snap.has_enterprise_named(e))
        {
            return Err(ProvisionError::NotFound {
                field: "enterprise",
                what: "enterprise",
                value: e.clone(),
            }
            .into());
        }
        list.retain(|r| &r.enterprise == e);
    }
    list.sort_by(|a, b| a.upn.cmp(&b.upn));
    Ok(Json(list).into_response())
}

async fn trunk(State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.client.trunk().await).into_response())
}

async fn calls(State(s): State<ApiState>) -> ApiResult {
    let mut list = s.calls.calls().await;
    list.sort_by(|a, b| b.seconds.cmp(&a.seconds).then(a.call_id.cmp(&b.call_id)));
    Ok(Json(list).into_response())
}

async fn cdrs(State(s): State<ApiState>, Params(q): Params<CdrQuery>) -> ApiResult {
    let filter = teamsgw_store::CdrFilter {
        enterprise: q.enterprise,
        from: q.from,
        to: q.to,
    };
    read(&s, async |ops| ops.store.list_cdrs(&filter).await).await
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
    }
}
