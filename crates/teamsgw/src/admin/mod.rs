//! The admin HTTP listener: `/metrics` (Prometheus text format), `/healthz` (the process is
//! alive and serving) and `/readyz` (ready for work; JSON with the reason when not), the REST
//! API under `/api/v1` ([`api`]) and the web console under `/ui/` ([`console`]).
//! Bind it to a management address only: it is not meant for the internet.

pub mod api;
pub mod console;
pub mod metrics;
pub mod serve;
pub mod throttle;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use teamsgw_gateway::client::ClientHandle;

use crate::admin::metrics::Metrics;
use crate::daemon::readiness::Readiness;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub client: ClientHandle,
    pub settings: Arc<arc_swap::ArcSwap<crate::config::Settings>>,
    pub calls: teamsgw_gateway::call_driver::CallsHandle,
}

/// The address a request came from ([`serve`] records it).
pub fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn metrics(State(state): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    // `admin.metrics_token`, when set: a scraper sends it as a bearer token.
    if let Some(expected) = state.settings.load().admin.metrics_token.as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !api::same_secret(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "/metrics: send Authorization: Bearer <admin.metrics_token>\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let (ready, mut body) = state.readiness.report();
    // Informational: an unreachable PBX never makes the daemon unready (it can still work).
    body["registrations"] = serde_json::json!(state.client.summary());
    // Still ready (the restarted shard serves again), but an operator should look.
    let degraded = state.calls.degraded();
    body["status"] = serde_json::json!(match (ready, degraded.is_empty()) {
        (false, _) => "not_ready",
        (true, true) => "ok",
        (true, false) => "degraded",
    });
    body["degraded"] = serde_json::json!(degraded);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "admin request"
    );
    response
}
