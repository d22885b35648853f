//! Calls that fail, fork, drain or repeat, through the real daemon: Kamailio as the PBX with
//! baresip phones and sipp, our scripted Teams client and Teams proxy for Microsoft's shapes.
//! Each refusal is asserted with its exact response code (teams-direct-routing.md §1.6, §3.1,
//! §3.4, §3.8; RFC 3261 §9, §13.2.2.4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TEAMS_NUMBER, TENANT};
use teamsgw_tests::teams_media::TEAMS_MEDIA_TONE;
use teamsgw_tests::teams_proxy::{Step, reply};
use teamsgw_tests::teams_uac::{OFFER, TeamsUac, header};
use teamsgw_tests::{free_port, sipp};

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls from Teams refused or ended at each step: unknown tenant 404, unprovisioned caller
/// 403, malformed SDP 488, a busy PBX extension 486 with Q.850 cause 17 (the PBX said 34),
/// CANCEL with 487 and the PBX leg cancelled, and `max_sessions` 1 refusing a second call.
#[test]
fn teams_side_failures_get_their_exact_codes() {
    let lab = CallLab::start("", &[], 5061, Some(1));
    let phone = lab.phone_answering("2001", 440, false);
    let mut teams = lab.teams_uac();

    teams.send(&TeamsUac::invite(
        "f1",
        TEAMS_NUMBER,
        "+49302222001",
        "other.sbc.test",
        OFFER,
    ));
    let r = teams.expect(404);
    assert!(
        header(&r, "Warning").unwrap().contains("other.sbc.test"),
        "{r}"
    );

    teams.send(&TeamsUac::invite(
        "f2",
        "+49309999999",
        "+49302222001",
        TENANT,
        OFFER,
    ));
    let r = teams.expect(403);
    assert!(
        header(&r, "Warning").unwrap().contains("+49309999999"),
        "{r}"
    );

    teams.send(&TeamsUac::invite(
        "f3",
        TEAMS_NUMBER,
        "+49302222001",
        TENANT,
        "v=0\r\nnonsense\r\n",
    ));
    let r = teams.expect(488);
    assert!(header(&r, "Warning").unwrap().contains("SDP"), "{r}");

    teams.send(&TeamsUac::invite(
        "f4",
        TEAMS_NUMBER,
        "+49302222486",
        TENANT,
        OFFER,
    ));
    let r = teams.expect(486);
    assert!(
        header(&r, "Reason").unwrap().starts_with("Q.850;cause=17"),
        "{r}"
    );

    // Ringing (the phone does not answer by itself), then a second call over the limit.
    teams.send(&TeamsUac::invite(
        "f5",
        TEAMS_NUMBER,
        "+49302222001",
        TENANT,
        OFFER,
    ));
    teams.expect(180);
    phone.wait_log("Incoming call", Duration::from_secs(5));
    teams.send(&TeamsUac::invite(
        "f6",
        TEAMS_NUMBER,
        "+49302222001",
        TENANT,
        OFFER,
    ));
    let r = teams.expect(503);
    assert!(header(&r, "Retry-After").is_some(), "{r}");
    assert_eq!(
        lab.metric("teamsgw_call_admission_rejected_total{reason=\"max_sessions\"}"),
        1.0
    );

    teams.send(&TeamsUac::cancel(
        "f5",
        TEAMS_NUMBER,
        "+49302222001",
        TENANT,
    ));
    teams.expect(200);
    teams.expect(487);
    phone.wait_log("session closed", Duration::from_secs(5));
    wait("the cancelled call to end", Duration::from_secs(10), || {
        lab.metric("teamsgw_calls_active{direction=\"from_teams\"}") == 0.0
    });
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
    let results: Vec<String> = lab
        .cdrs(2)
        .iter()
        .map(|c| format!("{} {}", c["result"].as_str().unwrap(), c["status"]))
        .collect();
    assert_eq!(results, ["busy 486", "cancelled 487"]);
}

/// Waits until trunk health has had a 200 from both lab proxies and holds both up (the daemon
/// starts before the proxies, so its first probes fail and both start down).
fn both_proxies_answered(lab: &CallLab) {
    wait(
        "trunk health to see both proxies answer and up",
        Duration::from_secs(10),
        || {
            ["127.0.0.2", "127.0.0.3"].iter().all(|p| {
                let ok = format!("teamsgw_teams_options_total{{proxy=\"{p}\",result=\"ok\"}}");
                let up = format!("teamsgw_teams_proxy_up{{proxy=\"{p}\"}}");
                lab.daemon.metric_if_exposed(&ok) >= Some(1.0)
                    && lab.daemon.metric_if_exposed(&up) == Some(1.0)
            })
        },
    );
}

/// Calls towards Teams that Teams refuses: 486 passes to the PBX; 603 from the first proxy
/// stops everything (the second is never tried); a CANCEL from the PBX reaches Teams.
#[test]
fn teams_refusals_and_cancel_towards_teams() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2", "127.0.0.3"], port, None);
    let first = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let second = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 3], port)));
    let phone = lab.phone("2001", 440);
    let invites = |p: &teamsgw_tests::teams_proxy::TeamsProxy| {
        p.requests()
            .iter()
            .filter(|(m, t)| m == "INVITE" && t.is_empty())
            .count()
    };
    both_proxies_answered(&lab);

    first.set_script(vec![reply(486, "p", false)]);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("486", Duration::from_secs(10));

    first.set_script(vec![reply(603, "p", false)]);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("603", Duration::from_secs(10));
    assert_eq!(invites(&first), 2);
    assert_eq!(invites(&second), 0, "§3.8: no retry after 603");

    first.set_script(vec![
        reply(180, "p", false),
        Step::Wait(Duration::from_secs(30)),
    ]);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("180 Ringing", Duration::from_secs(10));
    phone.hangup();
    wait("the CANCEL at Teams", Duration::from_secs(10), || {
        first.requests().iter().any(|(m, _)| m == "CANCEL")
    });
    wait("the cancelled call to end", Duration::from_secs(10), || {
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}") == 0.0
    });
    let results: Vec<String> = lab
        .cdrs(3)
        .iter()
        .map(|c| format!("{} {}", c["result"].as_str().unwrap(), c["status"]))
        .collect();
    assert_eq!(results, ["busy 486", "rejected 603", "cancelled 487"]);
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);

    // §1.6: 503 with Retry-After from the first proxy: the call fails over to the second,
    // and trunk health holds the first down (its OPTIONS still answer 200). Both proxies are
    // up for trunk health first, so the failover is the 503's and not a health verdict's.
    both_proxies_answered(&lab);
    first.set_script(vec![Step::Reply {
        status: 503,
        tag: "p",
        sdp: false,
        extra: vec!["Retry-After: 120".into()],
    }]);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    assert_eq!(invites(&second), 1, "failed over to the second proxy");
    wait(
        "trunk health to hold the first proxy down",
        Duration::from_secs(5),
        || lab.metric("teamsgw_teams_proxy_up{proxy=\"127.0.0.2\"}") == 0.0,
    );
    phone.hangup();
    wait("the call to end", Duration::from_secs(10), || {
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}") == 0.0
    });
    let last = lab.cdrs(4).pop().unwrap();
    assert_eq!(last["result"], "answered", "{last}");
    assert_eq!(last["teams_proxy"], "127.0.0.3", "{last}");
    assert_eq!(
        last["failovers"][0],
        "127.0.0.2:503",
        "{last}\n{}",
        lab.logs()
    );
}

/// §3.4: 180 from two forks, 183 with SDP, then 200 from the second fork. The PBX sees one
/// 180 and the 200; the phone hears the Teams side's own tone (both SRTP directions, and not
/// a loop of its own); a late 200 from the first fork gets ACK and then BYE (RFC 3261 §13.2.2.4).
#[test]
fn forks_ring_once_answer_with_audio_and_the_late_fork_is_ended() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![
        reply(180, "fa", false),
        reply(180, "fb", false),
        reply(183, "fb", true),
        Step::Wait(Duration::from_millis(300)),
        reply(200, "fb", true),
        Step::Wait(Duration::from_millis(500)),
        reply(200, "fa", true),
    ]);
    let phone = lab.phone("2001", 440);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy
        .requests()
        .contains(&("BYE".to_owned(), "fa".to_owned()))
    {
        assert!(
            Instant::now() < deadline,
            "no BYE for the late fork: {:?}\n{}\n{}",
            proxy.requests(),
            phone.log(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        proxy
            .requests()
            .contains(&("ACK".to_owned(), "fa".to_owned()))
    );
    assert!(
        proxy
            .requests()
            .contains(&("ACK".to_owned(), "fb".to_owned()))
    );
    std::thread::sleep(Duration::from_secs(2));
    phone.hangup();
    phone.wait_count("terminated", 1, Duration::from_secs(5));
    assert_eq!(phone.count_log("SIP Progress: 180"), 1, "{}", phone.log());
    assert_eq!(phone.count_log("SIP Progress: 183"), 0, "{}", phone.log());
    // The phone's BYE is answered on the PBX leg first; ours to Teams follows it.
    wait(
        "the BYE to the answered fork",
        Duration::from_secs(5),
        || {
            proxy
                .requests()
                .contains(&("BYE".to_owned(), "fb".to_owned()))
        },
    );
    teamsgw_tests::baresip::assert_tone(
        "the phone",
        teamsgw_tests::baresip::tone_of(&phone.heard()[0]),
        TEAMS_MEDIA_TONE,
        &lab.logs(),
    );
}

/// SIGHUP during a call does not drop it; SIGTERM refuses new INVITEs with 503, ends the
/// call with BYE on both legs at `daemon.drain_seconds` (2 in the lab), and exits 0.
#[test]
fn reload_keeps_the_call_and_sigterm_drains_it() {
    let port = free_port();
    let mut lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let phone = lab.phone("2001", 440);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    lab.daemon.signal("HUP");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}"),
        1.0
    );
    assert!(!proxy.requests().iter().any(|(m, _)| m == "BYE"));
    let mut teams = lab.teams_uac();
    lab.daemon.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    teams.send(&TeamsUac::invite(
        "d1",
        TEAMS_NUMBER,
        "+49302222001",
        TENANT,
        OFFER,
    ));
    let r = teams.expect(503);
    assert!(header(&r, "Retry-After").is_some(), "{r}");
    let (status, took) = lab.daemon.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", lab.logs());
    assert!(took < Duration::from_secs(8), "{took:?}");
    // The daemon waited for its BYE to leave; the proxy's reader may take a moment more.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !proxy.requests().iter().any(|(m, _)| m == "BYE") {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}\n{}",
            proxy.requests(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    phone.wait_count("terminated", 1, Duration::from_secs(5));
}

/// A delayed offer from the PBX (sipp): we offer to Teams, Teams' answer becomes our offer
/// in the 200, and the PBX's answer arrives in the ACK (RFC 3264 §5, §3.2 of the reference).
/// Then 200 calls (sipp, the Teams proxy answering) leave nothing behind: no call, no media
/// session, every port back.
#[test]
fn delayed_offer_and_two_hundred_calls_leave_nothing_behind() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let token = lab.contact_token();
    let target = lab.ports.sip_addr();
    let ports_free = lab.metric("teamsgw_media_ports_free");
    assert!(ports_free > 0.0);

    let (code, out) = sipp("uac_delayed_offer.xml", target, "u1", 1, &["-s", &token]);
    assert_eq!(code, 0, "{out}\n{}", lab.logs());
    let invite = proxy
        .received()
        .into_iter()
        .map(|(_, text, _)| text)
        .find(|t| t.starts_with("INVITE "))
        .unwrap();
    assert!(
        invite.contains("RTP/SAVP") && invite.contains("a=crypto:"),
        "{invite}"
    );

    let (code, out) = sipp(
        "uac_call_bye.xml",
        target,
        "u1",
        200,
        &["-s", &token, "-r", "50", "-l", "20"],
    );
    let log = lab.daemon.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(
        code,
        0,
        "{}\n{}",
        &out[out.len().saturating_sub(3000)..],
        warnings.join("\n")
    );
    wait("every call to end", Duration::from_secs(20), || {
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}") == 0.0
    });
    assert_eq!(
        lab.metric("teamsgw_calls_total{direction=\"to_teams\",result=\"answered\"}"),
        201.0
    );
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
    assert_eq!(lab.metric("teamsgw_media_ports_free"), ports_free);
    assert_eq!(lab.cdrs(201).len(), 201);
}

/// Issue "mid-call" §3: RFC 4733 telephone-event passes. sipp, as a phone behind the PBX,
/// plays RFC 2833 events for digits 1 and 5 on the RTP leg; the Teams peer decrypts them from
/// teamsgw's SRTP.
#[test]
fn dtmf_from_the_pbx_reaches_teams_as_telephone_events_rfc4733() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let token = lab.contact_token();
    let media_port = free_port().to_string();
    let (code, out) = sipp(
        "uac_call_dtmf.xml",
        lab.ports.sip_addr(),
        "u1",
        1,
        &["-s", &token, "-mp", &media_port],
    );
    assert_eq!(code, 0, "{out}");
    let events = proxy.telephone_events();
    assert!(
        events.contains(&1) && events.contains(&5),
        "telephone events heard at Teams: {events:?}\n{}",
        lab.logs()
    );
    let first_five = events.iter().position(|&e| e == 5).unwrap();
    assert!(
        events[..first_five].contains(&1),
        "digit 1 before 5: {events:?}"
    );
}

/// Issue "mid-call" §1 (dsiprouter#489): a PBX re-INVITE with an unchanged SDP (sipp, same
/// `o=` version) is a session refresh: answered 200 on the PBX leg, and nothing reaches Teams.
#[test]
fn a_pbx_refresh_is_answered_on_its_leg_and_never_reaches_teams() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let token = lab.contact_token();
    let (code, out) = sipp(
        "uac_call_refresh.xml",
        lab.ports.sip_addr(),
        "u1",
        1,
        &["-s", &token],
    );
    assert_eq!(code, 0, "{out}");
    // sipp's BYE is answered on the PBX leg before ours reaches Teams over TLS.
    wait("our BYE at Teams", Duration::from_secs(5), || {
        proxy.requests().iter().any(|(m, _)| m == "BYE")
    });
    // Trunk health's OPTIONS aside, the Teams side saw the call only.
    let methods: Vec<String> = proxy
        .requests()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m != "OPTIONS")
        .collect();
    assert_eq!(methods, ["INVITE", "ACK", "BYE"], "Teams saw the refresh");
}
