//! License-factor counting (reference: licensing.md §1.2–§1.4, §1.8; seeds: the license page).
//!
//! Each monitored user counts once, under the highest-priority factor it qualifies for:
//! 1. Managed Users–Direct Routing: Enterprise Voice enabled, an Online Voice Routing Policy,
//!    and an Online PSTN Gateway matching the enterprise's direct route (the
//!    `CriteriaToMatchAsLicensedUsersByGW` regex with its placeholders); or, for an Operator
//!    Connect enterprise, Managed Users–Operator Connect: the user holds an activated
//!    UserAssigned OC number of the enterprise (licensing.md §1.2, seed 002). An enterprise
//!    has one or the other, never both;
//! 2. Managed Users–By LifeCycle Management: member of a security group with an LCM template;
//! 3. Managed Users–By User Interface: changed through our CLI or API.
//!
//! Then (4) Managed Service Numbers: service numbers whose tag does not match the direct-route
//! criteria, is not rejected, and that no user holds. Factors 2–4 can be switched off; a
//! switched-off factor counts 0 and its users fall through to the next enabled factor
//! (reference §1.3, the "cascade" reading — documented because it changes bills).
//!
//! Each factor is reported as `counted (configured)`: `counted` after de-duplication (what is
//! billed), `configured` the raw number of users or numbers with that factor configured,
//! overlaps included (reference §1.8 "reading A").

use regex::Regex;

/// The regex criteria of reference §1.4, with `_PSTNGATEWAY_TO_REPLACE_` and
/// `_MSTENANTID_TO_REPLACE_` placeholders. Substituted values are regex-escaped (the
/// original does not escape, so its dots match any character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criteria {
    pub licensed_users_by_gateway: String,
    pub dr_numbers: String,
    pub reject_as_service_numbers: Option<String>,
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            licensed_users_by_gateway: "^.*(?i)_PSTNGATEWAY_TO_REPLACE_.*$".into(),
            dr_numbers: "(^_MSTENANTID_TO_REPLACE_$)|(^.*(?i)_PSTNGATEWAY_TO_REPLACE_.*$)".into(),
            reject_as_service_numbers: None,
        }
    }
}

impl Criteria {
    /// Compiles every pattern with sample placeholder values, so a broken regex is refused
    /// when the configuration is loaded instead of when a report is counted.
    pub fn check(&self) -> Result<(), CriteriaError> {
        let sample = Enterprise {
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            direct_routes: vec!["customer.sbc.example.net".into()],
            ..Enterprise::default()
        };
        Compiled::new(self, &sample).map(|_| ())
    }
}

const GATEWAY: &str = "_PSTNGATEWAY_TO_REPLACE_";
const TENANT: &str = "_MSTENANTID_TO_REPLACE_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("license criteria {name}: {problem}")]
pub struct CriteriaError {
    pub name: &'static str,
    pub problem: String,
}

/// What the counter needs to know about one monitored user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub upn: String,
    pub enterprise_voice: bool,
    pub voice_routing_policy: Option<String>,
    pub pstn_gateway: Option<String>,
    pub groups: Vec<String>,
    pub managed_by_ui: bool,
    /// E.164 numbers assigned to the user.
    pub numbers: Vec<String>,
    /// Holds an activated UserAssigned Operator Connect number of its enterprise.
    pub operator_connect: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNumber {
    pub number: String,
    pub tag: String,
}

/// Which optional factors count (per enterprise, after applying the global defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    pub lcm: bool,
    pub ui: bool,
    pub service_numbers: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            lcm: true,
            ui: true,
            service_numbers: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enterprise {
    pub acquired: u32,
    pub tenant_id: String,
    /// FQDNs of the enterprise's direct routes (the "site PSTN gateways").
    pub direct_routes: Vec<String>,
    /// Security groups that have a LifeCycle Management template.
    pub lcm_groups: Vec<String>,
    pub users: Vec<User>,
    pub service_numbers: Vec<ServiceNumber>,
    pub switches: Switches,
    /// Served by Operator Connect: factor 1 is Managed Users–Operator Connect.
    pub operator_connect: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Factor {
    pub counted: u32,
    pub configured: u32,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub acquired: u32,
    pub monitored_users: u32,
    pub currently_licensed: u32,
    /// Negative when usage exceeds what was acquired.
    pub available: i64,
    pub direct_routing: Factor,
    /// Factor 1 of an Operator Connect enterprise (zero and off for Direct Routing ones, and
    /// the other way round: the UMP record carries both, licensing.md §1.1).
    pub operator_connect: Factor,
    pub lcm: Factor,
    pub ui: Factor,
    pub service_numbers: Factor,
}

struct Compiled {
    by_gateway: Vec<Regex>,
    dr_numbers: Vec<Regex>,
    reject: Option<Regex>,
}

fn compile(name: &'static str, pattern: &str) -> Result<Regex, CriteriaError> {
    Regex::new(pattern).map_err(|e| CriteriaError {
        name,
        problem: e.to_string(),
    })
}

impl Compiled {
    fn new(criteria: &Criteria, e: &Enterprise) -> Result<Self, CriteriaError> {
        let substitute = |pattern: &str, gateway: &str| {
            pattern
                .replace(GATEWAY, &regex::escape(gateway))
                .replace(TENANT, &regex::escape(&e.tenant_id))
        };
        let per_route = |name, pattern: &str| {
            e.direct_routes
                .iter()
                .map(|g| compile(name, &substitute(pattern, g)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            by_gateway: per_route(
                "licensed_users_by_gateway",
                &criteria.licensed_users_by_gateway,
            )?,
            dr_numbers: per_route("dr_numbers", &criteria.dr_numbers)?,
            reject: criteria
                .reject_as_service_numbers
                .as_deref()
                .map(|p| compile("reject_as_service_numbers", &substitute(p, "")))
                .transpose()?,
        })
    }
}

fn qualifies_dr(u: &User, c: &Compiled) -> bool {
    u.enterprise_voice
        && u.voice_routing_policy
            .as_deref()
            .is_some_and(|p| !p.is_empty())
        && u.pstn_gateway
            .as_deref()
            .is_some_and(|g| c.by_gateway.iter().any(|r| r.is_match(g)))
}

fn in_lcm(u: &User, e: &Enterprise) -> bool {
    u.groups
        .iter()
        .any(|g| e.lcm_groups.iter().any(|l| l.eq_ignore_ascii_case(g)))
}

/// The factor a user is billed under: the first it meets in priority order (licensing.md
/// §1.3: Direct Routing, then LCM, then UI), among the factors switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billed {
    DirectRouting,
    OperatorConnect,
    Lcm,
    Ui,
}

impl Billed {
    pub fn as_str(self) -> &'static str {
        match self {
            Billed::DirectRouting => "direct_routing",
            Billed::OperatorConnect => "operator_connect",
            Billed::Lcm => "lcm",
            Billed::Ui => "ui",
        }
    }
}

/// Which factors one user meets, and the one it is billed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFactors {
    pub direct_routing: bool,
    pub operator_connect: bool,
    pub lcm: bool,
    pub ui: bool,
    pub billed: Option<Billed>,
}

/// Why an enterprise counts what it counts: each user's factors (in the order of
/// [`Enterprise::users`]) and which service numbers are license-relevant (in the order of
/// [`Enterprise::service_numbers`]). [`count`] is the sum of this, so the two never differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub users: Vec<UserFactors>,
    pub service_numbers: Vec<bool>,
}

/// Each user's and service number's part in the count.
pub fn explain(e: &Enterprise, criteria: &Criteria) -> Result<Explanation, CriteriaError> {
    let c = Compiled::new(criteria, e)?;
    let s = e.switches;
    let users = e
        .users
        .iter()
        .map(|u| {
            let (dr, oc) = if e.operator_connect {
                (false, u.operator_connect)
            } else {
                (qualifies_dr(u, &c), false)
            };
            let (lcm, ui) = (in_lcm(u, e), u.managed_by_ui);
            let billed = if dr {
                Some(Billed::DirectRouting)
            } else if oc {
                Some(Billed::OperatorConnect)
            } else if lcm && s.lcm {
                Some(Billed::Lcm)
            } else if ui && s.ui {
                Some(Billed::Ui)
            } else {
                None
            };
            UserFactors {
                direct_routing: dr,
                operator_connect: oc,
                lcm,
                ui,
                billed,
            }
        })
        .collect();
    let assigned: std::collections::HashSet<&str> = e
        .users
        .iter()
        .flat_map(|u| u.numbers.iter().map(String::as_str))
        .collect();
    let service_numbers = e
        .service_numbers
        .iter()
        .map(|n| {
            let dr_tag = c.dr_numbers.iter().any(|r| r.is_match(&n.tag));
            let rejected = c.reject.as_ref().is_some_and(|r| r.is_match(&n.tag));
            !dr_tag && !rejected && !assigned.contains(n.number.as_str())
        })
        .collect();
    Ok(Explanation {
        users,
        service_numbers,
    })
}

/// Counts an enterprise's license usage.
pub fn count(e: &Enterprise, criteria: &Criteria) -> Result<Report, CriteriaError> {
    let x = explain(e, criteria)?;
    let s = e.switches;
    let factor = |enabled, configured: usize, counted: usize| Factor {
        counted: counted as u32,
        configured: configured as u32,
        enabled,
    };
    let users = |f: fn(&UserFactors) -> bool| x.users.iter().filter(|u| f(u)).count();
    let billed = |b| x.users.iter().filter(|u| u.billed == Some(b)).count();
    let dr = factor(
        !e.operator_connect,
        users(|u| u.direct_routing),
        billed(Billed::DirectRouting),
    );
    let oc = factor(
        e.operator_connect,
        users(|u| u.operator_connect),
        billed(Billed::OperatorConnect),
    );
    let lcm = factor(s.lcm, users(|u| u.lcm), billed(Billed::Lcm));
    let ui = factor(s.ui, users(|u| u.ui), billed(Billed::Ui));
    let relevant = x.service_numbers.iter().filter(|&&c| c).count();
    let sn = factor(
        s.service_numbers,
        relevant,
        if s.service_numbers { relevant } else { 0 },
    );
    let currently_licensed = dr.counted + oc.counted + lcm.counted + ui.counted + sn.counted;
    Ok(Report {
        acquired: e.acquired,
        monitored_users: e.users.len() as u32,
        currently_licensed,
        available: i64::from(e.acquired) - i64::from(currently_licensed),
        direct_routing: dr,
        operator_connect: oc,
        lcm,
        ui,
        service_numbers: sn,
    })
}

#[cfg(test)]
mod tests;
