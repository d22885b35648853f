//! Any bytes as an SDP offer or answer from either side, through the parser and every
//! offer/answer path of the call layer's bridge: call set-up both ways, a delayed offer
//! answered in the ACK, mid-call re-offers from either side and Teams' answers to ours, a
//! pickup of a ringing call, a replacing dialog and a transfer target's answer. Invariants
//! beyond "no panic": every SDP we produce parses back, a failure is always a 488, and our
//! answer to a re-offer has exactly the offer's m-lines (RFC 3264 §6).
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamsgw_gateway::call::sdp_bridge::{ReOffer, SdpBridge};
use teamsgw_sdp::negotiate::NegotiationError;

fn bridge() -> SdpBridge {
    SdpBridge::new("203.0.113.5", 40000, 40002, vec![7u8; 30], 1, &["PCMA".into(), "PCMU".into()])
}

const TEAMS_OFFER: &[u8] = b"v=0\r\no=- 1 0 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0 8 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=rtpmap:101 telephone-event/8000\r\n";
const PBX_ANSWER: &[u8] = b"v=0\r\no=p 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The SDP we produce parses back, and a refusal is a 488.
fn produced<T>(out: Result<T, NegotiationError>, sdp: impl Fn(&T) -> Option<&str>) -> bool {
    match out {
        Ok(v) => {
            if let Some(text) = sdp(&v) {
                teamsgw_sdp::parse(text).expect("our own SDP must parse");
            }
            true
        }
        Err(e) => {
            assert_eq!(e.status, 488);
            false
        }
    }
}

fn check(out: Result<String, NegotiationError>) -> bool {
    produced(out, |s| Some(s.as_str()))
}

fn reoffer(out: Result<ReOffer, NegotiationError>) -> bool {
    produced(out, |r| match r {
        ReOffer::Changed { answer, .. } => Some(answer.as_str()),
        ReOffer::Unchanged => None,
    })
}

/// RFC 3264 §6: an answer has as many m-lines as the offer it answers.
fn same_streams(offer: &[u8], out: &Result<ReOffer, NegotiationError>) {
    if let Ok(ReOffer::Changed { answer, .. }) = out {
        let offer = std::str::from_utf8(offer).ok().and_then(|t| teamsgw_sdp::parse(t).ok());
        let answer = teamsgw_sdp::parse(answer).expect("our own SDP must parse");
        if let Some(offer) = offer {
            assert_eq!(offer.media.len(), answer.media.len(), "one answer per offered stream");
        }
    }
}

/// A call from Teams, answered by the PBX: the state every mid-call path starts from.
fn confirmed() -> SdpBridge {
    let mut b = bridge();
    assert!(check(b.offer_from_teams(TEAMS_OFFER)), "the seed offer is accepted");
    assert!(check(b.answer_from_pbx(PBX_ANSWER)), "the seed answer is accepted");
    b
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = teamsgw_sdp::parse(text).map(|s| teamsgw_sdp::parse(&s.to_string()));
    }
    // The input as Teams' offer, then as the PBX's answer to what we offered.
    let mut b = bridge();
    if check(b.offer_from_teams(data)) {
        check(b.answer_from_pbx(data));
    }
    let _ = b.params();
    // The input as the PBX's offer, then as Teams' answer; and a delayed offer answered in
    // the ACK.
    let mut b = bridge();
    if check(b.offer_from_pbx(Some(data))) {
        check(b.answer_from_teams(data));
    }
    let mut b = bridge();
    check(b.offer_from_pbx(None));
    if check(b.answer_from_teams(data)) {
        produced(b.pbx_answer(data), |_| None);
    }
    let _ = b.params();
    // Mid-call: the input as a re-offer from each side, then our hold re-offers and Teams'
    // answer to one.
    let mut b = confirmed();
    let out = b.reoffer_from_teams(data);
    same_streams(data, &out);
    reoffer(out);
    let out = b.reoffer_from_pbx(data);
    same_streams(data, &out);
    reoffer(out);
    for hold in [true, false] {
        teamsgw_sdp::parse(&b.hold_offer_to_teams(hold)).expect("our own SDP must parse");
        teamsgw_sdp::parse(&b.hold_offer_to_pbx(hold)).expect("our own SDP must parse");
    }
    produced(b.reanswer_from_teams(data), |_| None);
    let _ = b.params();
    // A dialog replacing the Teams leg, and a transfer target answering our offer.
    let mut b = confirmed();
    produced(b.offer_from_replacing_leg(data), |(answer, _)| Some(answer.as_str()));
    let offer = b.offer_to_new_teams_leg();
    teamsgw_sdp::parse(&offer).expect("our own SDP must parse");
    produced(b.new_teams_leg_answered(data, offer), |_| None);
    let _ = b.params();
    // A pickup of our call still ringing in Teams (RFC 3891 §7.1), from the PBX's offer.
    let mut b = bridge();
    if check(b.offer_from_pbx(Some(PBX_ANSWER))) {
        let picked = b.picked_up(data);
        for sdp in picked.iter().flat_map(|(teams, pbx)| [teams, pbx]) {
            teamsgw_sdp::parse(sdp).expect("our own SDP must parse");
        }
        produced(picked, |_| None);
        let _ = b.params();
    }
});
