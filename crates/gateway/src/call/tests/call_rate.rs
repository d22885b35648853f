//! A direct route's `max_cps` (issue 31 §6): new calls over the rate, in either direction,
//! get 503 with Retry-After (RFC 3261 §21.5.4, §20.33) and hold nothing; emergency calls are
//! never refused; the rate recovers with time.

use std::time::Duration;

use super::world::*;

fn limited(cps: u32) -> World {
    World::with(view_with_tenant(None, |t| t.max_cps = Some(cps)), 50)
}

#[test]
fn calls_from_teams_over_the_rate_get_503_with_retry_after_and_hold_nothing() {
    let mut w = limited(2);
    for id in ["r1", "r2"] {
        w.teams_sends(teams_invite(id, "+4930111", "+4930222", TENANT, TEAMS_SDP));
        w.expect(PBX_ADDR, "INVITE");
    }
    w.teams_sends(teams_invite(
        "r3", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let r = w.expect(TEAMS_PEER, "503");
    assert_eq!(
        r.header("Retry-After").as_deref(),
        Some("1"),
        "{}",
        r.text()
    );
    let warning = r.header("Warning").unwrap();
    assert!(warning.contains("2 new calls per second"), "{warning}");
    assert!(r.header("Reason").unwrap().contains("max_cps"));
    assert_eq!(w.refusals(), ["max_cps"]);
    assert_eq!(w.core.active(), 2, "the refused call holds no slot");
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));

    // Half a second later one call's credit is back.
    w.advance(Duration::from_millis(500));
    w.teams_sends(teams_invite(
        "r4", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
}

#[test]
fn calls_from_the_pbx_count_against_the_same_rate() {
    let mut w = limited(1);
    w.teams_sends(teams_invite(
        "r5", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(pbx_invite("r6", "tok1", "0301234567", None));
    let r = w.expect(PBX_ADDR, "503");
    assert_eq!(r.header("Retry-After").as_deref(), Some("1"));
    assert!(w.nothing_to(PROXY1, "INVITE"));
    assert_eq!(w.refusals(), ["max_cps"]);
}

#[test]
fn an_emergency_call_is_never_refused_for_the_rate() {
    let mut w = limited(1);
    w.teams_sends(teams_invite(
        "r7", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
    for id in ["e1", "e2", "e3"] {
        w.teams_sends(teams_invite(id, "+4930111", "911", TENANT, TEAMS_SDP));
        w.expect(PBX_ADDR, "INVITE");
    }
    assert!(w.refusals().is_empty(), "{:?}", w.refusals());
    // They took no credit either: the next second admits one ordinary call as usual.
    w.advance(Duration::from_secs(1));
    w.teams_sends(teams_invite(
        "r8", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(PBX_ADDR, "INVITE");
}
