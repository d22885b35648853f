//! Emergency calls from Teams (teams-direct-routing.md: Dynamic E911 with -PidfLoSupported):
//! the INVITE's multipart/mixed body (RFC 6442 §3: SDP and a PIDF-LO) is bridged with our SDP
//! in place of Teams' and the location byte for byte (RFC 2046 §5.1), Geolocation passes
//! (RFC 6442 §4), the number reaches the PBX as dialled, and a direct route at its
//! `max_sessions` still takes the call.

use super::world::*;
use crate::call::CallEvent;

const PIDF: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:gp=\"urn:ietf:params:xml:ns:pidf:geopriv10\" entity=\"pres:alice@contoso.com\">\r\n <tuple id=\"loc1\"><status><gp:geopriv><gp:location-info>Redmond</gp:location-info></gp:geopriv></status></tuple>\r\n</presence>";

fn emergency_invite(call_id: &str) -> String {
    let body = format!(
        "--e911\r\nContent-Type: application/sdp\r\n\r\n{TEAMS_SDP}\r\n\
         --e911\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc1@contoso.com>\r\n\r\n{PIDF}\r\n--e911--\r\n"
    );
    teams_invite(call_id, "+4930111", "911", TENANT, "").replacen(
        "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
        &format!(
            "Geolocation: <cid:loc1@contoso.com>\r\nGeolocation-Routing: yes\r\n\
                 Content-Type: multipart/mixed;boundary=e911\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        1,
    )
}

#[test]
fn an_emergency_call_carries_its_location_and_passes_a_full_direct_route() {
    let mut w = World::with(view(Some(1)), 10);
    // The direct route's one session is taken.
    w.teams_sends(teams_invite(
        "busy", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(TEAMS_PEER, "100");
    w.expect(PBX_ADDR, "INVITE");

    w.teams_sends(emergency_invite("e1"));
    w.expect(TEAMS_PEER, "100");
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    assert!(w.refusals().is_empty(), "{:?}", w.refusals());
    assert!(
        to_pbx
            .text()
            .starts_with("INVITE sip:911@pbx.example.com SIP/2.0\r\n"),
        "the number as dialled: {}",
        to_pbx.text()
    );
    assert_eq!(
        to_pbx.header("Geolocation").unwrap(),
        "<cid:loc1@contoso.com>"
    );
    assert_eq!(to_pbx.header("Geolocation-Routing").unwrap(), "yes");
    assert_eq!(
        to_pbx.header("Content-Type").unwrap(),
        "multipart/mixed;boundary=e911"
    );
    let body = to_pbx.body();
    let parts = teamsgw_sip::multipart::parse(b"e911", body.as_bytes()).unwrap();
    assert_eq!(parts.len(), 2, "{body}");
    // Our RTP offer in place of Teams' SRTP one; the location untouched.
    assert!(parts[0].is("application", "sdp"));
    let sdp = String::from_utf8_lossy(parts[0].body);
    assert!(sdp.contains("RTP/AVP") && !sdp.contains("crypto"), "{sdp}");
    assert_eq!(parts[1].body, PIDF.as_bytes());
    assert_eq!(
        parts[1].headers,
        b"Content-Type: application/pidf+xml\r\nContent-ID: <loc1@contoso.com>"
    );
    let emergency: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Emergency {
                number, location, ..
            } => Some((number.clone(), *location)),
            _ => None,
        })
        .collect();
    assert_eq!(emergency, [("911".to_owned(), true)]);

    w.pbx_sends(reply(&to_pbx, 200, "OK", "k9", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    assert!(ok.body().contains("RTP/SAVP"), "{}", ok.body());
    assert_eq!(w.core.active(), 2);
}

#[test]
fn a_malformed_multipart_body_gets_400_and_holds_nothing() {
    let mut w = World::new();
    let invite = emergency_invite("e2").replace("--e911--", "--e911-");
    w.teams_sends(invite);
    let r = w.expect(TEAMS_PEER, "400");
    assert!(
        r.header("Warning").unwrap().contains("multipart"),
        "{}",
        r.text()
    );
    assert_eq!(w.refusals(), ["bad_body"]);
    w.assert_clean();
}

#[test]
fn a_call_to_another_number_at_the_limit_is_still_refused() {
    let mut w = World::with(view(Some(1)), 10);
    w.teams_sends(teams_invite(
        "busy", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
    w.teams_sends(teams_invite("x", "+4930111", "9110", TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "503");
    assert_eq!(w.refusals(), ["max_sessions"]);
}

#[test]
fn an_enterprise_with_its_own_emergency_numbers_uses_them_instead_of_the_defaults() {
    // A customer whose emergency number is 118 on a platform whose defaults are 911 etc.
    let mut w = World::with(
        view_with_tenant(Some(1), |t| t.emergency_numbers = Some(vec!["118".into()])),
        10,
    );
    w.teams_sends(teams_invite(
        "busy", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
    w.teams_sends(teams_invite("e118", "+4930111", "118", TENANT, TEAMS_SDP));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    assert!(
        to_pbx
            .text()
            .starts_with("INVITE sip:118@pbx.example.com SIP/2.0\r\n"),
        "{}",
        to_pbx.text()
    );
    assert!(w.refusals().is_empty(), "{:?}", w.refusals());
    // 911 is not this enterprise's emergency number: the limit applies to it.
    w.teams_sends(teams_invite("e911", "+4930111", "911", TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "503");
    assert_eq!(w.refusals(), ["max_sessions"]);
}
