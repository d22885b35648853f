//! Differential test: our parser against an independent one (sipx-sip, a dev-dependency only)
//! over the valid fixtures in tests/data, in original, LF-only-body and reversed-header-case
//! variants. Both must agree on what routing depends on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use sipx_sip::headers::{CSeq as XCSeq, CallId as XCallId, From as XFrom, To as XTo, Via as XVia};
use teamsgw_sip::message::Message;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 8, "fixtures missing");
    out
}

/// The same message with header names in another case (names are case-insensitive).
fn swap_name_case(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let mut out = lines.next().unwrap().to_owned();
    for line in lines {
        out.push_str("\r\n");
        match line.split_once(':') {
            Some((name, value)) if !line.starts_with([' ', '\t']) => {
                let swapped: String = name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_uppercase() {
                            c.to_ascii_lowercase()
                        } else {
                            c.to_ascii_uppercase()
                        }
                    })
                    .collect();
                out.push_str(&swapped);
                out.push(':');
                out.push_str(value);
            }
            _ => out.push_str(line),
        }
    }
    format!("{out}\r\n\r\n{body}").into_bytes()
}

#[derive(Debug, PartialEq)]
struct Essentials {
    request: bool,
    method: Option<String>,
    status: Option<u16>,
    call_id: Vec<u8>,
    cseq: (u32, String),
    from_tag: Option<Vec<u8>>,
    to_tag: Option<Vec<u8>>,
    vias: usize,
    top_branch: Option<Vec<u8>>,
    top_transport: String,
    top_port: Option<u16>,
    body: Vec<u8>,
}

fn ours(raw: &[u8]) -> Essentials {
    let m = Message::parse(Bytes::copy_from_slice(raw)).unwrap();
    m.validate().unwrap();
    let via = m.top_via().unwrap().unwrap();
    let cseq = m.cseq().unwrap().unwrap();
    Essentials {
        request: m.is_request(),
        method: m.method().map(|x| x.as_str().to_owned()),
        status: m.status(),
        call_id: m.call_id().unwrap().to_vec(),
        cseq: (cseq.seq, cseq.method.as_str().to_owned()),
        from_tag: m.from_tag().map(<[u8]>::to_vec),
        to_tag: m.to_tag().map(<[u8]>::to_vec),
        vias: m.vias().count(),
        top_branch: via.branch().map(<[u8]>::to_vec),
        top_transport: via.transport.to_ascii_uppercase(),
        top_port: via.port,
        body: m.body().to_vec(),
    }
}

fn oracle(raw: &[u8]) -> Essentials {
    let m = sipx_sip::parse_datagram(Bytes::copy_from_slice(raw), &sipx_sip::Limits::default())
        .unwrap();
    let h = m.headers();
    let via: XVia = h.typed().unwrap().unwrap();
    let cseq: XCSeq = h.typed().unwrap().unwrap();
    let call_id: XCallId = h.typed().unwrap().unwrap();
    let from: XFrom = h.typed().unwrap().unwrap();
    let to: XTo = h.typed().unwrap().unwrap();
    Essentials {
        request: m.as_request().is_some(),
        method: m.as_request().map(|r| r.method.to_string()),
        status: m.as_response().map(|r| r.status.code()),
        call_id: call_id.0,
        cseq: (cseq.sequence, cseq.method.to_string()),
        from_tag: from.tag().map(<[u8]>::to_vec),
        to_tag: to.tag().map(<[u8]>::to_vec),
        vias: h.typed_all::<XVia>().count(),
        top_branch: via.branch().map(<[u8]>::to_vec),
        top_transport: String::from_utf8_lossy(&via.transport).to_ascii_uppercase(),
        top_port: via.port,
        body: m.body().to_vec(),
    }
}

#[test]
fn agrees_with_an_independent_parser_on_the_valid_corpus() {
    let mut compared = 0;
    for (name, raw) in fixtures() {
        for (variant, bytes) in [
            ("original", raw.clone()),
            ("name-case", swap_name_case(&raw)),
        ] {
            assert_eq!(ours(&bytes), oracle(&bytes), "{name} ({variant})");
            compared += 1;
        }
    }
    assert!(compared >= 16);
}
