//! The provisioning database on SQLite and on a real PostgreSQL started by the test, and a
//! database outage under the running daemon: the last routing snapshot keeps serving, reload
//! errors are counted, and the next reload after the restart succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_store::{
    Backend, Cdr, CdrFilter, CdrLeg, DirectRouteChange, NewDirectRoute, NewUser, NumberFormat,
    PasswordKey, Pbx, ProvisionError, Store, Transport, password_context,
};
use teamsgw_tests::call_lab::{self, CallLab, TEAMS_NUMBER};
use teamsgw_tests::postgres::Postgres;
use teamsgw_tests::teams_uac::{NO_BODY, in_dialog};

async fn migrate_and_load(url: &str, backend: Backend) {
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.backend(), backend);
    assert_eq!(store.schema_version().await.unwrap(), 14);
    assert_eq!(store.load_snapshot().await.unwrap().direct_routes(), 0);
    store.close().await;
    // Opening a migrated database again changes nothing.
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 14);
    store.close().await;
}

const BASE: &str = "teams.carrier.example";
const TENANT: &str = "0e1b2c3d-1111-2222-3333-444455556666";

fn pbx(enterprise: &str, name: &str) -> Pbx {
    Pbx {
        enterprise: enterprise.to_owned(),
        name: name.to_owned(),
        domain: "pbx.acme.example".to_owned(),
        proxy: Some("10.0.0.5:5080".to_owned()),
        transport: Transport::Udp,
        expires: 600,
        codecs: vec!["PCMU".into()],
        number_format: NumberFormat::Digits,
        country_code: Some("49".into()),
        diversion: true,
    }
}

/// Seeds: Enterprise → Direct Route → PBX → Users; a refused change leaves nothing behind.
async fn provisioning_rules(url: &str) {
    let store = Store::open(url).await.unwrap();
    store.add_enterprise("Acme", TENANT, 50).await.unwrap();
    let dup = store.add_enterprise("Acme", TENANT, 1).await.unwrap_err();
    assert!(
        matches!(dup, ProvisionError::Conflict { field: "name", .. }),
        "{dup}"
    );
    let dup = store
        .add_enterprise("Other", &TENANT.to_uppercase(), 1)
        .await
        .unwrap_err();
    assert_eq!(dup.field(), Some("tenant-id"), "{dup}");
    let bad = store
        .add_enterprise("Bad", "not-a-guid", 1)
        .await
        .unwrap_err();
    assert_eq!(bad.field(), Some("tenant-id"), "{bad}");

    // A PBX needs a direct route first.
    let err = store.add_pbx(&pbx("Acme", "main")).await.unwrap_err();
    assert_eq!(err.field(), Some("enterprise"), "{err}");
    assert!(err.to_string().contains("no direct route"), "{err}");
    assert!(store.list_pbxs("Acme").await.unwrap().is_empty());

    let err = store
        .add_direct_route(
            &NewDirectRoute {
                enterprise: "Acme".to_string(),
                fqdn: "acme.other.example".to_string(),
                base_fqdn: BASE.to_string(),
                port: 5061,
                max_sessions: None,
                max_cps: None,
                ms_user: None,
            },
            |_| Ok(Vec::new()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("fqdn"), "{err}");
    let err = store
        .add_direct_route(
            &NewDirectRoute {
                enterprise: "Nobody".to_string(),
                fqdn: "x.teams.carrier.example".to_string(),
                base_fqdn: BASE.to_string(),
                port: 5061,
                max_sessions: None,
                max_cps: None,
                ms_user: None,
            },
            |_| Ok(Vec::new()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::NotFound {
                field: "enterprise",
                ..
            }
        ),
        "{err}"
    );
    store
        .add_direct_route(
            &NewDirectRoute {
                enterprise: "Acme".to_string(),
                fqdn: "ACME.teams.carrier.example".to_string(),
                base_fqdn: BASE.to_string(),
                port: 5061,
                max_sessions: Some(30),
                max_cps: Some(20),
                ms_user: None,
            },
            |_| Ok(Vec::new()),
        )
        .await
        .unwrap();
    let err = store
        .add_direct_route(
            &NewDirectRoute {
                enterprise: "Acme".to_string(),
                fqdn: "acme.teams.carrier.example".to_string(),
                base_fqdn: BASE.to_string(),
                port: 5061,
                max_sessions: None,
                max_cps: None,
                ms_user: None,
            },
            |_| Ok(Vec::new()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisionError::Conflict { field: "fqdn", .. }),
        "{err}"
    );
    let snapshot = store.load_snapshot().await.unwrap();
    let route = snapshot.direct_route("acme.teams.carrier.example").unwrap();
    assert_eq!(
        (route.port, route.max_sessions, route.max_cps),
        (5061, Some(30), Some(20))
    );
    // Limits change in place; none removes one; 0 or an absurd rate names the field.
    let changed = store
        .set_direct_route(
            "acme.teams.carrier.example.",
            &DirectRouteChange {
                max_sessions: Some(None),
                max_cps: Some(Some(5)),
            },
        )
        .await
        .unwrap();
    assert_eq!((changed.max_sessions, changed.max_cps), (None, Some(5)));
    for (change, field) in [
        (
            DirectRouteChange {
                max_cps: Some(Some(0)),
                ..Default::default()
            },
            "max-cps",
        ),
        (
            DirectRouteChange {
                max_cps: Some(Some(teamsgw_store::MAX_CPS + 1)),
                ..Default::default()
            },
            "max-cps",
        ),
        (
            DirectRouteChange {
                max_sessions: Some(Some(0)),
                max_cps: Some(None),
            },
            "max-sessions",
        ),
    ] {
        let err = store
            .set_direct_route("acme.teams.carrier.example", &change)
            .await
            .unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
    }
    let err = store
        .set_direct_route(
            "nobody.teams.carrier.example",
            &DirectRouteChange::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProvisionError::NotFound { .. }), "{err}");
    let route = store.load_snapshot().await.unwrap();
    let route = route.direct_route("acme.teams.carrier.example").unwrap();
    assert_eq!((route.max_sessions, route.max_cps), (None, Some(5)));

    store.add_pbx(&pbx("Acme", "main")).await.unwrap();
    let err = store.add_pbx(&pbx("Acme", "main")).await.unwrap_err();
    assert!(
        matches!(err, ProvisionError::Conflict { field: "name", .. }),
        "{err}"
    );
    let mut short = pbx("Acme", "short");
    short.expires = 10;
    assert_eq!(
        store.add_pbx(&short).await.unwrap_err().field(),
        Some("expires")
    );
    // A country calling code is 1 to 3 digits without a leading 0 or + (E.164 §6.2.1).
    for bad in ["+49", "049", "1234", ""] {
        let mut odd = pbx("Acme", "odd");
        odd.country_code = Some(bad.into());
        assert_eq!(
            store.add_pbx(&odd).await.unwrap_err().field(),
            Some("country_code"),
            "{bad:?}"
        );
    }
    assert_eq!(
        store.list_pbxs("Acme").await.unwrap(),
        vec![pbx("Acme", "main")]
    );

    users(&store).await;

    // Deleting with children is refused unless cascading; the cascade removes everything.
    let err = store.delete_enterprise("Acme", false).await.unwrap_err();
    assert!(
        err.to_string().contains("1 direct routes, 1 PBXs, 1 users"),
        "{err}"
    );
    assert_eq!(store.list_enterprises().await.unwrap().len(), 1);
    store.delete_enterprise("Acme", true).await.unwrap();
    assert!(store.list_enterprises().await.unwrap().is_empty());
    assert_eq!(store.load_snapshot().await.unwrap().direct_routes(), 0);
    store.close().await;
}

fn alice() -> NewUser {
    NewUser {
        enterprise: "Acme".into(),
        pbx: "main".into(),
        upn: "Alice@acme.example".into(),
        number: "+15551230001".into(),
        extension: "1001".into(),
        auth_user: None,
        password: "pbx-secret-1001".into(),
        skus: vec!["ENTERPRISEPREMIUM".into()],
        ev_enabled: true,
        voice_routing_policy: Some("Acme-DR".into()),
        pstn_gateway: None,
        groups: vec!["Sales".into()],
        managed_by_ui: true,
    }
}

/// Users: E.164 unique per enterprise, a PBX of the user's own enterprise, the password sealed.
async fn users(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("password.key");
    PasswordKey::generate_file(&key_file).unwrap();
    let key = PasswordKey::load(&format!("file:{}", key_file.display())).unwrap();

    let user = store.add_user(&alice(), &key).await.unwrap();
    assert_eq!(
        (user.upn.as_str(), user.auth_user.as_str()),
        ("alice@acme.example", "1001")
    );
    let refusals = [
        (
            "number",
            NewUser {
                upn: "bob@acme.example".into(),
                ..alice()
            },
        ),
        (
            "upn",
            NewUser {
                number: "+15551230002".into(),
                ..alice()
            },
        ),
        (
            "number",
            NewUser {
                upn: "c@acme.example".into(),
                number: "5551230003".into(),
                ..alice()
            },
        ),
        (
            "pbx",
            NewUser {
                upn: "d@acme.example".into(),
                number: "+15551230004".into(),
                pbx: "nope".into(),
                ..alice()
            },
        ),
        (
            "enterprise",
            NewUser {
                upn: "e@acme.example".into(),
                number: "+15551230005".into(),
                enterprise: "Nobody".into(),
                ..alice()
            },
        ),
    ];
    for (field, user) in refusals {
        let err = store.add_user(&user, &key).await.unwrap_err();
        assert_eq!(err.field(), Some(field), "{user:?}: {err}");
    }
    // A bulk add is one transaction: a refused row leaves none of the others behind.
    let batch = [
        NewUser {
            upn: "f@acme.example".into(),
            number: "+15551230006".into(),
            ..alice()
        },
        NewUser {
            upn: "g@acme.example".into(),
            ..alice()
        },
    ];
    let (row, err) = store.add_users(&batch, &key).await.unwrap_err();
    assert_eq!((row, err.field()), (1, Some("number")), "{err}");
    let listed = store.list_users("Acme").await.unwrap();
    assert_eq!(listed, vec![user]);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(
        !json.contains("pbx-secret") && !json.contains("password"),
        "{json}"
    );

    // Sealed at rest, opens only for its row.
    let sealed = store.sealed_password("alice@acme.example").await.unwrap();
    assert!(!sealed.contains("pbx-secret"));
    let context = password_context("alice@acme.example");
    assert_eq!(key.open(&sealed, &context).unwrap(), "pbx-secret-1001");

    let snapshot = store.load_snapshot().await.unwrap();
    let route = snapshot.direct_route("acme.teams.carrier.example").unwrap();
    let found = snapshot
        .user_by_number(&route.enterprise_id, "+15551230001")
        .unwrap();
    assert_eq!(found.extension, "1001");
    let by_token = snapshot
        .user_by_contact_token(&found.contact_token)
        .unwrap();
    assert_eq!(by_token.upn, "alice@acme.example");
    let pbx = snapshot.pbx(&found.pbx_id).unwrap();
    assert_eq!(
        (pbx.domain.as_str(), pbx.expires),
        ("pbx.acme.example", 600)
    );
    assert_eq!(
        (
            pbx.number_format,
            pbx.country_code.as_deref(),
            pbx.diversion
        ),
        (NumberFormat::Digits, Some("49"), true)
    );
    assert!(
        snapshot
            .user_by_number("other-enterprise", "+15551230001")
            .is_none()
    );
    license_facts(store).await;
}

/// The license snapshot (one query per table) holds what the per-enterprise reads return.
async fn license_facts(store: &Store) {
    let licenses = store.load_license_snapshot().await.unwrap();
    let enterprises = store.list_enterprises().await.unwrap();
    assert_eq!(licenses.enterprises().len(), enterprises.len());
    for e in &enterprises {
        let f = licenses.enterprise(&e.name).unwrap();
        assert_eq!(&f.enterprise, e);
        assert_eq!(f.skus, store.list_enterprise_skus(&e.name).await.unwrap());
        assert_eq!(
            f.direct_routes,
            store.list_direct_routes(Some(&e.name)).await.unwrap()
        );
        assert_eq!(
            f.lcm_templates,
            store.list_lcm_templates(&e.name).await.unwrap()
        );
        assert_eq!(
            f.service_numbers,
            store.list_service_numbers(&e.name).await.unwrap()
        );
        let users = store.list_users(&e.name).await.unwrap();
        let upns: Vec<&str> = f.users.iter().map(|u| u.upn.as_str()).collect();
        assert_eq!(
            upns,
            users.iter().map(|u| u.upn.as_str()).collect::<Vec<_>>()
        );
        for (facts, user) in f.users.iter().zip(&users) {
            assert_eq!(
                (&facts.number, &facts.skus, &facts.groups, facts.ev_enabled),
                (&user.number, &user.skus, &user.groups, user.ev_enabled)
            );
            assert_eq!(facts.last_license_change, user.last_license_change);
        }
        let one = store.license_facts(Some(&e.name)).await.unwrap();
        assert_eq!(one.as_slice(), std::slice::from_ref(f));
    }
    let acme = licenses.enterprise("Acme").unwrap();
    assert_eq!(acme.users.len(), 1, "{acme:?}");
    assert!(!acme.direct_routes.is_empty(), "{acme:?}");
    let unknown = store.license_facts(Some("Nobody")).await.unwrap_err();
    assert_eq!(unknown.field(), Some("enterprise"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_provisioning_rules_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/teamsgw.db", dir.path().display());
    migrate_and_load(&sqlite, Backend::Sqlite).await;
    provisioning_rules(&sqlite).await;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    migrate_and_load(&pg.url, Backend::Postgres).await;
    provisioning_rules(&pg.url).await;
    cdrs(&sqlite).await;
    cdrs(&pg.url).await;
}

/// Issue 32 on PostgreSQL: a database of schema 12 with a customer, a PBX and a user on it
/// upgrades to this build's schema, and the customer is a Direct Routing enterprise with all
/// it had (the store's unit test does the same on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_12_with_data_upgrades_on_postgresql() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    Store::seed_old_schema(
        &pg.url,
        12,
        &[
            "INSERT INTO enterprises (id, name, tenant_id, acquired_licenses, created_at) \
             VALUES ('e1', 'Contoso', '0e1b2c3d-1111-2222-3333-444455556666', 50, 0)",
            "INSERT INTO direct_routes (id, enterprise_id, fqdn, port, max_cps, created_at) \
             VALUES ('d1', 'e1', 'contoso.teams.carrier.example', 5061, 20, 0)",
            "INSERT INTO pbxs (id, enterprise_id, name, domain, transport, expires, codecs, \
             created_at) VALUES ('p1', 'e1', 'main', 'pbx.contoso.example', 'udp', 600, \
             'PCMA;PCMU', 0)",
            "INSERT INTO users (id, enterprise_id, pbx_id, upn, number, extension, auth_user, \
             password_sealed, skus, ev_enabled, groups, managed_by_ui, contact_token, \
             created_at, updated_at) VALUES ('u1', 'e1', 'p1', 'alice@contoso.example', \
             '+15551230001', '1001', '1001', 'v1.00', 'SPE_E5', 1, '', 0, 'tok', 0, 0)",
        ],
    )
    .await
    .unwrap();
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 14);
    let e = store.enterprise("Contoso").await.unwrap();
    assert_eq!(e.service, teamsgw_store::Service::DirectRouting);
    let routes = store.list_direct_routes(Some("Contoso")).await.unwrap();
    assert_eq!(routes[0].max_cps, Some(20));
    let users = store.list_users("Contoso").await.unwrap();
    assert_eq!(users[0].number, "+15551230001");
    assert!(store.list_oc_numbers("Contoso").await.unwrap().is_empty());
    let snapshot = store.load_snapshot().await.unwrap();
    assert_eq!(
        (snapshot.direct_routes(), snapshot.users()),
        (1, 1),
        "it routes as before"
    );
    assert_eq!(snapshot.all_operator_connect().count(), 0);
}

fn cdr(call_id: &str, enterprise: &str, started_at: &str) -> Cdr {
    Cdr {
        call_id: call_id.into(),
        direction: "from_teams".into(),
        enterprise: enterprise.into(),
        direct_route: "acme.teams.carrier.example".into(),
        user: "alice@acme.example".into(),
        caller: "+15551230001".into(),
        callee: "+15557654321".into(),
        teams_proxy: Some("sip2.pstnhub.microsoft.com".into()),
        failovers: vec!["sip.pstnhub.microsoft.com:timeout".into()],
        started_at: started_at.into(),
        answered_at: None,
        ended_at: started_at.into(),
        status: 486,
        result: "busy".into(),
        reason: "busy".into(),
        hung_up_by: Some("pbx".into()),
        codec: Some("PCMA".into()),
        // One of each, so the mark round-trips both ways.
        emergency: call_id == "c2",
        service: if call_id == "c2" {
            "operator-connect"
        } else {
            "direct-routing"
        }
        .into(),
        bye_lost: None,
        teams: CdrLeg {
            packets_in: 3_000_000_000,
            ..CdrLeg::default()
        },
        pbx: CdrLeg {
            lost: 7,
            ..CdrLeg::default()
        },
    }
}

/// Call records round-trip with every field, filter by enterprise and whole days, and a
/// record written twice is kept once.
async fn cdrs(url: &str) {
    let store = Store::open(url).await.unwrap();
    let a = cdr("c1", "Acme", "2026-12-01T23:59:59.999Z");
    let b = cdr("c2", "Acme", "2026-12-02T00:00:00.000Z");
    let c = cdr("c3", "Other", "2026-12-02T10:00:00.000Z");
    for r in [&a, &b, &c, &a] {
        store.insert_cdr(r).await.unwrap();
    }
    let all = store.list_cdrs(&CdrFilter::default()).await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone(), c.clone()]);
    // A lost BYE is marked on the record afterwards (issue 30 §2).
    assert!(store.mark_bye_lost("c3", "teams").await.unwrap());
    assert!(!store.mark_bye_lost("no-such-call", "teams").await.unwrap());
    let c = Cdr {
        bye_lost: Some("teams".into()),
        ..c
    };
    let all = store.list_cdrs(&CdrFilter::default()).await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone(), c.clone()]);
    let acme_on_the_2nd = CdrFilter {
        enterprise: Some("Acme".into()),
        from: Some("2026-12-02".into()),
        to: Some("2026-12-02".into()),
    };
    assert_eq!(store.list_cdrs(&acme_on_the_2nd).await.unwrap(), vec![b]);
    let up_to_the_1st = CdrFilter {
        to: Some("2026-12-01".into()),
        ..CdrFilter::default()
    };
    assert_eq!(store.list_cdrs(&up_to_the_1st).await.unwrap(), vec![a]);
    let bad = CdrFilter {
        from: Some("yesterday".into()),
        ..CdrFilter::default()
    };
    let e = store.list_cdrs(&bad).await.unwrap_err();
    assert!(e.to_string().contains("from"), "{e}");
    // cdr.retention_days (issue 31 §9): what started before the cutoff goes, nothing else.
    assert_eq!(
        store
            .purge_cdrs_before("2026-12-02T00:00:00.000Z")
            .await
            .unwrap(),
        1
    );
    let left: Vec<String> = store
        .list_cdrs(&CdrFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(left, ["c2", "c3"]);
    store.close().await;
}

/// The database goes away under a daemon that routes calls: the reload fails and says why, the
/// last snapshot keeps routing (a Teams user's call reaches a phone behind the PBX), and the
/// first reload after the restart succeeds.
#[test]
fn database_outage_keeps_the_snapshot_serving_and_counts_reload_errors() {
    let pg = Postgres::start();
    let lab = CallLab::start_on_database(&pg.url);
    let daemon = &lab.daemon;
    let ok = "teamsgw_snapshot_reloads_total{result=\"ok\"}";
    let errors = "teamsgw_snapshot_reloads_total{result=\"error\"}";
    let errors_before = daemon.metric(errors);
    let ok_before = daemon.metric(ok);
    let phone = lab.phone("2001", 440);

    pg.stop();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(30), "a failed snapshot reload", || {
        daemon.metric(errors) > errors_before
    });
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 200, "the previous snapshot keeps serving: {body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let last_error = ready["snapshot_last_error"]
        .as_str()
        .unwrap_or_else(|| panic!("a failed reload leaves its error in /readyz: {body}"));
    assert!(
        ["connect", "refused", "pool", "timed out"]
            .iter()
            .any(|why| last_error.to_ascii_lowercase().contains(why)),
        "the error names the database failure: {last_error}"
    );
    assert!(daemon.log().contains("routing snapshot reload failed"));

    // Routing still works from the last snapshot: the tenant, the Teams user as caller and
    // their PBX are all looked up for this call, which the phone answers.
    let mut teams = lab.teams_uac();
    let answer = teams.call("outage-1", TEAMS_NUMBER, "+49302222001", call_lab::TENANT);
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    phone.wait_log("Call established", Duration::from_secs(10));
    teams.send(&in_dialog("BYE", "outage-1", 2, &answer, "", NO_BODY));
    teams.expect(200);
    lab.wait_calls_ended(&[&phone]);

    pg.restart();
    daemon.signal("HUP");
    daemon.wait_for(
        Duration::from_secs(30),
        "a successful reload after the restart",
        || daemon.metric(ok) > ok_before,
    );
    // The change listener also reloads as it reconnects; reloads run one at a time, so the
    // error clears once the attempts that began during the outage are done.
    daemon.wait_for(Duration::from_secs(30), "/readyz without the error", || {
        let (status, body) = daemon.get("/readyz");
        status == 200
            && serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|r| r["snapshot_last_error"].is_null())
    });
}
