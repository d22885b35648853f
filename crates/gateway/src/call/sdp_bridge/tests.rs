#![allow(clippy::unwrap_used)]

use super::*;

const TEAMS: &str = "v=0\r\no=- 1 0 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=inactive\r\n";

fn bridge(codecs: &[&str]) -> SdpBridge {
    let codecs: Vec<String> = codecs.iter().map(|c| (*c).to_owned()).collect();
    SdpBridge::new("203.0.113.5", 40000, 40002, vec![7u8; 30], 9, &codecs)
}

#[test]
fn teams_hold_reaches_the_pbx_as_sendonly_reference_3_6() {
    let mut b = bridge(&["PCMA"]);
    let offer = b.offer_from_teams(TEAMS.as_bytes()).unwrap();
    assert!(offer.contains("a=sendonly"), "{offer}");
    // Only the PBX's codec list (PCMA) plus telephone-event is offered.
    assert!(offer.contains("m=audio 40002 RTP/AVP 8 101\r\n"), "{offer}");
}

#[test]
fn no_shared_codec_is_488() {
    let mut b = bridge(&["G729"]);
    let e = b.offer_from_teams(TEAMS.as_bytes()).unwrap_err();
    assert_eq!(e.status, 488);
}

#[test]
fn params_need_teams_key_and_carry_the_pbx_address() {
    let mut b = bridge(&["PCMU", "PCMA"]);
    b.offer_from_teams(TEAMS.as_bytes()).unwrap();
    assert!(b.params().is_none());
    let pbx = "v=0\r\no=p 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=recvonly\r\n";
    let answer = b.answer_from_pbx(pbx.as_bytes()).unwrap();
    assert!(answer.contains("RTP/SAVP 0\r\n"), "{answer}");
    let p = b.params().unwrap();
    assert_eq!(p.pbx.remote_rtp, Some("192.0.2.20:30000".parse().unwrap()));
    assert_eq!(p.pbx.remote_rtcp, Some("192.0.2.20:30001".parse().unwrap()));
    assert!(
        !p.teams.send,
        "Teams' side is inactive: nothing is sent to it"
    );
    assert_eq!(b.codec().as_deref(), Some("PCMU"));
}
