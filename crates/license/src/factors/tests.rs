//! The seeds' worked example (license page: 50 acquired; Direct Routing 9, LCM 10 (19), UI 3,
//! service numbers 1 = 23) and the rules around it.

use super::*;

const GATEWAY: &str = "Brad444Pro.sandbox3.audiocodes.be";

fn dr_user(upn: &str, group: Option<&str>) -> User {
    User {
        upn: upn.into(),
        enterprise_voice: true,
        voice_routing_policy: Some("Unrestricted".into()),
        pstn_gateway: Some(GATEWAY.into()),
        groups: group.map(|g| vec![g.to_owned()]).unwrap_or_default(),
        numbers: vec![format!(
            "+1555{:07}",
            upn.len() * 1000 + upn.bytes().map(u32::from).sum::<u32>() as usize
        )],
        ..User::default()
    }
}

fn plain_user(upn: &str, group: Option<&str>, ui: bool) -> User {
    User {
        upn: upn.into(),
        groups: group.map(|g| vec![g.to_owned()]).unwrap_or_default(),
        managed_by_ui: ui,
        ..User::default()
    }
}

/// Sales and Marketing (template Roma): 10 members, 8 Direct Routing. Retail (Milano): 9
/// members, 1 Direct Routing. Three UI-managed users outside the groups, one UI-managed group
/// member, five untouched users; a FAX number, a DR-tagged number and a rejected E911 number.
fn seeds_example() -> Enterprise {
    let mut users = Vec::new();
    for i in 1..=8 {
        users.push(dr_user(
            &format!("sm{i}@contoso.com"),
            Some("Sales and Marketing"),
        ));
    }
    users.push(plain_user(
        "sm9@contoso.com",
        Some("Sales and Marketing"),
        true,
    ));
    users.push(plain_user(
        "sm10@contoso.com",
        Some("Sales and Marketing"),
        false,
    ));
    users.push(dr_user("r1@contoso.com", Some("Retail")));
    for i in 2..=9 {
        users.push(plain_user(
            &format!("r{i}@contoso.com"),
            Some("Retail"),
            false,
        ));
    }
    for i in 1..=3 {
        users.push(plain_user(&format!("ui{i}@contoso.com"), None, true));
    }
    for i in 1..=5 {
        users.push(plain_user(&format!("m{i}@contoso.com"), None, false));
    }
    Enterprise {
        acquired: 50,
        tenant_id: "9a1c4d2e-0000-4000-8000-000000000001".into(),
        direct_routes: vec![GATEWAY.into()],
        lcm_groups: vec!["Sales and Marketing".into(), "Retail".into()],
        users,
        service_numbers: vec![
            ServiceNumber {
                number: "+15550199".into(),
                tag: "FAX".into(),
            },
            ServiceNumber {
                number: "+15550100".into(),
                tag: GATEWAY.into(),
            },
            ServiceNumber {
                number: "+15550911".into(),
                tag: "E911-LAB".into(),
            },
        ],
        switches: Switches::default(),
        operator_connect: false,
    }
}

fn criteria() -> Criteria {
    Criteria {
        reject_as_service_numbers: Some("^E911-LAB$".into()),
        ..Criteria::default()
    }
}

fn f(counted: u32, configured: u32, enabled: bool) -> Factor {
    Factor {
        counted,
        configured,
        enabled,
    }
}

#[test]
fn seeds_worked_example_counts_exactly() {
    let r = count(&seeds_example(), &criteria()).unwrap();
    assert_eq!(r.direct_routing, f(9, 9, true));
    assert_eq!(
        r.lcm,
        f(10, 19, true),
        "the page's 10 (19): 19 group members, 9 of them DR"
    );
    assert_eq!(r.ui, f(3, 4, true));
    assert_eq!(
        r.service_numbers,
        f(1, 1, true),
        "FAX counts; DR-tagged and rejected do not"
    );
    assert_eq!(
        (r.currently_licensed, r.available, r.acquired),
        (23, 27, 50)
    );
    assert_eq!(r.monitored_users, 27);
}

#[test]
fn switched_off_factors_count_zero_and_users_fall_through_reference_1_3() {
    let mut e = seeds_example();
    e.switches.lcm = false;
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(r.lcm, f(0, 19, false));
    assert_eq!(
        r.ui.counted, 4,
        "the UI-managed group member now counts under UI"
    );
    assert_eq!(r.currently_licensed, 9 + 4 + 1);
    e.switches = Switches {
        lcm: true,
        ui: false,
        service_numbers: false,
    };
    let r = count(&e, &criteria()).unwrap();
    assert_eq!((r.ui, r.service_numbers), (f(0, 4, false), f(0, 1, false)));
    assert_eq!(r.currently_licensed, 19);
}

#[test]
fn direct_routing_needs_all_three_conditions() {
    let mut e = seeds_example();
    e.users[0].enterprise_voice = false;
    e.users[1].voice_routing_policy = None;
    e.users[2].pstn_gateway = Some("other.sbc.example.net".into());
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(r.direct_routing.counted, 6);
    assert_eq!(
        r.lcm.counted, 13,
        "they are group members, so LCM counts them instead"
    );
}

#[test]
fn gateway_criteria_are_case_insensitive_contains_with_escaped_dots_reference_1_4() {
    let mut e = seeds_example();
    e.users[0].pstn_gateway = Some(GATEWAY.to_uppercase());
    e.users[1].pstn_gateway = Some(format!("x{GATEWAY}-2"));
    e.users[2].pstn_gateway = Some(GATEWAY.replace('.', "x"));
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(
        r.direct_routing.counted, 8,
        "dots are literal: the x-for-dot gateway does not match"
    );
}

#[test]
fn numbers_held_by_users_are_not_service_numbers() {
    let mut e = seeds_example();
    e.users[20].numbers.push("+15550199".into());
    assert_eq!(
        count(&e, &criteria()).unwrap().service_numbers,
        f(0, 0, true)
    );
}

#[test]
fn bad_criteria_name_the_criterion() {
    let c = Criteria {
        licensed_users_by_gateway: "(unclosed".into(),
        ..Criteria::default()
    };
    let err = count(&seeds_example(), &c).unwrap_err();
    assert_eq!(err.name, "licensed_users_by_gateway");
}

#[test]
fn overuse_shows_negative_availability() {
    let mut e = seeds_example();
    e.acquired = 20;
    assert_eq!(count(&e, &criteria()).unwrap().available, -3);
}

/// Seed 002's worked example (the Operator Connect license page): 3 monitored users, 2 of them
/// with an assigned Operator Connect number: Managed Users-Operator Connect = 2 (2), and the
/// Direct Routing factor is off with nothing configured.
#[test]
fn seed_002_operator_connect_example_counts_two() {
    let mut users = vec![
        plain_user("a@fabrikam.com", None, false),
        plain_user("b@fabrikam.com", None, false),
        plain_user("c@fabrikam.com", None, false),
    ];
    users[0].operator_connect = true;
    users[1].operator_connect = true;
    let e = Enterprise {
        acquired: 10,
        tenant_id: "9a1c4d2e-0000-4000-8000-000000000002".into(),
        users,
        operator_connect: true,
        ..Enterprise::default()
    };
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(r.operator_connect, f(2, 2, true));
    assert_eq!(r.direct_routing, f(0, 0, false));
    assert_eq!(
        (r.monitored_users, r.currently_licensed, r.available),
        (3, 2, 8)
    );
}

/// An OC enterprise's factor 1 is the OC number, whatever Direct Routing attributes a user
/// carries; an OC user in an LCM group counts once, under OC (licensing.md §1.3), and a
/// group member without an OC number falls to LCM.
#[test]
fn operator_connect_outranks_lcm_and_ignores_direct_routing_attributes() {
    let mut e = seeds_example();
    e.operator_connect = true;
    e.direct_routes.clear();
    for u in e.users.iter_mut().take(3) {
        u.operator_connect = true;
    }
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(r.operator_connect, f(3, 3, true));
    assert_eq!(r.direct_routing, f(0, 0, false));
    assert_eq!(
        r.lcm,
        f(16, 19, true),
        "19 members: the 3 OC ones count under OC, the rest (DR attributes or not) under LCM"
    );
    let x = explain(&e, &criteria()).unwrap();
    assert_eq!(x.users[0].billed, Some(Billed::OperatorConnect));
    assert!(x.users[0].lcm, "it meets LCM too, and is billed once");
    assert_eq!(x.users[3].billed, Some(Billed::Lcm));
}

/// A Direct Routing enterprise never counts Operator Connect, even for a user flagged so.
#[test]
fn direct_routing_enterprises_count_no_operator_connect() {
    let mut e = seeds_example();
    e.users[20].operator_connect = true;
    let r = count(&e, &criteria()).unwrap();
    assert_eq!(r.operator_connect, f(0, 0, false));
    assert_eq!(r.currently_licensed, 23);
}
