//! Calls through the real daemon between real peers: Kamailio as the hosted PBX with baresip
//! phones behind it, and baresip as the Teams endpoint (mutual TLS, mandatory SDES-SRTP).
//! Audio is checked end to end: each side sends its own tone and must hear the other's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::baresip::tone_of;
use teamsgw_tests::call_lab::{CallLab, TENANT};
use teamsgw_tests::free_port;

const TEAMS_TONE: u32 = 1000;
const PHONE_TONE: u32 = 440;

fn assert_heard(what: &str, wav: &std::path::Path, hz: u32, logs: &str) {
    let (freq, rms) = tone_of(wav);
    assert!(
        rms > 500.0 && (freq - f64::from(hz)).abs() < f64::from(hz) * 0.1,
        "{what} heard {freq:.0} Hz at RMS {rms:.0}, expected {hz} Hz\n{logs}"
    );
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
        Some(2.0)
    );
    assert_eq!(
        lab.daemon.metric("teamsgw_media_sessions_active"),
        Some(0.0)
    );
}
