//! Microsoft SKUs by part number and what they give a Direct Routing user (reference:
//! licensing.md §3.1–§3.5; seeds: TeamMate "What Licenses are required").
//!
//! A user needs *Teams* (a TEAMS1 plan) and *Teams Phone* (MCOEV / MCOEVSMB); an *inclusive*
//! SKU carries both. Teams Shared Devices is inclusive but licenses direct routes only (it
//! cannot sign in to the Teams app). Business suites bought on or after 2024-04-01 no longer
//! include Teams (the seeds' rule; Microsoft also sells "(no Teams)" part numbers, listed as
//! such). Teams Phone variants other than Standard work but are warned about.

use std::fmt;
use std::time::Duration;

/// A calendar date, `YYYY-MM-DD` (no time zone: acquisition dates are days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn parse(s: &str) -> Option<Date> {
        let mut p = s.split('-');
        let (y, m, d) = (p.next()?, p.next()?, p.next()?);
        if p.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let date = Date {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
            day: d.parse().ok()?,
        };
        ((1..=12).contains(&date.month) && (1..=31).contains(&date.day)).then_some(date)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Business suites bought from this day on come without Teams (seeds).
pub const TEAMS_UNBUNDLED: Date = Date {
    year: 2024,
    month: 4,
    day: 1,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phone {
    Standard,
    /// Teams Phone with a Calling Plan, Business Voice, SMB or Frontline variants.
    OtherVariant,
    /// Part of an inclusive suite (E5, A5, G5, Rooms).
    Included,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sku {
    pub part_number: &'static str,
    pub name: &'static str,
    pub teams: bool,
    pub phone: Option<Phone>,
    /// Teams only when acquired before [`TEAMS_UNBUNDLED`].
    pub business_suite: bool,
    /// Valid only for the direct route's Microsoft user.
    pub direct_route_only: bool,
}

const fn sku(
    part_number: &'static str,
    name: &'static str,
    teams: bool,
    phone: Option<Phone>,
) -> Sku {
    Sku {
        part_number,
        name,
        teams,
        phone,
        business_suite: false,
        direct_route_only: false,
    }
}

const fn business(part_number: &'static str, name: &'static str) -> Sku {
    Sku {
        part_number,
        name,
        teams: true,
        phone: None,
        business_suite: true,
        direct_route_only: false,
    }
}

const STD: Option<Phone> = Some(Phone::Standard);
const OTHER: Option<Phone> = Some(Phone::OtherVariant);
const INCL: Option<Phone> = Some(Phone::Included);

/// The SKUs of reference §3.2 that matter for Direct Routing.
pub const CATALOGUE: &[Sku] = &[
    business("O365_BUSINESS_ESSENTIALS", "Microsoft 365 Business Basic"),
    business(
        "SMB_BUSINESS_ESSENTIALS",
        "Microsoft 365 Business Basic (legacy)",
    ),
    business("O365_BUSINESS_PREMIUM", "Microsoft 365 Business Standard"),
    business(
        "SMB_BUSINESS_PREMIUM",
        "Microsoft 365 Business Standard (legacy)",
    ),
    business("SPB", "Microsoft 365 Business Premium"),
    sku(
        "Microsoft_365_Business_Basic_(no Teams)",
        "Microsoft 365 Business Basic (no Teams)",
        false,
        None,
    ),
    sku(
        "MICROSOFT_365_BUSINESS_STANDARD_NO_TEAMS",
        "Microsoft 365 Business Standard (no Teams)",
        false,
        None,
    ),
    sku("STANDARDPACK", "Office 365 E1", true, None),
    sku("ENTERPRISEPACK", "Office 365 E3", true, None),
    sku(
        "Office_365_E3_(no_Teams)",
        "Office 365 E3 (no Teams)",
        false,
        None,
    ),
    sku("ENTERPRISEPREMIUM", "Office 365 E5", true, INCL),
    sku(
        "ENTERPRISEPREMIUM_NOPSTNCONF",
        "Office 365 E5 without Audio Conferencing",
        true,
        INCL,
    ),
    sku(
        "Office_365_w/o_Teams_Bundle_E5",
        "Office 365 E5 EEA (no Teams)",
        false,
        INCL,
    ),
    sku("SPE_E3", "Microsoft 365 E3", true, None),
    sku(
        "Microsoft_365_E3_(no_Teams)",
        "Microsoft 365 E3 (no Teams)",
        false,
        None,
    ),
    sku("SPE_E5", "Microsoft 365 E5", true, INCL),
    sku(
        "SPE_E5_NOPSTNCONF",
        "Microsoft 365 E5 without Audio Conferencing",
        true,
        INCL,
    ),
    sku(
        "SPE_E5_CALLINGMINUTES",
        "Microsoft 365 E5 with Calling Minutes",
        true,
        INCL,
    ),
    sku(
        "Microsoft_365_E5_(no_Teams)",
        "Microsoft 365 E5 (no Teams)",
        false,
        INCL,
    ),
    sku("M365_F1", "Microsoft 365 F1", true, None),
    sku("SPE_F1", "Microsoft 365 F3", true, None),
    sku("DESKLESSPACK", "Office 365 F3", true, None),
    sku(
        "Microsoft_Teams_Enterprise_New",
        "Microsoft Teams Enterprise",
        true,
        None,
    ),
    sku("Microsoft_Teams_EEA_New", "Microsoft Teams EEA", true, None),
    sku(
        "TEAMS_ESSENTIALS_AAD",
        "Teams Essentials (AAD identity)",
        true,
        None,
    ),
    sku("MCOEV", "Microsoft Teams Phone Standard", false, STD),
    sku("MCOEVSMB_1", "Teams Phone Standard for SMB", false, OTHER),
    sku(
        "MCOTEAMS_ESSENTIALS",
        "Teams Phone with Calling Plan",
        false,
        OTHER,
    ),
    sku(
        "BUSINESS_VOICE_MED2",
        "Microsoft 365 Business Voice",
        false,
        OTHER,
    ),
    sku(
        "BUSINESS_VOICE_DIRECTROUTING",
        "Microsoft 365 Business Voice without Calling Plan",
        false,
        OTHER,
    ),
    Sku {
        part_number: "MCOCAP",
        name: "Microsoft Teams Shared Devices",
        teams: true,
        phone: INCL,
        business_suite: false,
        direct_route_only: true,
    },
    sku("Microsoft_Teams_Rooms_Pro", "Teams Rooms Pro", true, INCL),
];

/// The SKU for a part number (case-insensitive, as admins type them).
pub fn lookup(part_number: &str) -> Option<&'static Sku> {
    CATALOGUE
        .iter()
        .find(|s| s.part_number.eq_ignore_ascii_case(part_number.trim()))
}

/// A SKU held by an enterprise or assigned to a user, with when it was bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub part_number: String,
    pub acquired_on: Option<Date>,
}

impl Sku {
    /// Whether this SKU gives Teams when bought on `acquired_on` (unknown date: as bought before
    /// the unbundling, which is what existing customers renewing have).
    pub fn gives_teams(&self, acquired_on: Option<Date>) -> bool {
        self.teams && !(self.business_suite && acquired_on.is_some_and(|d| d >= TEAMS_UNBUNDLED))
    }

    /// Teams and Teams Phone in one unit.
    pub fn inclusive(&self, acquired_on: Option<Date>) -> bool {
        self.gives_teams(acquired_on) && self.phone.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    #[error("unknown SKU part number {0:?}")]
    UnknownSku(String),
    #[error(
        "no Teams license (a Teams, Microsoft 365/Office 365 suite with Teams, or inclusive SKU){0}"
    )]
    MissingTeams(String),
    #[error("no Teams Phone license (Microsoft Teams Phone Standard, MCOEV)")]
    MissingPhone,
    #[error("{0} licenses only direct routes, not users")]
    DirectRouteOnly(&'static str),
}

/// Who the licenses are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User,
    DirectRoute,
}

/// Checks a set of SKUs for a user or a direct route; returns warnings when it is usable.
pub fn check(holdings: &[Holding], holder: Holder) -> Result<Vec<String>, LicenseError> {
    let mut teams = false;
    let mut phone = None;
    let mut unbundled = false;
    for h in holdings {
        let sku = lookup(&h.part_number)
            .ok_or_else(|| LicenseError::UnknownSku(h.part_number.clone()))?;
        if sku.direct_route_only && holder == Holder::User {
            return Err(LicenseError::DirectRouteOnly(sku.name));
        }
        teams |= sku.gives_teams(h.acquired_on);
        unbundled |= sku.business_suite && !sku.gives_teams(h.acquired_on);
        if let Some(p) = sku.phone {
            phone = Some(match (phone, p) {
                (Some(Phone::Standard), _) | (_, Phone::Standard) => Phone::Standard,
                (Some(Phone::Included), _) | (_, Phone::Included) => Phone::Included,
                _ => Phone::OtherVariant,
            });
        }
    }
    if !teams {
        let why = if unbundled {
            format!("; Business suites bought on or after {TEAMS_UNBUNDLED} do not include Teams")
        } else {
            String::new()
        };
        return Err(LicenseError::MissingTeams(why));
    }
    match phone {
        None => Err(LicenseError::MissingPhone),
        Some(Phone::OtherVariant) => Ok(vec![
            "Teams Phone is not the Standard variant: it works, but costs more and carries features Direct Routing does not use".into(),
        ]),
        Some(_) => Ok(Vec::new()),
    }
}

/// Units of one SKU in an enterprise's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub holding: Holding,
    pub units: u32,
    pub assigned: u32,
}

/// What a new direct route's Microsoft user gets from the pool: one inclusive unit (Teams
/// Shared Devices first), else one Teams and one Teams Phone unit (seeds: the direct route
/// creation fails with a clear error when none is free).
pub fn pick_for_direct_route(pool: &[PoolEntry]) -> Result<Vec<Holding>, LicenseError> {
    let free = |e: &&PoolEntry| e.assigned < e.units && lookup(&e.holding.part_number).is_some();
    let sku_of = |e: &PoolEntry| lookup(&e.holding.part_number);
    let inclusive: Vec<&PoolEntry> = pool
        .iter()
        .filter(free)
        .filter(|e| sku_of(e).is_some_and(|s| s.inclusive(e.holding.acquired_on)))
        .collect();
    if let Some(e) = inclusive
        .iter()
        .find(|e| sku_of(e).is_some_and(|s| s.direct_route_only))
        .or_else(|| inclusive.first())
    {
        return Ok(vec![e.holding.clone()]);
    }
    let teams = pool
        .iter()
        .filter(free)
        .find(|e| sku_of(e).is_some_and(|s| s.gives_teams(e.holding.acquired_on)));
    let phone = pool
        .iter()
        .filter(free)
        .find(|e| sku_of(e).is_some_and(|s| s.phone.is_some()));
    match (teams, phone) {
        (Some(t), Some(p)) => Ok(vec![t.holding.clone(), p.holding.clone()]),
        (None, _) => Err(LicenseError::MissingTeams(
            " free in the enterprise's pool".into(),
        )),
        (_, None) => Err(LicenseError::MissingPhone),
    }
}

/// Microsoft propagates license changes slowly: a second change to the same user within the
/// cooldown is refused with the time left, unless forced.
pub fn cooldown_remaining(
    since_last_change: Option<Duration>,
    cooldown: Duration,
    force: bool,
) -> Option<Duration> {
    match since_last_change {
        Some(elapsed) if !force && elapsed < cooldown => Some(cooldown - elapsed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(part: &str, date: Option<&str>) -> Holding {
        Holding {
            part_number: part.into(),
            acquired_on: date.and_then(Date::parse),
        }
    }

    #[test]
    fn user_needs_teams_and_teams_phone_seeds() {
        assert_eq!(
            check(&[h("ENTERPRISEPACK", None), h("MCOEV", None)], Holder::User),
            Ok(vec![])
        );
        assert_eq!(
            check(&[h("SPE_E5", None)], Holder::User),
            Ok(vec![]),
            "inclusive"
        );
        assert_eq!(
            check(
                &[
                    h("Microsoft_Teams_Enterprise_New", None),
                    h("Microsoft_365_E5_(no_Teams)", None)
                ],
                Holder::User
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(&[h("ENTERPRISEPACK", None)], Holder::User),
            Err(LicenseError::MissingPhone)
        );
        assert!(matches!(
            check(&[h("MCOEV", None)], Holder::User),
            Err(LicenseError::MissingTeams(_))
        ));
        assert!(matches!(
            check(
                &[h("Office_365_E3_(no_Teams)", None), h("MCOEV", None)],
                Holder::User
            ),
            Err(LicenseError::MissingTeams(_))
        ));
        assert_eq!(
            check(&[h("NOPE", None)], Holder::User),
            Err(LicenseError::UnknownSku("NOPE".into()))
        );
    }

    #[test]
    fn non_standard_phone_variants_warn_seeds() {
        let w = check(
            &[h("SPE_E3", None), h("MCOTEAMS_ESSENTIALS", None)],
            Holder::User,
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("not the Standard variant"));
    }

    #[test]
    fn business_suites_bought_from_2024_04_01_carry_no_teams_seeds() {
        let before = [
            h("O365_BUSINESS_PREMIUM", Some("2024-03-31")),
            h("MCOEV", None),
        ];
        assert_eq!(check(&before, Holder::User), Ok(vec![]));
        let after = [
            h("O365_BUSINESS_PREMIUM", Some("2024-04-01")),
            h("MCOEV", None),
        ];
        let err = check(&after, Holder::User).unwrap_err();
        assert!(err.to_string().contains("on or after 2024-04-01"), "{err}");
        let fixed = [
            after[0].clone(),
            after[1].clone(),
            h("Microsoft_Teams_Enterprise_New", Some("2024-05-01")),
        ];
        assert_eq!(check(&fixed, Holder::User), Ok(vec![]));
    }

    #[test]
    fn shared_devices_license_direct_routes_only_seeds() {
        assert_eq!(check(&[h("MCOCAP", None)], Holder::DirectRoute), Ok(vec![]));
        assert_eq!(
            check(&[h("mcocap", None)], Holder::User),
            Err(LicenseError::DirectRouteOnly(
                "Microsoft Teams Shared Devices"
            ))
        );
    }

    fn pool(entries: &[(&str, u32, u32)]) -> Vec<PoolEntry> {
        entries
            .iter()
            .map(|&(part, units, assigned)| PoolEntry {
                holding: h(part, None),
                units,
                assigned,
            })
            .collect()
    }

    #[test]
    fn direct_route_takes_an_inclusive_unit_or_teams_plus_phone_seeds() {
        let got = pick_for_direct_route(&pool(&[("SPE_E5", 5, 0), ("MCOCAP", 1, 0)])).unwrap();
        assert_eq!(
            got,
            vec![h("MCOCAP", None)],
            "shared devices first: they cannot serve users anyway"
        );
        let got = pick_for_direct_route(&pool(&[
            ("ENTERPRISEPACK", 3, 3),
            ("SPE_E3", 2, 1),
            ("MCOEV", 4, 0),
        ]))
        .unwrap();
        assert_eq!(got, vec![h("SPE_E3", None), h("MCOEV", None)]);
        assert_eq!(
            pick_for_direct_route(&pool(&[("SPE_E3", 2, 0), ("MCOEV", 1, 1)])),
            Err(LicenseError::MissingPhone)
        );
        let err = pick_for_direct_route(&pool(&[])).unwrap_err();
        assert!(err.to_string().contains("no Teams license"), "{err}");
    }

    #[test]
    fn cooldown_refuses_quick_changes_unless_forced() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            cooldown_remaining(Some(Duration::from_secs(3_600)), day, false),
            Some(day - Duration::from_secs(3_600))
        );
        assert_eq!(
            cooldown_remaining(Some(Duration::from_secs(3_600)), day, true),
            None
        );
        assert_eq!(cooldown_remaining(Some(day * 2), day, false), None);
        assert_eq!(cooldown_remaining(None, day, false), None);
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(Date::parse("2024-04-01"), Some(TEAMS_UNBUNDLED));
        for bad in ["2024-4-1", "2024-13-01", "24-04-01", "2024-04-01-x", ""] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }
}
