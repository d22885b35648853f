//! Dialogs bound to their peers (issue 31 §2). A dialog's ids and a transaction's branch
//! are no proof of being its peer: a stranger who learned them (the PBX side travels in
//! clear) gets 403 for a request and is not heard for a response, a CANCEL or an ACK.

use super::world::*;
use crate::call::CallEvent;

const STRANGER: &str = "192.0.2.66:5060";

fn refused(w: &World) -> usize {
    w.events
        .iter()
        .filter(|e| {
            matches!(
                e,
                CallEvent::SourceRefused {
                    reason: "dialog_source"
                }
            )
        })
        .count()
}

#[test]
fn a_bye_or_reinvite_with_the_pbx_legs_ids_from_a_stranger_gets_403_and_the_call_stays() {
    let mut w = World::new();
    let (_ok, pbx_ack) = answered(&mut w);
    let applied = w.applied().len();
    w.pbx_sends_from(STRANGER, in_dialog("BYE", &pbx_ack, false, 11, None));
    let answer = w.expect(STRANGER, "403");
    let warning = answer.header("Warning").unwrap_or_default();
    assert!(warning.contains("not from this dialog's peer"), "{warning}");
    assert!(
        !answer.text().contains("alice"),
        "names nothing of the call"
    );
    let foreign = PBX_SDP.replace("192.0.2.20", "192.0.2.66");
    w.pbx_sends_from(
        STRANGER,
        in_dialog("INVITE", &pbx_ack, false, 12, Some(&foreign)),
    );
    let answer = w.expect(STRANGER, "403");
    assert!(
        answer.body().is_empty(),
        "no key or media address given out"
    );
    assert_eq!(w.applied().len(), applied, "the media path is unchanged");
    assert!(w.nothing_to(TEAMS_PEER, "BYE") && w.nothing_to(TEAMS_PEER, "INVITE"));
    assert_eq!(w.core.active(), 1);
    assert_eq!(refused(&w), 2);
    // The 403 is sent once: no retransmission to an address that may be spoofed.
    w.sent.clear();
    w.advance(std::time::Duration::from_secs(40));
    assert!(w.nothing_to(STRANGER, "403"));

    // The PBX itself still ends the call.
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 13, None));
    w.expect(PBX_ADDR, "200");
    w.expect(TEAMS_PEER, "BYE");
    assert_eq!(w.core.active(), 0);
}

#[test]
fn the_pbxs_address_over_another_transport_is_no_peer_either() {
    let mut w = World::new();
    let (_ok, pbx_ack) = answered(&mut w);
    // The PBX leg runs over UDP; the same address over the Teams listener's TLS is refused
    // too: a PBX leg's peer is its addresses over its transport.
    w.teams_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    w.expect(TEAMS_PEER, "403");
    assert_eq!(w.core.active(), 1);
    assert_eq!(refused(&w), 1);
}

#[test]
fn a_stranger_cannot_cancel_a_ringing_call_with_its_invites_branch_rfc3261_9_2() {
    let mut w = World::new();
    let invite = pbx_invite("c1", "tok1", "0301234567", Some(PBX_SDP));
    w.pbx_sends(invite.clone());
    w.expect(PBX_ADDR, "100");
    let to_teams = w.expect(PROXY1, "INVITE");
    w.proxy_sends(PROXY1, reply(&to_teams, 180, "Ringing", "t1", "", None));
    w.pbx_sends_from(STRANGER, cancel_of(&invite));
    w.expect(STRANGER, "403");
    assert!(w.nothing_to(PROXY1, "CANCEL"));
    assert!(w.nothing_to(PBX_ADDR, "487"));
    assert_eq!(w.core.active(), 1);
    assert_eq!(refused(&w), 1);
    // The PBX's own CANCEL ends it.
    w.pbx_sends(cancel_of(&invite));
    w.expect(PBX_ADDR, "487");
    w.expect(PROXY1, "CANCEL");
}

#[test]
fn a_response_from_a_stranger_is_not_heard_issue_31_2() {
    let mut w = World::new();
    w.teams_sends(teams_invite(
        "r1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    // A 200 with the right branch and an attacker's media address, from elsewhere.
    let forged = reply(
        &to_pbx,
        200,
        "OK",
        "evil",
        "",
        Some(&PBX_SDP.replace("192.0.2.20", "192.0.2.66")),
    );
    w.pbx_sends_from(STRANGER, forged);
    assert!(w.nothing_to(TEAMS_PEER, "200"));
    assert!(w.nothing_to(STRANGER, "ACK") && w.nothing_to(PBX_ADDR, "ACK"));
    assert_eq!(refused(&w), 1);
    // The PBX's own answer connects the call.
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    assert!(!ok.body().contains("192.0.2.66"));
}

#[test]
fn a_strangers_invite_gets_one_answer_and_leaves_no_state_issue_31_6() {
    let mut w = World::new();
    w.pbx_sends_from(
        STRANGER,
        pbx_invite("x1", "no-such-token", "0301234567", Some(PBX_SDP)),
    );
    w.expect(STRANGER, "404");
    assert!(w.nothing_to(STRANGER, "100"), "no 100 Trying to a stranger");
    assert_eq!(w.core.table_sizes()[5], 0, "no server transaction kept");
    w.sent.clear();
    w.advance(std::time::Duration::from_secs(40));
    assert!(w.sent.is_empty(), "retransmitted: {:?}", w.sent);
    // The PBX's own unknown token still gets the full transaction (100, retransmitted 404).
    w.pbx_sends(pbx_invite(
        "x2",
        "no-such-token",
        "0301234567",
        Some(PBX_SDP),
    ));
    w.expect(PBX_ADDR, "100");
    w.expect(PBX_ADDR, "404");
    w.advance(std::time::Duration::from_secs(1));
    w.expect(PBX_ADDR, "404");
}
