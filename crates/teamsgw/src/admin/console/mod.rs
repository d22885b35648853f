//! The web console under `/ui/` on the admin listener: the seeds' license page and the
//! carrier portal's provisioning and live state, for an admin in a browser. Pages are
//! server-rendered HTML (maud) with one stylesheet and no script, so there is no build step
//! and nothing to run in the browser; charts are SVG drawn here.
//!
//! Every number comes from the code the CLI and the API use (`operations::license_report`,
//! the routing snapshot, the registration agent, the call shards): the console has no
//! counting of its own. It counts from the daemon's license snapshot, the same facts the CLI
//! reads from the store, loaded and counted after every routing snapshot reload: a page view
//! never decodes the users' rows, which is what keeps 1,000 enterprises under 200 ms. Every page sends a strict Content-Security-Policy and is reachable
//! only with a session (`session.rs`), except the sign-in page and the stylesheet.

mod chart;
mod layout;
pub mod license;
mod operations;
pub mod overview;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use teamsgw_store::LicenseSnapshot;

use super::api::{ApiError, ApiState, same_secret};
use crate::operations::license_report;
use layout::{frame, notice};
use session::{Session, Sessions};

#[derive(Clone)]
pub struct ConsoleState {
    pub api: ApiState,
    pub sessions: Arc<Sessions>,
}

impl ConsoleState {
    fn idle(&self) -> Duration {
        Duration::from_secs(self.api.settings.load().admin.session_idle_seconds)
    }
}

/// The console's routes, under `/ui` (merged into the admin listener's router).
pub fn router(state: ConsoleState) -> Router {
    let protected = Router::new()
        .route("/ui/", get(overview::page))
        .route("/ui/enterprises/{name}/license", get(license::page))
        .route(
            "/ui/enterprises/{name}/license/factors",
            post(license::apply_factors),
        )
        .route(
            "/ui/enterprises/{name}/license/refresh",
            post(license::refresh),
        )
        .route(
            "/ui/enterprises/{name}/license/audit.csv",
            get(license::audit_csv),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers.csv",
            get(license::oc_numbers::export),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers/add",
            post(license::oc_numbers::add),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers/assign",
            post(license::oc_numbers::assign),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers/unassign",
            post(license::oc_numbers::unassign),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers/release",
            post(license::oc_numbers::release),
        )
        .route(
            "/ui/enterprises/{name}/license/oc-numbers/import",
            post(license::oc_numbers::import),
        )
        .route("/ui/operations", get(operations::page))
        .route("/ui/sign-out", post(sign_out))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/style.css", get(stylesheet))
        .merge(protected)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// CSP without script or framing, no sniffing, no referrer, no caching of admin data.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        layout::STYLESHEET.0,
    )
        .into_response()
}

/// No live session: to the sign-in page (303, so a POST becomes a GET there).
async fn require_session(
    State(c): State<ConsoleState>,
    mut request: Request,
    next: Next,
) -> Response {
    let settings = c.api.settings.load();
    let life = session::Lifetime {
        idle: Duration::from_secs(settings.admin.session_idle_seconds),
        max: Duration::from_secs(settings.admin.session_max_hours * 3600),
        token: settings.admin.token.as_deref().unwrap_or_default(),
    };
    let found = session::cookie_of(request.headers())
        .and_then(|id| c.sessions.find(&id, &life, Instant::now()));
    match found {
        Some(s) => {
            request.extensions_mut().insert(s);
            next.run(request).await
        }
        None => Redirect::to("/ui/sign-in").into_response(),
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.0,
    )
        .into_response()
}

/// A page that says what went wrong, with the rule, under `status`.
fn failure(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        (notice("error", message))
        p { a href="/ui/" { "Back to the enterprises" } }
    };
    html_response(status, frame(title, session, body))
}

/// The 503 page while no license snapshot is loaded (the database was never reachable
/// since the start).
fn not_loaded(session: &Session) -> Response {
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(session),
        "database: the provisioning data is not loaded yet; see /readyz",
    )
}

/// When `licenses` was loaded, as RFC 3339.
fn loaded_at(licenses: &LicenseSnapshot) -> String {
    let ms = licenses
        .loaded_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    license_report::rfc3339(ms)
}

/// `2026-12-03T15:49:56.546Z` as `2026-12-03 15:49:56.546 UTC`.
pub(super) fn readable(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(t) => format!("{} UTC", t.replacen('T', " ", 1)),
        None => rfc3339.to_owned(),
    }
}

/// Where a page's figures come from: the daemon's view of the database, which provisioning
/// through the API, a PostgreSQL notification or SIGHUP reloads (the CLI on SQLite needs the
/// SIGHUP).
fn loaded_note(at: &str) -> Markup {
    html! {
        p.muted #loaded-at {
            "Counted from the provisioning data loaded at " time datetime=(at) { (readable(at)) }
            " (reloaded after every change through the console or the API, a PostgreSQL notification, SIGHUP, and Refresh licenses)."
        }
    }
}

fn api_failure(e: &ApiError, session: &Session) -> Response {
    let (status, message) = e.explain();
    failure(status, Some(session), message)
}

/// The form's CSRF token against its session's (compared in constant time): a mismatch is
/// counted and gets this 403 page, which says what to do.
fn csrf_refusal(c: &ConsoleState, session: &Session, given: &str) -> Option<Response> {
    if same_secret(given.as_bytes(), session.csrf.as_bytes()) {
        return None;
    }
    c.sessions.reject("csrf");
    Some(failure(
        StatusCode::FORBIDDEN,
        Some(session),
        "csrf: the form's CSRF token is missing or not this session's; reload the page and submit it again",
    ))
}

fn sign_in_form(message: Option<Markup>) -> Markup {
    frame(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { (m) }
            form.inline method="post" action="/ui/sign-in" {
                label { "Admin token" input type="password" name="token" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.muted { "The token is the daemon's admin.token (or TEAMSGW_ADMIN__TOKEN)." }
        },
    )
}

async fn sign_in_page(State(c): State<ConsoleState>) -> Response {
    let message = c
        .api
        .settings
        .load()
        .admin
        .token
        .as_deref()
        .is_none_or(str::is_empty)
        .then(|| {
            notice(
                "warning",
                "The console is disabled: admin.token is not set in the configuration.",
            )
        });
    html_response(StatusCode::OK, sign_in_form(message))
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
}

async fn sign_in(
    State(c): State<ConsoleState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<SignIn>,
) -> Response {
    let now = Instant::now();
    let source = super::peer(&extensions);
    if let Some(left) = source.and_then(|s| c.api.throttle.locked(s, now)) {
        let (status, error) = (
            StatusCode::TOO_MANY_REQUESTS,
            super::api::ApiError::locked_out(left)
                .explain()
                .1
                .to_owned(),
        );
        let m = notice("error", &format!("token: {error}"));
        return html_response(status, sign_in_form(Some(m)));
    }
    let settings = c.api.settings.load();
    let expected = settings.admin.token.as_deref().filter(|t| !t.is_empty());
    let Some(expected) = expected else {
        let m = notice(
            "error",
            "admin.token: not set, so nobody can sign in; set it in the configuration",
        );
        return html_response(StatusCode::FORBIDDEN, sign_in_form(Some(m)));
    };
    if !same_secret(form.token.as_bytes(), expected.as_bytes()) {
        c.sessions.reject("sign_in");
        if let Some(s) = source {
            c.api.throttle.failed(s, now);
        }
        tracing::warn!("console sign-in refused: wrong admin token");
        let m = notice("error", "token: that is not the admin token");
        return html_response(StatusCode::UNAUTHORIZED, sign_in_form(Some(m)));
    }
    if let Some(s) = source {
        c.api.throttle.succeeded(s);
    }
    let Some(s) = c.sessions.open(expected, now) else {
        return failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "no randomness for a session id",
        );
    };
    let cookie = session::set_cookie(&s.id, c.idle(), &headers);
    tracing::info!("console sign-in");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/")).into_response()
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = csrf_refusal(&c, &s, &form.csrf) {
        return r;
    }
    c.sessions.close(&s.id);
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/ui/sign-in"),
    )
        .into_response()
}

/// A path segment with everything but unreserved characters percent-encoded (RFC 3986 §2.3).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The license page of `enterprise`.
fn license_href(enterprise: &str) -> String {
    format!("/ui/enterprises/{}/license", segment(enterprise))
}
