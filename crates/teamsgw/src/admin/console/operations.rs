//! Live operations: the Teams proxies as trunk health sees them, every registration with its
//! state (`auth_failed` first, the ones an admin must act on), the calls up now and today's
//! call records. The same state `trunk status`, `user status` and `call list` ask the daemon
//! for.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use teamsgw_store::CdrFilter;

use super::layout::frame;
use super::session::Session;
use super::{ConsoleState, api_failure, html_response};
use crate::admin::api::with_ops;
use crate::operations::license_report;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Part of the enterprise or the UPN (any case).
    q: String,
    /// One registration state, or all.
    state: String,
}

/// States an admin must act on come first.
fn rank(state: &str) -> u8 {
    match state {
        "auth_failed" => 0,
        "backoff" => 1,
        "registered" => 3,
        "disabled" => 4,
        _ => 2,
    }
}

pub async fn page(
    State(c): State<ConsoleState>,
    Extension(s): Extension<Session>,
    Query(p): Query<Params>,
) -> Response {
    let proxies = c.api.client.trunk().await;
    let mut registrations = c.api.client.registrations().await;
    let mut states: Vec<&'static str> = registrations.iter().map(|r| r.state).collect();
    states.sort_unstable();
    states.dedup();
    let q = p.q.to_lowercase();
    registrations.retain(|r| {
        (q.is_empty()
            || r.upn.to_lowercase().contains(&q)
            || r.enterprise.to_lowercase().contains(&q))
            && (p.state.is_empty() || r.state == p.state)
    });
    registrations.sort_by(|a, b| {
        (rank(a.state), &a.enterprise, &a.upn).cmp(&(rank(b.state), &b.enterprise, &b.upn))
    });
    let mut calls = c.api.calls.calls().await;
    calls.sort_by(|a, b| b.seconds.cmp(&a.seconds).then(a.call_id.cmp(&b.call_id)));
    let today = license_report::today();
    let filter = CdrFilter {
        enterprise: None,
        from: Some(today.clone()),
        to: Some(today),
    };
    let cdrs = match with_ops(&c.api, async |ops| ops.store.list_cdrs(&filter).await).await {
        Ok(mut list) => {
            list.reverse();
            list.truncate(50);
            list
        }
        Err(e) => return api_failure(&e, &s),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = html! {
        h2 { "Teams proxies" }
        div.scroll { table #proxies {
            thead { tr { th { "Proxy" } th { "State" } th { "Last OPTIONS result" } th { "Next probe" } } }
            tbody {
                @for px in &proxies {
                    tr { td { (px.proxy) } td { @if px.up { "up" } @else { strong { "down" } } }
                         td { (px.last_result.as_deref().unwrap_or("none yet")) } td.next-probe { (from_now(px.next_probe, now)) } }
                }
                @if proxies.is_empty() { tr { td colspan="4" .muted { "No Teams proxy configured." } } }
            }
        } }
        h2 { "Registrations" }
        form.inline method="get" action="/ui/operations" {
            label { "Enterprise or UPN contains" input type="search" name="q" value=(p.q); }
            label { "State" select name="state" {
                option value="" selected[p.state.is_empty()] { "all" }
                @for st in &states { option value=(st) selected[p.state == *st] { (st) } }
            } }
            button type="submit" { "Show" }
        }
        div.scroll { table #registrations {
            thead { tr { th { "Enterprise" } th { "User" } th { "State" } th { "Last error" } th { "Next attempt" } } }
            tbody {
                @for r in &registrations {
                    tr { td { (r.enterprise) } td { (r.upn) } td { (r.state) }
                         td { (r.last_error.as_deref().unwrap_or("")) }
                         td.next-attempt { @if let Some(n) = r.next_attempt { (from_now(n, now)) } } }
                }
                @if registrations.is_empty() { tr { td colspan="5" .muted { "No registration matches." } } }
            }
        } }
        h2 { "Active calls" }
        div.scroll { table #calls {
            thead { tr { th { "Call-ID" } th { "Direction" } th { "Enterprise" } th { "User" } th { "Caller" } th { "Callee" } th { "State" } th.num { "Seconds" } } }
            tbody {
                @for call in &calls {
                    tr { td { (call.call_id) } td { (call.direction.as_str()) } td { (call.enterprise) } td { (call.user) }
                         td { (call.caller) } td { (call.callee) } td { (call.state) } td.num { (call.seconds) } }
                }
                @if calls.is_empty() { tr { td colspan="8" .muted { "No call is up." } } }
            }
        } }
        h2 { "Today's calls (last 50)" }
        div.scroll { table #cdrs {
            thead { tr { th { "Started" } th { "Direction" } th { "Enterprise" } th { "Caller" } th { "Callee" } th { "Result" } th { "Reason" } } }
            tbody {
                @for r in &cdrs {
                    tr { td { (r.started_at) } td { (r.direction) } td { (r.enterprise) } td { (r.caller) }
                         td { (r.callee) } td { (r.result) } td { (r.reason) } }
                }
                @if cdrs.is_empty() { tr { td colspan="7" .muted { "No call ended today." } } }
            }
        } }
    };
    html_response(StatusCode::OK, frame("Operations", Some(&s), body))
}

/// A time (Unix seconds, as the registration agent and trunk health report it) as an admin
/// reads it: "in 12 s", "now", "3 s ago" (issue 35 §6: the page showed the raw timestamp).
fn from_now(at: u64, now: u64) -> String {
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {} s", at - now),
        std::cmp::Ordering::Equal => "now".to_owned(),
        std::cmp::Ordering::Less => format!("{} s ago", now - at),
    }
}

#[cfg(test)]
mod tests {
    use super::from_now;

    #[test]
    fn times_read_as_seconds_from_now() {
        assert_eq!(from_now(1_796_655_942, 1_796_655_930), "in 12 s");
        assert_eq!(from_now(1_796_655_930, 1_796_655_930), "now");
        assert_eq!(from_now(1_796_655_927, 1_796_655_930), "3 s ago");
    }
}
