//! License problems of an enterprise, for an admin to act on (licensing.md §2.3, §2.7, §3.5;
//! seeds): users whose SKUs lack Teams or Teams Phone (a Business suite bought on or after
//! 2024-04-01 carries no Teams), a Teams Phone variant other than Standard, a direct route
//! whose Microsoft user lacks its units, and users inside the license-change cooldown with
//! the time left. The rules are the license crate's, applied as `user add` applies them;
//! provisioning refuses most of these, so what shows here came about later (an enterprise's
//! purchase date corrected, a SKU removed) or is a warning.

use std::time::Duration;

use serde::Serialize;
use teamsgw_license::catalogue::{self as license, Holder, LicenseError};
use teamsgw_store::EnterpriseFacts;

use super::user_import::{holdings, sku_dates};
use crate::config::LicenseSettings;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A user's UPN or a direct route's FQDN.
    pub subject: String,
    /// `no_teams`, `business_suite_without_teams`, `no_teams_phone`, `unknown_sku`,
    /// `direct_route_sku`, `teams_phone_variant`, `direct_route_unlicensed`,
    /// `license_change_cooldown`.
    pub kind: &'static str,
    pub detail: String,
}

fn kind_of(e: &LicenseError) -> &'static str {
    match e {
        LicenseError::MissingTeams(why) if !why.is_empty() => "business_suite_without_teams",
        LicenseError::MissingTeams(_) => "no_teams",
        LicenseError::MissingPhone => "no_teams_phone",
        LicenseError::UnknownSku(_) => "unknown_sku",
        LicenseError::DirectRouteOnly(_) => "direct_route_sku",
    }
}

/// Time left of the cooldown after a change at `last` (Unix seconds), if any.
fn cooldown_left(last: Option<i64>, cooldown: Duration, now: u64) -> Option<Duration> {
    let since = last.map(|t| Duration::from_secs(now.saturating_sub(t.max(0).unsigned_abs())));
    license::cooldown_remaining(since, cooldown, false)
}

fn hours_minutes(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    format!("{}h{:02}m", minutes / 60, minutes % 60)
}

/// Every problem of an enterprise: users first (by UPN), then direct routes.
pub fn problems(f: &EnterpriseFacts, settings: &LicenseSettings) -> Vec<Problem> {
    let dates = sku_dates(&f.skus);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cooldown = settings.cooldown();
    let mut out = Vec::new();
    for u in &f.users {
        let problem = |kind, detail: String| Problem {
            subject: u.upn.clone(),
            kind,
            detail,
        };
        match license::check(&holdings(&u.skus, &dates), Holder::User) {
            Err(e) => out.push(problem(kind_of(&e), e.to_string())),
            Ok(warnings) => {
                out.extend(
                    warnings
                        .into_iter()
                        .map(|w| problem("teams_phone_variant", w)),
                );
            }
        }
        if let Some(left) = cooldown_left(u.last_license_change, cooldown, now) {
            let detail = format!(
                "licenses changed within the last {} h; the next change is allowed in {}",
                cooldown.as_secs() / 3600,
                hours_minutes(left)
            );
            out.push(problem("license_change_cooldown", detail));
        }
    }
    for d in &f.direct_routes {
        let problem = |detail: String| Problem {
            subject: d.fqdn.clone(),
            kind: "direct_route_unlicensed",
            detail,
        };
        if d.ms_user.is_none() {
            out.push(problem("no Microsoft user anchors its domain".into()));
        } else if let Err(e) = license::check(&holdings(&d.licenses, &dates), Holder::DirectRoute) {
            let who = d.ms_user.as_deref().unwrap_or_default();
            out.push(problem(format!(
                "its Microsoft user {who} lacks units: {e}"
            )));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cooldown_shows_the_time_left_and_ends() {
        let hour = Duration::from_secs(3600);
        let left = cooldown_left(Some(1_000), 24 * hour, 1_000 + 3600 + 59).unwrap();
        assert_eq!(
            hours_minutes(left),
            "23h00m",
            "1 h 0 min 59 s after the change"
        );
        assert!(cooldown_left(Some(1_000), 24 * hour, 1_000 + 24 * 3600).is_none());
        assert!(cooldown_left(None, 24 * hour, 5).is_none());
    }

    #[test]
    fn a_business_suite_without_teams_is_told_apart_from_no_teams_at_all() {
        let unbundled = LicenseError::MissingTeams("; Business suites bought on or after".into());
        assert_eq!(kind_of(&unbundled), "business_suite_without_teams");
        assert_eq!(
            kind_of(&LicenseError::MissingTeams(String::new())),
            "no_teams"
        );
        assert_eq!(kind_of(&LicenseError::MissingPhone), "no_teams_phone");
    }
}
