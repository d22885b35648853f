//! Hold, resume and other offers inside a call (issue "mid-call" §1; teams-direct-routing.md
//! §3.5, §3.6): each leg is answered on its own terms, only hold and resume cross.

use super::world::*;

/// A Teams -> PBX call answered and acknowledged: our 200 to Teams, our ACK to the PBX.
fn answered(w: &mut World) -> (Sent, Sent) {
    w.teams_sends(teams_invite(
        "h1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    w.expect(TEAMS_PEER, "100");
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    let ack = w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    (ok, ack)
}

fn teams_sdp(version: u32, direction: &str) -> String {
    TEAMS_SDP
        .replace("o=- 2142 0 ", &format!("o=- 2142 {version} "))
        .replace("a=sendrecv", &format!("a={direction}"))
}

fn pbx_sdp(version: u32, direction: &str) -> String {
    PBX_SDP
        .replace("o=pbx 1 1 ", &format!("o=pbx 1 {version} "))
        .replace("a=sendrecv", &format!("a={direction}"))
}

fn version(sdp: &str) -> String {
    sdp.lines()
        .find(|l| l.starts_with("o="))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_owned()
}

#[test]
fn hold_from_teams_reaches_the_pbx_as_sendonly_and_resume_restores_it() {
    let mut w = World::new();
    let (ok, _) = answered(&mut w);
    // Teams holds with a=inactive (§3.6).
    w.teams_sends(in_dialog(
        "INVITE",
        &ok,
        true,
        2,
        Some(&teams_sdp(1, "inactive")),
    ));
    let answer = w.expect(TEAMS_PEER, "200");
    assert!(answer.body().contains("a=inactive"), "{}", answer.body());
    // RFC 3264 §8: a changed description has the next version; address and port stay (§3.5).
    assert_eq!(version(&answer.body()), "2");
    assert_eq!(sdp_line(&answer.body(), "m="), sdp_line(&ok.body(), "m="));
    assert_eq!(sdp_line(&answer.body(), "c="), sdp_line(&ok.body(), "c="));
    assert_eq!(
        sdp_line(&answer.body(), "a=crypto"),
        sdp_line(&ok.body(), "a=crypto")
    );
    w.teams_sends(in_dialog("ACK", &ok, true, 2, None));
    // The PBX is asked to hold with sendonly, so it plays music on hold.
    let hold = w.expect(PBX_ADDR, "INVITE");
    assert!(hold.body().contains("a=sendonly"), "{}", hold.body());
    assert!(
        hold.body().contains("m=audio 40006 RTP/AVP 8 "),
        "{}",
        hold.body()
    );
    w.pbx_sends(reply(
        &hold,
        200,
        "OK",
        "k1",
        "",
        Some(&pbx_sdp(2, "recvonly")),
    ));
    w.expect(PBX_ADDR, "ACK");
    // Nothing is sent to Teams while it holds.
    assert!(w.applied().iter().all(|p| !p.teams.send));
    // Resume.
    w.teams_sends(in_dialog(
        "INVITE",
        &ok,
        true,
        3,
        Some(&teams_sdp(2, "sendrecv")),
    ));
    let answer = w.expect(TEAMS_PEER, "200");
    assert!(answer.body().contains("a=sendrecv"));
    assert_eq!(version(&answer.body()), "3");
    let resume = w.expect(PBX_ADDR, "INVITE");
    assert!(resume.body().contains("a=sendrecv"), "{}", resume.body());
    w.pbx_sends(reply(
        &resume,
        200,
        "OK",
        "k1",
        "",
        Some(&pbx_sdp(3, "sendrecv")),
    ));
    w.expect(PBX_ADDR, "ACK");
    assert!(w.applied().iter().all(|p| p.teams.send && p.pbx.send));
    assert!(w.nothing_to(TEAMS_PEER, "BYE") && w.nothing_to(PBX_ADDR, "BYE"));
}

#[test]
fn hold_from_the_pbx_reaches_teams_only_as_inactive_with_a_real_address() {
    for pbx_hold in [
        pbx_sdp(2, "sendonly"),
        pbx_sdp(2, "inactive"),
        pbx_sdp(2, "sendrecv").replace("c=IN IP4 192.0.2.20", "c=IN IP4 0.0.0.0"),
    ] {
        let mut w = World::new();
        let (ok, ack) = answered(&mut w);
        w.pbx_sends(in_dialog("INVITE", &ack, false, 5, Some(&pbx_hold)));
        let answer = w.expect(PBX_ADDR, "200");
        assert!(
            answer.body().contains("a=recvonly") || answer.body().contains("a=inactive"),
            "{}",
            answer.body()
        );
        // Towards Teams: a=inactive, never sendonly or c=0.0.0.0 (§3.6), our address, port
        // and key as in the call's first answer (§3.5).
        let hold = w.expect(TEAMS_PEER, "INVITE");
        let sdp = hold.body();
        assert!(
            sdp.contains("a=inactive") && !sdp.contains("sendonly"),
            "{sdp}"
        );
        assert_eq!(sdp_line(&sdp, "c="), sdp_line(&ok.body(), "c="));
        assert_eq!(
            sdp_line(&sdp, "m=").split(' ').nth(1),
            sdp_line(&ok.body(), "m=").split(' ').nth(1)
        );
        assert_eq!(
            sdp_line(&sdp, "a=crypto").split(' ').nth(2),
            sdp_line(&ok.body(), "a=crypto").split(' ').nth(2)
        );
        w.teams_sends(reply(
            &hold,
            200,
            "OK",
            "tf",
            "",
            Some(&teams_sdp(1, "inactive")),
        ));
        w.expect(TEAMS_PEER, "ACK");
        assert!(w.nothing_to(TEAMS_PEER, "BYE"));
    }
}

#[test]
fn relay_pbx_hold_keeps_teams_unheld() {
    let mut w = World::with_settings(view(None), 100, |s| s.relay_pbx_hold = true);
    let (_, ack) = answered(&mut w);
    w.pbx_sends(in_dialog(
        "INVITE",
        &ack,
        false,
        5,
        Some(&pbx_sdp(2, "sendonly")),
    ));
    w.expect(PBX_ADDR, "200");
    assert!(w.nothing_to(TEAMS_PEER, "INVITE"), "Teams was held");
    // The PBX's music on hold is relayed: we still send to Teams.
    assert!(w.applied().iter().all(|p| p.teams.send));
}

#[test]
fn a_codec_the_call_cannot_bridge_is_488_and_the_call_stays_up() {
    let mut w = World::new();
    let (_, ack) = answered(&mut w);
    let g729 = "v=0\r\no=pbx 1 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\na=sendrecv\r\n";
    w.pbx_sends(in_dialog("INVITE", &ack, false, 5, Some(g729)));
    let r = w.expect(PBX_ADDR, "488");
    assert!(
        r.header("Warning").unwrap().contains("PCMA"),
        "{}",
        r.text()
    );
    assert!(w.nothing_to(TEAMS_PEER, "INVITE") && w.nothing_to(TEAMS_PEER, "BYE"));
    assert!(w.records().is_empty());
}

#[test]
fn glare_on_our_hold_reinvite_is_491_and_a_refused_hold_keeps_the_call() {
    let mut w = World::new();
    let (ok, ack) = answered(&mut w);
    w.teams_sends(in_dialog(
        "INVITE",
        &ok,
        true,
        2,
        Some(&teams_sdp(1, "inactive")),
    ));
    w.expect(TEAMS_PEER, "200");
    let hold = w.expect(PBX_ADDR, "INVITE");
    // RFC 3261 §14.2: the PBX's own re-INVITE while ours is pending gets 491.
    w.pbx_sends(in_dialog(
        "INVITE",
        &ack,
        false,
        5,
        Some(&pbx_sdp(2, "sendonly")),
    ));
    w.expect(PBX_ADDR, "491");
    // The PBX refuses our hold: the call goes on as it was.
    w.pbx_sends(reply(&hold, 488, "Not Acceptable Here", "k1", "", None));
    w.expect(PBX_ADDR, "ACK");
    assert!(w.nothing_to(PBX_ADDR, "BYE") && w.nothing_to(TEAMS_PEER, "BYE"));
    assert!(w.records().is_empty());
}
