//! Max-Forwards across the B2BUA (RFC 7332 §3): each leg's INVITE carries the caller's count
//! less one, so a routing loop through SBCs and PBXs ends; an INVITE that arrives with 0 gets
//! 483 (RFC 3261 §16.3 step 3) and holds nothing.

use super::world::*;

#[test]
fn the_count_goes_on_less_one_in_both_directions() {
    let mut w = World::new();
    let invite = teams_invite("mf1", "+4930111", "+4930222", TENANT, TEAMS_SDP);
    assert!(invite.contains("Max-Forwards: 70\r\n"));
    w.teams_sends(invite);
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(to_pbx.header("Max-Forwards").as_deref(), Some("69"));

    let invite = pbx_invite("mf2", "tok1", "0301234567", Some(PBX_SDP));
    w.pbx_sends(invite.replace("Max-Forwards: 69\r\n", "Max-Forwards: 1\r\n"));
    let to_teams = w.expect(PROXY1, "INVITE");
    assert_eq!(to_teams.header("Max-Forwards").as_deref(), Some("0"));
}

#[test]
fn an_invite_that_arrives_with_0_gets_483_and_holds_nothing() {
    let mut w = World::new();
    let invite = teams_invite("mf3", "+4930111", "+4930222", TENANT, TEAMS_SDP)
        .replace("Max-Forwards: 70\r\n", "Max-Forwards: 0\r\n");
    w.teams_sends(invite);
    let r = w.expect(TEAMS_PEER, "483");
    assert!(
        r.header("Warning").unwrap().contains("Max-Forwards"),
        "{}",
        r.text()
    );
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
    assert_eq!(w.refusals(), ["too_many_hops"]);
    w.assert_clean();

    // Without a Max-Forwards at all, the INVITE goes on with ours.
    let invite = teams_invite("mf4", "+4930111", "+4930222", TENANT, TEAMS_SDP)
        .replace("Max-Forwards: 70\r\n", "");
    w.teams_sends(invite);
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(to_pbx.header("Max-Forwards").as_deref(), Some("70"));
}
