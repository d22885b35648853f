//! DTMF through the real daemon (issue "mid-call" §3; RFC 4733): a baresip phone behind
//! Kamailio calls the Teams user, the in-house Teams proxy answers with telephone-event at
//! another payload type than the phone's, and every digit crosses both ways renumbered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_proxy::reply;

const DIGITS: &str = "0123456789*#";
/// The Teams side's telephone-event number; the phone (baresip) uses 101.
const TEAMS_EVENT_PT: u8 = 97;

/// RFC 4733 §3.2: event codes 0-9 are the digits, 10 is `*`, 11 is `#`.
fn event_code(digit: char) -> u8 {
    match digit {
        '*' => 10,
        '#' => 11,
        d => d.to_digit(10).unwrap() as u8,
    }
}

/// Acceptance "DTMF with different payload types on the two legs": digits 0-9*# from the
/// phone reach Teams as RFC 4733 events at payload type 97, in order, and the Teams side's
/// events at 97 reach the phone at 101: the relay rewrote the payload type in place, both ways.
#[test]
fn digits_cross_both_ways_renumbered_when_the_legs_number_telephone_event_differently() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "d", true)]);
    proxy.set_event_payload_type(TEAMS_EVENT_PT);
    let phone = lab.phone("2001", 440);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("Call established", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    for digit in DIGITS.chars() {
        phone.command("sndcode", &digit.to_string());
        std::thread::sleep(Duration::from_millis(400));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted: Vec<u8> = DIGITS.chars().map(event_code).collect();
    let heard = loop {
        let mut events = proxy.telephone_events();
        events.dedup();
        if events == wanted || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        heard,
        wanted,
        "events the Teams side decrypted at payload type {TEAMS_EVENT_PT}\n{}\n{}",
        phone.log(),
        lab.logs()
    );
    // The echo sends them back under its own number, 97: the relay renumbers them to the
    // phone's 101, and baresip reports each digit it decoded.
    for digit in DIGITS.chars() {
        let line = format!("received event: '{digit}' (end=1)");
        assert!(
            phone.log().contains(&line),
            "the phone never received {digit:?} from the Teams side\n{}",
            phone.log()
        );
    }
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
}
