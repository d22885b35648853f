//! The parts of a multipart INVITE body that are not SDP (an emergency call's PIDF-LO
//! location, RFC 6442 §3): they cross to the other leg byte for byte, in a multipart body
//! with our SDP in place of the peer's (RFC 2046 §5.1; teams-direct-routing.md: emergency
//! calls with `-PidfLoSupported`).

use teamsgw_sip::Message;
use teamsgw_sip::message::HeaderName;
use teamsgw_sip::multipart::{self, MultipartError};

/// A multipart body to rebuild around our SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedParts {
    /// The Content-Type value as received (type, boundary and other parameters).
    pub content_type: String,
    boundary: Vec<u8>,
    /// Every part as received: header block and body.
    parts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Which of them is the SDP (none: a delayed offer that keeps its other parts).
    sdp: Option<usize>,
}

impl CarriedParts {
    /// Whether a part other than the SDP came along (a location, for an emergency call).
    pub fn has_other_parts(&self) -> bool {
        self.parts.len() > usize::from(self.sdp.is_some())
    }

    /// The body to send: the received parts, ours in place of the SDP part (or added first
    /// when there was none and we make an offer).
    pub fn body_with(&self, sdp: Option<&str>) -> Vec<u8> {
        const SDP_HEADERS: &[u8] = b"Content-Type: application/sdp";
        let mut parts: Vec<(&[u8], &[u8])> = self
            .parts
            .iter()
            .map(|(h, b)| (h.as_slice(), b.as_slice()))
            .collect();
        match (self.sdp, sdp) {
            (Some(i), Some(ours)) => parts[i] = (SDP_HEADERS, ours.as_bytes()),
            (Some(i), None) => {
                parts.remove(i);
            }
            (None, Some(ours)) => parts.insert(0, (SDP_HEADERS, ours.as_bytes())),
            (None, None) => {}
        }
        multipart::write(&self.boundary, &parts)
    }
}

/// A request's SDP (empty when it has none) and, for a multipart body, the parts to carry.
pub fn split(request: &Message) -> Result<(&[u8], Option<CarriedParts>), MultipartError> {
    let body = request.body();
    let Some(content_type) = request.header(HeaderName::ContentType) else {
        return Ok((body, None));
    };
    let Some(boundary) = multipart::boundary(content_type) else {
        return Ok((body, None));
    };
    let parts = multipart::parse(boundary, body)?;
    let sdp = parts.iter().position(|p| p.is("application", "sdp"));
    let offer = sdp.map_or(&b""[..], |i| parts[i].body);
    Ok((
        offer,
        Some(CarriedParts {
            content_type: String::from_utf8_lossy(content_type).into_owned(),
            boundary: boundary.to_vec(),
            parts: parts
                .iter()
                .map(|p| (p.headers.to_vec(), p.body.to_vec()))
                .collect(),
            sdp,
        }),
    ))
}
