//! Calls through the real daemon between real peers: Kamailio as the hosted PBX with baresip
//! phones behind it, and baresip as the Teams endpoint (mutual TLS, mandatory SDES-SRTP).
//! Audio is checked end to end: each side sends its own tone and must hear the other's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of, tone_of_tail};
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_uac::{NO_BODY, OFFER, TeamsUac, in_dialog};

const TEAMS_TONE: u32 = 1000;
const PHONE_TONE: u32 = 440;

fn assert_heard(what: &str, wav: &std::path::Path, hz: u32, logs: &str) {
    assert_tone(what, tone_of(wav), hz, logs);
}

/// Test 1 of the calls issue: a Teams user calls a PBX extension through teamsgw; Kamailio
/// challenges the INVITE and our answer is accepted; audio both ways; hang up from the PBX
/// side once and from the Teams side once.
#[test]
fn teams_user_calls_a_pbx_extension_with_audio_both_ways() {
    let lab = CallLab::start("", &[], 5061, None);
    let phone = lab.phone("2001", PHONE_TONE);
    let teams = lab.teams_endpoint(([127, 0, 0, 1], free_port()).into(), TEAMS_TONE);
    for (round, hang_up_from_phone) in [(1, true), (2, false)] {
        // The called DID maps to extension 2001 at the PBX (its last 4 digits).
        teams.dial(&format!("sip:+49302222001@{TENANT};transport=tls"));
        teams.wait_log("Call established", Duration::from_secs(15));
        phone.wait_log("Call established", Duration::from_secs(5));
        std::thread::sleep(Duration::from_secs(3));
        if hang_up_from_phone {
            phone.hangup();
        } else {
            teams.hangup();
        }
        lab.wait_calls_ended(&[&teams, &phone]);
        // RFC 3261 §12.1.1: Kamailio record-routes; the BYE, ours or the phone's, crossed it.
        assert_eq!(
            lab.kamailio.wait_log_count("routed in-dialog BYE", round),
            round,
            "{}",
            lab.logs()
        );
        // The recordings are complete once each endpoint has closed its call.
        teams.wait_count("terminated", round, Duration::from_secs(5));
        phone.wait_count("terminated", round, Duration::from_secs(5));
        let teams_heard = teams.heard();
        let phone_heard = phone.heard();
        assert_eq!(teams_heard.len(), round, "{}", teams.log());
        assert_heard(
            "the Teams endpoint",
            &teams_heard[round - 1],
            PHONE_TONE,
            &lab.logs(),
        );
        assert_heard(
            "the phone",
            &phone_heard[round - 1],
            TEAMS_TONE,
            &lab.logs(),
        );
    }
    assert_eq!(
        lab.daemon
            .metric("teamsgw_calls_total{direction=\"from_teams\",result=\"answered\"}"),
        2.0
    );
    assert_eq!(lab.daemon.metric("teamsgw_media_sessions_active"), 0.0);
    // One record per call, with media counted on both legs and nothing lost on loopback.
    let cdr = lab.cdrs(2);
    assert_eq!(cdr.len(), 2, "{cdr:?}");
    let by: Vec<&str> = cdr
        .iter()
        .map(|c| c["hung_up_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["pbx", "teams"]);
    for c in &cdr {
        assert_eq!(c["result"], "answered");
        assert_eq!(c["user"], "alice@contoso.test");
        assert!(c["answered_at"].is_string());
        for leg in ["teams", "pbx"] {
            assert!(c[leg]["packets_in"].as_i64().unwrap() > 50, "{c}");
            assert!(c[leg]["packets_out"].as_i64().unwrap() > 50, "{c}");
            // baresip 1.0 sends one SRTCP BYE as its call ends whose tag does not verify
            // (seen as PT 203, the last packet of the call); every other packet must
            // authenticate.
            let limit = i64::from(leg == "teams");
            assert!(
                c[leg]["srtp_auth_failures"].as_i64().unwrap() <= limit,
                "{c}"
            );
            assert!(c[leg]["lost"].as_i64().unwrap() <= 2, "{c}");
        }
    }
}

/// Test 2 of the calls issue: a phone calls the Teams user's extension; Kamailio finds our
/// contact token; the first Teams proxy is down (nothing listens), so the call fails over to
/// the second (§1.6), which rings the Teams endpoint; audio both ways.
#[test]
fn a_phone_calls_the_teams_user_and_the_call_fails_over_to_the_second_proxy() {
    let teams_sip = free_port();
    // baresip serves TLS on its SIP port + 1.
    let proxy_port = teams_sip + 1;
    let lab = CallLab::start("", &["127.0.0.2", "127.0.0.3"], proxy_port, None);
    let teams = lab.teams_endpoint(([127, 0, 0, 3], teams_sip).into(), TEAMS_TONE);
    let phone = lab.phone("2001", PHONE_TONE);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    teams.wait_log("Call established", Duration::from_secs(20));
    phone.wait_log("Call established", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    phone.hangup();
    lab.wait_calls_ended(&[&teams, &phone]);
    // RFC 3261 §12.1.1: our 200 carried Kamailio's Record-Route, so the phone's BYE crossed
    // Kamailio (without it the phone's route set is empty and a PBX proxy answers 404).
    assert_eq!(
        lab.kamailio.wait_log_count("routed in-dialog BYE", 1),
        1,
        "{}",
        lab.logs()
    );
    teams.wait_count("terminated", 1, Duration::from_secs(5));
    phone.wait_count("terminated", 1, Duration::from_secs(5));
    let logs = format!(
        "{}\n--- teams endpoint\n{}\n--- phone\n{}",
        lab.logs(),
        teams.log(),
        phone.log()
    );
    assert_heard("the Teams endpoint", &teams.heard()[0], PHONE_TONE, &logs);
    assert_heard("the phone", &phone.heard()[0], TEAMS_TONE, &logs);
    let cdr = lab.cdrs(1);
    assert_eq!(cdr.len(), 1, "{logs}");
    assert_eq!(cdr[0]["direction"], "to_teams", "{cdr:?}");
    assert_eq!(cdr[0]["teams_proxy"], "127.0.0.3", "{cdr:?}");
    assert!(
        cdr[0]["failovers"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.2:"),
        "{cdr:?}"
    );
    assert_eq!(
        lab.daemon
            .metric("teamsgw_calls_total{direction=\"to_teams\",result=\"answered\"}"),
        1.0
    );
}

/// Issue "mid-call", session timers: the "calls drop after 10-60 min" reports. Teams asks for
/// 90 s with itself as refresher (RFC 4028 §9) and refreshes every 45 s; the PBX offers no
/// timer, so teamsgw runs its own on the PBX leg (`pbx.session_expires_seconds = 90`) and
/// refreshes it through Kamailio to the phone. Without refreshes either leg would end at 60 s
/// (§10); the call is still up after three refresh rounds, 140 s, and no refresh crossed legs.
/// A second call, set up alongside, whose Teams side never refreshes is ended at 60 s on both
/// legs with a Reason, and its CDR says why (§10: BYE at the interval less min(32 s, a third)).
#[test]
fn a_call_outlives_several_session_refresh_intervals_on_both_legs() {
    use teamsgw_tests::teams_uac::{header, sdp};
    let lab = CallLab::start_with_env(
        "",
        &[],
        5061,
        None,
        &[("TEAMSGW_PBX__SESSION_EXPIRES_SECONDS", "90")],
        &[],
    );
    let phone = lab.phone("2001", PHONE_TONE);
    let mut teams = lab.teams_uac();
    let timer = "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n";
    let invite = TeamsUac::invite(
        "st-e2e",
        teamsgw_tests::call_lab::TEAMS_NUMBER,
        "+49302222001",
        TENANT,
        OFFER,
    )
    .replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{timer}"),
    );
    teams.send(&invite);
    let ok = teams.expect(200);
    assert_eq!(
        header(&ok, "Session-Expires"),
        Some("90;refresher=uac"),
        "{ok}"
    );
    assert_eq!(header(&ok, "Require"), Some("timer"), "{ok}");
    teams.send(&in_dialog("ACK", "st-e2e", 1, &ok, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    // The call that stops refreshing, to the phone at extension 2002, on its own connection.
    let silent_phone = lab.phone("2002", PHONE_TONE);
    let mut silent = lab.teams_uac();
    silent.send(
        &TeamsUac::invite(
            "st-silent",
            teamsgw_tests::call_lab::TEAMS_NUMBER,
            "+49302222002",
            TENANT,
            OFFER,
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{timer}"),
        ),
    );
    let silent_ok = silent.expect(200);
    silent.send(&in_dialog("ACK", "st-silent", 1, &silent_ok, "", NO_BODY));
    silent_phone.wait_log("Call established", Duration::from_secs(10));
    lab.assert_active("from_teams", 2);
    let invites_at_pbx = || {
        let out = lab
            .kamailio
            .kamcmd(&["stats.get_statistics", "rcv_requests_invite"])
            .unwrap_or_default();
        out.split('=')
            .nth(1)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    let before = invites_at_pbx();
    for round in 0..3u32 {
        std::thread::sleep(Duration::from_secs(45));
        let cseq = 2 + round;
        teams.send(&in_dialog("INVITE", "st-e2e", cseq, &ok, timer, sdp(OFFER)));
        let answer = teams.expect(200);
        assert_eq!(
            header(&answer, "Session-Expires"),
            Some("90;refresher=uac"),
            "round {round}: {answer}"
        );
        teams.send(&in_dialog("ACK", "st-e2e", cseq, &ok, "", NO_BODY));
        // Both calls are up at 45 s; from 90 s on only the refreshed one is.
        let expected = if round == 0 { 2.0 } else { 1.0 };
        assert_eq!(
            lab.metric("teamsgw_calls_active{direction=\"from_teams\"}"),
            expected,
            "round {round}: a call ended, or the silent one did not\n{}",
            lab.logs()
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    lab.assert_active("from_teams", 1);
    // The silent call ended on both legs, each BYE with the reason (§10).
    let bye = silent.expect_request("BYE");
    assert!(
        header(&bye, "Reason").is_some_and(|r| r.contains("session expired")),
        "{bye}"
    );
    silent.reply(&bye, 200, "OK");
    silent_phone.wait_log("session closed", Duration::from_secs(5));
    // Our refreshes on the PBX leg reached the PBX: the refreshed call's at 45, 90 and 135 s,
    // and the silent call's at 45 s (we refresh the PBX leg while Teams is silent). Teams'
    // three refreshes stayed on its leg: relayed, they would make seven.
    let refreshes = invites_at_pbx() - before;
    assert!(
        (4..=5).contains(&refreshes),
        "{refreshes} re-INVITEs reached the PBX, expected 4 (5 with one late)\n{}",
        lab.logs()
    );
    teams.send(&in_dialog("BYE", "st-e2e", 10, &ok, "", NO_BODY));
    teams.expect(200);
    phone.wait_log("session closed", Duration::from_secs(10));
    let cdrs = lab.cdrs(2);
    let cdr_of = |call_id: &str| {
        cdrs.iter()
            .find(|c| c["call_id"] == call_id)
            .unwrap_or_else(|| panic!("no CDR for {call_id}: {cdrs:?}"))
    };
    let cdr = cdr_of("st-e2e");
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "teams", "{cdr}");
    let cdr = cdr_of("st-silent");
    assert_eq!(cdr["hung_up_by"], "gateway", "{cdr}");
    assert_eq!(
        cdr["reason"], "teams stopped refreshing the session",
        "{cdr}"
    );
}

/// The SDP body of a message from a baresip SIP trace.
fn body(msg: &str) -> &str {
    msg.split_once("\n\n").map_or("", |(_, b)| b)
}

/// The media direction of an SDP (RFC 3264 §5.1: `sendrecv` when none is given).
fn direction(sdp: &str) -> &str {
    ["sendonly", "recvonly", "inactive", "sendrecv"]
        .into_iter()
        .find(|d| sdp.lines().any(|l| l == format!("a={d}")))
        .unwrap_or("sendrecv")
}

/// What anchors the Teams leg's media (§3.5): connection address, audio port, crypto line and
/// rtcp-mux.
fn anchor(sdp: &str) -> (String, String, String, bool) {
    let line = |prefix: &str| {
        sdp.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{sdp}"))
            .to_owned()
    };
    let port = line("m=audio ").split(' ').nth(1).unwrap().to_owned();
    (
        line("c="),
        port,
        line("a=crypto:"),
        sdp.lines().any(|l| l == "a=rtcp-mux"),
    )
}

/// The SDP of the newest message from `peer`'s host (any connection) that `endpoint` received and that starts with
/// `start` (`INVITE ` for an offer, `SIP/2.0 200` for an answer) and carries one.
fn last_sdp(
    endpoint: &teamsgw_tests::baresip::Baresip,
    peer: std::net::SocketAddr,
    start: &str,
) -> String {
    let msgs = endpoint.received_from_host(peer);
    msgs.iter()
        .rev()
        .find(|m| m.starts_with(start) && body(m).contains("m=audio"))
        .map(|m| body(m).to_owned())
        .unwrap_or_else(|| panic!("no {start:?} with SDP from {peer}:\n{msgs:#?}"))
}

/// Issue "mid-call" §1 and its hold acceptance: the phone holds (baresip sends a=sendonly
/// through Kamailio); teamsgw answers it on the PBX leg and holds Teams with a=inactive and a
/// real address (§3.6), keeping the Teams leg's address, port, key and rtcp-mux (§3.5), so no
/// media goes to Teams; 12 s on hold outlast the 10 s media timeout (timeouts never fire while
/// held). The phone resumes, Teams is resumed, and audio flows both ways again. Then Teams
/// holds (a=sendonly), the phone is held with a=sendonly and resumed with a=sendrecv, and
/// after the last resume each side hears the other's tone. The SDP is read off each
/// endpoint's SIP trace.
#[test]
fn hold_and_resume_from_the_phone_reach_teams_and_audio_returns() {
    let mut lab = CallLab::start("", &[], 5061, None);
    lab.sip_trace = true;
    let sbc: std::net::SocketAddr = ([127, 0, 0, 1], lab.ports.tls).into();
    let pbx = lab.kamailio.addr;
    let phone = lab.phone("2001", PHONE_TONE);
    let teams = lab.teams_endpoint(([127, 0, 0, 1], free_port()).into(), TEAMS_TONE);
    teams.dial(&format!("sip:+49302222001@{TENANT};transport=tls"));
    teams.wait_log("Call established", Duration::from_secs(15));
    phone.wait_log("Call established", Duration::from_secs(5));
    let answer = last_sdp(&teams, sbc, "SIP/2.0 200");
    let teams_anchor = anchor(&answer);
    assert!(teams_anchor.3, "rtcp-mux was offered: {answer}");
    std::thread::sleep(Duration::from_secs(2));
    let second = Duration::from_secs(1);
    assert!(
        lab.packet_rate("teams", "out", second) > 30.0,
        "{}",
        lab.logs()
    );

    phone.command("hold", "");
    std::thread::sleep(Duration::from_secs(2));
    let hold = last_sdp(&teams, sbc, "INVITE ");
    assert_eq!(
        direction(&hold),
        "inactive",
        "PBX hold towards Teams (§3.6): {hold}"
    );
    assert!(!hold.contains("0.0.0.0"), "§3.6: a real address: {hold}");
    assert_eq!(
        anchor(&hold),
        teams_anchor,
        "§3.5: the anchor stays: {hold}"
    );
    let held = lab.packet_rate("teams", "out", Duration::from_secs(10));
    assert!(
        held < 2.0,
        "{held} packets/s still sent to the held Teams side\n{}",
        teams.log()
    );
    assert_eq!(
        lab.metric("teamsgw_calls_active{direction=\"from_teams\"}"),
        1.0,
        "the held call ended\n{}",
        lab.logs()
    );

    phone.command("resume", "");
    std::thread::sleep(Duration::from_secs(2));
    let resume = last_sdp(&teams, sbc, "INVITE ");
    assert_eq!(direction(&resume), "sendrecv", "{resume}");
    assert_eq!(anchor(&resume), teams_anchor, "{resume}");
    let to_teams = lab.packet_rate("teams", "out", Duration::from_secs(2));
    let from_teams = lab.packet_rate("teams", "in", Duration::from_secs(2));
    assert!(
        to_teams > 30.0 && from_teams > 30.0,
        "after resume: {to_teams} out, {from_teams} in, {} SRTP auth failures\n{}",
        lab.metric("teamsgw_media_srtp_auth_failures_total"),
        teams.log()
    );

    // Now Teams (baresip: a=sendonly) holds: the phone gets our re-INVITE through Kamailio
    // with a=sendonly (so the PBX can play music on hold), Teams our answer on the same
    // anchor, and nothing goes to Teams until it resumes.
    let reinvites = phone.count_log("got re-INVITE");
    teams.command("hold", "");
    phone.wait_count("got re-INVITE", reinvites + 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let to_phone = last_sdp(&phone, pbx, "INVITE ");
    assert_eq!(
        direction(&to_phone),
        "sendonly",
        "Teams hold to the PBX: {to_phone}"
    );
    let answer = last_sdp(&teams, sbc, "SIP/2.0 200");
    assert_eq!(anchor(&answer), teams_anchor, "{answer}");
    let held = lab.packet_rate("teams", "out", Duration::from_secs(3));
    assert!(held < 2.0, "{held} packets/s sent to Teams while it holds");
    teams.command("resume", "");
    phone.wait_count("got re-INVITE", reinvites + 2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let to_phone = last_sdp(&phone, pbx, "INVITE ");
    assert_eq!(direction(&to_phone), "sendrecv", "{to_phone}");
    let answer = last_sdp(&teams, sbc, "SIP/2.0 200");
    assert_eq!(
        (direction(&answer), anchor(&answer)),
        ("sendrecv", teams_anchor.clone())
    );
    let to_teams = lab.packet_rate("teams", "out", Duration::from_secs(2));
    let to_phone = lab.packet_rate("pbx", "out", Duration::from_secs(2));
    assert!(
        to_teams > 30.0 && to_phone > 30.0,
        "after Teams resumed: {to_teams} to Teams, {to_phone} to the phone"
    );
    std::thread::sleep(Duration::from_secs(2));
    teams.hangup();
    lab.wait_calls_ended(&[&teams, &phone]);
    teams.wait_count("terminated", 1, Duration::from_secs(5));
    phone.wait_count("terminated", 1, Duration::from_secs(5));
    // Audio after the last resume, both ways: the last 3 s of each recording.
    for (who, endpoint, hz) in [
        ("Teams", &teams, PHONE_TONE),
        ("the phone", &phone, TEAMS_TONE),
    ] {
        let heard = endpoint.heard();
        let wav = heard
            .last()
            .unwrap_or_else(|| panic!("{who} recorded nothing"));
        assert_tone(who, tone_of_tail(wav, 3.0), hz, &endpoint.log());
    }
    // Every SDP Teams got from us kept the anchor and never held with 0.0.0.0 (§3.6).
    for msg in teams.received_from_host(sbc) {
        let sdp = body(&msg);
        if sdp.contains("m=audio") {
            assert_eq!(anchor(sdp), teams_anchor, "{msg}");
        }
    }
    let cdr = &lab.cdrs(1)[0];
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "teams", "{cdr}");
}

/// RFC 3261 §12.1.1 towards Teams: Microsoft's proxies may record-route the INVITE; the 18x
/// and the 200 from the real daemon copy its Record-Route values in order, and the call still
/// reaches the phone and ends.
#[test]
fn a_record_routed_teams_invite_gets_its_route_set_back_in_the_18x_and_the_200() {
    let lab = CallLab::start("", &[], 5061, None);
    // Answered by hand, so the 180 always comes first.
    let phone = lab.phone_answering("2001", PHONE_TONE, false);
    let mut teams = lab.teams_uac();
    let rr = "Record-Route: <sip:rr1.pstnhub.microsoft.com:5061;transport=tls;lr>\r\n\
              Record-Route: <sip:rr2.pstnhub.microsoft.com;lr>\r\n";
    let invite = TeamsUac::invite("rr-e2e", TEAMS_NUMBER, "+49302222001", TENANT, OFFER).replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{rr}"),
        1,
    );
    teams.send(&invite);
    let wanted = "\r\nRecord-Route: <sip:rr1.pstnhub.microsoft.com:5061;transport=tls;lr>\r\n\
                  Record-Route: <sip:rr2.pstnhub.microsoft.com;lr>\r\n";
    let ringing = teams.expect(180);
    assert!(ringing.contains(wanted), "{ringing}");
    phone.wait_log("Incoming call", Duration::from_secs(5));
    phone.command("accept", "");
    let ok = teams.expect(200);
    assert!(ok.contains(wanted), "{ok}");
    teams.send(&in_dialog("ACK", "rr-e2e", 1, &ok, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    teams.send(&in_dialog("BYE", "rr-e2e", 2, &ok, "", NO_BODY));
    teams.expect(200);
    lab.wait_calls_ended(&[&phone]);
}
