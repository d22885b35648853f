//! Transfers from Teams (teams-direct-routing.md §3.7; RFC 3515, RFC 5589 §6): a REFER to a
//! Teams user makes us call the target, NOTIFY the transferor, move the Teams side of the
//! media to the new leg and end the old one; the PBX leg stays as it is.

use super::world::*;

const REFER_TO: &str = "<sip:sip.pstnhub.microsoft.com:5061;transport=tls;x-m=8:orgid:fce2158f-0e99-4ff7-a0b3-5b6b87d16689;x-t=2d88cb42-1111-2222-3333-444455556666>";
const REFERRED_BY: &str = "<sip:sip.pstnhub.microsoft.com:5061;x-m=8:orgid:bdc0511a-aaaa-bbbb-cccc-ddddeeeeffff;x-t=2d88cb42-1111-2222-3333-444455556666;x-ti=9cfa2ad6-0000-1111-2222-333344445555;x-tt=aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkudGVhbXMubWljcm9zb2Z0LmNvbS9hcGkvdjIvZXAvY29udi9yZXBsYWNlbWVudC8xMjM0NTY3ODkw>";

/// The target's answer: another media processor, another key.
const TARGET_ANSWER: &str = "v=0\r\no=- 77 1 IN IP4 52.114.99.9\r\ns=-\r\nc=IN IP4 52.114.99.9\r\nt=0 0\r\nm=audio 51000 RTP/SAVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";

pub(super) fn refer(ok: &Sent, cseq: u32, refer_to: &str) -> String {
    in_dialog("REFER", ok, true, cseq, None).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nRefer-To: {refer_to}\r\nReferred-By: {REFERRED_BY}\r\n"),
    )
}

pub(super) fn sipfrag(notify: &Sent) -> (String, String) {
    assert_eq!(notify.header("Event").unwrap(), "refer");
    assert_eq!(
        notify.header("Content-Type").unwrap(),
        "message/sipfrag;version=2.0"
    );
    (
        notify.body().trim_end().to_owned(),
        notify.header("Subscription-State").unwrap(),
    )
}

#[test]
fn refer_to_a_teams_user_calls_the_target_and_moves_the_teams_side_rfc5589_6() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    let before = w.applied().last().cloned().unwrap();
    w.teams_sends(refer(&ok, 2, REFER_TO));
    w.expect(TEAMS_PEER, "202");
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(
        (frag.as_str(), state.as_str()),
        ("SIP/2.0 100 Trying", "active;expires=60")
    );
    // §3.7: R-URI and To are the Refer-To URI, Referred-By copied byte for byte, From the
    // transferred party @ tenant FQDN, Contact the tenant FQDN, never Replaces.
    let inv = w.expect(PROXY1, "INVITE");
    let uri = &REFER_TO[1..REFER_TO.len() - 1];
    assert!(
        inv.text().starts_with(&format!("INVITE {uri} SIP/2.0\r\n")),
        "{}",
        inv.text()
    );
    assert_eq!(inv.header("To").unwrap(), REFER_TO);
    assert_eq!(inv.header("Referred-By").unwrap(), REFERRED_BY);
    assert!(
        inv.header("From")
            .unwrap()
            .starts_with(&format!("<sip:+4930222@{TENANT};user=phone>;tag=")),
        "{}",
        inv.text()
    );
    assert_eq!(
        inv.header("Contact").unwrap(),
        format!("<sip:{TENANT}:5061;transport=tls>")
    );
    assert!(inv.header("Replaces").is_none());
    assert!(!inv.text().contains("Replaces"), "{}", inv.text());
    // The same anchor towards Teams (§3.5): our address, port and key as before.
    let m = |s: &str, p: &str| {
        s.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        m(&inv.body(), "m="),
        m(&ok.body(), "m=").replace(" 0 8", " 8")
    );
    assert_eq!(m(&inv.body(), "a=crypto"), m(&ok.body(), "a=crypto"));
    w.proxy_sends(PROXY1, reply(&inv, 180, "Ringing", "n1", "", None));
    w.proxy_sends(
        PROXY1,
        reply(&inv, 200, "OK", "n1", "", Some(TARGET_ANSWER)),
    );
    w.expect(PROXY1, "ACK");
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(
        (frag.as_str(), state.as_str()),
        ("SIP/2.0 200 OK", "terminated;reason=noresource")
    );
    w.expect(TEAMS_PEER, "BYE");
    // The relay re-keyed the Teams side to the target; the PBX side did not move.
    let after = w.applied().last().cloned().unwrap();
    assert_eq!(after.teams.remote, Some(addr("52.114.99.9:51000")));
    assert_ne!(after.teams.remote_key, before.teams.remote_key);
    assert_eq!(after.pbx.remote_rtp, before.pbx.remote_rtp);
    assert!(
        w.nothing_to(PBX_ADDR, "INVITE"),
        "the PBX leg was re-INVITEd"
    );
    // The PBX hangs up: the BYE goes to the new Teams leg.
    w.sent.clear();
    w.pbx_sends(in_dialog("BYE", &ack, false, 5, None));
    let bye = w.expect(PROXY1, "BYE");
    assert_eq!(bye.header("Call-ID"), inv.header("Call-ID"));
    w.proxy_sends(PROXY1, reply(&bye, 200, "OK", "n1", "", None));
    assert_eq!(w.records().len(), 1);
    assert_eq!(w.transfers(), [("teams_user", "completed")]);
    w.assert_clean();
}

#[test]
fn the_transferor_may_hang_up_after_202_and_the_transfer_completes_siphon_sip_220() {
    let v = view(None);
    let mut w = World::with(v, 100);
    // A call from the PBX to the Teams user, who transfers it.
    w.pbx_sends(pbx_invite("x2", "tok1", "0301234567", Some(PBX_SDP)));
    let to_teams = w.expect(PROXY1, "INVITE");
    let answer = TARGET_ANSWER.replace("52.114.99.9", "52.114.14.80");
    w.proxy_sends(PROXY1, reply(&to_teams, 200, "OK", "t1", "", Some(&answer)));
    let ack = w.expect(PROXY1, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.sent.clear();
    w.proxy_sends(
        PROXY1,
        in_dialog("REFER", &ack, false, 2, None).replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\nRefer-To: {REFER_TO}\r\nReferred-By: {REFERRED_BY}\r\n"),
        ),
    );
    w.expect(PROXY1, "202");
    w.expect(PROXY1, "NOTIFY");
    let inv = w.expect(PROXY1, "INVITE");
    // The transferred party is the PBX caller, in E.164.
    assert!(
        inv.header("From")
            .unwrap()
            .starts_with(&format!("<sip:+49301234567@{TENANT};user=phone>"))
    );
    // Teams ends the transferor's leg ~280 ms after our 202: the call stays.
    w.advance(std::time::Duration::from_millis(280));
    w.proxy_sends(PROXY1, in_dialog("BYE", &ack, false, 3, None));
    w.expect(PROXY1, "200");
    assert!(
        w.nothing_to(PBX_ADDR, "BYE"),
        "the transferred party was dropped"
    );
    w.proxy_sends(
        PROXY1,
        reply(&inv, 200, "OK", "n2", "", Some(TARGET_ANSWER)),
    );
    let new_ack = w.expect(PROXY1, "ACK");
    assert!(
        w.nothing_to(PROXY1, "NOTIFY"),
        "NOTIFY to a transferor who left"
    );
    assert_eq!(
        w.applied().last().unwrap().teams.remote,
        Some(addr("52.114.99.9:51000"))
    );
    // The new leg hangs up: the PBX gets BYE, the call ends once.
    w.proxy_sends(PROXY1, in_dialog("BYE", &new_ack, false, 2, None));
    w.expect(PROXY1, "200");
    w.expect(PBX_ADDR, "BYE");
    assert_eq!(w.records().len(), 1);
}

#[test]
fn a_busy_target_leaves_the_call_as_it_was_and_the_notify_says_486() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    w.teams_sends(refer(&ok, 2, REFER_TO));
    w.expect(TEAMS_PEER, "202");
    w.expect(TEAMS_PEER, "NOTIFY");
    let inv = w.expect(PROXY1, "INVITE");
    w.proxy_sends(PROXY1, reply(&inv, 486, "Busy Here", "n3", "", None));
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(
        (frag.as_str(), state.as_str()),
        ("SIP/2.0 486 Busy Here", "terminated;reason=noresource")
    );
    assert!(w.nothing_to(TEAMS_PEER, "BYE"));
    assert!(w.nothing_to(PBX_ADDR, "BYE"));
    assert!(w.records().is_empty(), "the call ended");
    assert_eq!(w.transfers(), [("teams_user", "failed")]);
    // The original call goes on: Teams hangs up as usual.
    w.teams_sends(in_dialog("BYE", &ok, true, 3, None));
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), ack.header("Call-ID"));
}

#[test]
fn refer_rules_rfc3515_2_4_1_and_a_pbx_refer_is_refused_with_a_reason() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    // No Refer-To: 400.
    w.teams_sends(in_dialog("REFER", &ok, true, 2, None));
    w.expect(TEAMS_PEER, "400");
    // A user part that is no number: 403 with a Warning, the call stays.
    w.teams_sends(refer(&ok, 3, "<sip:alice@sip.pstnhub.microsoft.com:5061>"));
    let r = w.expect(TEAMS_PEER, "403");
    assert!(r.header("Warning").is_some());
    // The PBX's REFER: 403, and the Reason says why.
    w.pbx_sends(in_dialog("REFER", &ack, false, 6, None).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRefer-To: <sip:2002@pbx.example.com>\r\n",
    ));
    let r = w.expect(PBX_ADDR, "403");
    assert!(
        r.header("Reason").unwrap().contains("PBX transfers"),
        "{}",
        r.text()
    );
    assert!(w.records().is_empty());
    assert!(w.nothing_to(PROXY1, "INVITE"));
}
