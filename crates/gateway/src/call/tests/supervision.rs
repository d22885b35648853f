//! A shard that panicked recovers (issue 31 §4): every call ends with BYE on both legs where
//! its state allows, each gets its record with "internal error", ports and `max_sessions`
//! slots come back, and the shard takes new calls.

use super::world::*;

#[test]
fn recover_ends_every_call_with_bye_on_both_legs_and_frees_what_they_held() {
    // One session allowed: the slot must come back for the next call to be admitted.
    let mut w = World::with(view(Some(1)), 10);
    let (_ok, _ack) = answered(&mut w);
    assert_eq!(w.core.active(), 1);
    w.core.recover(w.now);
    w.drain();
    w.expect(TEAMS_PEER, "BYE");
    w.expect(PBX_ADDR, "BYE");
    assert_eq!(w.core.active(), 0);
    assert!(w.core.media().live.is_empty(), "media released");
    let records = w.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].reason.as_str(), records[0].result),
        ("internal error", "failed")
    );
    assert!(w.core.table_sizes()[1..].iter().all(|&n| n == 0));
}

#[test]
fn after_recovering_the_shard_takes_new_calls_within_max_sessions() {
    let mut w = World::with(view(Some(1)), 10);
    // A call still ringing at the PBX: it gets CANCEL, and 503 goes back to Teams.
    w.teams_sends(teams_invite(
        "s1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 180, "Ringing", "k1", "", None));
    w.sent.clear();
    w.core.recover(w.now);
    w.drain();
    w.expect(PBX_ADDR, "CANCEL");
    w.expect(TEAMS_PEER, "503");
    assert_eq!(w.core.active(), 0);
    // The next call is admitted (the max_sessions slot came back) and connects.
    let (_ok, _ack) = answered(&mut w);
    assert_eq!(w.core.active(), 1);
}
