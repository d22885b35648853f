//! Every m-line of an offer answered (RFC 3264 §6: "exactly the same number of m= lines as
//! the offer"), from either side, initially and in re-offers: the audio we bridge as always,
//! every other stream (video, a second audio, T.38, unknown) with port 0 and its own media
//! type and transport. Teams is only ever offered the audio (Direct Routing takes no video);
//! an offer with no usable audio gets 488 with a Warning, and a refused re-offer leaves the
//! call as it was.

use super::world::*;

const VIDEO: &str = "m=video 30002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendrecv\r\n";
const T38: &str = "m=image 30004 udptl t38\r\na=T38FaxVersion:0\r\n";

/// The PBX's SDP with `streams` after its audio, and `version` in `o=`.
fn pbx_offer(version: u32, streams: &str) -> String {
    PBX_SDP.replace("o=pbx 1 1 ", &format!("o=pbx 1 {version} ")) + streams
}

/// The m-lines of a description.
fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

#[test]
fn a_phone_offering_audio_and_video_gets_both_answered_and_teams_only_audio() {
    let mut w = World::new();
    w.pbx_sends(pbx_invite(
        "v1",
        "tok1",
        "0301234567",
        Some(&pbx_offer(1, VIDEO)),
    ));
    w.expect(PBX_ADDR, "100");
    let to_teams = w.expect(PROXY1, "INVITE");
    assert_eq!(m_lines(&to_teams.body()).len(), 1, "{}", to_teams.body());
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "t1", "", Some(TEAMS_ANSWER)),
    );
    let ok = w.expect(PBX_ADDR, "200");
    let body = ok.body();
    let lines = m_lines(&body);
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines[0].starts_with("m=audio ") && !lines[0].starts_with("m=audio 0 "));
    assert_eq!(lines[1], "m=video 0 RTP/AVP 96", "{body}");
}

#[test]
fn a_second_audio_stream_and_t38_beside_audio_are_rejected_with_port_0() {
    let mut w = World::new();
    let second = "m=audio 30010 RTP/AVP 0\r\na=sendrecv\r\n";
    w.pbx_sends(pbx_invite(
        "v2",
        "tok1",
        "0301234567",
        Some(&pbx_offer(1, &format!("{second}{T38}"))),
    ));
    let to_teams = w.expect(PROXY1, "INVITE");
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "t1", "", Some(TEAMS_ANSWER)),
    );
    let ok = w.expect(PBX_ADDR, "200");
    let body = ok.body();
    let lines = m_lines(&body);
    assert_eq!(
        lines[1..],
        ["m=audio 0 RTP/AVP 0", "m=image 0 udptl t38"],
        "{body}"
    );
}

#[test]
fn video_added_mid_call_is_answered_at_port_0_and_the_call_stays_as_it_was() {
    let mut w = World::new();
    let (_, ack) = answered(&mut w);
    w.pbx_sends(in_dialog(
        "INVITE",
        &ack,
        false,
        5,
        Some(&pbx_offer(2, VIDEO)),
    ));
    let ok = w.expect(PBX_ADDR, "200");
    let body = ok.body();
    let lines = m_lines(&body);
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[1], "m=video 0 RTP/AVP 96");
    assert!(
        w.nothing_to(TEAMS_PEER, "INVITE"),
        "Teams never sees the video"
    );
    assert!(w.nothing_to(PBX_ADDR, "BYE") && w.nothing_to(TEAMS_PEER, "BYE"));
}

#[test]
fn a_t38_reoffer_is_488_and_the_call_goes_on_with_g711() {
    let mut w = World::new();
    let (_, ack) = answered(&mut w);
    // A fax machine's switch to T.38: the audio stream disabled, an image stream added.
    let t38 = PBX_SDP
        .replace("o=pbx 1 1 ", "o=pbx 1 2 ")
        .replace("m=audio 30000 ", "m=audio 0 ")
        + T38;
    w.pbx_sends(in_dialog("INVITE", &ack, false, 5, Some(&t38)));
    let r = w.expect(PBX_ADDR, "488");
    let warning = r.header("Warning").unwrap();
    assert!(
        warning.contains("T.38 not supported towards Teams"),
        "{warning}"
    );
    assert!(w.nothing_to(TEAMS_PEER, "INVITE") && w.nothing_to(TEAMS_PEER, "BYE"));
    assert!(w.records().is_empty(), "the call is still up");
    assert_eq!(w.core.active(), 1);
}

#[test]
fn an_initial_offer_of_t38_or_video_only_is_488_and_holds_nothing() {
    let mut w = World::new();
    let only_t38 = PBX_SDP.split("m=audio").next().unwrap().to_owned() + T38;
    w.pbx_sends(pbx_invite("v3", "tok1", "0301234567", Some(&only_t38)));
    let r = w.expect(PBX_ADDR, "488");
    assert!(
        r.header("Warning")
            .unwrap()
            .contains("T.38 not supported towards Teams"),
        "{}",
        r.text()
    );
    let only_video = PBX_SDP.split("m=audio").next().unwrap().to_owned() + VIDEO;
    w.pbx_sends(pbx_invite("v4", "tok1", "0301234567", Some(&only_video)));
    let r = w.expect(PBX_ADDR, "488");
    assert!(
        r.header("Warning").unwrap().contains("no audio stream"),
        "{}",
        r.text()
    );
    assert!(w.nothing_to(PROXY1, "INVITE"));
    w.assert_clean();
}
