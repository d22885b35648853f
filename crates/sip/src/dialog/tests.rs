//! Dialog rules (RFC 3261 §12, §13) on real messages.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

fn msg(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
}

fn invite() -> Message {
    msg("INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKi1
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: dlg-1
CSeq: 10 INVITE
Contact: <sip:alice@192.0.2.1>
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
Content-Length: 0

")
}

fn response(status: u16, tag: &str, contact: &str) -> Message {
    msg(&format!(
        "SIP/2.0 {status} X
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKi1
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag={tag}
Call-ID: dlg-1
CSeq: 10 INVITE
Contact: <{contact}>
Content-Length: 0

"
    ))
}

#[test]
fn forked_provisionals_make_separate_early_dialogs_and_2xx_confirms_one_rfc3261_12_1_2() {
    let mut forks = ForkedDialogs::new(invite());
    forks
        .on_response(&response(180, "fork-a", "sip:bob@192.0.2.10"))
        .unwrap();
    forks
        .on_response(&response(180, "fork-b", "sip:bob@192.0.2.11"))
        .unwrap();
    assert_eq!(forks.dialogs().count(), 2);
    assert!(forks.dialogs().all(|d| d.state == DialogState::Early));
    let confirmed = forks
        .on_response(&response(200, "fork-b", "sip:bob@192.0.2.12"))
        .unwrap()
        .clone();
    assert_eq!(confirmed.state, DialogState::Confirmed);
    assert_eq!(
        confirmed.remote_target, "sip:bob@192.0.2.12",
        "2xx refreshes the target"
    );
    assert_eq!(forks.get("fork-a").unwrap().state, DialogState::Early);
    assert_eq!(confirmed.id.local_tag, "a1");
    assert_eq!(confirmed.id.remote_tag, "fork-b");
}

#[test]
fn route_set_is_reversed_for_the_uac_and_kept_for_the_uas_rfc3261_12_1() {
    let uac = Dialog::uac(&invite(), &response(200, "b1", "sip:bob@192.0.2.10")).unwrap();
    assert_eq!(
        uac.route_set,
        vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    );
    let uas = Dialog::uas(&invite(), "b1").unwrap();
    assert_eq!(
        uas.route_set,
        vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(uas.local_party, "<sip:bob@example.com>;tag=b1");
    assert_eq!(uas.remote_target, "sip:alice@192.0.2.1");
}

#[test]
fn in_dialog_request_uses_target_route_set_and_next_cseq_rfc3261_12_2_1_1() {
    let mut d = Dialog::uac(&invite(), &response(200, "b1", "sip:bob@192.0.2.10")).unwrap();
    let bye = Message::parse(
        d.request("BYE")
            .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb")
            .finish(),
    )
    .unwrap();
    assert_eq!(bye.request_uri_raw(), Some(&b"sip:bob@192.0.2.10"[..]));
    assert_eq!(bye.routes().count(), 2);
    assert_eq!(bye.cseq().unwrap().unwrap().seq, 11);
    assert_eq!(bye.from_tag(), Some(&b"a1"[..]));
    assert_eq!(bye.to_tag(), Some(&b"b1"[..]));
    let ack = Message::parse(d.ack(10).finish()).unwrap();
    assert_eq!(
        ack.cseq().unwrap().unwrap().seq,
        10,
        "the ACK for 2xx reuses the INVITE's CSeq number"
    );
    assert_eq!(ack.method(), Some(Method::Ack));
}

#[test]
fn strict_route_becomes_the_request_uri_rfc3261_12_2_1_1() {
    let mut d = Dialog::uac(&invite(), &response(200, "b1", "sip:bob@192.0.2.10")).unwrap();
    d.route_set = vec![
        "<sip:strict.example.com>".into(),
        "<sip:p1.example.com;lr>".into(),
    ];
    let req = Message::parse(d.request("INFO").finish()).unwrap();
    assert_eq!(req.request_uri_raw(), Some(&b"sip:strict.example.com"[..]));
    let routes: Vec<_> = req.values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        vec![&b"<sip:p1.example.com;lr>"[..], b"<sip:bob@192.0.2.10>"]
    );
}

#[test]
fn next_hop_is_the_first_route_else_the_remote_target_rfc3261_12_2_1_1() {
    let mut d = Dialog::uac(&invite(), &response(200, "b1", "sip:bob@192.0.2.10")).unwrap();
    // The UAC's route set is reversed: p2 is the first hop.
    assert_eq!(
        d.next_hop(),
        Some(NextHop {
            host: "p2.example.com".into(),
            port: None,
            transport: None
        })
    );
    d.route_set = vec!["<sip:strict.example.com:5070;transport=TCP>".into()];
    let hop = d.next_hop().unwrap();
    assert_eq!(
        (hop.host.as_str(), hop.port, hop.transport),
        ("strict.example.com", Some(5070), Some(Transport::Tcp)),
        "a strict route is the next hop too"
    );
    d.route_set.clear();
    assert_eq!(d.next_hop().unwrap().host, "192.0.2.10");
    // Teams' Contact (teams-direct-routing.md §1.5): a name, port 443, TLS.
    d.remote_target =
        "sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=abc;x-c=def;transport=tls".into();
    assert_eq!(
        d.next_hop(),
        Some(NextHop {
            host: "api-du-b-euwe.pstnhub.microsoft.com".into(),
            port: Some(443),
            transport: Some(Transport::Tls)
        })
    );
    d.remote_target = "sips:[2001:db8::1]:5061".into();
    assert_eq!(
        d.next_hop(),
        Some(NextHop {
            host: "2001:db8::1".into(),
            port: Some(5061),
            transport: Some(Transport::Tls)
        })
    );
    d.remote_target = "tel:+4930123".into();
    assert_eq!(d.next_hop(), None, "a tel: target has no hop");
}

#[test]
fn reinvite_updates_the_remote_target_and_cseq_must_grow_rfc3261_12_2_2() {
    let mut uas = Dialog::uas(&invite(), "b1").unwrap();
    uas.confirm();
    let reinvite = msg("INVITE sip:bob@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKre
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=b1
Call-ID: dlg-1
CSeq: 11 INVITE
Contact: <sip:alice@198.51.100.99:5070>
Content-Length: 0

");
    uas.on_request(&reinvite).unwrap();
    assert_eq!(uas.remote_target, "sip:alice@198.51.100.99:5070");
    assert_eq!(
        uas.on_request(&reinvite),
        Err(500),
        "same CSeq again is out of order"
    );
    let old = Message::parse(Bytes::from(
        String::from_utf8(reinvite.as_bytes().to_vec())
            .unwrap()
            .replace("CSeq: 11", "CSeq: 5"),
    ))
    .unwrap();
    assert_eq!(uas.on_request(&old), Err(500));
    let ack = Message::parse(Bytes::from(
        String::from_utf8(reinvite.as_bytes().to_vec())
            .unwrap()
            .replace("11 INVITE", "11 ACK")
            .replacen("INVITE ", "ACK ", 1),
    ))
    .unwrap();
    assert_eq!(uas.on_request(&ack), Ok(()), "ACK reuses the INVITE's CSeq");
}

#[test]
fn uac_target_refresh_from_reinvite_2xx_and_bye_terminates() {
    let mut d = Dialog::uac(&invite(), &response(200, "b1", "sip:bob@192.0.2.10")).unwrap();
    d.on_response(Method::Invite, &response(200, "b1", "sip:bob@203.0.113.7"));
    assert_eq!(d.remote_target, "sip:bob@203.0.113.7");
    let bye = msg("BYE sip:alice@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKbye
From: <sip:bob@example.com>;tag=b1
To: <sip:alice@example.com>;tag=a1
Call-ID: dlg-1
CSeq: 1 BYE
Content-Length: 0

");
    d.on_request(&bye).unwrap();
    assert_eq!(d.state, DialogState::Terminated);
}

#[test]
fn failure_to_an_early_dialog_terminates_it() {
    let mut forks = ForkedDialogs::new(invite());
    forks.on_response(&response(183, "x", "sip:bob@192.0.2.10"));
    let mut d = forks.get("x").unwrap().clone();
    d.on_response(Method::Invite, &response(486, "x", "sip:bob@192.0.2.10"));
    assert_eq!(d.state, DialogState::Terminated);
}

#[test]
fn uas_retransmits_2xx_until_ack_or_64_t1_rfc3261_13_3_1_4() {
    let t = TimerSettings::default();
    let t0 = Instant::now();
    let mut r = TwoXxRetransmitter::new(Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"), &t, t0);
    let mut sent = Vec::new();
    while let Some(at) = r.poll_timeout() {
        match r.handle_timeout(at) {
            Some(Retransmit::Send(_)) => sent.push((at - t0).as_millis()),
            Some(Retransmit::GaveUp) => {
                sent.push(u128::MAX);
                break;
            }
            None => {}
        }
    }
    assert_eq!(
        sent,
        vec![
            500,
            1500,
            3500,
            7500,
            11500,
            15500,
            19500,
            23500,
            27500,
            31500,
            u128::MAX
        ]
    );

    let mut r = TwoXxRetransmitter::new(Bytes::from_static(b"x"), &t, t0);
    r.handle_timeout(t0 + Duration::from_millis(500));
    r.on_ack();
    assert_eq!(r.poll_timeout(), None, "the ACK stops retransmission");
}
