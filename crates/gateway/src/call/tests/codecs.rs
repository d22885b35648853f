//! Codecs beyond G.711 (issue 37 §2): a PBX provisioned with `G722,PCMU` (or `G729`) gets the
//! first codec in its order that both legs offer, relayed end to end without transcoding;
//! SILK never reaches the PBX; telephone-event stays at 8000 Hz on both legs (G.722's RTP
//! clock is 8000 by RFC 3551 §4.5.2); the CDR names the codec. The default `PCMA,PCMU` is
//! G.711 as before.

use super::world::*;

fn codecs(list: &[&str]) -> World {
    World::with(
        view_with_pbx(None, |p| {
            p.codecs = list.iter().map(|c| (*c).to_owned()).collect();
        }),
        10,
    )
}

fn formats(sdp: &str) -> Vec<String> {
    sdp_line(sdp, "m=audio ")
        .split(' ')
        .skip(3)
        .map(str::to_owned)
        .collect()
}

const PBX_G722: &str = "v=0\r\no=pbx 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";

#[test]
fn teams_to_a_g722_pbx_is_g722_end_to_end_and_never_silk() {
    let mut w = codecs(&["G722", "PCMU"]);
    w.teams_sends(teams_invite(
        "g1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    let offer = to_pbx.body();
    // The PBX's order among what Teams offered; no PCMA (not the PBX's), no SILK.
    assert_eq!(formats(&offer), ["9", "0", "13", "101"], "{offer}");
    assert!(
        offer.contains("a=rtpmap:9 G722/8000") && !offer.contains("SILK"),
        "{offer}"
    );
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_G722)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    let answer = ok.body();
    assert_eq!(formats(&answer), ["9", "101"], "{answer}");
    assert!(
        answer.contains("a=rtpmap:101 telephone-event/8000"),
        "{answer}"
    );
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.teams_sends(in_dialog("BYE", &ok, true, 2, None));
    w.expect(TEAMS_PEER, "200");
    let records = w.records();
    assert_eq!(records[0].codec.as_deref(), Some("G722"), "{records:?}");
}

#[test]
fn the_default_codecs_stay_g711_and_a_g722_only_phone_gets_488() {
    let mut w = World::new();
    w.teams_sends(teams_invite(
        "g2", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    assert!(!to_pbx.body().contains("G722"), "{}", to_pbx.body());

    w.pbx_sends(pbx_invite("g3", "tok1", "0301234567", Some(PBX_G722)));
    let r = w.expect(PBX_ADDR, "488");
    let warning = r.header("Warning").unwrap();
    assert!(warning.contains("PCMA,PCMU"), "{warning}");
    assert!(w.nothing_to(PROXY1, "INVITE"));
}

#[test]
fn a_g722_phone_reaches_teams_with_g722_when_the_pbx_allows_it() {
    let mut w = codecs(&["G722", "PCMU"]);
    w.pbx_sends(pbx_invite("g4", "tok1", "0301234567", Some(PBX_G722)));
    let to_teams = w.expect(PROXY1, "INVITE");
    let offer = to_teams.body();
    assert_eq!(formats(&offer), ["9", "101"], "{offer}");
    assert!(offer.contains("RTP/SAVP"), "{offer}");
    let teams_g722 = TEAMS_ANSWER
        .replace("RTP/SAVP 8 101", "RTP/SAVP 9 101")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000");
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "t1", "", Some(&teams_g722)),
    );
    let ok = w.expect(PBX_ADDR, "200");
    assert_eq!(formats(&ok.body()), ["9", "101"], "{}", ok.body());
}

#[test]
fn a_g729_pbx_gets_g729_from_a_phone_that_offers_it() {
    let mut w = codecs(&["G729"]);
    let g729 = PBX_G722.replace("RTP/AVP 9 101", "RTP/AVP 18 101").replace(
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no",
    );
    w.pbx_sends(pbx_invite("g5", "tok1", "0301234567", Some(&g729)));
    let to_teams = w.expect(PROXY1, "INVITE");
    let offer = to_teams.body();
    assert_eq!(formats(&offer), ["18", "101"], "{offer}");
    assert!(offer.contains("a=fmtp:18 annexb=no"), "{offer}");
}

/// Issue 37 §4: when both legs keep CN the relay is told Teams' number for it (it fills a
/// silent PBX leg with comfort noise); a PBX without CN gets none generated.
#[test]
fn the_relay_learns_teams_cn_number_only_when_both_legs_keep_cn() {
    for (pbx_sdp, expected) in [
        (
            PBX_SDP
                .replace("RTP/AVP 8 101", "RTP/AVP 8 101 13")
                .replace("a=sendrecv", "a=rtpmap:13 CN/8000\r\na=sendrecv"),
            Some(13),
        ),
        (PBX_SDP.to_owned(), None),
    ] {
        let mut w = World::new();
        w.teams_sends(teams_invite(
            "cn1", "+4930111", "+4930222", TENANT, TEAMS_SDP,
        ));
        let to_pbx = w.expect(PBX_ADDR, "INVITE");
        assert!(
            to_pbx.body().contains("a=rtpmap:13 CN/8000"),
            "offered to the PBX"
        );
        w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(&pbx_sdp)));
        let ok = w.expect(TEAMS_PEER, "200");
        assert_eq!(
            ok.body().contains("CN/8000"),
            expected.is_some(),
            "{}",
            ok.body()
        );
        let applied = w.applied();
        assert_eq!(applied.last().unwrap().teams_cn, expected, "{pbx_sdp}");
    }
}
