//! Transfer to a number when the PBX takes no REFER (issue "mid-call" §4; teams-direct-routing.md
//! §3.7): we call the number as the user, the target's offer goes to the remaining party
//! (RFC 3725 §4.1), the Teams leg ends, and the call goes on between the PBX's two parties
//! with their media party to party.

use super::transfer::{refer, sipfrag};
use super::world::*;

const NUMBER_TARGET: &str = "<sip:+4930999@sip.pstnhub.microsoft.com:5061;user=phone>";

/// The target's offer in its 2xx (our INVITE had none).
const TARGET_OFFER: &str = "v=0\r\no=target 9 1 IN IP4 192.0.2.44\r\ns=-\r\nc=IN IP4 192.0.2.44\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

/// The remaining party's answer to it.
const PARTY_ANSWER: &str = "v=0\r\no=pbx 1 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn origin(sdp: &str) -> String {
    sdp_line(sdp, "o=").to_owned()
}

/// A Teams -> PBX call whose Teams side transferred to a number the PBX would not take a
/// REFER for: our 200 to Teams, our ACK to the PBX, and our INVITE to the target.
fn refused_refer(w: &mut World) -> (Sent, Sent, Sent) {
    let (ok, ack) = answered(w);
    w.teams_sends(refer(&ok, 2, NUMBER_TARGET));
    w.expect(TEAMS_PEER, "202");
    w.expect(TEAMS_PEER, "NOTIFY");
    let to_pbx = w.expect(PBX_ADDR, "REFER");
    w.pbx_sends(reply(&to_pbx, 405, "Method Not Allowed", "k1", "", None));
    let invite = w.expect(PBX_ADDR, "INVITE");
    (ok, ack, invite)
}

/// Our call to the target answered and bridged: the target's 2xx and our ACK to it.
fn bridged(w: &mut World, invite: &Sent) -> Sent {
    w.pbx_sends(reply(invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    let reinvite = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&reinvite, 200, "OK", "k1", "", Some(PARTY_ANSWER)));
    w.expect(PBX_ADDR, "ACK");
    w.expect(PBX_ADDR, "ACK")
}

#[test]
fn a_pbx_without_refer_gets_the_transfer_as_our_call_and_the_parties_are_bridged_rfc3725_4_1() {
    let mut w = World::new();
    let (ok, ack, invite) = refused_refer(&mut w);
    // The user's device calls the number at its PBX, without an offer.
    assert!(
        invite
            .text()
            .starts_with("INVITE sip:+4930999@pbx.example.com SIP/2.0\r\n"),
        "{}",
        invite.text()
    );
    assert!(
        invite
            .header("From")
            .unwrap()
            .starts_with("<sip:1001@pbx.example.com>;tag=")
    );
    assert_ne!(invite.header("Call-ID"), ack.header("Call-ID"));
    assert!(invite.body().is_empty(), "{}", invite.text());
    assert!(invite.header("Contact").unwrap().starts_with("<sip:tok1@"));
    assert!(
        w.nothing_to(TEAMS_PEER, "NOTIFY"),
        "the 405 is not the outcome"
    );
    // It authenticates as the user (RFC 3261 §22.2).
    let challenge =
        "Proxy-Authenticate: Digest realm=\"pbx.example.com\", nonce=\"n1\", qop=\"auth\"";
    w.pbx_sends(reply(
        &invite,
        407,
        "Proxy Authentication Required",
        "t0",
        challenge,
        None,
    ));
    let invite = w.expect(PBX_ADDR, "INVITE");
    assert!(
        invite
            .header("Proxy-Authorization")
            .unwrap()
            .contains("username=\"1001\"")
    );
    w.expect(PBX_ADDR, "ACK");
    w.pbx_sends(reply(&invite, 180, "Ringing", "t1", "", None));
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(
        (frag.as_str(), state.as_str()),
        ("SIP/2.0 180 Ringing", "active;expires=60")
    );

    // The target's offer reaches the remaining party in our re-INVITE, in that dialog's
    // origin, one version up (RFC 3264 §8).
    w.pbx_sends(reply(&invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    let reinvite = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(reinvite.header("Call-ID"), ack.header("Call-ID"));
    let offer = reinvite.body();
    assert!(
        offer.contains("c=IN IP4 192.0.2.44\r\n") && offer.contains("m=audio 7078 "),
        "{offer}"
    );
    let first = w.applied()[0].clone();
    assert_eq!(first.pbx.remote_rtp, Some(addr("192.0.2.20:30000")));
    assert!(
        w.nothing_to(PBX_ADDR, "ACK"),
        "the target's ACK waits for the answer"
    );
    // A retransmitted 2xx meanwhile changes nothing.
    w.pbx_sends(reply(&invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    assert!(w.nothing_to(PBX_ADDR, "INVITE") && w.nothing_to(PBX_ADDR, "ACK"));

    w.pbx_sends(reply(&reinvite, 200, "OK", "k1", "", Some(PARTY_ANSWER)));
    let reinvite_ack = w.expect(PBX_ADDR, "ACK");
    assert_eq!(reinvite_ack.header("Call-ID"), ack.header("Call-ID"));
    let target_ack = w.expect(PBX_ADDR, "ACK");
    assert_eq!(target_ack.header("Call-ID"), invite.header("Call-ID"));
    assert!(
        target_ack.body().contains("m=audio 30000 RTP/AVP 8 101"),
        "{}",
        target_ack.text()
    );
    // Teams hears the outcome, and its leg ends: nothing of Teams is left to relay.
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 200 OK");
    assert!(state.starts_with("terminated"), "{state}");
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert!(bye.header("Reason").unwrap().contains("transferred"));
    assert!(
        w.core.media().live.is_empty(),
        "the media session was given back"
    );
    assert_eq!(w.core.active(), 1);
    assert_eq!(w.transfers(), [("number", "completed")]);
    // The target's 2xx again: the same ACK (RFC 3261 §13.2.2.4).
    w.pbx_sends(reply(&invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    assert_eq!(w.expect(PBX_ADDR, "ACK").text(), target_ack.text());

    // The target hangs up: the party gets BYE with the target's Reason, one CDR.
    let reason = "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n";
    let bye = in_dialog("BYE", &target_ack, false, 5, None).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{reason}"),
    );
    w.pbx_sends(bye);
    w.expect(PBX_ADDR, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), ack.header("Call-ID"));
    assert!(bye.header("Reason").unwrap().contains("cause=16"));
    let records = w.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].call_id, "x1");
    w.assert_clean();
    drop(ok);
}

/// Each bridged party is answered on its own terms: a refresh stays on its leg, a hold is
/// passed to the other party and its answer comes back, in each dialog's own origin.
#[test]
fn bridged_parties_refresh_on_their_own_leg_and_pass_real_offers_rfc3264_8() {
    let mut w = World::new();
    let (_ok, ack, invite) = refused_refer(&mut w);
    let target_ack = bridged(&mut w, &invite);
    w.sent.clear();

    // The target refreshes with the same description: answered here.
    w.pbx_sends(in_dialog(
        "INVITE",
        &target_ack,
        false,
        2,
        Some(TARGET_OFFER),
    ));
    let ok = w.expect(PBX_ADDR, "200");
    assert_eq!(ok.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(
        origin(&ok.body()),
        origin(&target_ack.body()),
        "the same description again"
    );
    assert!(w.nothing_to(PBX_ADDR, "INVITE"), "a refresh is not relayed");

    // The target holds: the party gets the offer, the target gets the party's answer.
    let hold = TARGET_OFFER
        .replace("o=target 9 1 ", "o=target 9 2 ")
        .replace("a=sendrecv", "a=sendonly");
    w.pbx_sends(in_dialog("INVITE", &target_ack, false, 3, Some(&hold)));
    let to_party = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(to_party.header("Call-ID"), ack.header("Call-ID"));
    assert!(
        to_party.body().contains("a=sendonly"),
        "{}",
        to_party.text()
    );
    assert!(
        origin(&to_party.body()).starts_with("o=teamsgw "),
        "{}",
        to_party.body()
    );
    assert!(
        w.nothing_to(PBX_ADDR, "200"),
        "answered when the party answers"
    );
    let held = PARTY_ANSWER
        .replace("o=pbx 1 2 ", "o=pbx 1 3 ")
        .replace("a=sendrecv", "a=recvonly");
    w.pbx_sends(reply(&to_party, 200, "OK", "k1", "", Some(&held)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    assert_eq!(ok.header("Call-ID"), invite.header("Call-ID"));
    assert!(ok.body().contains("a=recvonly"), "{}", ok.text());
    let (before, after) = (origin(&target_ack.body()), origin(&ok.body()));
    let session = |o: &str| o.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(session(&before), session(&after), "same origin");
    assert_ne!(before, after, "the next version");

    // The party refuses the next offer: the target hears the same status.
    let resume = TARGET_OFFER.replace("o=target 9 1 ", "o=target 9 3 ");
    w.pbx_sends(in_dialog("INVITE", &target_ack, false, 4, Some(&resume)));
    let to_party = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_party, 488, "Not Acceptable Here", "k1", "", None));
    w.expect(PBX_ADDR, "ACK");
    w.expect(PBX_ADDR, "488");
    assert_eq!(w.core.active(), 1, "the call goes on");
}

/// A target that does not answer leaves the call as it was, and Teams hears why.
#[test]
fn a_busy_target_leaves_the_call_with_teams_and_the_notify_says_486() {
    let mut w = World::new();
    let (_ok, _ack, invite) = refused_refer(&mut w);
    w.pbx_sends(reply(&invite, 486, "Busy Here", "t1", "", None));
    w.expect(PBX_ADDR, "ACK");
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 486 Busy Here");
    assert!(state.starts_with("terminated"), "{state}");
    assert!(w.nothing_to(TEAMS_PEER, "BYE") && w.nothing_to(PBX_ADDR, "BYE"));
    assert_eq!(
        w.core.media().live.len(),
        1,
        "the relay still carries the call"
    );
    assert_eq!(w.transfers(), [("number", "failed")]);
}

/// The remaining party refuses the target's offer: the target's 2xx is acknowledged with
/// its stream rejected (RFC 3264 §6) and ended; the call stays with Teams.
#[test]
fn a_party_that_refuses_the_targets_offer_keeps_its_call_and_the_target_is_ended() {
    let mut w = World::new();
    let (_ok, _ack, invite) = refused_refer(&mut w);
    w.pbx_sends(reply(&invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    let reinvite = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&reinvite, 488, "Not Acceptable Here", "k1", "", None));
    w.expect(PBX_ADDR, "ACK");
    let target_ack = w.expect(PBX_ADDR, "ACK");
    assert!(
        target_ack.body().contains("m=audio 0 "),
        "{}",
        target_ack.text()
    );
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), invite.header("Call-ID"));
    let (frag, _) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 488 Not Acceptable Here");
    assert!(w.nothing_to(TEAMS_PEER, "BYE"));
    assert_eq!(w.core.media().live.len(), 1);
    // The party's next refresh gets what it had before the target's offer.
    w.advance(std::time::Duration::from_secs(1000));
    let refresh = w.expect(PBX_ADDR, "INVITE");
    assert!(
        refresh.body().contains("m=audio 4000"),
        "{}",
        refresh.body()
    );
}

/// The party hangs up while the target rings: the target's INVITE is cancelled.
#[test]
fn the_party_hanging_up_cancels_the_call_to_the_target() {
    let mut w = World::new();
    let (_ok, ack, invite) = refused_refer(&mut w);
    w.pbx_sends(reply(&invite, 180, "Ringing", "t1", "", None));
    w.sent.clear();
    w.pbx_sends(in_dialog("BYE", &ack, false, 3, None));
    w.expect(PBX_ADDR, "200");
    let cancel = w.expect(PBX_ADDR, "CANCEL");
    assert_eq!(cancel.header("Call-ID"), invite.header("Call-ID"));
    w.expect(TEAMS_PEER, "BYE");
    assert_eq!(w.records().len(), 1);
}

/// The same for a call the PBX made to Teams: the Teams leg is the one we called, the
/// remaining party the caller, and the target takes the Teams leg's place.
#[test]
fn a_pbx_call_to_teams_is_bridged_the_same_way() {
    let mut w = World::new();
    let pbx_offer = PARTY_ANSWER.replace("o=pbx 1 2 ", "o=pbx 1 1 ");
    w.pbx_sends(pbx_invite("p1", "tok1", "0301234567", Some(&pbx_offer)));
    w.expect(PBX_ADDR, "100");
    let to_teams = w.expect(PROXY1, "INVITE");
    let teams_answer = "v=0\r\no=- 1 1 IN IP4 52.114.14.80\r\ns=-\r\nc=IN IP4 52.114.14.80\r\nt=0 0\r\nm=audio 50000 RTP/SAVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "ta", "", Some(teams_answer)),
    );
    let teams_ack = w.expect(PROXY1, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    let refer = in_dialog("REFER", &teams_ack, false, 2, None).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nRefer-To: {NUMBER_TARGET}\r\n"),
    );
    w.proxy_sends(PROXY1, refer);
    w.expect(PROXY1, "202");
    w.expect(PROXY1, "NOTIFY");
    let to_pbx = w.expect(PBX_ADDR, "REFER");
    w.pbx_sends(reply(&to_pbx, 501, "Not Implemented", "k1", "", None));
    let invite = w.expect(PBX_ADDR, "INVITE");
    assert!(
        invite
            .text()
            .starts_with("INVITE sip:+4930999@pbx.example.com SIP/2.0\r\n")
    );
    w.pbx_sends(reply(&invite, 200, "OK", "t1", "", Some(TARGET_OFFER)));
    let reinvite = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(reinvite.header("Call-ID").as_deref(), Some("p1"));
    assert!(reinvite.body().contains("c=IN IP4 192.0.2.44\r\n"));
    w.pbx_sends(reply(&reinvite, 200, "OK", "k1", "", Some(PARTY_ANSWER)));
    w.expect(PBX_ADDR, "ACK");
    let target_ack = w.expect(PBX_ADDR, "ACK");
    assert!(target_ack.body().contains("c=IN IP4 192.0.2.20\r\n"));
    let (frag, _) = sipfrag(&w.expect(PROXY1, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 200 OK");
    w.expect(PROXY1, "BYE");
    assert!(w.core.media().live.is_empty());
    // The caller hangs up: the target gets BYE in its dialog.
    w.pbx_sends(in_dialog("BYE", &ok, true, 11, None));
    w.expect(PBX_ADDR, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert_eq!(bye.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(w.records().len(), 1);
    w.assert_clean();
}
