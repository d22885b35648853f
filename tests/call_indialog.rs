//! Issue 30 §2 acceptance, "in-dialog towards Teams": Teams opens a new TLS connection per
//! transaction and closes old ones; its Contact is `sip:api-du-<x>-<region>.pstnhub.microsoft.com`
//! (teams-direct-routing.md §1.5, §7 item 6). teamsgw's in-dialog requests must go to that
//! name (RFC 3261 §12.2.1.1), resolved through `dns.servers` (a DNS server on loopback that
//! maps the api-du names to the in-house Teams peer), on new connections whose SNI is that
//! name, in both call directions; with the name unresolvable the BYE falls back to the
//! dialog's last connection and `teamsgw_teams_indialog_fallback_total` counts it.

use std::net::SocketAddr;
use std::time::Duration;

use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_proxy::{TeamsProxy, api_du_name, reply};
use teamsgw_tests::teams_uac::{NO_BODY, OFFER, TeamsUac, in_dialog};

/// The requests `proxy` received once one `method` is among them (within 5 s).
fn requests_after(proxy: &TeamsProxy, method: &str) -> Vec<(String, Option<String>)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let requests = proxy.requests_by_sni();
        if requests.iter().any(|(m, _)| m == method) || std::time::Instant::now() > deadline {
            return requests;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The SNI each request of `method` came with.
fn sni_of(requests: &[(String, Option<String>)], method: &str) -> Vec<Option<String>> {
    requests
        .iter()
        .filter(|(m, _)| m == method)
        .map(|(_, sni)| sni.clone())
        .collect()
}

/// PBX → Teams: the proxy answers with its api-du Contact and closes each connection after
/// its final response. Our BYE reaches it on a new connection with that name as SNI.
#[test]
fn a_phone_call_to_teams_sends_ack_and_bye_to_the_api_du_host_with_its_name_as_sni() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.close_after_each_transaction();
    proxy.set_script(vec![reply(180, "a", false), reply(200, "a", true)]);
    let phone = lab.phone("2001", 440);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
    let name = api_du_name([127, 0, 0, 2].into());
    let requests = requests_after(&proxy, "BYE");
    let logs = format!("{requests:?}\n{}", lab.logs());
    // The ACK follows the 200 at once, on the INVITE's connection or on a new one: either is
    // right. The BYE comes after the proxy closed that connection.
    assert_eq!(sni_of(&requests, "ACK").len(), 1, "{logs}");
    assert_eq!(sni_of(&requests, "BYE"), [Some(name.clone())], "{logs}");
    assert_eq!(lab.cdrs(1)[0]["result"], "answered", "{logs}");
    assert!(
        lab.metric("teamsgw_dns_lookups_total{result=\"ok\"}") >= 1.0,
        "{logs}"
    );
    assert_eq!(
        lab.metric("teamsgw_teams_indialog_fallback_total{reason=\"not_found\"}")
            + lab.metric("teamsgw_teams_indialog_fallback_total{reason=\"refused\"}")
            + lab.metric("teamsgw_teams_indialog_fallback_total{reason=\"handshake\"}"),
        0.0,
        "{logs}"
    );
}

/// Teams → PBX: Teams' INVITE names its api-du host; it closes its connection after the ACK.
/// The phone hangs up and our BYE reaches the api-du host on a new connection. A second call
/// names a host that does not resolve: its BYE falls back to the connection the dialog last
/// used, and the fallback is counted.
#[test]
fn a_teams_call_gets_our_bye_at_its_api_du_host_and_falls_back_when_the_name_is_unknown() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let api_du = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let name = api_du_name([127, 0, 0, 2].into());
    let phone = lab.phone("2001", 440);
    let contact =
        |host: &str| format!("Contact: <sip:{host}:{port};x-i=5b2f;x-c=88a1/s/1/0d;transport=tls>");
    let invite = |call_id: &str, host: &str| {
        TeamsUac::invite(call_id, TEAMS_NUMBER, "+49302222001", TENANT, OFFER).replace(
            "Contact: <sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=t>",
            &contact(host),
        )
    };

    let mut teams = lab.teams_uac();
    teams.send(&invite("du-1", &name));
    let ok = teams.expect(200);
    teams.send(&in_dialog("ACK", "du-1", 1, &ok, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    drop(teams); // Teams closes the connection after the transaction (§1.5).
    std::thread::sleep(Duration::from_millis(500));
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
    let requests = requests_after(&api_du, "BYE");
    assert_eq!(
        sni_of(&requests, "BYE"),
        [Some(name.clone())],
        "{requests:?}\n{}",
        lab.logs()
    );

    let unknown = "api-du-z-euwe.pstnhub.microsoft.com";
    let mut teams = lab.teams_uac();
    teams.send(&invite("du-2", unknown));
    let ok = teams.expect(200);
    teams.send(&in_dialog("ACK", "du-2", 1, &ok, "", NO_BODY));
    phone.wait_count("Call established", 2, Duration::from_secs(10));
    phone.hangup();
    let bye = teams.expect_request("BYE");
    assert!(bye.contains(&format!("BYE sip:{unknown}:{port}")), "{bye}");
    teams.reply(&bye, 200, "OK");
    lab.wait_calls_ended(&[&phone]);
    assert_eq!(
        lab.metric("teamsgw_teams_indialog_fallback_total{reason=\"not_found\"}"),
        1.0,
        "{}",
        lab.logs()
    );
    assert!(lab.metric("teamsgw_dns_lookups_total{result=\"not_found\"}") >= 1.0);
    assert_eq!(
        sni_of(&api_du.requests_by_sni(), "BYE").len(),
        1,
        "the second BYE did not reach the first call's host"
    );
}

/// A BYE that no way takes (the api-du name is unknown, Teams closed its connection, no
/// proxy answers) is tried again until Timer F, then counted as lost, and the call's CDR
/// says so (issue 30 §2).
#[test]
fn a_bye_no_way_takes_is_counted_lost_and_marked_in_the_cdr() {
    // Nothing listens at the one proxy.
    let lab = CallLab::start("", &["127.0.0.2"], free_port(), None);
    let phone = lab.phone("2001", 440);
    let invite = TeamsUac::invite("du-lost", TEAMS_NUMBER, "+49302222001", TENANT, OFFER).replace(
        "Contact: <sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=t>",
        "Contact: <sip:api-du-y-euwe.pstnhub.microsoft.com:443;x-i=1;x-c=2;transport=tls>",
    );
    let mut teams = lab.teams_uac();
    teams.send(&invite);
    let ok = teams.expect(200);
    teams.send(&in_dialog("ACK", "du-lost", 1, &ok, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    drop(teams);
    std::thread::sleep(Duration::from_millis(500));
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
    assert_eq!(lab.cdrs(1)[0]["bye_lost"], serde_json::Value::Null);
    let lost = "teamsgw_call_bye_lost_total{side=\"teams\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while lab.metric(lost) < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(lab.metric(lost), 1.0, "{}", lab.logs());
    for reason in ["not_found", "connection_gone"] {
        let fallback = format!("teamsgw_teams_indialog_fallback_total{{reason=\"{reason}\"}}");
        assert!(lab.metric(&fallback) >= 1.0, "{fallback}\n{}", lab.logs());
    }
    // The record is marked once the writer has had its linger.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let cdr = &lab.cdrs(1)[0];
        if cdr["bye_lost"] == "teams" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{cdr}\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// PBX → Teams with a 90 s session interval that Teams' answer leaves to us: our refresh
/// re-INVITE at 45 s reaches the api-du host on a new connection with its name as SNI
/// (RFC 4028 §7.4; the proxy closed the INVITE's connection after its 200).
#[test]
fn our_session_refresh_reaches_the_api_du_host_on_a_new_connection() {
    let port = free_port();
    let lab = CallLab::start_with_env(
        "",
        &["127.0.0.2"],
        port,
        None,
        &[("TEAMSGW_PBX__SESSION_EXPIRES_SECONDS", "90")],
        &[],
    );
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.close_after_each_transaction();
    proxy.set_script(vec![reply(200, "r", true)]);
    let phone = lab.phone("2001", 440);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    let name = api_du_name([127, 0, 0, 2].into());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let refreshes = || {
        proxy
            .received()
            .iter()
            .filter(|(_, m, _)| m.starts_with("INVITE ") && m.contains("Session-Expires: 90"))
            .filter(|(_, m, _)| {
                m.lines()
                    .any(|l| l.starts_with("To:") && l.contains("tag="))
            })
            .count()
    };
    while refreshes() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let requests = proxy.requests_by_sni();
    let invites = sni_of(&requests, "INVITE");
    assert_eq!(
        invites,
        [None, Some(name.clone())],
        "the call's INVITE went to the proxy by address, the refresh to the api-du name\n{requests:?}\n{}",
        lab.logs()
    );
    assert_eq!(
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}"),
        1.0,
        "the refreshed call is up\n{}",
        lab.logs()
    );
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
    assert_eq!(sni_of(&requests_after(&proxy, "BYE"), "BYE"), [Some(name)]);
}

/// Teams → PBX, Teams transfers the phone to a number and closes its connection after the
/// REFER's 202: the NOTIFYs with the transfer's progress, and the BYE after it, reach the
/// api-du host on new connections with its name as SNI (RFC 3515 §2.4.4).
#[test]
fn transfer_notifies_reach_the_api_du_host_after_teams_closed_its_connection() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let api_du = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let name = api_du_name([127, 0, 0, 2].into());
    let phone = lab.phone("2001", 440);
    let _target = lab.phone("2002", 880);
    let mut teams = lab.teams_uac();
    let invite = TeamsUac::invite("du-xfer", TEAMS_NUMBER, "+49302222001", TENANT, OFFER).replace(
        "Contact: <sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=t>",
        &format!("Contact: <sip:{name}:{port};x-i=9;x-c=3;transport=tls>"),
    );
    teams.send(&invite);
    let ok = teams.expect(200);
    teams.send(&in_dialog("ACK", "du-xfer", 1, &ok, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    let refer = format!(
        "Refer-To: <sip:+49302222002@sip.pstnhub.microsoft.com:5061;user=phone>\r\n\
         Referred-By: <sip:{TEAMS_NUMBER}@{TENANT}>\r\n"
    );
    teams.send(&in_dialog("REFER", "du-xfer", 2, &ok, &refer, NO_BODY));
    teams.expect(202);
    drop(teams);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let notifies = api_du
            .received()
            .iter()
            .filter(|(_, m, _)| m.starts_with("NOTIFY ") && m.contains("terminated"))
            .count();
        if notifies > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no final NOTIFY at the api-du host: {:?}\n{}",
            api_du.requests_by_sni(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let requests = requests_after(&api_du, "BYE");
    let notifies = sni_of(&requests, "NOTIFY");
    assert!(
        notifies.len() >= 2 && notifies.iter().all(|s| s.as_deref() == Some(name.as_str())),
        "{requests:?}"
    );
    assert_eq!(sni_of(&requests, "BYE"), [Some(name)], "{requests:?}");
}

/// RFC 3261 §18.2.2: Teams puts the phone on hold and closes its connection at once; our
/// answer goes to the Via's sent-by (here the in-house proxy's listener) over a new
/// connection. (The PBX relays re-INVITEs a second late, `SLOW_REINVITE`; our answer to
/// Teams does not wait for it.)
#[test]
fn an_answer_whose_connection_closed_goes_to_the_via_over_a_new_connection() {
    let port = free_port();
    // The PBX relays re-INVITEs a second late: our answer always comes after Teams closed.
    let lab = CallLab::start_with_env("", &["127.0.0.2"], port, None, &[], &["SLOW_REINVITE"]);
    let via_host = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let phone = lab.phone("2001", 440);
    let mut teams = lab.teams_uac();
    let ok = teams.call("du-via", TEAMS_NUMBER, "+49302222001", TENANT);
    phone.wait_log("Call established", Duration::from_secs(10));
    let hold = in_dialog(
        "INVITE",
        "du-via",
        2,
        &ok,
        "",
        teamsgw_tests::teams_uac::sdp(&OFFER.replace("a=sendrecv", "a=sendonly")),
    )
    .replace(
        "SIP/2.0/TLS 127.0.0.1:5061;",
        &format!("SIP/2.0/TLS 127.0.0.2:{port};"),
    );
    // The hold and the end of the connection arrive together: our answer (which never
    // waits for the PBX) finds the connection gone, however fast it is.
    teams.send_and_close(&hold);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answered = via_host.received().iter().any(|(_, m, _)| {
            m.starts_with("SIP/2.0 200 ") && m.contains("CSeq: 2 INVITE") && m.contains("du-via")
        });
        if answered {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer at the Via's address: {:?}\n{}",
            via_host.received(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
