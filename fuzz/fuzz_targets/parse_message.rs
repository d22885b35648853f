//! Any bytes through the datagram parser, every typed accessor, validation and the stateless
//! policy. Invariant beyond "no panic": whatever we answer parses back as a response.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use teamsgw_gateway::stateless::{StatelessPolicy, Verdict};
use teamsgw_sip::message::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else { return };
    let _ = msg.validate();
    let _ = msg.can_answer();
    let _ = (msg.method(), msg.request_uri(), msg.status(), msg.reason_phrase(), msg.body());
    for h in msg.headers() {
        let _ = (h.name, h.value, h.line);
    }
    let _ = msg.vias().count();
    let _ = (msg.from(), msg.to(), msg.from_tag(), msg.to_tag(), msg.call_id(), msg.cseq());
    let _ = (msg.max_forwards(), msg.content_type(), msg.content_length(), msg.expires());
    let _ = (msg.contacts().count(), msg.routes().count(), msg.record_routes().count());
    let _ = (msg.allow().count(), msg.supported().count(), msg.require().count());
    let _ = (msg.proxy_require().count(), msg.accept().count());
    let _ = (msg.www_authenticate().count(), msg.proxy_authenticate().count());
    let _ = (msg.authorization().count(), msg.proxy_authorization().count());
    let _ = (msg.session_expires(), msg.min_se(), msg.rseq(), msg.rack(), msg.replaces());
    let _ = (msg.refer_to(), msg.referred_by(), msg.p_asserted_identities().count());
    let _ = (msg.privacy().count(), msg.history_info().count(), msg.reasons().count());
    let _ = (msg.retry_after(), msg.user_agent(), msg.server(), msg.min_expires());
    for auth in msg.authorization().flatten() {
        let _ = auth.params().count();
    }

    let policy = StatelessPolicy::new("fuzz");
    let source = "192.0.2.1:5060".parse().unwrap();
    if let Verdict::Respond(r) | Verdict::Reject(r, _) = policy.handle(&msg, source, false) {
        let response = Message::parse(r).expect("our own response must parse");
        assert!(response.status().is_some());
    }
});
