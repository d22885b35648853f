//! The PBX registration agent against a real Kamailio registrar (Debian `kamailio`, config in
//! tests/kamailio/): 200 users provisioned through the CLI register with digest auth and our
//! per-user Contact tokens; a registrar outage sends them to backoff (no tight loop) and they
//! come back by themselves; a wrong password ends in auth_failed; deleting or disabling a
//! user through the CLI removes its binding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use teamsgw_store::Store;
use teamsgw_tests::kamailio::Kamailio;
use teamsgw_tests::{Daemon, Ports, run_cli, test_config};

const USERS: usize = 200;
const TOKEN: &str = "registration-test-token-0123456789abcdef";

fn cli(daemon: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["--config", "teamsgw.toml"];
    full.extend_from_slice(args);
    let (code, out, err) = run_cli(daemon.dir(), &full);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn status(daemon: &Daemon) -> Vec<Value> {
    let out = cli(daemon, &["user", "status", "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn in_state(daemon: &Daemon, state: &str) -> usize {
    status(daemon)
        .iter()
        .filter(|u| u["state"] == state)
        .count()
}

/// AoRs in Kamailio's location table that carry `contact` (ul.dump).
fn bound(kamailio: &Kamailio, tokens: &[(String, String)]) -> usize {
    let dump = kamailio.bindings();
    tokens
        .iter()
        .filter(|(ext, token)| {
            dump.contains(&format!("AoR: {ext}\n"))
                && dump.contains(&format!("sip:{token}@127.0.0.1"))
        })
        .count()
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn register_requests(daemon: &Daemon, result: &str) -> f64 {
    daemon.metric(&format!(
        "teamsgw_register_requests_total{{result=\"{result}\"}}"
    ))
}

#[test]
fn users_register_at_kamailio_survive_an_outage_and_follow_provisioning() {
    let mut kamailio = Kamailio::start(&[]);
    let ports = Ports::new();
    // The harness's [pbx] table registers nobody; this test is about registering.
    let config = test_config(&ports, "[license]\nrefresh_seconds = 3600\n")
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"))
        .replace(
            "[teams]\n",
            "[teams]\nbase_fqdn = \"teams.carrier.example\"\n",
        )
        .replace(
            "register_users = false",
            "register_users = true\nadvertised_address = \"127.0.0.1\"\n\
             register_rate_per_second = 400\nmax_auth_attempts = 2",
        );
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(30));

    // Provision through the CLI: enterprise, route, a TCP PBX at Kamailio, 200 users + 1 wrong.
    cli(
        &daemon,
        &[
            "enterprise",
            "add",
            "Acme",
            "--tenant-id",
            "0e1b2c3d-1111-2222-3333-444455556666",
            "--acquired-licenses",
            "500",
        ],
    );
    cli(
        &daemon,
        &[
            "enterprise",
            "sku",
            "add",
            "Acme",
            "--sku",
            "SPE_E5",
            "--units",
            "500",
        ],
    );
    cli(
        &daemon,
        &[
            "direct-route",
            "add",
            "--enterprise",
            "Acme",
            "--fqdn",
            "acme.teams.carrier.example",
        ],
    );
    let proxy = kamailio.addr.to_string();
    cli(
        &daemon,
        &[
            "pbx",
            "add",
            "--enterprise",
            "Acme",
            "--name",
            "main",
            "--domain",
            "pbx.acme.example",
            "--proxy",
            &proxy,
            "--transport",
            "tcp",
            "--expires",
            "60",
        ],
    );
    let mut csv = String::from("UserPrincipalName,LineUri,Extension,Password,Skus\n");
    for i in 0..USERS {
        let ext = 2000 + i;
        csv.push_str(&format!(
            "u{i}@acme.example,tel:+1555100{ext},{ext},pw-{ext},SPE_E5\n"
        ));
    }
    csv.push_str("wrong@acme.example,tel:+15551009999,9999,not-the-password,SPE_E5\n");
    std::fs::write(daemon.dir().join("users.csv"), csv).unwrap();
    cli(
        &daemon,
        &[
            "user",
            "import",
            "--enterprise",
            "Acme",
            "--pbx",
            "main",
            "users.csv",
        ],
    );
    daemon.signal("HUP");

    // Every binding at Kamailio carries the user's own Contact token.
    let tokens: Vec<(String, String)> = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("sqlite://{}/var/teamsgw.db", daemon.dir().display());
        rt.block_on(async {
            let store = Store::open(&url).await.unwrap();
            let snapshot = store.load_snapshot().await.unwrap();
            store.close().await;
            snapshot
                .all_users()
                .iter()
                .filter(|u| u.extension != "9999")
                .map(|u| (u.extension.clone(), u.contact_token.clone()))
                .collect()
        })
    };
    assert_eq!(tokens.len(), USERS);
    wait(
        "200 bindings at Kamailio",
        Duration::from_secs(60),
        || bound(&kamailio, &tokens) == USERS,
        || daemon.log(),
    );
    wait(
        "status: 200 registered",
        Duration::from_secs(10),
        || in_state(&daemon, "registered") == USERS,
        || daemon.log(),
    );
    wait(
        "teamsgw_registrations",
        Duration::from_secs(5),
        || {
            daemon.metric_if_exposed(
                "teamsgw_registrations{enterprise=\"Acme\",state=\"registered\"}",
            ) == Some(USERS as f64)
        },
        || daemon.log(),
    );
    let (_, ready) = daemon.get("/readyz");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["registrations"]["registered"], USERS, "{ready}");

    // The wrong password: challenged again without stale=true, twice -> auth_failed.
    wait(
        "auth_failed",
        Duration::from_secs(30),
        || in_state(&daemon, "auth_failed") == 1,
        || daemon.log(),
    );
    let wrong = status(&daemon)
        .into_iter()
        .find(|u| u["upn"] == "wrong@acme.example")
        .unwrap();
    assert!(
        wrong["last_error"]
            .as_str()
            .unwrap()
            .contains("credentials rejected"),
        "{wrong}"
    );
    let table = cli(&daemon, &["user", "status", "--enterprise", "Acme"]);
    assert!(
        table.contains("wrong@acme.example") && table.contains("auth_failed"),
        "{table}"
    );

    // Deleting and disabling through the CLI remove bindings (unregister seen at Kamailio).
    cli(&daemon, &["user", "delete", "u0@acme.example"]);
    cli(&daemon, &["user", "set", "u1@acme.example", "--disable"]);
    daemon.signal("HUP");
    let gone = |ext: &str| !kamailio.bindings().contains(&format!("AoR: {ext}\n"));
    wait(
        "u0 and u1 unregistered",
        Duration::from_secs(20),
        || gone("2000") && gone("2001"),
        || daemon.log(),
    );
    wait(
        "u1 disabled",
        Duration::from_secs(5),
        || in_state(&daemon, "disabled") == 1,
        || daemon.log(),
    );
    let live = USERS - 2;

    // The registrar goes away as soon as the steps above are done, however long they took, and
    // stays away until the refreshes (60 s expiry: refreshed 48-54 s after registering) have
    // failed and users back off; then it comes back and users return alone.
    let before = register_requests(&daemon, "transport_error");
    let down_at = Instant::now();
    kamailio.stop();
    wait(
        "users in backoff",
        Duration::from_secs(90),
        || in_state(&daemon, "backoff") >= live / 2,
        || daemon.log(),
    );
    std::thread::sleep(Duration::from_secs(10));
    let down_for = down_at.elapsed();
    let failed_while_down = register_requests(&daemon, "transport_error") - before;
    kamailio.restart();
    // Backoff from 5 s doubling, jitter 0.9-1.1: a user's attempts start at its first failure
    // and come at least 5, 9, 18, 36... s apart, so `down_for` bounds how many can fail.
    let (mut at, mut most) = (0.0, 0usize);
    while at <= down_for.as_secs_f64() {
        at += (0.9 * 5.0 * f64::from(1u32 << most.min(16))).max(5.0);
        most += 1;
    }
    assert!(
        failed_while_down > 0.0 && failed_while_down <= (live * most) as f64,
        "{failed_while_down} failed REGISTERs for {live} users in {down_for:?} (at most {most} each)"
    );
    let tokens: Vec<_> = tokens.into_iter().skip(2).collect();
    wait(
        "all users back at the restarted Kamailio",
        Duration::from_secs(120),
        || bound(&kamailio, &tokens) == live,
        || daemon.log(),
    );
    wait(
        "status: registered again",
        Duration::from_secs(10),
        || in_state(&daemon, "registered") == live,
        || daemon.log(),
    );

    // Shutdown unregisters everyone (pbx.unregister_on_shutdown, default on).
    daemon.signal("TERM");
    let (exit, _) = daemon.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    wait(
        "no bindings left after shutdown",
        Duration::from_secs(5),
        || bound(&kamailio, &tokens) == 0,
        || kamailio.bindings(),
    );
}
