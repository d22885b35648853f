//! An emergency call from Teams through the real daemon (teams-direct-routing.md: Dynamic
//! E911 with -PidfLoSupported; RFC 6442): the INVITE to 911 carries SDP plus a PIDF-LO in a
//! multipart/mixed body and a Geolocation header, the direct route's `max_sessions` (1) is
//! already used up, and still the call reaches Kamailio (the PBX) with the PIDF part byte for
//! byte and Geolocation kept, rings the "911" phone behind it (Kamailio hands the phone the SDP
//! part alone, as baresip takes no multipart body), and has audio both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of, tone_of_samples};
use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::teams_media::{TEAMS_MEDIA_TONE, TeamsMedia};
use teamsgw_tests::teams_uac::{NO_BODY, TeamsUac, in_dialog};

const PSAP_TONE: u32 = 440;
const PIDF: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:gp=\"urn:ietf:params:xml:ns:pidf:geopriv10\" entity=\"pres:alice@contoso.test\">\r\n <tuple id=\"loc1\"><status><gp:geopriv><gp:location-info>Building 7, floor 3</gp:location-info></gp:geopriv></status></tuple>\r\n</presence>";

/// Teams' emergency INVITE: multipart/mixed with `sdp` and the PIDF-LO (RFC 6442 §3).
fn emergency_invite(call_id: &str, sdp: &str) -> String {
    let body = format!(
        "--e911\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n\
         --e911\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc1@contoso.test>\r\n\r\n{PIDF}\r\n--e911--\r\n"
    );
    TeamsUac::invite(call_id, TEAMS_NUMBER, "911", TENANT, "").replacen(
        "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
        &format!(
            "Geolocation: <cid:loc1@contoso.test>\r\nGeolocation-Routing: yes\r\n\
             Content-Type: multipart/mixed;boundary=e911\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        1,
    )
}

#[test]
fn an_emergency_call_with_a_location_passes_a_full_direct_route_with_audio_both_ways() {
    let lab = CallLab::start("", &[], 5061, Some(1));
    let psap = lab.phone("911", PSAP_TONE);
    let other = lab.phone("2001", PSAP_TONE);
    // The direct route's one session is taken by an ordinary call.
    let mut busy = lab.teams_uac();
    let busy_ok = busy.call("busy-1", TEAMS_NUMBER, "+49302222001", TENANT);
    other.wait_log("Call established", Duration::from_secs(10));

    let media = TeamsMedia::bind(Arc::new(Mutex::new(Vec::new()))).unwrap();
    let heard = media.heard();
    let offer = media.sdp("0 8", 1, 7, 1);
    let mut teams = lab.teams_uac();
    teams.send(&emergency_invite("e911-1", &offer));
    let ok = teams.expect(200);
    let answer = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
    media
        .answered(answer.as_bytes())
        .unwrap_or_else(|| panic!("no usable SDES answer: {ok}"));
    teams.send(&in_dialog("ACK", "e911-1", 1, &ok, "", NO_BODY));
    psap.wait_log("Call established", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert_tone(
        "Teams' side of the emergency call",
        tone_of_samples(8000, &heard.lock().unwrap()),
        PSAP_TONE,
        &lab.logs(),
    );
    teams.send(&in_dialog("BYE", "e911-1", 2, &ok, "", NO_BODY));
    teams.expect(200);
    psap.wait_count("terminated", 1, Duration::from_secs(10));
    assert_tone(
        "the 911 phone",
        tone_of(&psap.heard()[0]),
        TEAMS_MEDIA_TONE,
        &lab.logs(),
    );

    // What the PBX got: the location part byte for byte, Geolocation kept; and the phone
    // was called at the number as dialled.
    let pbx_log = lab.kamailio.log();
    let seen = pbx_log
        .split("INVITE multipart ")
        .nth(1)
        .unwrap_or_else(|| panic!("no multipart INVITE at the PBX:\n{pbx_log}"));
    assert!(
        seen.starts_with("geolocation=<<cid:loc1@contoso.test>>"),
        "{seen}"
    );
    let pidf_part = format!(
        "\r\n--e911\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc1@contoso.test>\r\n\r\n{PIDF}\r\n--e911--"
    );
    assert!(seen.contains(&pidf_part), "{seen}");
    assert!(pbx_log.contains("INVITE from 1001 to 911-"), "{pbx_log}");

    assert_eq!(
        lab.metric("teamsgw_emergency_calls_total{enterprise=\"Contoso\"}"),
        1.0
    );
    assert!(
        lab.daemon.log().contains("emergency call from Teams"),
        "{}",
        lab.logs()
    );
    busy.send(&in_dialog("BYE", "busy-1", 2, &busy_ok, "", NO_BODY));
    busy.expect(200);
    lab.wait_calls_ended(&[&psap, &other]);
    // The CDRs tell the emergency call apart.
    let cdrs = lab.cdrs(2);
    let marks: Vec<(&str, bool)> = cdrs
        .iter()
        .map(|c| {
            (
                c["callee"].as_str().unwrap(),
                c["emergency"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(marks.contains(&("911", true)), "{cdrs:?}");
    assert!(marks.contains(&("+49302222001", false)), "{cdrs:?}");
}
