//! Session timers on both legs (RFC 4028; teams-direct-routing.md §3.5): calls outlive many
//! refresh intervals, refreshes stay on their own leg, and a leg that stops refreshing, or
//! refuses ours, ends the whole call.

use std::time::Duration;

use super::world::*;
use crate::call::cause::Side;

/// A Teams -> PBX call answered and acknowledged, with `extra` header lines in Teams' INVITE.
/// Returns our 200 to Teams and our INVITE to the PBX.
fn answered_from_teams(w: &mut World, extra: &str) -> (Sent, Sent) {
    let invite = teams_invite("st1", "+4930111", "+4930222", TENANT, TEAMS_SDP).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
    );
    w.teams_sends(invite);
    w.expect(TEAMS_PEER, "100");
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    (ok, to_pbx)
}

/// `in_dialog` with extra header lines.
fn in_dialog_with(method: &str, ours: &Sent, cseq: u32, extra: &str, sdp: Option<&str>) -> String {
    in_dialog(method, ours, true, cseq, sdp).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
    )
}

#[test]
fn teams_refreshes_are_answered_on_their_leg_and_never_relayed_rfc4028_9() {
    let mut w = World::new();
    let (ok, to_pbx) = answered_from_teams(
        &mut w,
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
    );
    // §9: our 2xx names the interval and the refresher, and requires timer support.
    assert_eq!(ok.header("Session-Expires").unwrap(), "90;refresher=uac");
    assert_eq!(ok.header("Require").unwrap(), "timer");
    // Our INVITE to the PBX offered our own timer (RFC 4028 §7.1).
    assert_eq!(to_pbx.header("Session-Expires").unwrap(), "1800");
    assert!(to_pbx.header("Supported").unwrap().contains("timer"));
    // Ten refreshes, one every 45 s: 7.5 minutes, five times the interval.
    for cseq in 2..12 {
        w.advance(Duration::from_secs(45));
        w.teams_sends(in_dialog_with(
            "INVITE",
            &ok,
            cseq,
            "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
            Some(TEAMS_SDP),
        ));
        let answer = w.expect(TEAMS_PEER, "200");
        assert_eq!(
            answer.header("Session-Expires").unwrap(),
            "90;refresher=uac"
        );
        // The same description as in our first answer (RFC 3264 §8: no change, same version).
        assert_eq!(answer.body(), ok.body());
        w.teams_sends(in_dialog("ACK", &ok, true, cseq, None));
    }
    assert!(
        w.nothing_to(PBX_ADDR, "INVITE"),
        "a refresh reached the PBX"
    );
    assert!(w.nothing_to(TEAMS_PEER, "BYE"));
    assert!(w.records().is_empty(), "the call ended");
}

#[test]
fn a_peer_that_stops_refreshing_ends_the_call_on_both_legs_rfc4028_10() {
    let mut w = World::new();
    answered_from_teams(
        &mut w,
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
    );
    // §10: BYE at the interval less min(32 s, a third of it): 60 s without a refresh.
    w.advance(Duration::from_secs(59));
    assert!(w.nothing_to(TEAMS_PEER, "BYE"));
    w.advance(Duration::from_secs(1));
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert!(bye.header("Reason").unwrap().contains("session expired"));
    let pbx_bye = w.expect(PBX_ADDR, "BYE");
    assert!(
        pbx_bye
            .header("Reason")
            .unwrap()
            .contains("session expired")
    );
    w.teams_sends(reply(&bye, 200, "OK", "x", "", None));
    w.pbx_sends(reply(&pbx_bye, 200, "OK", "x", "", None));
    let records = w.records();
    assert_eq!(records.len(), 1);
    // The CDR says why (issue: "the CDR says why").
    assert_eq!(
        (records[0].result, records[0].reason.as_str()),
        ("answered", "teams stopped refreshing the session")
    );
    assert_eq!(records[0].hung_up_by, Some(Side::Gateway));
    w.assert_clean();
}

#[test]
fn as_refresher_we_reinvite_at_half_the_interval_and_a_failed_refresh_ends_the_call() {
    let mut w = World::new();
    let (ok, _) = answered_from_teams(
        &mut w,
        "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\n",
    );
    assert_eq!(ok.header("Session-Expires").unwrap(), "120;refresher=uas");
    for round in 0..3 {
        // §7.4: the refresher refreshes at half the interval.
        w.advance(Duration::from_secs(59));
        assert!(
            w.nothing_to(TEAMS_PEER, "INVITE"),
            "round {round}: too early"
        );
        w.advance(Duration::from_secs(1));
        let refresh = w.expect(TEAMS_PEER, "INVITE");
        assert_eq!(
            refresh.header("Session-Expires").unwrap(),
            "120;refresher=uac"
        );
        // The re-INVITE repeats our last answer to Teams, in the dialog Teams started.
        assert_eq!(refresh.body(), ok.body());
        assert_eq!(refresh.header("Call-ID"), ok.header("Call-ID"));
        assert!(
            refresh
                .header("From")
                .unwrap()
                .contains(&ok.header("To").unwrap()[..10])
        );
        w.teams_sends(reply(
            &refresh,
            200,
            "OK",
            "tf",
            "Session-Expires: 120;refresher=uac",
            Some(TEAMS_SDP),
        ));
        // RFC 3261 §13.2.2.4: its 2xx is acknowledged with the re-INVITE's CSeq.
        let ack = w.expect(TEAMS_PEER, "ACK");
        assert_eq!(
            ack.header("CSeq").unwrap().split(' ').next(),
            refresh.header("CSeq").unwrap().split(' ').next()
        );
    }
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
    // Glare: 491, then the same refresh again within 2 s (RFC 3261 §14.1).
    w.advance(Duration::from_secs(60));
    let refresh = w.expect(TEAMS_PEER, "INVITE");
    w.teams_sends(reply(&refresh, 491, "Request Pending", "tf", "", None));
    w.expect(TEAMS_PEER, "ACK");
    w.advance(Duration::from_secs(2));
    let again = w.expect(TEAMS_PEER, "INVITE");
    // A refused refresh ends the call on both legs (RFC 4028 §10).
    w.teams_sends(reply(
        &again,
        481,
        "Call/Transaction Does Not Exist",
        "tf",
        "",
        None,
    ));
    let pbx_bye = w.expect(PBX_ADDR, "BYE");
    assert!(
        pbx_bye
            .header("Reason")
            .unwrap()
            .contains("session refresh failed")
    );
    w.expect(TEAMS_PEER, "BYE");
    let records = w.records();
    assert_eq!(records[0].reason, "session refresh towards teams failed");
}

#[test]
fn the_pbx_leg_is_refreshed_with_our_timer_when_the_pbx_offers_none() {
    let mut w = World::new();
    answered_from_teams(&mut w, "");
    // The PBX's 200 had no Session-Expires: we refresh it at half our 1800 s.
    w.advance(Duration::from_secs(899));
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
    w.advance(Duration::from_secs(1));
    let refresh = w.expect(PBX_ADDR, "INVITE");
    assert_eq!(
        refresh.header("Session-Expires").unwrap(),
        "1800;refresher=uac"
    );
    assert!(refresh.body().contains("RTP/AVP"), "our PBX offer again");
    w.pbx_sends(reply(&refresh, 200, "OK", "k1", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    // Teams offered no timer (a bypass call): its leg has none, and nothing goes to it.
    assert!(w.nothing_to(TEAMS_PEER, "INVITE"));
    assert!(w.nothing_to(TEAMS_PEER, "BYE"));
}

#[test]
fn a_too_small_interval_is_422_with_min_se_rfc4028_8_1() {
    let mut w = World::new();
    let invite = teams_invite("st9", "+4930111", "+4930222", TENANT, TEAMS_SDP).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSession-Expires: 30\r\nSupported: timer\r\n",
    );
    w.teams_sends(invite);
    w.expect(TEAMS_PEER, "100");
    let r = w.expect(TEAMS_PEER, "422");
    assert_eq!(r.header("Min-SE").unwrap(), "90");
    assert!(w.nothing_to(PBX_ADDR, "INVITE"));
    w.assert_clean();
}

#[test]
fn finished_calls_leave_no_timer_entries_behind() {
    // A finished call's far deadline (a 90 s session timer here, 1800 s by default) must not
    // stay in the heap until it passes: 3,000 short calls, none of them running a timer out.
    let mut w = World::new();
    for i in 0..3000u32 {
        let invite = teams_invite(
            &format!("heap{i}"),
            "+4930111",
            "+4930222",
            TENANT,
            TEAMS_SDP,
        )
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nSession-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
        );
        w.teams_sends(invite);
        let to_pbx = w.expect(PBX_ADDR, "INVITE");
        w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
        let ok = w.expect(TEAMS_PEER, "200");
        w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
        w.teams_sends(in_dialog("BYE", &ok, true, 2, None));
        let bye = w.expect(PBX_ADDR, "BYE");
        w.pbx_sends(reply(&bye, 200, "OK", "k1", "", None));
        w.sent.clear();
        w.now += Duration::from_millis(1);
    }
    assert_eq!(w.core.active(), 0);
    let timers = w.core.table_sizes()[3];
    assert!(
        timers <= 1024 + 3,
        "{timers} timer entries for no live call"
    );
}

/// Issue 31 §3: `Session-Expires` and `Min-SE` of 2^64-1 from either peer, in an INVITE, a
/// 200 and a 422, get sane answers and stop no shard (a deadline of now + 2^64 s overflowed
/// `Instant` and killed the shard). RFC 4028 §9 lets the UAS lower the interval.
#[test]
fn huge_session_intervals_are_lowered_and_stop_nothing_rfc4028_9() {
    const HUGE: &str = "18446744073709551615";
    let mut w = World::new();
    // In Teams' INVITE: our answer lowers it to a day.
    let (ok, to_pbx) = answered_from_teams(
        &mut w,
        &format!("Session-Expires: {HUGE};refresher=uas\r\nSupported: timer\r\nMin-SE: {HUGE}\r\n"),
    );
    assert_eq!(ok.header("Session-Expires").unwrap(), "86400;refresher=uas");
    drop(to_pbx);
    // (Before our own refresh of the PBX leg at 900 s, which this world leaves unanswered.)
    w.advance(Duration::from_secs(600));
    assert_eq!(w.core.active(), 1, "the call is up ten minutes later");

    // In the PBX's 200 to our INVITE (we asked 1800 s): kept at a day at most.
    w.teams_sends(teams_invite(
        "st-huge2", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(
        &to_pbx,
        200,
        "OK",
        "k2",
        &format!("Session-Expires: {HUGE};refresher=uac\r\nRequire: timer"),
        Some(PBX_SDP),
    ));
    w.expect(PBX_ADDR, "ACK");
    let ok2 = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok2, true, 1, None));
    w.advance(Duration::from_secs(60));
    assert_eq!(w.core.active(), 2);

    // A 422 whose Min-SE is beyond a day: not retried with it; the call fails cleanly.
    w.teams_sends(teams_invite(
        "st-huge3", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(
        &to_pbx,
        422,
        "Session Interval Too Small",
        "k3",
        &format!("Min-SE: {HUGE}"),
        None,
    ));
    w.expect(PBX_ADDR, "ACK");
    assert!(
        w.nothing_to(PBX_ADDR, "INVITE"),
        "no retry with an interval of 2^64 s"
    );
    // RFC 4028 §6: a 422 must carry a Min-SE; Teams' interval was never the problem.
    let failed = w.expect(TEAMS_PEER, "500");
    assert!(
        failed.header("Warning").unwrap().contains("422"),
        "{}",
        failed.text()
    );
    assert_eq!(w.core.active(), 2);

    // Afterwards calls still work on this core.
    w.teams_sends(teams_invite(
        "st-after", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k4", "", Some(PBX_SDP)));
    w.expect(TEAMS_PEER, "200");
    assert_eq!(w.core.active(), 3);
}
