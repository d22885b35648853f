//! INVITE with Replaces from Teams (RFC 3891; teams-direct-routing.md §3.7: "the SBC must
//! support incoming INVITE with Replaces"): a park pickup or consultative transfer takes the
//! place of the Teams leg it names; everything else gets the RFC's answer and starts no call.

use super::world::*;

/// The picking-up client's offer: another media processor, another key.
const PICKUP_SDP: &str = "v=0\r\no=- 900 1 IN IP4 52.114.99.9\r\ns=-\r\nc=IN IP4 52.114.99.9\r\nt=0 0\r\nm=audio 51000 RTP/SAVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";

fn tag(header: &str) -> String {
    header.split(";tag=").nth(1).unwrap().to_owned()
}

/// A new INVITE from Teams (Call-ID `id`) carrying each of `replaces`.
fn replacing(id: &str, replaces: &[String], sdp: &str) -> String {
    let lines: String = replaces
        .iter()
        .map(|r| format!("Replaces: {r}\r\n"))
        .collect();
    teams_invite(id, "+4930333", "+4930222", TENANT, sdp).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{lines}"),
    )
}

/// RFC 3891 §3: the named confirmed dialog is replaced. A parked call (Teams had held it)
/// is picked up: the new dialog is answered from the same anchor (§3.5), the relay moves to
/// the new peer and key, the PBX hears the resume on its unchanged dialog, and the replaced
/// dialog gets BYE. The call keeps its id; the old dialog is gone.
#[test]
fn a_park_pickup_replaces_the_teams_leg_and_resumes_the_pbx_rfc3891_3() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    // Park: Teams holds the call first.
    let held = TEAMS_SDP
        .replace("o=- 2142 0 ", "o=- 2142 1 ")
        .replace("a=sendrecv", "a=inactive");
    w.teams_sends(in_dialog("INVITE", &ok, true, 2, Some(&held)));
    w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 2, None));
    let hold = w.expect(PBX_ADDR, "INVITE");
    assert!(hold.body().contains("a=sendonly"));
    let held_pbx = PBX_SDP
        .replace("o=pbx 1 1 ", "o=pbx 1 2 ")
        .replace("a=sendrecv", "a=recvonly");
    w.pbx_sends(reply(&hold, 200, "OK", "k1", "", Some(&held_pbx)));
    w.expect(PBX_ADDR, "ACK");
    w.sent.clear();

    let (ours, theirs) = (
        tag(&ok.header("To").unwrap()),
        tag(&ok.header("From").unwrap()),
    );
    let old_id = ok.header("Call-ID").unwrap();
    let replaces = format!("{old_id};to-tag={ours};from-tag={theirs}");
    w.teams_sends(replacing("pk1", &[replaces], PICKUP_SDP));

    // The replaced dialog ends (§3).
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert_eq!(bye.header("Call-ID").unwrap(), old_id);
    // The new one is answered from the anchor the call had: address, port and key.
    let answer = w.expect(TEAMS_PEER, "200");
    assert_eq!(answer.header("Call-ID").unwrap(), "pk1");
    let sdp = answer.body();
    assert!(sdp.contains("a=sendrecv"), "{sdp}");
    for prefix in ["c=", "a=crypto"] {
        assert_eq!(sdp_line(&sdp, prefix), sdp_line(&ok.body(), prefix));
    }
    assert_eq!(
        sdp_line(&sdp, "m=").split(' ').nth(1),
        sdp_line(&ok.body(), "m=").split(' ').nth(1)
    );
    let relay = w.applied().last().cloned().unwrap();
    assert_eq!(relay.teams.remote, Some(addr("52.114.99.9:51000")));
    // The PBX's dialog stays; it only hears the resume.
    let resume = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(resume.header("Call-ID"), ack.header("Call-ID"));
    assert!(resume.body().contains("a=sendrecv"), "{}", resume.body());
    w.pbx_sends(reply(&resume, 200, "OK", "k1", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    w.teams_sends(reply(&bye, 200, "OK", "tf", "", None));
    w.teams_sends(in_dialog("ACK", &answer, true, 1, None));

    // The old dialog no longer reaches the call (RFC 3261 §12.2.2).
    w.teams_sends(in_dialog("INFO", &ok, true, 3, None));
    w.expect(TEAMS_PEER, "481");
    // The new dialog is the call's Teams leg: its BYE ends the call on both legs.
    w.teams_sends(in_dialog("BYE", &answer, true, 2, None));
    w.expect(TEAMS_PEER, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), ack.header("Call-ID"));
    let records = w.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].call_id, "x1",
        "the CDR keeps the call's first id"
    );
    assert!(w.refusals().is_empty());
    assert_eq!(w.transfers(), [("replaces", "completed")]);
    w.assert_clean();
}

/// A PBX -> Teams call: the Teams leg is one we called, and the new dialog is one Teams
/// opened. Our requests on it go back the way its INVITE came, not to the proxy we called.
#[test]
fn replacing_a_leg_we_called_moves_its_requests_to_the_new_dialog_rfc3891_3() {
    let mut w = World::new();
    w.pbx_sends(pbx_invite("p1", "tok1", "0301234567", Some(PBX_SDP)));
    let inv = w.expect(PROXY1, "INVITE");
    w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "tt", "", Some(TEAMS_ANSWER)));
    let ack = w.expect(PROXY1, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.sent.clear();

    let ours = tag(&inv.header("From").unwrap());
    let old_id = inv.header("Call-ID").unwrap();
    let replaces = format!("{old_id};to-tag={ours};from-tag=tt");
    w.teams_sends(replacing("pk2", &[replaces], PICKUP_SDP));
    let bye = w.expect(PROXY1, "BYE");
    assert_eq!(bye.header("Call-ID").unwrap(), old_id);
    let answer = w.expect(TEAMS_PEER, "200");
    assert_eq!(answer.header("Call-ID").unwrap(), "pk2");
    assert!(
        w.nothing_to(PBX_ADDR, "INVITE"),
        "an un-held leg needs no re-INVITE"
    );
    w.teams_sends(in_dialog("ACK", &answer, true, 1, None));

    // The PBX holds: our re-INVITE goes to the new dialog's peer, in the new dialog.
    let hold = PBX_SDP
        .replace("o=pbx 1 1 ", "o=pbx 1 2 ")
        .replace("a=sendrecv", "a=sendonly");
    w.pbx_sends(in_dialog("INVITE", &ok, true, 11, Some(&hold)));
    w.expect(PBX_ADDR, "200");
    let reinvite = w.expect(TEAMS_PEER, "INVITE");
    assert_eq!(reinvite.header("Call-ID").unwrap(), "pk2");
    assert!(
        reinvite.body().contains("a=inactive"),
        "{}",
        reinvite.body()
    );
    assert!(w.nothing_to(PROXY1, "INVITE"));
    drop(ack);
}

/// A PBX -> Teams call still ringing in Teams, and the INVITE that picks it up (RFC 3891
/// §7.1, replacing an early dialog at the originator; `early-only` allows it, §3).
fn ringing_then_picked_up(w: &mut World, id: &str) -> (Sent, Sent, Sent) {
    w.pbx_sends(pbx_invite(id, "tok1", "0301234567", Some(PBX_SDP)));
    let inv = w.expect(PROXY1, "INVITE");
    w.proxy_sends(PROXY1, reply(&inv, 180, "Ringing", "tr", "", None));
    w.expect(PBX_ADDR, "180");
    w.sent.clear();
    let ours = tag(&inv.header("From").unwrap());
    let old_id = inv.header("Call-ID").unwrap();
    let replaces = format!("{old_id};to-tag={ours};from-tag=tr;early-only");
    w.teams_sends(replacing(&format!("pk-{id}"), &[replaces], PICKUP_SDP));
    let answer = w.expect(TEAMS_PEER, "200");
    let ok = w.expect(PBX_ADDR, "200");
    (inv, answer, ok)
}

/// RFC 3891 §7.1: the picking-up dialog's offer stands in for the answer the ringing one
/// would have brought. It is answered from the anchor our INVITE offered (§3.5), with one of
/// the PBX's codecs; the ringing INVITE is CANCELled with "call completed elsewhere" (RFC
/// 3326, no missed call in Teams); the PBX gets its 200 as if Teams had answered; the call
/// keeps its id and ends as any other.
#[test]
fn a_call_ringing_in_teams_is_picked_up_and_its_invite_cancelled_rfc3891_7_1() {
    let mut w = World::new();
    let (inv, answer, ok) = ringing_then_picked_up(&mut w, "p1");
    assert_eq!(answer.header("Call-ID").unwrap(), "pk-p1");
    let sdp = answer.body();
    for prefix in ["c=", "a=crypto"] {
        assert_eq!(sdp_line(&sdp, prefix), sdp_line(&inv.body(), prefix));
    }
    let port = |s: &str| sdp_line(s, "m=").split(' ').nth(1).map(str::to_owned);
    assert_eq!(port(&sdp), port(&inv.body()));
    assert!(
        sdp.contains("RTP/SAVP 8 101\r\n"),
        "PCMA, the PBX's codec: {sdp}"
    );
    assert!(ok.body().contains("RTP/AVP 8 101"), "{}", ok.body());
    let cancel = w.expect(PROXY1, "CANCEL");
    assert_eq!(cancel.header("Call-ID"), inv.header("Call-ID"));
    assert_eq!(
        cancel.header("Reason").unwrap(),
        r#"SIP;cause=200;text="Call completed elsewhere""#
    );
    let relay = w.applied().last().cloned().unwrap();
    assert_eq!(relay.teams.remote, Some(addr("52.114.99.9:51000")));
    assert_eq!(relay.pbx.remote_rtp, Some(addr("192.0.2.20:30000")));

    // The cancelled INVITE's 487 changes nothing.
    w.proxy_sends(
        PROXY1,
        reply(&inv, 487, "Request Terminated", "tr", "", None),
    );
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.teams_sends(in_dialog("ACK", &answer, true, 1, None));
    assert!(w.nothing_to(PBX_ADDR, "BYE") && w.nothing_to(TEAMS_PEER, "BYE"));
    // The new dialog is the Teams leg: its BYE ends the call on both legs.
    w.teams_sends(in_dialog("BYE", &answer, true, 2, None));
    w.expect(TEAMS_PEER, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), ok.header("Call-ID"));
    w.pbx_sends(reply(&bye, 200, "OK", "", "", None));
    let records = w.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].call_id.as_str(), records[0].result),
        ("p1", "answered")
    );
    assert_eq!(w.transfers(), [("replaces", "completed")]);
    w.assert_clean();
}

/// The ringing client answered as our CANCEL went out (RFC 3261 §9.1: the 2xx wins the
/// race): that dialog is acknowledged and ended at once; the picked-up call goes on.
#[test]
fn a_2xx_crossing_the_pickup_cancel_is_acked_and_ended_rfc3261_15() {
    let mut w = World::new();
    let (inv, answer, ok) = ringing_then_picked_up(&mut w, "p2");
    w.expect(PROXY1, "CANCEL");
    let applied = w.applied().len();
    w.proxy_sends(PROXY1, reply(&inv, 200, "OK", "tr", "", Some(TEAMS_ANSWER)));
    let ack = w.expect(PROXY1, "ACK");
    assert_eq!(ack.header("Call-ID"), inv.header("Call-ID"));
    let bye = w.expect(PROXY1, "BYE");
    assert_eq!(bye.header("Call-ID"), inv.header("Call-ID"));
    assert!(
        bye.header("Reason")
            .unwrap()
            .contains("completed elsewhere")
    );
    assert_eq!(
        w.applied().len(),
        applied,
        "the relay stays with the pickup"
    );
    assert!(w.nothing_to(PBX_ADDR, "BYE") && w.nothing_to(TEAMS_PEER, "BYE"));
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.teams_sends(in_dialog("ACK", &answer, true, 1, None));
    w.pbx_sends(in_dialog("BYE", &ok, true, 11, None));
    w.expect(PBX_ADDR, "200");
    let last = w.expect(TEAMS_PEER, "BYE");
    assert_eq!(last.header("Call-ID").unwrap(), "pk-p2");
    w.proxy_sends(PROXY1, reply(&bye, 200, "OK", "", "", None));
    w.teams_sends(reply(&last, 200, "OK", "", "", None));
    assert_eq!(w.records().len(), 1);
    w.assert_clean();
}

/// RFC 3891 §3: a Replaces naming a dialog that is ending gets 603. Here the PBX caller gave
/// up while Teams rang, and our CANCEL awaits its 487.
#[test]
fn replacing_a_dialog_that_is_ending_is_declined_603_rfc3891_3() {
    let mut w = World::new();
    w.pbx_sends(pbx_invite("p3", "tok1", "0301234567", Some(PBX_SDP)));
    let inv = w.expect(PROXY1, "INVITE");
    w.proxy_sends(PROXY1, reply(&inv, 180, "Ringing", "tr", "", None));
    let cancel = cancel_of(&pbx_invite("p3", "tok1", "0301234567", None));
    w.pbx_sends(cancel);
    w.expect(PROXY1, "CANCEL");
    let ours = tag(&inv.header("From").unwrap());
    let old_id = inv.header("Call-ID").unwrap();
    let replaces = format!("{old_id};to-tag={ours};from-tag=tr");
    w.teams_sends(replacing("pk3", &[replaces], PICKUP_SDP));
    let declined = w.expect(TEAMS_PEER, "603");
    assert!(declined.header("Warning").unwrap().contains("ended"));
    w.proxy_sends(
        PROXY1,
        reply(&inv, 487, "Request Terminated", "tr", "", None),
    );
    assert_eq!(w.records()[0].result, "cancelled");
    assert_eq!(w.transfers(), [("replaces", "failed")]);
    w.assert_clean();
}

/// RFC 3891 §3: an INVITE with Replaces never becomes a call of its own. Unknown dialog (or
/// the tags the wrong way round): 481; `early-only` for a confirmed dialog: 486; two
/// Replaces: 400; an early dialog Teams opened: 481; an offer without the call's codec: 488.
/// The named call stays as it was.
#[test]
fn invite_with_replaces_gets_the_rfc3891_answers_and_starts_no_call() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    let (ours, theirs) = (
        tag(&ok.header("To").unwrap()),
        tag(&ok.header("From").unwrap()),
    );
    let call_id = ok.header("Call-ID").unwrap();
    let named = format!("{call_id};to-tag={ours};from-tag={theirs}");
    let g729 = PICKUP_SDP
        .replace("RTP/SAVP 8 0 101", "RTP/SAVP 18")
        .replace(
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000",
            "a=rtpmap:18 G729/8000",
        );
    let cases = [
        (
            "r1",
            vec![format!("nosuch@x;to-tag={ours};from-tag={theirs}")],
            PICKUP_SDP.to_owned(),
            "481",
        ),
        (
            "r2",
            vec![format!("{call_id};to-tag={theirs};from-tag={ours}")],
            PICKUP_SDP.to_owned(),
            "481",
        ),
        (
            "r3",
            vec![format!("{named};early-only")],
            PICKUP_SDP.to_owned(),
            "486",
        ),
        (
            "r4",
            vec![named.clone(), named.clone()],
            PICKUP_SDP.to_owned(),
            "400",
        ),
        ("r5", vec![named.clone()], g729, "488"),
    ];
    for (id, replaces, sdp, status) in cases {
        w.teams_sends(replacing(id, &replaces, &sdp));
        let r = w.expect(TEAMS_PEER, status);
        assert!(r.header("Warning").is_some(), "{id}: {}", r.text());
    }
    // An early dialog Teams opened: 481 (§3), and that call rings on.
    w.teams_sends(teams_invite(
        "e1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let ringing = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&ringing, 180, "Ringing", "k9", "", None));
    let early = w.expect(TEAMS_PEER, "180");
    let early_tag = tag(&early.header("To").unwrap());
    w.teams_sends(replacing(
        "r6",
        &[format!("e1;to-tag={early_tag};from-tag=tf")],
        PICKUP_SDP,
    ));
    w.expect(TEAMS_PEER, "481");
    assert!(
        w.nothing_to(PBX_ADDR, "INVITE") && w.nothing_to(TEAMS_PEER, "BYE"),
        "a refused Replaces changed a call"
    );
    assert_eq!(w.refusals(), ["replaces"; 6]);
    assert_eq!(w.transfers(), [("replaces", "failed"); 6]);
    // The named call is untouched.
    w.teams_sends(in_dialog("BYE", &ok, true, 2, None));
    w.expect(TEAMS_PEER, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), ack.header("Call-ID"));
}
