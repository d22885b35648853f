//! Any bytes as a Content-Type value and a multipart body (an emergency INVITE's SDP plus
//! PIDF-LO, RFC 6442). Invariants: no panic; every part is a slice of the body; at most
//! MAX_PARTS; writing the parts back and reading them again gives the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamsgw_sip::multipart::{self, MAX_PARTS};

fuzz_target!(|data: &[u8]| {
    // The first line is the Content-Type value, the rest the body.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (content_type, body) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Some(boundary) = multipart::boundary(content_type) else { return };
    let Ok(parts) = multipart::parse(boundary, body) else { return };
    assert!(!parts.is_empty() && parts.len() <= MAX_PARTS);
    let range = body.as_ptr_range();
    for p in &parts {
        assert!(range.contains(&p.body.as_ptr()) || p.body.is_empty());
        let _ = p.content_type();
    }
    let pairs: Vec<(&[u8], &[u8])> = parts.iter().map(|p| (p.headers, p.body)).collect();
    let written = multipart::write(boundary, &pairs);
    // A part whose body holds the delimiter cannot be written back unchanged; RFC 2046
    // §5.1.1 forbids such bodies, and a well-formed one must round-trip.
    if let Ok(again) = multipart::parse(boundary, &written) {
        if again.len() == parts.len() {
            for (a, b) in again.iter().zip(&parts) {
                assert_eq!(a.body, b.body);
                assert_eq!(a.headers, b.headers);
            }
        }
    }
});
