//! A Teams user calls out through their PBX (teams-direct-routing.md §3.1, §3.3, §3.8).

use super::world::*;
use crate::call::{Direction, Input, Side};

const CALLEE: &str = "+4930222";

fn invite(w: &mut World, id: &str) -> Sent {
    w.teams_sends(teams_invite(id, "+4930111", CALLEE, TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "100");
    w.expect(PBX_ADDR, "INVITE")
}

#[test]
fn whole_call_with_digest_ringing_answer_and_bye_from_teams() {
    let mut w = World::new();
    let first = invite(&mut w, "c1");
    // §3.1 + issue: Request-URI is the called number @ the PBX domain, From the extension.
    assert!(
        first
            .text()
            .starts_with("INVITE sip:+4930222@pbx.example.com SIP/2.0\r\n"),
        "{}",
        first.text()
    );
    assert!(
        first
            .header("From")
            .unwrap()
            .starts_with("\"Alice\" <sip:1001@pbx.example.com>;tag=")
    );
    assert_eq!(
        first.header("Contact").unwrap(),
        "<sip:tok1@203.0.113.5:5060>"
    );
    // The PBX offer: RTP/AVP, G.711 in the PBX's order, no SRTP or ICE lines.
    let sdp = first.body();
    assert!(
        sdp.contains("m=audio 40006 RTP/AVP 8 0 13 101\r\n"),
        "{sdp}"
    );
    assert!(
        !sdp.contains("crypto") && !sdp.contains("ice-") && !sdp.contains("candidate"),
        "{sdp}"
    );
    // RFC 3261 §22.2: a 407 is answered once with the user's credentials, CSeq incremented.
    let challenge =
        "Proxy-Authenticate: Digest realm=\"pbx.example.com\", nonce=\"n1\", qop=\"auth\"";
    w.pbx_sends(reply(
        &first,
        407,
        "Proxy Authentication Required",
        "k1",
        challenge,
        None,
    ));
    let second = w.expect(PBX_ADDR, "INVITE");
    assert!(
        second
            .header("Proxy-Authorization")
            .unwrap()
            .contains("username=\"1001\"")
    );
    assert!(second.header("CSeq").unwrap().starts_with("2 INVITE"));
    assert_eq!(second.header("Call-ID"), first.header("Call-ID"));
    // The 407's ACK (RFC 3261 §17.1.1.3) went to the PBX too.
    w.expect(PBX_ADDR, "ACK");

    w.pbx_sends(reply(&second, 180, "Ringing", "k2", "", None));
    let ringing = w.expect(TEAMS_PEER, "180");
    assert_eq!(
        ringing.header("Contact").unwrap(),
        format!("<sip:{TENANT}:5061;transport=tls>")
    );
    w.pbx_sends(reply(&second, 200, "OK", "k2", "", Some(PBX_SDP)));
    let ack = w.expect(PBX_ADDR, "ACK");
    assert!(ack.header("To").unwrap().contains("tag=k2"));
    let ok = w.expect(TEAMS_PEER, "200");
    // §3.1: Contact carries the tenant FQDN; §3.2: X-MS-SBC.
    assert_eq!(
        ok.header("Contact").unwrap(),
        format!("<sip:{TENANT}:5061;transport=tls>")
    );
    assert_eq!(ok.header("X-MS-SBC").unwrap(), "Carrier/teamsgw/1.0");
    let answer = ok.body();
    // §4.1: SRTP with our key, rtcp-mux kept, only the codec the PBX chose.
    assert!(
        answer.contains("m=audio 40004 RTP/SAVP 8 101\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{answer}"
    );
    assert!(answer.contains("a=rtcp-mux"), "{answer}");
    let params = w.applied();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].teams.remote, Some(addr("52.114.14.70:52884")));
    assert_eq!(params[0].pbx.remote_rtp, Some(addr("192.0.2.20:30000")));

    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.teams_sends(in_dialog("BYE", &ok, true, 2, None));
    w.expect(TEAMS_PEER, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert!(bye.header("To").unwrap().contains("tag=k2"));
    let r = w.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].direction, Direction::FromTeams);
    assert_eq!(r[0].result, "answered");
    assert_eq!(r[0].hung_up_by, Some(Side::Teams));
    assert_eq!(r[0].codec.as_deref(), Some("PCMA"));
    assert!(r[0].answered.is_some());
    w.assert_clean();
}

#[test]
fn bye_from_the_pbx_ends_the_teams_leg() {
    let mut w = World::new();
    let inv = invite(&mut w, "c2");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(PBX_SDP)));
    let ack = w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.pbx_sends(in_dialog("BYE", &ack, false, 5, None));
    w.expect(PBX_ADDR, "200");
    let bye = w.expect(TEAMS_PEER, "BYE");
    // The BYE is inside Teams' dialog: our tag in From, Teams' in To.
    assert!(bye.header("To").unwrap().contains("tag=tf"));
    assert_eq!(w.records()[0].hung_up_by, Some(Side::Pbx));
    w.assert_clean();
}

#[test]
fn early_media_from_the_pbx_is_a_183_with_sdp_to_teams() {
    let mut w = World::new();
    let inv = invite(&mut w, "c3");
    w.pbx_sends(reply(&inv, 183, "Session Progress", "k", "", Some(PBX_SDP)));
    let early = w.expect(TEAMS_PEER, "183");
    assert!(early.body().contains("RTP/SAVP"));
    assert_eq!(w.applied().len(), 1, "media flows during early media");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", None));
    let ok = w.expect(TEAMS_PEER, "200");
    assert_eq!(ok.body(), early.body(), "the 200 repeats the early answer");
}

#[test]
fn busy_is_486_with_q850_cause_17_towards_teams_reference_3_8() {
    let mut w = World::new();
    let inv = invite(&mut w, "c4");
    w.pbx_sends(reply(
        &inv,
        486,
        "Busy Here",
        "k",
        "Reason: Q.850;cause=34",
        None,
    ));
    let busy = w.expect(TEAMS_PEER, "486");
    assert!(
        busy.header("Reason").unwrap().starts_with("Q.850;cause=17"),
        "{}",
        busy.text()
    );
    assert_eq!(w.records()[0].result, "busy");
    w.assert_clean();
}

#[test]
fn failures_pass_with_their_reason_and_an_unreachable_pbx_gives_503() {
    for (status, phrase) in [
        (404, "Not Found"),
        (480, "Temporarily Unavailable"),
        (484, "Address Incomplete"),
        (603, "Decline"),
    ] {
        let mut w = World::new();
        let inv = invite(&mut w, "c5");
        w.pbx_sends(reply(&inv, status, phrase, "k", "", None));
        let r = w.expect(TEAMS_PEER, &status.to_string());
        assert_eq!(r.msg.reason_phrase(), Some(phrase.as_bytes()));
        w.assert_clean();
    }
    // Timer B (RFC 3261 §17.1.1.2): no answer at all from the PBX.
    let mut w = World::new();
    invite(&mut w, "c6");
    w.advance(std::time::Duration::from_secs(33));
    let r = w.expect(TEAMS_PEER, "503");
    assert!(r.header("Reason").unwrap().starts_with("Q.850;cause=41"));
    assert!(r.header("Warning").is_some());
    w.assert_clean();
}

#[test]
fn cancel_from_teams_cancels_the_pbx_leg_rfc3261_9() {
    let mut w = World::new();
    let inv = invite(&mut w, "c7");
    w.pbx_sends(reply(&inv, 180, "Ringing", "k", "", None));
    w.expect(TEAMS_PEER, "180");
    let cancel = cancel_of(&teams_invite("c7", "+4930111", CALLEE, TENANT, ""));
    w.teams_sends(cancel);
    w.expect(TEAMS_PEER, "200");
    w.expect(TEAMS_PEER, "487");
    let c = w.expect(PBX_ADDR, "CANCEL");
    // §9.1: the CANCEL's top Via equals the INVITE's.
    assert_eq!(c.header("Via"), inv.header("Via"));
    assert_eq!(w.core.active(), 1, "the call waits for the PBX's 487");
    w.pbx_sends(reply(&inv, 487, "Request Terminated", "k", "", None));
    assert_eq!(w.records()[0].result, "cancelled");
    w.assert_clean();
}

#[test]
fn unknown_tenant_is_404_and_an_unprovisioned_caller_403_reference_3_1() {
    let mut w = World::new();
    w.teams_sends(teams_invite(
        "c8",
        "+4930111",
        CALLEE,
        "other.sbc.example.com",
        TEAMS_SDP,
    ));
    let r = w.expect(TEAMS_PEER, "404");
    assert!(
        r.header("Warning")
            .unwrap()
            .contains("other.sbc.example.com")
    );
    for (caller, id) in [("+4930999", "c9"), ("+4930112", "c10")] {
        // +4930999 is nobody's; +4930112 is a disabled user.
        w.teams_sends(teams_invite(id, caller, CALLEE, TENANT, TEAMS_SDP));
        let r = w.expect(TEAMS_PEER, "403");
        assert!(
            r.header("Warning").unwrap().contains(caller),
            "{}",
            r.text()
        );
    }
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
    assert_eq!(
        w.refusals(),
        [
            "unknown_tenant",
            "caller_not_provisioned",
            "caller_not_provisioned"
        ]
    );
    w.assert_clean();
}

#[test]
fn max_sessions_refuses_the_second_call_with_503() {
    let mut w = World::with(view(Some(1)), 10);
    invite(&mut w, "c11");
    w.teams_sends(teams_invite("c12", "+4930111", CALLEE, TENANT, TEAMS_SDP));
    let r = w.expect(TEAMS_PEER, "503");
    assert!(r.header("Retry-After").is_some());
    assert!(r.header("Reason").unwrap().contains("max_sessions"));
    assert_eq!(w.refusals(), ["max_sessions"]);
    assert_eq!(w.core.active(), 1);
}

#[test]
fn port_exhaustion_is_503() {
    let mut w = World::with(view(None), 0);
    w.teams_sends(teams_invite("c13", "+4930111", CALLEE, TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "503");
    assert_eq!(w.refusals(), ["media_ports"]);
}

#[test]
fn malformed_or_unbridgeable_sdp_is_488_with_a_warning_and_nothing_leaks() {
    let mut w = World::new();
    for (id, sdp) in [
        ("c14", "v=0\r\nthis is not sdp\r\n"),
        ("c15", &TEAMS_SDP.replace("RTP/SAVP", "RTP/AVP")),
    ] {
        w.teams_sends(teams_invite(id, "+4930111", CALLEE, TENANT, sdp));
        let r = w.expect(TEAMS_PEER, "488");
        assert!(r.header("Warning").unwrap().contains("SDP"), "{}", r.text());
    }
    // An answer from the PBX that cannot be bridged: BYE to the PBX, 488 to Teams.
    let inv = invite(&mut w, "c16");
    let bad = PBX_SDP
        .replace("RTP/AVP 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:18 G729/8000");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(&bad)));
    w.expect(PBX_ADDR, "ACK");
    w.expect(PBX_ADDR, "BYE");
    w.expect(TEAMS_PEER, "488");
    w.assert_clean();
    assert_eq!(w.core.media().released.len(), 3);
}

#[test]
fn media_timeout_ends_both_legs_with_a_reason() {
    let mut w = World::new();
    let inv = invite(&mut w, "c17");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(PBX_SDP)));
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    let session = *w.core.media().live.keys().next().unwrap();
    w.input(Input::MediaTimeout { session });
    for to in [TEAMS_PEER, PBX_ADDR] {
        let bye = w.expect(to, "BYE");
        assert!(bye.header("Reason").unwrap().contains("media timeout"));
    }
    assert_eq!(w.records()[0].reason, "media timeout");
    w.assert_clean();
}

#[test]
fn a_session_refresh_is_answered_on_its_own_leg_and_never_relayed() {
    let mut w = World::new();
    let inv = invite(&mut w, "c18");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(PBX_SDP)));
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.sent.clear();
    w.teams_sends(in_dialog("INVITE", &ok, true, 2, Some(TEAMS_SDP)));
    let refresh = w.expect(TEAMS_PEER, "200");
    assert_eq!(refresh.body(), ok.body());
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
}

#[test]
fn no_ack_for_our_200_ends_the_call_rfc3261_13_3_1_4() {
    let mut w = World::new();
    let inv = invite(&mut w, "c19");
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(PBX_SDP)));
    w.expect(TEAMS_PEER, "200");
    w.advance(std::time::Duration::from_secs(33));
    w.expect(PBX_ADDR, "BYE");
    w.expect(TEAMS_PEER, "BYE");
    assert_eq!(w.records()[0].result, "failed");
    w.assert_clean();
}

#[test]
fn digits_pbx_gets_the_called_number_without_plus() {
    // Issue "number format": `digits` drops the `+` of the called number, `e164` keeps it.
    let v = view_with_pbx(None, |p| {
        p.number_format = crate::call::routing::NumberFormat::Digits;
    });
    let mut w = World::with(v, 100);
    let first = invite(&mut w, "c-digits");
    assert!(
        first
            .text()
            .starts_with("INVITE sip:4930222@pbx.example.com SIP/2.0\r\n"),
        "{}",
        first.text()
    );
    assert_eq!(first.header("To").unwrap(), "<sip:4930222@pbx.example.com>");
}

/// For a SIP capture (issue "operator kit", HEP): each leg's Call-ID is linked to the call's
/// first one while the call lives, and only when asked for.
#[test]
fn each_legs_call_id_is_linked_to_the_call_for_a_capture() {
    let mut w = World::with_settings(view(None), 100, |s| s.correlate_legs = true);
    w.teams_sends(teams_invite(
        "c1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    let pbx_call_id = to_pbx.header("Call-ID").unwrap();
    assert_eq!(w.links, [(pbx_call_id.clone(), Some("c1".to_owned()))]);
    w.pbx_sends(reply(&to_pbx, 486, "Busy Here", "k1", "", None));
    assert_eq!(w.links.last(), Some(&(pbx_call_id, None)));
    assert_eq!(w.links.len(), 2);
    let mut quiet = World::new();
    quiet.teams_sends(teams_invite(
        "c2", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    assert!(quiet.links.is_empty());
}
