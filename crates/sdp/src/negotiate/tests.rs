//! The reference doc's Teams examples, hold forms and the rules of each leg.

use super::*;
use crate::parse::parse;

/// Teams' SDES offer (reference: teams-direct-routing.md §4.1, §4.4), with the Microsoft
/// extras seen in the wild.
const TEAMS_OFFER: &str = "v=0
o=- 2142 0 IN IP4 52.114.14.70
s=session
c=IN IP4 52.114.14.70
b=CT:10000000
t=0 0
m=audio 52884 RTP/SAVP 111 103 104 9 0 8 106 13 110 112 113 126
c=IN IP4 52.114.14.70
a=rtcp:52884
a=ice-ufrag:9d4c
a=ice-pwd:3f2b8f9e5d1a4c7b9e0f1a2b3c4d5e6f
a=candidate:1 1 UDP 2130706431 52.114.14.70 52884 typ host
a=x-candidate-ipv6:1 1 UDP 2130706431 2001:db8::1 52884 typ host
a=label:main-audio
a=crypto:0 AES_CM_128_HMAC_SHA1_32 inline:Hr4D2cgUu9+Uza5Igz/JkVx59DAxDbaxJg862ibQ|2^31
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31
a=sendrecv
a=rtcp-mux
a=rtpmap:111 SILK/16000
a=rtpmap:103 SILK/8000
a=rtpmap:104 SILK/16000
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:106 CN/48000
a=rtpmap:13 CN/8000
a=rtpmap:110 CN/16000
a=rtpmap:112 CN/24000
a=rtpmap:113 RED/16000
a=rtpmap:126 telephone-event/8000
a=fmtp:126 0-16
a=ptime:20
a=maxptime:200
";

fn local() -> Local {
    Local {
        address: "198.51.100.20".into(),
        port: 40000,
        session_id: "77".into(),
        session_version: 1,
    }
}

const KEY: [u8; 30] = [7u8; 30];

#[test]
fn teams_offer_parses_and_our_answer_takes_the_80_line_and_keeps_rtcp_mux_reference_4_1() {
    let offer = parse(TEAMS_OFFER).unwrap();
    let leg = answer_teams_offer(&offer, &local(), &KEY).unwrap();
    assert_eq!(leg.suite, "AES_CM_128_HMAC_SHA1_80");
    assert_eq!(leg.remote_key.len(), 30);
    assert!(leg.rtcp_mux);
    assert_eq!(
        (leg.remote_address.as_str(), leg.remote_port),
        ("52.114.14.70", 52884)
    );
    let answer = leg.sdp.to_string();
    let audio = leg.sdp.audio().unwrap();
    assert_eq!(audio.proto, "RTP/SAVP");
    assert!(audio.rtcp_mux());
    let crypto = audio.cryptos();
    assert_eq!(crypto.len(), 1);
    assert_eq!(
        (crypto[0].tag, crypto[0].suite.as_str()),
        (1, "AES_CM_128_HMAC_SHA1_80")
    );
    assert_eq!(crypto[0].keys[0].lifetime.as_deref(), Some("2^31"));
    assert_eq!(crypto[0].keys[0].key_salt, KEY.to_vec());
    // G.722, G.711, CN and telephone-event in the offer's order and numbering (the bridge
    // narrows them to the PBX's choice); no SILK (16 kHz, Teams only), no ICE.
    assert_eq!(audio.formats, vec!["9", "0", "8", "13", "126"]);
    assert_eq!(audio.fmtp(126), Some("0-16"));
    for banned in [
        "ice-",
        "candidate",
        "x-candidate",
        "label",
        "SILK",
        "0.0.0.0",
    ] {
        assert!(!answer.contains(banned), "{banned} in answer:\n{answer}");
    }
    // And the answer is valid SDP by our own parser.
    assert_eq!(parse(&answer).unwrap(), leg.sdp);
}

#[test]
fn of_several_80_lines_the_first_without_mki_is_taken_reference_4_1() {
    let offer = TEAMS_OFFER
        .replace(
            "a=crypto:0 AES_CM_128_HMAC_SHA1_32 inline:Hr4D2cgUu9+Uza5Igz/JkVx59DAxDbaxJg862ibQ|2^31\n",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:fBc61ikv1kMy0sF85DblNqTzVAbFa7hJQ9GKb6Yj|2^31|1:1\n",
        )
        .replace(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\n",
            "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:O1qT9tWbs/NwJVwhfrgF5tCrbNOxnVDqkIqTx4rz|2^31\n",
        );
    let leg = answer_teams_offer(&parse(&offer).unwrap(), &local(), &KEY).unwrap();
    assert_eq!(leg.sdp.audio().unwrap().cryptos()[0].tag, 3);
}

#[test]
fn teams_offer_without_usable_crypto_or_a_relayed_codec_is_488() {
    let only_mki = TEAMS_OFFER
        .replace("a=crypto:0 AES_CM_128_HMAC_SHA1_32 inline:Hr4D2cgUu9+Uza5Igz/JkVx59DAxDbaxJg862ibQ|2^31\n", "")
        .replace("JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31", "JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31|1:1");
    let e = answer_teams_offer(&parse(&only_mki).unwrap(), &local(), &KEY).unwrap_err();
    assert_eq!(e.status, 488);
    assert!(e.reason.contains("without MKI"), "{e}");
    // SILK only: Teams' own codec, which no PBX speaks.
    let silk_only = TEAMS_OFFER.replace(" 9 0 8 106 13", " 106 13");
    let e = answer_teams_offer(&parse(&silk_only).unwrap(), &local(), &KEY).unwrap_err();
    assert!(e.reason.contains("no codec we relay"), "{e}");
}

#[test]
fn teams_hold_and_resume_round_trip_only_as_inactive_reference_3_6() {
    let hold = TEAMS_OFFER.replace("a=sendrecv", "a=inactive");
    let leg = answer_teams_offer(&parse(&hold).unwrap(), &local(), &KEY).unwrap();
    assert!(leg.hold);
    assert_eq!(
        leg.sdp.audio().unwrap().direction_or(None),
        Direction::Inactive
    );
    // Teams may also hold with sendonly; we still answer only inactive, never recvonly.
    let hold = TEAMS_OFFER.replace("a=sendrecv", "a=sendonly");
    let leg = answer_teams_offer(&parse(&hold).unwrap(), &local(), &KEY).unwrap();
    assert_eq!(
        leg.sdp.audio().unwrap().direction_or(None),
        Direction::Inactive
    );
    let resume = answer_teams_offer(&parse(TEAMS_OFFER).unwrap(), &local(), &KEY).unwrap();
    assert!(!resume.hold);
    assert_eq!(
        resume.sdp.audio().unwrap().direction_or(None),
        Direction::SendRecv
    );
    // Our own offers to Teams: inactive on hold, real address always.
    let ours = offer_to_teams(&local(), &KEY, &[pcma(), telephone_event()], true).to_string();
    assert!(ours.contains("a=inactive") && !ours.contains("sendonly") && !ours.contains("0.0.0.0"));
    assert!(ours.contains("RTP/SAVP") && ours.contains("a=rtcp-mux") && ours.contains("|2^31"));
}

const PBX_OFFER: &str = "v=0
o=pbx 1 1 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 30000 RTP/AVP 18 8 0 101
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
";

#[test]
fn pbx_answer_keeps_shared_g711_first_and_understands_every_hold_form() {
    let leg = answer_pbx_offer(&parse(PBX_OFFER).unwrap(), &local(), &["PCMA", "PCMU"]).unwrap();
    assert_eq!(leg.sdp.audio().unwrap().formats, vec!["8", "0", "101"]);
    assert_eq!(
        leg.remote_rtcp_port,
        Some(30001),
        "RTP/RTCP pair without rtcp-mux"
    );
    assert!(!leg.hold);
    for hold in [
        PBX_OFFER.replace("a=sendrecv", "a=sendonly"),
        PBX_OFFER.replace("a=sendrecv", "a=inactive"),
        PBX_OFFER.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0"),
    ] {
        let leg = answer_pbx_offer(&parse(&hold).unwrap(), &local(), &["PCMA", "PCMU"]).unwrap();
        assert!(leg.hold, "{hold}");
        assert_ne!(
            leg.sdp.audio().unwrap().direction_or(None),
            Direction::SendRecv
        );
    }
    let g729_only = PBX_OFFER.replace("18 8 0 101", "18 101");
    let e = answer_pbx_offer(&parse(&g729_only).unwrap(), &local(), &["PCMA", "PCMU"]).unwrap_err();
    assert_eq!(e.status, 488);
}

#[test]
fn teams_attributes_never_reach_the_pbx() {
    let stripped = strip_for_pbx(&parse(TEAMS_OFFER).unwrap()).to_string();
    for banned in [
        "ice-",
        "candidate",
        "x-candidate",
        "crypto",
        "label",
        "RTP/SAVP",
    ] {
        assert!(!stripped.contains(banned), "{banned}:\n{stripped}");
    }
    assert!(stripped.contains("a=rtpmap:0 PCMU/8000"));
    let ours = offer_to_pbx(
        &local(),
        &[pcmu(), telephone_event(), comfort_noise()],
        true,
    )
    .to_string();
    assert!(ours.contains("RTP/AVP 0 101 13") && ours.contains("a=sendonly"));
}

#[test]
fn malformed_sdp_names_the_line() {
    let bad_key = TEAMS_OFFER.replace("JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE", "JPEa!!!");
    let e = parse(&bad_key).unwrap_err();
    assert_eq!(e.line, 16);
    assert!(
        e.text.starts_with("a=crypto:1") && e.problem.contains("base64"),
        "{e}"
    );
    let short_key = TEAMS_OFFER.replace(
        "JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE",
        "JPEaIxHegfuv53ykBPZk8hV0",
    );
    let e = parse(&short_key).unwrap_err();
    assert!(e.problem.contains("needs 30"), "{e}");
    let e = parse("v=0\no=- 1 x IN IP4 1.2.3.4\ns=-\n").unwrap_err();
    assert_eq!(
        (e.line, e.problem.as_str()),
        (2, "session version is not a number")
    );
    let e =
        parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 99999 RTP/AVP 0\n").unwrap_err();
    assert_eq!(e.line, 5);
    let e = parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 300.1.1.1\n").unwrap_err();
    assert_eq!(e.line, 4);
    assert!(parse("").is_err() && parse("x=1\n").is_err() && parse("v=0\ns=-\n").is_err());
}

#[test]
fn unknown_lines_and_attributes_pass_through_in_order() {
    let text = "v=0\r\no=a 1 2 IN IP4 192.0.2.1\r\ns=x\r\ni=info\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=group:BUNDLE a\r\nm=video 5000 RTP/AVPF 96\r\nb=AS:512\r\na=rtpmap:96 VP8/90000\r\na=custom\r\na=other:1 2 3\r\n";
    let sdp = parse(text).unwrap();
    assert_eq!(sdp.to_string(), text, "byte-equal round trip");
}
