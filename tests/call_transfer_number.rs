//! Transfer to a number (teams-direct-routing.md §3.7) through the real daemon: the in-house
//! Teams client transfers a baresip phone behind Kamailio to another extension. teamsgw
//! hands the transfer to the PBX (our REFER on the PBX leg), the phone calls the target
//! itself, and its NOTIFYs reach Teams. A PBX that refuses REFER gets the transfer as a call
//! teamsgw places itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of, tone_of_tail};
use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::teams_uac::{NO_BODY, TeamsUac, header, in_dialog};

/// Extension 2001 as Teams dials it; the transfer target is extension 2002.
const PHONE_NUMBER: &str = "+49302222001";
const TARGET: &str = "<sip:+49302222002@sip.pstnhub.microsoft.com:5061;user=phone>";

fn call_and_refer(lab: &CallLab, call_id: &str) -> (TeamsUac, String) {
    let mut teams = lab.teams_uac();
    let ok = teams.call(call_id, TEAMS_NUMBER, PHONE_NUMBER, TENANT);
    std::thread::sleep(Duration::from_secs(1));
    let headers = format!("Refer-To: {TARGET}\r\nReferred-By: <sip:{TEAMS_NUMBER}@{TENANT}>\r\n");
    teams.send(&in_dialog("REFER", call_id, 2, &ok, &headers, NO_BODY));
    teams.expect(202);
    (teams, ok)
}

/// Answers NOTIFYs until the one that ends the subscription; returns the sipfrags.
fn notifies(teams: &mut TeamsUac) -> Vec<String> {
    let mut frags = Vec::new();
    loop {
        let n = teams.expect_request("NOTIFY");
        teams.reply(&n, 200, "OK");
        frags.push(
            n.split("\r\n\r\n")
                .nth(1)
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
        );
        let state = header(&n, "Subscription-State").unwrap_or_default();
        if state.starts_with("terminated") {
            return frags;
        }
    }
}

/// Acceptance "REFER to a number", the PBX that takes it: Kamailio routes our REFER to the
/// phone, which calls the target; Teams hears the progress, our call ends, and the phone
/// and the target hear each other's tones.
#[test]
fn a_refer_to_a_number_is_done_by_the_pbx_side_and_the_parties_hear_each_other() {
    let lab = CallLab::start("", &[], 5061, None);
    let phone = lab.phone("2001", 440);
    let target = lab.phone("2002", 880);
    let (mut teams, _ok) = call_and_refer(&lab, "xfer-num");
    let frags = notifies(&mut teams);
    assert_eq!(
        frags.first().map(String::as_str),
        Some("SIP/2.0 100 Trying"),
        "{frags:?}"
    );
    assert!(
        frags.last().is_some_and(|f| f.starts_with("SIP/2.0 200")),
        "{frags:?}\n{}\n{}",
        phone.log(),
        lab.logs()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !lab.kamailio.log().contains(" to 2002-") {
        assert!(
            std::time::Instant::now() < deadline,
            "the phone never called the target:\n{}\n{}\n{}",
            phone.log(),
            target.log(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The phone leaves our leg; Teams' leg ends with it.
    let bye = teams.expect_request("BYE");
    teams.reply(&bye, 200, "OK");
    lab.wait_calls_ended(&[&phone, &target]);
    std::thread::sleep(Duration::from_secs(3));
    phone.hangup();
    target.wait_count("terminated", 1, Duration::from_secs(10));
    let heard = target.heard();
    assert_tone("the target", tone_of(&heard[0]), 440, &target.log());
    let heard = phone.heard();
    assert_tone(
        "the phone",
        tone_of(heard.last().unwrap()),
        880,
        &phone.log(),
    );
    let cdr = &lab.cdrs(1)[0];
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
}

/// Acceptance "REFER to a number", the PBX that refuses it (405): teamsgw does the transfer
/// itself. It calls the target as the Teams user (Kamailio challenges and routes it like any
/// call the user makes), gives the target's offer to the phone in a re-INVITE, ends the Teams
/// leg, and the phone and the target hear each other's tones, party to party.
#[test]
fn a_pbx_that_refuses_refer_gets_the_transfer_as_our_call_and_the_parties_hear_each_other() {
    let lab = CallLab::start_with_env("", &[], 5061, None, &[], &["REFUSE_REFER"]);
    let phone = lab.phone("2001", 440);
    let target = lab.phone("2002", 880);
    let (mut teams, _ok) = call_and_refer(&lab, "xfer-405");
    let frags = notifies(&mut teams);
    assert_eq!(
        frags.first().map(String::as_str),
        Some("SIP/2.0 100 Trying"),
        "{frags:?}"
    );
    assert_eq!(
        frags.last().map(String::as_str),
        Some("SIP/2.0 200 OK"),
        "{frags:?}\n{}\n{}\n{}",
        phone.log(),
        target.log(),
        lab.logs()
    );
    assert!(
        lab.kamailio.log().contains("REFER refused"),
        "Kamailio took the REFER:\n{}",
        lab.kamailio.log()
    );
    let bye = teams.expect_request("BYE");
    assert!(
        header(&bye, "Reason").is_some_and(|r| r.contains("transferred")),
        "{bye}"
    );
    teams.reply(&bye, 200, "OK");
    // Media goes party to party: the relay holds nothing, the call goes on in signalling.
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
    lab.assert_active("from_teams", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(phone.count_log("terminated"), 0, "{}", phone.log());
    phone.hangup();
    target.wait_count("terminated", 1, Duration::from_secs(10));
    lab.wait_calls_ended(&[&phone, &target]);
    let heard = target.heard();
    assert_tone("the target", tone_of(&heard[0]), 440, &target.log());
    let heard = phone.heard();
    assert_tone(
        "the phone",
        tone_of_tail(heard.last().unwrap(), 2.0),
        880,
        &phone.log(),
    );
    let cdr = &lab.cdrs(1)[0];
    assert_eq!(cdr["call_id"], "xfer-405", "{cdr}");
    assert_eq!(
        lab.metric("teamsgw_call_transfers_total{kind=\"number\",result=\"completed\"}"),
        1.0
    );
}
