//! Transfer to a number (teams-direct-routing.md §3.7; RFC 3515): Teams' REFER with a user
//! part becomes our REFER on the PBX leg, the PBX's NOTIFYs reach Teams as ours, and the PBX
//! ends our leg once its party is transferred. A PBX that refuses leaves the call as it was.

use super::transfer::{refer, sipfrag};
use std::time::Duration;

use super::world::*;

const NUMBER_TARGET: &str = "<sip:+4930999@sip.pstnhub.microsoft.com:5061;user=phone>";

/// A NOTIFY from the PBX on our REFER's subscription, in the PBX leg's dialog.
fn pbx_notify(ack: &Sent, cseq: u32, state: &str, frag: &str) -> String {
    in_dialog("NOTIFY", ack, false, cseq, Some(frag)).replace(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nEvent: refer\r\nSubscription-State: {state}\r\n\
             Content-Type: message/sipfrag;version=2.0\r\n"
        ),
    )
}

/// An answered Teams -> PBX call whose Teams side asked for a transfer to a number: our 200
/// to Teams, our ACK to the PBX, and our REFER to the PBX (Teams' 202 and NOTIFY 100 taken).
fn referred(w: &mut World) -> (Sent, Sent, Sent) {
    let (ok, ack) = answered(w);
    w.teams_sends(refer(&ok, 2, NUMBER_TARGET));
    w.expect(TEAMS_PEER, "202");
    w.expect(TEAMS_PEER, "NOTIFY");
    let to_pbx = w.expect(PBX_ADDR, "REFER");
    (ok, ack, to_pbx)
}

#[test]
fn a_refer_to_a_number_goes_to_the_pbx_and_its_notifies_reach_teams_rfc3515() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    w.teams_sends(refer(&ok, 2, NUMBER_TARGET));
    w.expect(TEAMS_PEER, "202");
    let (frag, _) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 100 Trying");
    // Our REFER on the PBX leg: the number at the PBX's domain, from the user's device.
    let to_pbx = w.expect(PBX_ADDR, "REFER");
    assert_eq!(to_pbx.header("Call-ID"), ack.header("Call-ID"));
    assert_eq!(
        to_pbx.header("Refer-To").unwrap(),
        "<sip:+4930999@pbx.example.com>"
    );
    assert_eq!(
        to_pbx.header("Referred-By").unwrap(),
        "<sip:1001@pbx.example.com>"
    );
    assert!(to_pbx.header("Contact").is_some(), "{}", to_pbx.text());
    w.pbx_sends(reply(&to_pbx, 202, "Accepted", "k1", "", None));
    assert!(
        w.nothing_to(TEAMS_PEER, "NOTIFY"),
        "the 202 is the PBX's own"
    );

    w.pbx_sends(pbx_notify(
        &ack,
        20,
        "active;expires=60",
        "SIP/2.0 180 Ringing\r\n",
    ));
    w.expect(PBX_ADDR, "200");
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(
        (frag.as_str(), state.as_str()),
        ("SIP/2.0 180 Ringing", "active;expires=60")
    );
    w.pbx_sends(pbx_notify(
        &ack,
        21,
        "terminated;reason=noresource",
        "SIP/2.0 200 OK\r\n",
    ));
    w.expect(PBX_ADDR, "200");
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 200 OK");
    assert!(state.starts_with("terminated"), "{state}");
    // RFC 5589 §6: the transfer succeeded, so we end our dialogs as the transferor.
    let bye = w.expect(PBX_ADDR, "BYE");
    assert!(
        bye.header("Reason").unwrap().contains("transferred"),
        "{}",
        bye.text()
    );
    w.expect(TEAMS_PEER, "BYE");
    assert_eq!(w.records().len(), 1);
    assert_eq!(w.transfers(), [("number", "completed")]);
}

#[test]
fn a_pbx_that_refuses_refer_leaves_the_call_and_teams_hears_why() {
    let mut w = World::new();
    let (ok, ack, to_pbx) = referred(&mut w);
    // 603 refuses this transfer; 403, 405 and 501 refuse REFER itself (`bridge_transfer.rs`).
    w.pbx_sends(reply(&to_pbx, 603, "Decline", "k1", "", None));
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 603 Decline");
    assert!(state.starts_with("terminated"), "{state}");
    assert!(w.nothing_to(TEAMS_PEER, "BYE") && w.nothing_to(PBX_ADDR, "BYE"));
    assert!(w.records().is_empty());
    assert_eq!(w.transfers(), [("number", "failed")]);
    // The transfer is over: Teams may try again.
    w.teams_sends(refer(&ok, 3, NUMBER_TARGET));
    w.expect(TEAMS_PEER, "202");
    w.expect(PBX_ADDR, "REFER");
    drop(ack);
}

/// siphon-sip#220: Teams hangs up right after our 202. The PBX leg stays until the PBX's
/// final NOTIFY, then ends; nobody is left to notify.
#[test]
fn the_transferor_may_leave_before_the_pbx_is_done() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    w.teams_sends(refer(&ok, 2, NUMBER_TARGET));
    let to_pbx = w.expect(PBX_ADDR, "REFER");
    w.pbx_sends(reply(&to_pbx, 202, "Accepted", "k1", "", None));
    w.teams_sends(in_dialog("BYE", &ok, true, 3, None));
    w.expect(TEAMS_PEER, "200");
    assert!(
        w.nothing_to(PBX_ADDR, "BYE"),
        "the PBX leg ended under the transfer"
    );
    w.sent.clear();
    w.pbx_sends(pbx_notify(
        &ack,
        20,
        "terminated;reason=noresource",
        "SIP/2.0 200 OK\r\n",
    ));
    w.expect(PBX_ADDR, "200");
    let bye = w.expect(PBX_ADDR, "BYE");
    assert!(bye.header("Reason").is_some(), "{}", bye.text());
    assert!(w.nothing_to(TEAMS_PEER, "NOTIFY") && w.nothing_to(TEAMS_PEER, "BYE"));
    let records = w.records();
    assert_eq!(records.len(), 1);
}

/// RFC 3515 §2.4.6: the subscription we announced (60 s) ends without the PBX's final
/// NOTIFY; Teams hears 408 and the call goes on. Each NOTIFY that keeps it active renews it.
#[test]
fn a_pbx_that_never_sends_its_final_notify_ends_the_transfer_after_the_subscription() {
    let mut w = World::new();
    let (_, ack, to_pbx) = referred(&mut w);
    w.pbx_sends(reply(&to_pbx, 202, "Accepted", "k1", "", None));
    w.advance(Duration::from_secs(50));
    w.pbx_sends(pbx_notify(
        &ack,
        20,
        "active;expires=60",
        "SIP/2.0 180 Ringing\r\n",
    ));
    w.expect(PBX_ADDR, "200");
    w.expect(TEAMS_PEER, "NOTIFY");
    w.advance(Duration::from_secs(50));
    assert!(w.transfers().is_empty(), "the renewed subscription expired");
    w.advance(Duration::from_secs(15));
    let (frag, state) = sipfrag(&w.expect(TEAMS_PEER, "NOTIFY"));
    assert_eq!(frag, "SIP/2.0 408 Request Timeout");
    assert!(state.starts_with("terminated"), "{state}");
    assert_eq!(w.transfers(), [("number", "failed")]);
    assert!(w.nothing_to(TEAMS_PEER, "BYE") && w.nothing_to(PBX_ADDR, "BYE"));
    assert!(w.records().is_empty());
}
