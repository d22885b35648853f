//! A provisioning store for benches: enterprises `Enterprise <e>` on SQLite, each with PBX
//! `main` ready for [`user`]s, and a direct route `e<e>.teams.carrier.example` unless it is
//! an Operator Connect enterprise.

use std::path::Path;

use teamsgw_store::{
    Activation, Assignment, NewDirectRoute, NewOcNumber, NewUser, NumberSource, PasswordKey, Pbx,
    Service, Store, Transport,
};

/// User `i` of enterprise `e`: a Direct Routing user, in group `All`.
pub fn user(e: usize, i: usize) -> NewUser {
    NewUser {
        enterprise: format!("Enterprise {e}"),
        pbx: "main".into(),
        upn: format!("user{i}@e{e}.example"),
        number: format!("+1555{i:07}"),
        extension: format!("{}", 1000 + i),
        auth_user: None,
        password: format!("secret-{i}"),
        skus: vec!["ENTERPRISEPREMIUM".into()],
        ev_enabled: true,
        voice_routing_policy: Some("DR".into()),
        pstn_gateway: None,
        groups: vec!["All".into()],
        managed_by_ui: false,
    }
}

/// A SQLite store in `dir` with `enterprises` Direct Routing enterprises, and the password
/// key for users.
pub async fn provisioned_store(dir: &Path, enterprises: usize) -> (Store, PasswordKey) {
    provisioned_store_with(dir, enterprises, |_| false).await
}

/// [`provisioned_store`] with enterprise `e` served by Operator Connect when `oc(e)`.
pub async fn provisioned_store_with(
    dir: &Path,
    enterprises: usize,
    oc: impl Fn(usize) -> bool,
) -> (Store, PasswordKey) {
    let store = Store::open(&format!("sqlite://{}/bench.db", dir.display()))
        .await
        .unwrap();
    let key_file = dir.join("password.key");
    PasswordKey::generate_file(&key_file).unwrap();
    let key = PasswordKey::load(&format!("file:{}", key_file.display())).unwrap();
    for e in 0..enterprises {
        let name = format!("Enterprise {e}");
        let service = if oc(e) {
            Service::OperatorConnect
        } else {
            Service::DirectRouting
        };
        store
            .add_enterprise_as(
                &name,
                &format!("00000000-0000-0000-0000-{e:012}"),
                1_000,
                service,
            )
            .await
            .unwrap();
        if service == Service::DirectRouting {
            store
                .add_direct_route(
                    &NewDirectRoute {
                        enterprise: name.to_string(),
                        fqdn: format!("e{e}.teams.carrier.example"),
                        base_fqdn: "teams.carrier.example".to_string(),
                        port: 5061,
                        max_sessions: None,
                        max_cps: None,
                        ms_user: None,
                    },
                    |_| Ok(Vec::new()),
                )
                .await
                .unwrap();
        }
        let pbx = Pbx {
            enterprise: name,
            name: "main".into(),
            domain: format!("pbx.e{e}.example"),
            proxy: None,
            transport: Transport::Udp,
            expires: 600,
            codecs: vec!["PCMA".into(), "PCMU".into()],
            number_format: Default::default(),
            country_code: None,
            diversion: false,
        };
        store.add_pbx(&pbx).await.unwrap();
    }
    (store, key)
}

/// Gives each of `users` (of Operator Connect enterprises) its own number as an activated
/// UserAssigned OC number, one import per enterprise.
pub async fn assign_oc_numbers(store: &Store, users: &[NewUser]) {
    let mut by_enterprise: std::collections::BTreeMap<&str, Vec<NewOcNumber>> = Default::default();
    for u in users {
        by_enterprise
            .entry(&u.enterprise)
            .or_default()
            .push(NewOcNumber {
                enterprise: u.enterprise.clone(),
                range: u.number.clone(),
                assignment: Assignment::UserAssigned,
                user: Some(u.upn.clone()),
                activation: Activation::Activated,
                country: Some("US".into()),
                city: None,
                calling_profile: None,
                emergency_address: None,
                acquired_on: None,
                source: NumberSource::Import,
            });
    }
    for (enterprise, numbers) in by_enterprise {
        let done = store
            .import_oc_numbers(enterprise, &numbers, "2026-12-08", false)
            .await
            .unwrap();
        assert!(done.iter().all(Result::is_ok), "{enterprise}");
    }
}
