//! A provisioning store for benches: enterprises `Enterprise <e>` on SQLite, each with a
//! direct route `e<e>.teams.carrier.example` and PBX `main`, ready for [`user`]s.

use std::path::Path;

use teamsgw_store::{NewDirectRoute, NewUser, PasswordKey, Pbx, Store, Transport};

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

/// A SQLite store in `dir` with `enterprises` enterprises, and the password key for users.
pub async fn provisioned_store(dir: &Path, enterprises: usize) -> (Store, PasswordKey) {
    let store = Store::open(&format!("sqlite://{}/bench.db", dir.display()))
        .await
        .unwrap();
    let key_file = dir.join("password.key");
    PasswordKey::generate_file(&key_file).unwrap();
    let key = PasswordKey::load(&format!("file:{}", key_file.display())).unwrap();
    for e in 0..enterprises {
        let name = format!("Enterprise {e}");
        store
            .add_enterprise(&name, &format!("00000000-0000-0000-0000-{e:012}"), 1_000)
            .await
            .unwrap();
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
