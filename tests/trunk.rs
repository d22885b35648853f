//! Teams trunk health against a TLS test peer playing a Teams SIP proxy on loopback (mutual
//! TLS): OPTIONS every interval with the Contact, Allow and X-MS-SBC Teams requires
//! (teams-direct-routing.md §2.1); 503 with Retry-After keeps the proxy down and unprobed that
//! long (§1.6); a proxy that goes away is down until it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use teamsgw_sip::test_pki::TestCa;
use teamsgw_tests::teams_proxy::{Answer, TeamsProxy};
use teamsgw_tests::{Daemon, Ports, free_port, run_cli, test_config};

fn up(daemon: &Daemon) -> Option<f64> {
    daemon.metric_if_exposed("teamsgw_teams_proxy_up{proxy=\"localhost\"}")
}

#[test]
fn options_keepalives_and_proxy_health() {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "trunk");
    let sbc = ca.leaf("sbc", &["teams.carrier.example"]);
    let proxy_leaf = ca.leaf("proxy", &["localhost"]);
    let proxy_addr = ([127, 0, 0, 1], free_port()).into();
    let mut proxy = TeamsProxy::start(proxy_addr, &ca, &proxy_leaf);

    let ports = Ports::new();
    let config = test_config(&ports, &sbc.tls_section(&ca))
        .replace(
            "proxies = []\n",
            &format!(
                "proxies = [\"localhost\"]\nproxy_port = {}\noptions_interval_seconds = 1\n\
                 sbc_vendor = \"Carrier\"\nbase_fqdn = \"teams.carrier.example\"\n",
                proxy_addr.port()
            ),
        )
        .replace(
            "[admin]\n",
            "[admin]\ntoken = \"trunk-test-token-0123456789-0123456789\"\n",
        );
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(30));

    daemon.wait_for(
        Duration::from_secs(15),
        "three OPTIONS at the proxy",
        || proxy.received().len() >= 3,
    );
    let got = proxy.received();
    for (_, options, _) in &got {
        assert!(
            options.starts_with(&format!(
                "OPTIONS sip:localhost:{} SIP/2.0\r\n",
                proxy_addr.port()
            )),
            "{options}"
        );
        let contact = format!(
            "\r\nContact: <sip:teams.carrier.example:{};transport=tls>\r\n",
            ports.tls
        );
        assert!(options.contains(&contact), "{options}");
        assert!(
            options.contains("\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER\r\n"),
            "{options}"
        );
        assert!(
            options.contains("\r\nX-MS-SBC: Carrier/teamsgw/"),
            "{options}"
        );
    }
    for pair in got.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0).as_secs_f64();
        assert!(
            (0.5..=3.0).contains(&gap),
            "OPTIONS every interval (1 s): {gap} s"
        );
    }
    daemon.wait_for(Duration::from_secs(5), "proxy up", || {
        up(&daemon) == Some(1.0)
    });
    let (code, out, err) = run_cli(
        daemon.dir(),
        &["--config", "teamsgw.toml", "trunk", "status", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["proxy"], "localhost");
    assert_eq!(status[0]["up"], true);
    assert_eq!(status[0]["last_result"], "200 OK");

    // 503 with Retry-After: down, and not probed again for that long.
    proxy.set_answer(Answer::Unavailable(4));
    daemon.wait_for(Duration::from_secs(5), "proxy down after 503", || {
        up(&daemon) == Some(0.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    proxy.set_answer(Answer::Ok);
    daemon.wait_for(Duration::from_secs(10), "proxy up again", || {
        up(&daemon) == Some(1.0)
    });
    let got = proxy.received();
    let refused = got
        .iter()
        .position(|(_, _, a)| *a == Answer::Unavailable(4))
        .unwrap();
    let gap = got[refused + 1].0.duration_since(got[refused].0);
    assert!(
        gap >= Duration::from_millis(3900),
        "probed again {gap:?} after a 503 with Retry-After: 4"
    );

    // The proxy goes away: down (TLS connect refused); back: up.
    proxy.stop();
    // Usually the refused TLS connect says so at the next probe; an OPTIONS already queued on
    // the dying connection is only given up by Timer F (64*T1 = 32 s).
    daemon.wait_for(Duration::from_secs(40), "proxy down while gone", || {
        up(&daemon) == Some(0.0)
    });
    let fails: f64 = ["transport_error", "timeout"]
        .iter()
        .filter_map(|r| {
            daemon.metric_if_exposed(&format!(
                "teamsgw_teams_options_total{{proxy=\"localhost\",result=\"{r}\"}}"
            ))
        })
        .sum();
    assert!(fails >= 1.0);
    let proxy = TeamsProxy::start(proxy_addr, &ca, &proxy_leaf);
    daemon.wait_for(Duration::from_secs(10), "proxy back up", || {
        up(&daemon) == Some(1.0)
    });
    assert!(!proxy.received().is_empty());
}
