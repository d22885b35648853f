//! Transaction rules with a virtual clock: every schedule here is exact, not sampled.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

type Layer = TransactionLayer<&'static str>;

const MS: Duration = Duration::from_millis(1);

fn request(method: &str, branch: &str) -> Message {
    let data = MessageBuilder::request(method, "sip:bob@example.com")
        .header("Via", format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"))
        .header("From", "<sip:alice@example.com>;tag=a1")
        .header("To", "<sip:bob@example.com>")
        .header("Call-ID", "call-1")
        .header("CSeq", format!("1 {method}"))
        .header("Max-Forwards", "70")
        .finish();
    Message::parse(data).unwrap()
}

fn response_to(req: &Message, status: u16) -> Message {
    Message::parse(MessageBuilder::response_to(req, status, "X", Some("b1"), None).finish())
        .unwrap()
}

/// Drains events, returning (transmissions as first lines, other events).
fn drain(layer: &mut Layer) -> (Vec<String>, Vec<Event<&'static str>>) {
    let mut sent = Vec::new();
    let mut other = Vec::new();
    while let Some(e) = layer.poll_event() {
        match e {
            Event::Transmit { data, .. } => {
                let line = data.split(|&b| b == b'\r').next().unwrap_or_default();
                sent.push(String::from_utf8_lossy(line).into_owned());
            }
            e => other.push(e),
        }
    }
    (sent, other)
}

/// (ms, first line) of each transmission and (ms, event) of everything else.
type Timeline = (Vec<(u64, String)>, Vec<(u64, Event<&'static str>)>);

/// Advances the virtual clock timer by timer until `until`, recording when each
/// transmission happened (ms after `start`).
fn run_until(layer: &mut Layer, start: Instant, until: Instant) -> Timeline {
    let mut sent = Vec::new();
    let mut other = Vec::new();
    while let Some(at) = layer.poll_timeout() {
        if at > until {
            break;
        }
        layer.handle_timeout(at);
        let ms = (at - start).as_millis() as u64;
        let (s, o) = drain(layer);
        sent.extend(s.into_iter().map(|l| (ms, l)));
        other.extend(o.into_iter().map(|e| (ms, e)));
    }
    (sent, other)
}

fn times(sent: &[(u64, String)]) -> Vec<u64> {
    sent.iter().map(|(t, _)| *t).collect()
}

#[test]
fn non_invite_client_retransmits_timer_e_doubling_to_t2_then_timer_f_rfc3261_17_1_2_2() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let tx = layer
        .send_request(request("OPTIONS", "z9hG4bK1"), "peer", false, t0)
        .unwrap();
    assert_eq!(drain(&mut layer).0.len(), 1);
    let (sent, other) = run_until(&mut layer, t0, t0 + Duration::from_secs(40));
    assert_eq!(
        times(&sent),
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(other.as_slice(), [(32000, Event::Timeout { tx: t })] if *t == tx));
    assert_eq!(layer.live_transactions(), (0, 0));
}

#[test]
fn no_retransmissions_on_reliable_transports_rfc3261_17_1_2_2() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    layer
        .send_request(request("OPTIONS", "z9hG4bK1"), "peer", true, t0)
        .unwrap();
    drain(&mut layer);
    let (sent, other) = run_until(&mut layer, t0, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(matches!(other.as_slice(), [(32000, Event::Timeout { .. })]));
}

#[test]
fn non_invite_provisional_moves_timer_e_to_t2_and_final_starts_timer_k() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bK2");
    layer.send_request(req.clone(), "peer", false, t0).unwrap();
    drain(&mut layer);
    layer.receive(response_to(&req, 100), "peer", false, t0 + 100 * MS);
    let (sent, _) = run_until(&mut layer, t0, t0 + Duration::from_millis(9000));
    assert_eq!(
        times(&sent),
        vec![500, 4500, 8500],
        "T1 already armed, then T2"
    );
    layer.receive(
        response_to(&req, 200),
        "peer",
        false,
        t0 + Duration::from_millis(9000),
    );
    let (_, events) = drain(&mut layer);
    assert!(matches!(events.as_slice(), [Event::Response { .. }]));
    // Timer K = T4: the transaction lingers to absorb retransmitted responses, then ends.
    layer.receive(
        response_to(&req, 200),
        "peer",
        false,
        t0 + Duration::from_millis(9100),
    );
    assert!(
        drain(&mut layer).1.is_empty(),
        "retransmitted final is absorbed"
    );
    let (_, _) = run_until(&mut layer, t0, t0 + Duration::from_millis(14000));
    assert_eq!(layer.live_transactions(), (0, 0));
}

#[test]
fn invite_client_timer_a_doubles_and_timer_b_times_out_rfc3261_17_1_1_2() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    layer
        .send_request(request("INVITE", "z9hG4bK3"), "peer", false, t0)
        .unwrap();
    drain(&mut layer);
    let (sent, other) = run_until(&mut layer, t0, t0 + Duration::from_secs(40));
    assert_eq!(times(&sent), vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(matches!(other.as_slice(), [(32000, Event::Timeout { .. })]));
}

#[test]
fn invite_client_acks_non_2xx_itself_and_again_for_retransmissions_rfc3261_17_1_1_3() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bK4");
    let tx = layer.send_request(req.clone(), "peer", false, t0).unwrap();
    drain(&mut layer);
    layer.receive(response_to(&req, 180), "peer", false, t0 + 100 * MS);
    let (sent, events) = drain(&mut layer);
    assert!(sent.is_empty());
    assert!(matches!(events.as_slice(), [Event::Response { .. }]));
    // Timer A stopped with the provisional response.
    let (sent, _) = run_until(&mut layer, t0, t0 + Duration::from_secs(5));
    assert!(sent.is_empty());
    layer.receive(
        response_to(&req, 486),
        "peer",
        false,
        t0 + Duration::from_secs(5),
    );
    let (sent, events) = drain(&mut layer);
    assert_eq!(sent, vec!["ACK sip:bob@example.com SIP/2.0"]);
    assert!(matches!(events.as_slice(), [Event::Response { .. }]));
    assert_eq!(layer.client_state(tx), Some(ClientState::Completed));
    layer.receive(
        response_to(&req, 486),
        "peer",
        false,
        t0 + Duration::from_secs(6),
    );
    let (sent, events) = drain(&mut layer);
    assert_eq!(sent.len(), 1, "the retransmitted 486 is ACKed again");
    assert!(events.is_empty(), "and not passed up twice");
    // Timer D (32 s on UDP) ends it.
    run_until(&mut layer, t0, t0 + Duration::from_secs(38));
    assert_eq!(layer.client_state(tx), None);
}

#[test]
fn invite_client_accepted_state_passes_2xx_retransmissions_rfc6026_8_4() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bK5");
    let tx = layer.send_request(req.clone(), "peer", false, t0).unwrap();
    drain(&mut layer);
    layer.receive(response_to(&req, 200), "peer", false, t0 + 100 * MS);
    assert_eq!(layer.client_state(tx), Some(ClientState::Accepted));
    let (sent, events) = drain(&mut layer);
    assert!(sent.is_empty(), "no ACK for 2xx from the transaction");
    assert_eq!(events.len(), 1);
    layer.receive(
        response_to(&req, 200),
        "peer",
        false,
        t0 + Duration::from_secs(2),
    );
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [Event::Response { .. }]
    ));
    // Timer M = 64*T1 ends it; a later 2xx is stray (for the dialog layer to ACK).
    run_until(&mut layer, t0, t0 + Duration::from_secs(33));
    assert_eq!(layer.client_state(tx), None);
    layer.receive(
        response_to(&req, 200),
        "peer",
        false,
        t0 + Duration::from_secs(34),
    );
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [Event::StrayResponse { .. }]
    ));
}

fn invite_server(layer: &mut Layer, t0: Instant, reliable: bool) -> (TxId, Message) {
    let req = request("INVITE", "z9hG4bKs1");
    layer.receive(req.clone(), "peer", reliable, t0);
    let (_, events) = drain(layer);
    let [Event::Request { tx, .. }] = events.as_slice() else {
        panic!("{events:?}")
    };
    (*tx, req)
}

fn answer(req: &Message, status: u16) -> Bytes {
    MessageBuilder::response_to(req, status, "X", Some("b1"), None).finish()
}

#[test]
fn invite_server_absorbs_retransmissions_and_retransmits_final_until_timer_h_rfc3261_17_2_1() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond(tx, 100, answer(&req, 100), t0);
    assert_eq!(drain(&mut layer).0, vec!["SIP/2.0 100 X"]);
    // A retransmitted INVITE gets the last provisional again, and no new Request event.
    layer.receive(req.clone(), "peer", false, t0 + 500 * MS);
    let (sent, events) = drain(&mut layer);
    assert_eq!((sent, events.len()), (vec!["SIP/2.0 100 X".to_owned()], 0));
    layer.respond(tx, 486, answer(&req, 486), t0 + Duration::from_secs(1));
    drain(&mut layer);
    let (sent, other) = run_until(
        &mut layer,
        t0 + Duration::from_secs(1),
        t0 + Duration::from_secs(40),
    );
    // Timer G: T1 doubling up to T2; timer H at 64*T1.
    assert_eq!(
        times(&sent),
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(other.as_slice(), [(32000, Event::AckTimeout { tx: t })] if *t == tx));
    assert_eq!(layer.live_transactions(), (0, 0));
}

#[test]
fn invite_server_ack_confirms_and_timer_i_ends_rfc3261_17_2_1() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond(tx, 404, answer(&req, 404), t0);
    drain(&mut layer);
    let ack = Message::parse(ack_for_non_2xx(
        &req,
        &Message::parse(answer(&req, 404)).unwrap(),
    ))
    .unwrap();
    layer.receive(ack, "peer", false, t0 + 200 * MS);
    assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
    assert!(
        drain(&mut layer).1.is_empty(),
        "the ACK for a non-2xx stays in the transaction"
    );
    let (sent, _) = run_until(&mut layer, t0, t0 + Duration::from_secs(6));
    assert!(sent.is_empty(), "no retransmission after the ACK");
    assert_eq!(layer.server_state(tx), None, "timer I = T4 ended it");
}

#[test]
fn invite_server_accepted_absorbs_invite_retransmissions_and_passes_tu_2xx_rfc6026_8_7() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond(tx, 200, answer(&req, 200), t0);
    assert_eq!(drain(&mut layer).0.len(), 1);
    assert_eq!(layer.server_state(tx), Some(ServerState::Accepted));
    layer.receive(req.clone(), "peer", false, t0 + 500 * MS);
    let (sent, events) = drain(&mut layer);
    assert!(
        sent.is_empty() && events.is_empty(),
        "absorbed: the TU retransmits 2xx"
    );
    layer.respond(tx, 200, answer(&req, 200), t0 + 500 * MS);
    assert_eq!(
        drain(&mut layer).0.len(),
        1,
        "the TU's 2xx retransmission passes"
    );
    // The ACK for a 2xx has its own branch: it goes to the TU, not the transaction.
    let ack = MessageBuilder::request("ACK", "sip:bob@example.com")
        .header("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack")
        .header("From", "<sip:alice@example.com>;tag=a1")
        .header("To", "<sip:bob@example.com>;tag=b1")
        .header("Call-ID", "call-1")
        .header("CSeq", "1 ACK")
        .finish();
    layer.receive(
        Message::parse(ack).unwrap(),
        "peer",
        false,
        t0 + Duration::from_secs(1),
    );
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [Event::Ack { .. }]
    ));
    run_until(&mut layer, t0, t0 + Duration::from_secs(33));
    assert_eq!(layer.server_state(tx), None, "timer L");
}

#[test]
fn non_invite_server_absorbs_then_replays_final_until_timer_j_rfc3261_17_2_2() {
    for (reliable, j) in [(false, Duration::from_secs(32)), (true, Duration::ZERO)] {
        let mut layer = Layer::new(TimerSettings::default());
        let t0 = Instant::now();
        let req = request("OPTIONS", "z9hG4bKn1");
        layer.receive(req.clone(), "peer", reliable, t0);
        let (_, events) = drain(&mut layer);
        let [Event::Request { tx, .. }] = events.as_slice() else {
            panic!()
        };
        let tx = *tx;
        layer.receive(req.clone(), "peer", reliable, t0 + MS);
        let (sent, events) = drain(&mut layer);
        assert!(
            sent.is_empty() && events.is_empty(),
            "absorbed while Trying"
        );
        layer.respond(tx, 200, answer(&req, 200), t0 + 2 * MS);
        assert_eq!(drain(&mut layer).0.len(), 1);
        if !reliable {
            layer.receive(req.clone(), "peer", reliable, t0 + 3 * MS);
            assert_eq!(drain(&mut layer).0, vec!["SIP/2.0 200 X"]);
        }
        run_until(&mut layer, t0, t0 + 2 * MS + j);
        assert_eq!(layer.server_state(tx), None, "timer J = {j:?}");
    }
}

#[test]
fn cancel_of_a_pending_invite_answers_200_and_487_rfc3261_9_2() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond(tx, 180, answer(&req, 180), t0);
    drain(&mut layer);
    let cancel = request("CANCEL", "z9hG4bKs1");
    layer.receive(cancel, "peer", false, t0 + Duration::from_secs(1));
    let (sent, events) = drain(&mut layer);
    assert_eq!(
        sent,
        vec!["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    );
    assert!(matches!(events.as_slice(), [Event::Cancelled { tx: t, .. }] if *t == tx));
    assert_eq!(
        layer.server_state(tx),
        Some(ServerState::Completed),
        "waiting for the ACK"
    );
}

#[test]
fn cancel_of_an_unknown_transaction_gets_481_rfc3261_9_2() {
    let mut layer = Layer::new(TimerSettings::default());
    layer.receive(
        request("CANCEL", "z9hG4bKnone"),
        "peer",
        false,
        Instant::now(),
    );
    let (sent, events) = drain(&mut layer);
    assert_eq!(sent, vec!["SIP/2.0 481 Call/Transaction Does Not Exist"]);
    assert!(events.is_empty());
}

#[test]
fn merged_request_by_another_path_gets_482_rfc3261_8_2_2_2() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    layer.receive(request("INVITE", "z9hG4bKpath1"), "peer", false, t0);
    assert_eq!(drain(&mut layer).1.len(), 1);
    layer.receive(request("INVITE", "z9hG4bKpath2"), "peer", false, t0 + MS);
    let (sent, events) = drain(&mut layer);
    assert_eq!(sent, vec!["SIP/2.0 482 Loop Detected"]);
    assert!(events.is_empty());
}

#[test]
fn rfc2543_requests_without_magic_cookie_match_by_headers_rfc3261_17_2_3() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let req = request("OPTIONS", "oldstyle1");
    layer.receive(req.clone(), "peer", false, t0);
    let (_, events) = drain(&mut layer);
    let [Event::Request { tx, .. }] = events.as_slice() else {
        panic!()
    };
    layer.respond(*tx, 200, answer(&req, 200), t0);
    drain(&mut layer);
    layer.receive(req, "peer", false, t0 + MS);
    let (sent, events) = drain(&mut layer);
    assert_eq!(
        (sent.len(), events.len()),
        (1, 0),
        "matched as a retransmission"
    );
}

#[test]
fn transport_errors_reach_the_transaction_user_rfc3261_8_1_3_1() {
    let mut layer = Layer::new(TimerSettings::default());
    let tx = layer
        .send_request(
            request("OPTIONS", "z9hG4bKte"),
            "peer",
            true,
            Instant::now(),
        )
        .unwrap();
    drain(&mut layer);
    layer.transport_error(tx);
    assert!(
        matches!(drain(&mut layer).1.as_slice(), [Event::TransportError { tx: t }] if *t == tx)
    );
    assert_eq!(layer.live_transactions(), (0, 0));
}

#[test]
fn configurable_timers_scale_every_schedule() {
    let timers = TimerSettings {
        t1: 100 * MS,
        t2: 400 * MS,
        t4: 500 * MS,
    };
    let mut layer = Layer::new(timers);
    let t0 = Instant::now();
    layer
        .send_request(request("OPTIONS", "z9hG4bKt"), "peer", false, t0)
        .unwrap();
    drain(&mut layer);
    let (sent, other) = run_until(&mut layer, t0, t0 + Duration::from_secs(10));
    assert_eq!(&times(&sent)[..4], &[100, 300, 700, 1100]);
    assert!(matches!(other.as_slice(), [(6400, Event::Timeout { .. })]));
}

#[test]
fn a_cancel_response_or_ack_from_another_peer_than_the_transactions_is_off_path() {
    // Issue 31 §2: a branch is no proof of being the peer. With a peer check, a CANCEL, a
    // response and an ACK from elsewhere act on nothing.
    let mut layer = Layer::new(TimerSettings::default());
    layer.set_peer_check(|peer, incoming| peer == incoming);
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond(tx, 180, answer(&req, 180), t0);
    drain(&mut layer);
    layer.receive(request("CANCEL", "z9hG4bKs1"), "stranger", false, t0);
    let (sent, events) = drain(&mut layer);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(matches!(
        events.as_slice(),
        [Event::OffPath {
            source: "stranger",
            ..
        }]
    ));
    assert_eq!(layer.server_state(tx), Some(ServerState::Proceeding));

    let out = layer
        .send_request(request("OPTIONS", "z9hG4bKc1"), "peer", false, t0)
        .unwrap();
    drain(&mut layer);
    let ok = response_to(&request("OPTIONS", "z9hG4bKc1"), 200);
    layer.receive(ok.clone(), "stranger", false, t0);
    let (_, events) = drain(&mut layer);
    assert!(matches!(events.as_slice(), [Event::OffPath { .. }]));
    assert_eq!(layer.client_state(out), Some(ClientState::Calling));
    // The peer itself is heard as always.
    layer.receive(ok, "peer", false, t0);
    let (_, events) = drain(&mut layer);
    assert!(matches!(events.as_slice(), [Event::Response { tx, .. }] if *tx == out));
    layer.receive(request("CANCEL", "z9hG4bKs1"), "peer", false, t0);
    assert!(matches!(
        drain(&mut layer).1.as_slice(),
        [Event::Cancelled { .. }]
    ));
}

#[test]
fn respond_once_sends_one_answer_and_keeps_no_state_rfc3261_8_2_7() {
    let mut layer = Layer::new(TimerSettings::default());
    let t0 = Instant::now();
    let (tx, req) = invite_server(&mut layer, t0, false);
    layer.respond_once(tx, answer(&req, 403));
    assert_eq!(drain(&mut layer).0, vec!["SIP/2.0 403 X"]);
    assert_eq!(layer.server_state(tx), None);
    assert_eq!(layer.live_transactions(), (0, 0));
    let (sent, other) = run_until(&mut layer, t0, t0 + Duration::from_secs(64));
    assert!(sent.is_empty() && other.is_empty(), "no retransmission");
}
