//! A call to the user's PBX extension rings their Teams client (teams-direct-routing.md §1.6,
//! §3.2, §3.4, §3.8).

use std::time::Duration;

use super::world::*;
use crate::call::{Direction, Input, Side};

const PBX_OFFER: &str = "v=0\r\no=pbx 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn invite(w: &mut World, id: &str, sdp: Option<&str>) -> Sent {
    w.pbx_sends(pbx_invite(id, "tok1", "0301234567", sdp));
    w.expect(PBX_ADDR, "100");
    w.expect(PROXY1, "INVITE")
}

#[test]
fn the_invite_to_teams_has_the_shape_of_reference_3_2() {
    let mut w = World::new();
    let inv = invite(&mut w, "p1", Some(PBX_OFFER));
    let text = inv.text();
    assert!(
        text.starts_with(
            "INVITE sip:+4930111@sip.pstnhub.microsoft.com:5061;user=phone;transport=tls SIP/2.0\r\n"
        ),
        "{text}"
    );
    assert_eq!(
        inv.header("To").unwrap(),
        format!("<sip:+4930111@{TENANT};user=phone>")
    );
    // The national caller number becomes E.164 with the PBX's country code; display kept.
    assert!(inv.header("From").unwrap().starts_with(&format!(
        "\"Carol\" <sip:+49301234567@{TENANT};user=phone>;tag="
    )));
    assert_eq!(
        inv.header("Contact").unwrap(),
        format!("<sip:+49301234567@{TENANT}:5061;transport=tls>")
    );
    // §3.2 and §2.1: the SBC names itself, and says what it takes, on every request.
    assert_eq!(inv.header("X-MS-SBC").unwrap(), "Carrier/teamsgw/1.0");
    assert_eq!(
        inv.header("Allow").unwrap(),
        "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER"
    );
    assert!(inv.header("Replaces").is_none() && !text.contains("sips:"));
    assert!(
        inv.header("Via")
            .unwrap()
            .starts_with(&format!("SIP/2.0/TLS {TENANT}:5061;"))
    );
    let sdp = inv.body();
    assert!(
        // The PBX's codecs in its provisioned order (PCMA, PCMU), whatever the phone's order.
        sdp.contains("RTP/SAVP 8 0 101") && sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80"),
        "{sdp}"
    );
    assert!(sdp.contains("a=rtcp-mux"));
}

#[test]
fn failover_on_timeout_then_forks_ring_once_and_answer_rfc3261_13_2_2_4() {
    let mut w = World::new();
    let first = invite(&mut w, "p2", Some(PBX_OFFER));
    // §1.6: no response at all within the INVITE timeout: the next proxy, a new transaction.
    w.advance(Duration::from_secs(6));
    let second = w.expect(PROXY2, "INVITE");
    assert_ne!(second.header("Via"), first.header("Via"));
    assert!(
        second
            .text()
            .contains("@sip2.pstnhub.microsoft.com:5061;user=phone")
    );
    // Two forks ring; the PBX sees one 180.
    w.proxy_sends(PROXY2, reply(&second, 180, "Ringing", "fa", "", None));
    w.proxy_sends(PROXY2, reply(&second, 180, "Ringing", "fb", "", None));
    w.expect(PBX_ADDR, "180");
    assert!(w.nothing_to(PBX_ADDR, "180"));
    // §3.4: 183 with SDP from Teams is not passed as 183 (silent ringback) but sets up media.
    w.proxy_sends(
        PROXY2,
        reply(
            &second,
            183,
            "Session Progress",
            "fb",
            "",
            Some(TEAMS_ANSWER),
        ),
    );
    assert!(w.nothing_to(PBX_ADDR, "183") && w.nothing_to(PBX_ADDR, "180"));
    assert_eq!(
        w.applied()[0].teams.remote,
        Some(addr("52.114.14.80:50000"))
    );
    w.proxy_sends(
        PROXY2,
        reply(&second, 200, "OK", "fb", "", Some(TEAMS_ANSWER)),
    );
    w.expect(PROXY2, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    assert!(
        ok.body().contains("m=audio 40006 RTP/AVP 8 101"),
        "{}",
        ok.body()
    );
    assert!(ok.header("Contact").unwrap().starts_with("<sip:tok1@"));
    // A late 2xx from the other fork: ACK, then BYE (§13.2.2.4).
    w.proxy_sends(
        PROXY2,
        reply(&second, 200, "OK", "fa", "", Some(TEAMS_ANSWER)),
    );
    let ack = w.expect(PROXY2, "ACK");
    assert!(ack.header("To").unwrap().contains("tag=fa"));
    let bye = w.expect(PROXY2, "BYE");
    assert!(bye.header("To").unwrap().contains("tag=fa"));
    assert!(w.nothing_to(PBX_ADDR, "BYE"));
    // The PBX hangs up: BYE to Teams on the answered fork.
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.pbx_sends(in_dialog("BYE", &ok, true, 11, None));
    w.expect(PBX_ADDR, "200");
    let bye = w.expect(PROXY2, "BYE");
    assert!(bye.header("To").unwrap().contains("tag=fb"));
    let r = w.records();
    assert_eq!(r[0].direction, Direction::ToTeams);
    assert_eq!(
        r[0].teams_proxy.as_deref(),
        Some("sip2.pstnhub.microsoft.com")
    );
    assert_eq!(
        r[0].failovers,
        [("sip.pstnhub.microsoft.com".to_owned(), "timeout".to_owned())]
    );
    assert_eq!(r[0].hung_up_by, Some(Side::Pbx));
    w.assert_clean();
}

#[test]
fn a_503_with_retry_after_fails_over_and_holds_the_proxy_down_reference_1_6() {
    let mut w = World::new();
    let first = invite(&mut w, "p3", Some(PBX_OFFER));
    w.proxy_sends(
        PROXY1,
        reply(
            &first,
            503,
            "Service Unavailable",
            "x",
            "Retry-After: 30",
            None,
        ),
    );
    w.expect(PROXY2, "INVITE");
    assert_eq!(
        w.proxy_down,
        [(
            "sip.pstnhub.microsoft.com".to_owned(),
            Duration::from_secs(30)
        )]
    );
    // The next call skips the held proxy.
    w.pbx_sends(pbx_invite("p4", "tok1", "0301234567", Some(PBX_OFFER)));
    w.expect(PROXY2, "INVITE");
    assert!(w.nothing_to(PROXY1, "INVITE"));
}

#[test]
fn a_603_stops_everything_reference_3_8() {
    let mut w = World::new();
    let first = invite(&mut w, "p5", Some(PBX_OFFER));
    w.proxy_sends(PROXY1, reply(&first, 603, "Decline", "x", "", None));
    w.expect(PBX_ADDR, "603");
    assert!(w.nothing_to(PROXY2, "INVITE"));
    w.assert_clean();
}

#[test]
fn every_proxy_failing_gives_503_and_a_down_proxy_is_tried_last() {
    let mut w = World::new();
    w.input(Input::ProxyState {
        proxy: "sip.pstnhub.microsoft.com".into(),
        up: false,
    });
    w.pbx_sends(pbx_invite("p6", "tok1", "100", Some(PBX_OFFER)));
    let inv = w.expect(PROXY2, "INVITE");
    assert!(w.nothing_to(PROXY1, "INVITE"));
    w.proxy_sends(PROXY2, reply(&inv, 504, "Server Time-out", "x", "", None));
    // The proxy trunk health holds down is tried last (its OPTIONS may be stale).
    let last = w.expect(PROXY1, "INVITE");
    w.proxy_sends(
        PROXY1,
        reply(&last, 503, "Service Unavailable", "x", "", None),
    );
    let r = w.expect(PBX_ADDR, "503");
    assert!(r.header("Warning").unwrap().contains("no Teams proxy"));
    assert_eq!(w.records()[0].result, "failed");
    w.assert_clean();
}

#[test]
fn busy_from_teams_is_486_to_the_pbx() {
    let mut w = World::new();
    let inv = invite(&mut w, "p7", Some(PBX_OFFER));
    w.proxy_sends(PROXY1, reply(&inv, 486, "Busy Here", "x", "", None));
    w.expect(PBX_ADDR, "486");
    assert_eq!(w.records()[0].result, "busy");
}

#[test]
fn cancel_from_the_pbx_cancels_every_fork() {
    let mut w = World::new();
    let inv = invite(&mut w, "p8", Some(PBX_OFFER));
    w.proxy_sends(PROXY1, reply(&inv, 180, "Ringing", "fa", "", None));
    let cancel = cancel_of(&pbx_invite("p8", "tok1", "0301234567", None));
    w.pbx_sends(cancel);
    w.expect(PBX_ADDR, "200");
    w.expect(PBX_ADDR, "487");
    w.expect(PROXY1, "CANCEL");
    w.proxy_sends(
        PROXY1,
        reply(&inv, 487, "Request Terminated", "fa", "", None),
    );
    assert_eq!(w.records()[0].result, "cancelled");
    w.assert_clean();
}

#[test]
fn a_cancel_before_any_provisional_waits_for_one_rfc3261_9_1() {
    let mut w = World::new();
    let inv = invite(&mut w, "p9", Some(PBX_OFFER));
    let cancel = cancel_of(&pbx_invite("p9", "tok1", "0301234567", None));
    w.pbx_sends(cancel);
    assert!(w.nothing_to(PROXY1, "CANCEL"));
    w.proxy_sends(PROXY1, reply(&inv, 180, "Ringing", "fa", "", None));
    w.expect(PROXY1, "CANCEL");
    assert!(
        w.nothing_to(PBX_ADDR, "180"),
        "nothing more for a cancelled caller"
    );
}

#[test]
fn delayed_offer_from_the_pbx_gets_our_offer_and_its_answer_comes_in_the_ack() {
    let mut w = World::new();
    let inv = invite(&mut w, "p10", None);
    // §3.2: Teams requires an offer, so we make one from the PBX's codecs.
    assert!(inv.body().contains("RTP/SAVP 8 0 101 13"), "{}", inv.body());
    w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "fa", "", Some(TEAMS_ANSWER)));
    let ok = w.expect(PBX_ADDR, "200");
    assert!(ok.body().contains("RTP/AVP 8 101"), "{}", ok.body());
    assert_eq!(
        w.applied()[0].pbx.remote_rtp,
        None,
        "no PBX address before its answer"
    );
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, Some(PBX_OFFER)));
    assert_eq!(
        w.applied()[0].pbx.remote_rtp,
        Some(addr("192.0.2.20:30000"))
    );
}

/// Unknown tokens get 404; a disabled user's token from its PBX gets 403. From any other
/// address a valid token is answered exactly as an unknown one (issue 31 §8: a scanner learns
/// nothing), and no Warning names a user (the disabled one is bob@contoso.com).
#[test]
fn unknown_token_is_404_a_disabled_user_403_and_a_foreign_source_learns_nothing() {
    let mut w = World::new();
    w.pbx_sends(pbx_invite("p11", "nobody", "100", Some(PBX_OFFER)));
    let unknown = w.expect(PBX_ADDR, "404");
    w.pbx_sends(pbx_invite("p12", "tok2", "100", Some(PBX_OFFER)));
    let disabled = w.expect(PBX_ADDR, "403");
    assert!(!disabled.text().contains("bob@"), "{}", disabled.text());
    let from_stranger = |w: &mut World, id: &str, token: &str| {
        w.pbx_sends_from(
            "192.0.2.66:5060",
            pbx_invite(id, token, "100", Some(PBX_OFFER)),
        );
        let r = w.take("192.0.2.66:5060");
        if r.status() == Some(100) {
            w.take("192.0.2.66:5060")
        } else {
            r
        }
    };
    let valid = from_stranger(&mut w, "p13", "tok1");
    let invalid = from_stranger(&mut w, "p14", "tok9");
    assert_eq!((valid.status(), invalid.status()), (Some(404), Some(404)));
    let warning = |s: &Sent| s.header("Warning").unwrap().replace("tok1", "tok9");
    assert_eq!(warning(&valid), warning(&invalid));
    assert_eq!(
        warning(&unknown).replace("nobody", "tok9"),
        warning(&invalid)
    );
    assert!(w.nothing_to(PROXY1, "INVITE"));
    w.assert_clean();
}

#[test]
fn drain_refuses_new_calls_and_ends_the_rest_at_the_deadline() {
    let mut w = World::new();
    let inv = invite(&mut w, "p14", Some(PBX_OFFER));
    w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "fa", "", Some(TEAMS_ANSWER)));
    let ok = w.expect(PBX_ADDR, "200");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    let deadline = w.now + Duration::from_secs(10);
    w.input(Input::Drain { deadline });
    w.pbx_sends(pbx_invite("p15", "tok1", "100", Some(PBX_OFFER)));
    let r = w.expect(PBX_ADDR, "503");
    assert!(r.header("Retry-After").is_some());
    assert_eq!(w.core.active(), 1);
    w.advance(Duration::from_secs(11));
    w.expect(PBX_ADDR, "BYE");
    let bye = w.expect(PROXY1, "BYE");
    assert!(bye.header("Reason").unwrap().contains("shutting down"));
    assert_eq!(w.records()[0].reason, "drain limit reached");
    w.assert_clean();
}

#[test]
fn a_thousand_calls_leave_nothing_behind() {
    let mut w = World::new();
    for i in 0..1000 {
        let id = format!("n{i}");
        let inv = invite(&mut w, &id, Some(PBX_OFFER));
        w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "fa", "", Some(TEAMS_ANSWER)));
        let ok = w.expect(PBX_ADDR, "200");
        w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
        w.pbx_sends(in_dialog("BYE", &ok, true, 11, None));
        assert_eq!(w.records().len(), i + 1, "{:?}", w.refusals());
        w.sent.clear();
    }
    w.advance(Duration::from_secs(64));
    assert_eq!(w.records().len(), 1000);
    w.assert_clean();
    assert_eq!(w.core.media().released.len(), 1000);
}

#[test]
fn different_payload_numbers_on_the_legs_are_mapped_for_the_relay_rfc3264_6_1() {
    let mut w = World::new();
    let inv = invite(&mut w, "p20", None);
    // Teams answers telephone-event as 101, and the PBX's answer in its ACK calls it 96.
    w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "fa", "", Some(TEAMS_ANSWER)));
    let ok = w.expect(PBX_ADDR, "200");
    let pbx_answer = PBX_OFFER
        .replace("RTP/AVP 0 8 101", "RTP/AVP 0 8 96")
        .replace(
            "a=rtpmap:101 telephone-event",
            "a=rtpmap:96 telephone-event",
        )
        .replace("a=fmtp:101", "a=fmtp:96");
    assert!(pbx_answer.contains("RTP/AVP 0 8 96\r\n"), "{pbx_answer}");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, Some(&pbx_answer)));
    let map = &w.applied()[0].payload_map;
    let mut dtmf = [0x80, 0x80 | 101, 0, 0];
    map.to_pbx(&mut dtmf);
    assert_eq!(
        dtmf[1],
        0x80 | 96,
        "telephone-event 101 -> 96 towards the PBX"
    );
    map.to_teams(&mut dtmf);
    assert_eq!(dtmf[1], 0x80 | 101);
    let mut pcma = [0x80, 8, 0, 0];
    map.to_pbx(&mut pcma);
    assert_eq!(pcma[1], 8, "PCMA is 8 on both legs");
}
