//! DTMF through the real daemon (issue "mid-call" §3; RFC 4733): a baresip phone behind
//! Kamailio calls the Teams user, the in-house Teams proxy answers with telephone-event at
//! another payload type than the phone's, and every digit crosses both ways renumbered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_media::answering_event;
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

/// What `read` gives once it equals `wanted`, or what it gives after 5 s.
fn settled<T: PartialEq>(wanted: &T, mut read: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = read();
        if got == *wanted || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn digit_of(code: u8) -> char {
    match code {
        10 => '*',
        11 => '#',
        d => char::from(b'0' + d),
    }
}

/// The digits baresip reports having received, in order, one per event (its end, which
/// RFC 4733 §2.5.1.4 repeats: repeats of one digit in a row count once).
fn received_digits(log: &str) -> Vec<char> {
    let mut digits: Vec<char> = log
        .lines()
        .filter(|l| l.contains("(end=1)"))
        .filter_map(|l| l.split("received event: '").nth(1)?.chars().next())
        .collect();
    digits.dedup();
    digits
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
    let wanted: Vec<u8> = DIGITS.chars().map(event_code).collect();
    let heard = settled(&wanted, || {
        let mut events = proxy.telephone_events();
        events.dedup();
        events
    });
    assert_eq!(
        heard,
        wanted,
        "events the Teams side decrypted at payload type {TEAMS_EVENT_PT}\n{}\n{}",
        phone.log(),
        lab.logs()
    );
    // The Teams side answers each event with the next one under its own number, 97: the relay
    // renumbers them to the phone's 101, and baresip reports each digit it decoded, in order.
    // Digits looped back to the phone would come back unchanged.
    let answered: Vec<char> = DIGITS
        .chars()
        .map(|d| digit_of(answering_event(event_code(d))))
        .collect();
    let received = settled(&answered, || received_digits(&phone.log()));
    assert_eq!(
        received,
        answered,
        "the digits the phone decoded from the Teams side\n{}",
        phone.log()
    );
    phone.hangup();
    lab.wait_calls_ended(&[&phone]);
}
