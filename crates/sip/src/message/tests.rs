//! Builder tests: what we write parses back, responses copy what RFC 3261 §8.2.6.2 says, and
//! headers we do not understand are forwarded byte for byte.

use bytes::Bytes;

use super::*;

const REQUEST: &[u8] = b"INVITE sip:+15550100@sbc.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa;rport, SIP/2.0/TCP proxy.example.com;branch=z9hG4bKb\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc;received=10.9.9.9\r\n\
From: \"Caller\" <sip:caller@example.com>;tag=f1\r\n\
To: <sip:+15550100@sbc.example.com>\r\n\
Call-ID: abc@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
X-Odd-Header :  value with  two spaces\r\n\x20 and a folded continuation\r\n\
x-lower: ;;,,\r\n\
Content-Length: 0\r\n\r\n";

fn request() -> Message {
    Message::parse(Bytes::from_static(REQUEST)).unwrap()
}

#[test]
fn response_copies_vias_from_to_call_id_cseq_and_adds_the_to_tag_rfc3261_8_2_6_2() {
    let req = request();
    let source = "203.0.113.9:40000".parse().unwrap();
    let resp = Message::parse(
        MessageBuilder::response_to(&req, 486, "Busy Here", Some("t9"), Some(source)).finish(),
    )
    .unwrap();
    resp.validate().unwrap();
    assert_eq!(
        (resp.status(), resp.reason_phrase()),
        (Some(486), Some(&b"Busy Here"[..]))
    );
    let vias: Vec<_> = resp.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3, "every Via, in order");
    assert_eq!(vias[0].received(), Some(&b"203.0.113.9"[..]));
    assert_eq!(vias[0].rport(), Some(Some(40000)), "RFC 3581 §4");
    assert_eq!(vias[1].branch(), Some(&b"z9hG4bKb"[..]));
    assert_eq!(
        vias[2].received(),
        Some(&b"10.9.9.9"[..]),
        "only the top Via is rewritten"
    );
    assert_eq!(resp.header(HeaderName::From), req.header(HeaderName::From));
    assert_eq!(resp.call_id(), req.call_id());
    assert_eq!(resp.header(HeaderName::CSeq), Some(&b"7 INVITE"[..]));
    assert_eq!(resp.to_tag(), Some(&b"t9"[..]));
}

#[test]
fn top_via_without_rport_gets_received_only_when_the_host_differs_rfc3261_18_2_1() {
    let raw = String::from_utf8(REQUEST.to_vec())
        .unwrap()
        .replace(";rport, SIP", ", SIP");
    let req = Message::parse(Bytes::from(raw)).unwrap();
    let same = "192.0.2.1:5070".parse().unwrap();
    let resp =
        Message::parse(MessageBuilder::response_to(&req, 200, "OK", None, Some(same)).finish())
            .unwrap();
    let top = resp.top_via().unwrap().unwrap();
    assert_eq!((top.received(), top.rport()), (None, None));
    let other = "198.51.100.1:5070".parse().unwrap();
    let resp =
        Message::parse(MessageBuilder::response_to(&req, 200, "OK", None, Some(other)).finish())
            .unwrap();
    assert_eq!(
        resp.top_via().unwrap().unwrap().received(),
        Some(&b"198.51.100.1"[..])
    );
}

#[test]
fn unknown_headers_are_forwarded_byte_exact() {
    let req = request();
    let mut b = MessageBuilder::request("INVITE", "sip:2001@pbx.example.com");
    for h in req.headers().filter(|h| h.name == HeaderName::Other) {
        b = b.header_line(&h);
    }
    let out = b.finish();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.contains(
        "X-Odd-Header :  value with  two spaces\r\n  and a folded continuation\r\nx-lower: ;;,,\r\n"
    ));
}

#[test]
fn values_cannot_inject_header_lines() {
    let out = MessageBuilder::response(400, "Bad\r\nX-Injected: 1")
        .header("Warning", "399 teamsgw \"a\r\nVia: evil\"")
        .finish();
    let m = Message::parse(out).unwrap();
    assert_eq!(m.header_count(), 2, "Warning and Content-Length only");
    assert!(m.other_header("X-Injected").next().is_none());
    assert_eq!(m.vias().count(), 0);
}

#[test]
fn body_gets_content_type_and_length() {
    let out = MessageBuilder::request("MESSAGE", "sip:a@example.com")
        .header("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
        .body(Some("text/plain"), b"hello");
    let m = Message::parse(out).unwrap();
    assert_eq!(m.body(), b"hello");
    assert_eq!(m.content_length().unwrap().unwrap(), 5);
    assert!(m.content_type().unwrap().unwrap().is("text", "plain"));
}

#[test]
fn header_limit_and_size_limit_are_enforced() {
    let many = format!(
        "OPTIONS sip:a@b SIP/2.0\r\n{}\r\n",
        "X-A: 1\r\n".repeat(300)
    );
    assert_eq!(
        Message::parse(Bytes::from(many)).unwrap_err(),
        ParseError::TooManyHeaders
    );
    let big = Limits {
        max_message_size: 100,
        max_headers: 10,
    };
    assert_eq!(
        Message::parse_with(Bytes::from_static(REQUEST), &big).unwrap_err(),
        ParseError::TooLarge
    );
}
