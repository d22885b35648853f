//! Any bytes as an SDP offer or answer from either side, through the parser and every
//! offer/answer path of the call layer's bridge. Invariant beyond "no panic": every SDP we
//! produce parses back, and a failure is always a 488.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamsgw_gateway::call::sdp_bridge::SdpBridge;

fn bridge() -> SdpBridge {
    SdpBridge::new("203.0.113.5", 40000, 40002, vec![7u8; 30], 1, &["PCMA".into(), "PCMU".into()])
}

fn check(out: Result<String, teamsgw_sdp::negotiate::NegotiationError>) -> bool {
    match out {
        Ok(sdp) => {
            teamsgw_sdp::parse(&sdp).expect("our own SDP must parse");
            true
        }
        Err(e) => {
            assert_eq!(e.status, 488);
            false
        }
    }
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
        let _ = b.answer_in_ack(data);
    }
    let _ = b.params();
});
