//! RFC 2046 §5.1.1 framing, and the shape of an emergency INVITE body (RFC 6442 §3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const SDP: &[u8] = b"v=0\r\no=- 1 0 IN IP4 52.114.14.70\r\ns=-\r\nc=IN IP4 52.114.14.70\r\nt=0 0\r\nm=audio 52884 RTP/SAVP 0\r\n";
const PIDF: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:alice@contoso.com\">\r\n <tuple id=\"t1\"><status><geopriv/></status></tuple>\r\n</presence>";

fn emergency_body() -> Vec<u8> {
    let mut body = b"--boundary1\r\nContent-Type: application/sdp\r\n\r\n".to_vec();
    body.extend_from_slice(SDP);
    body.extend_from_slice(
        b"\r\n--boundary1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <target123@contoso.com>\r\n\r\n",
    );
    body.extend_from_slice(PIDF);
    body.extend_from_slice(b"\r\n--boundary1--\r\n");
    body
}

#[test]
fn an_rfc6442_body_splits_into_sdp_and_pidf_byte_for_byte() {
    let body = emergency_body();
    let parts = parse(b"boundary1", &body).unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts[0].is("application", "sdp"));
    assert_eq!(parts[0].body, SDP);
    assert!(parts[1].is("application", "pidf+xml"));
    assert_eq!(parts[1].body, PIDF);
    assert_eq!(
        parts[1].headers,
        b"Content-Type: application/pidf+xml\r\nContent-ID: <target123@contoso.com>"
    );
}

#[test]
fn write_then_parse_gives_the_same_parts() {
    let body = emergency_body();
    let parts = parse(b"boundary1", &body).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = parts.iter().map(|p| (p.headers, p.body)).collect();
    let written = write(b"boundary1", &pairs);
    assert_eq!(written, body);
    assert_eq!(parse(b"boundary1", &written).unwrap(), parts);
}

#[test]
fn rfc2046_5_1_1_preamble_epilogue_padding_and_a_part_without_headers() {
    let body = b"This is the preamble.\r\n--simple boundary \t\r\n\r\nplain text, no headers\r\n--simple boundary\r\nContent-type: text/plain; charset=us-ascii\r\n\r\nexplicitly typed\r\n--simple boundary--\r\nThis is the epilogue.\r\n";
    let parts = parse(b"simple boundary", body).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].headers, b"");
    assert_eq!(parts[0].body, b"plain text, no headers");
    assert!(parts[1].is("text", "plain"));
    assert_eq!(parts[1].body, b"explicitly typed");
}

#[test]
fn the_boundary_comes_from_a_multipart_content_type_only() {
    assert_eq!(
        boundary(b"multipart/mixed;boundary=boundary1"),
        Some(&b"boundary1"[..])
    );
    assert_eq!(
        boundary(b"multipart/related; type=\"application/sdp\"; boundary=\"a b:c\""),
        Some(&b"a b:c"[..])
    );
    assert_eq!(boundary(b"application/sdp"), None);
    assert_eq!(boundary(b"multipart/mixed"), None);
    let long = format!("multipart/mixed;boundary={}", "x".repeat(71));
    assert_eq!(boundary(long.as_bytes()), None);
}

#[test]
fn malformed_bodies_are_errors() {
    assert!(parse(b"b", b"no delimiter at all").is_err());
    assert!(parse(b"b", b"--b\r\nContent-Type: a/b\r\n\r\nunterminated").is_err());
    assert!(parse(b"b", b"--b--\r\n").is_err(), "no part");
    assert!(
        parse(b"b", b"--bx\r\n\r\nx\r\n--b--").is_err(),
        "--bx is not --b"
    );
    assert!(parse(b"b", b"--b\r\nno blank line\r\n--b--").is_err());
    let mut many = Vec::new();
    for _ in 0..=MAX_PARTS {
        many.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    many.extend_from_slice(b"--b--");
    assert_eq!(parse(b"b", &many), Err(MultipartError("too many parts")));
}
