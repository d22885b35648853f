//! Multipart bodies (RFC 2046 §5.1): what an emergency INVITE from Teams carries, SDP plus a
//! PIDF-LO location (RFC 6442 §3). The parts are read, never decoded: a part's header block and
//! body are slices of the message, so a part forwarded to the other leg is the same bytes.
//!
//! The input is untrusted: the boundary is bounded (1-70 characters, §5.1.1), so is the number
//! of parts, and anything malformed is an error, never a panic (fuzzed in `fuzz/`).

use crate::message::MediaType;

/// More parts than any SIP body needs (SDP, a location, perhaps an ISUP part).
pub const MAX_PARTS: usize = 8;

/// Why a multipart body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("multipart body: {0}")]
pub struct MultipartError(pub &'static str);

/// One body part: its header block (without the blank line) and its body, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    pub headers: &'a [u8],
    pub body: &'a [u8],
}

impl Part<'_> {
    /// The part's Content-Type value (RFC 2045 §5; RFC 2046 §5.1.1: none means text/plain).
    pub fn content_type(&self) -> Option<&[u8]> {
        self.headers.split(|&b| b == b'\n').find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            name.trim_ascii()
                .eq_ignore_ascii_case(b"content-type")
                .then(|| value.trim_ascii())
        })
    }

    /// Whether the part is `kind/subtype`.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.content_type()
            .and_then(|v| MediaType::parse(v).ok())
            .is_some_and(|m| m.is(kind, subtype))
    }
}

/// The boundary of a `multipart/*` Content-Type value; `None` for other types or a boundary
/// outside §5.1.1's rules.
pub fn boundary(content_type: &[u8]) -> Option<&[u8]> {
    let media = MediaType::parse(content_type).ok()?;
    if !media.kind.eq_ignore_ascii_case("multipart") {
        return None;
    }
    let raw = media.params.get(b"boundary")??;
    let b = raw
        .strip_prefix(b"\"")
        .and_then(|r| r.strip_suffix(b"\""))
        .unwrap_or(raw);
    (1..=70).contains(&b.len()).then_some(b)
}

/// Where the next delimiter line `--boundary` starts at or after `from`: at the very start of
/// the body, or after a CRLF (which belongs to the delimiter, §5.1.1). Returns (start of the
/// CRLF or of the line, index just after `--boundary`).
fn delimiter(body: &[u8], boundary: &[u8], from: usize) -> Option<(usize, usize)> {
    // `--boundary` followed by the close (`--`), padding or the line end: a longer token that
    // merely starts with the boundary is content.
    let is_delimiter = |line: &[u8]| {
        line.starts_with(b"--")
            && line[2..].starts_with(boundary)
            && matches!(
                line.get(2 + boundary.len()),
                Some(b'-' | b' ' | b'\t' | b'\r')
            )
    };
    let mut at = from;
    if at == 0 && is_delimiter(body) {
        return Some((0, 2 + boundary.len()));
    }
    while at < body.len() {
        let i = body[at..].windows(2).position(|w| w == b"\r\n")?;
        let line = at + i + 2;
        if is_delimiter(body.get(line..)?) {
            return Some((at + i, line + 2 + boundary.len()));
        }
        at = line;
    }
    None
}

/// Skips transport padding (§5.1.1: LWSP after the boundary) and the CRLF that ends the
/// delimiter line; the index after it.
fn end_of_line(body: &[u8], mut at: usize) -> Result<usize, MultipartError> {
    while body.get(at).is_some_and(|&b| b == b' ' || b == b'\t') {
        at += 1;
    }
    if body.get(at..at + 2) == Some(b"\r\n") {
        Ok(at + 2)
    } else {
        Err(MultipartError("a boundary line must end with CRLF"))
    }
}

/// The parts of `body` delimited by `boundary`, in order (preamble and epilogue dropped).
pub fn parse<'a>(boundary: &[u8], body: &'a [u8]) -> Result<Vec<Part<'a>>, MultipartError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(MultipartError("the boundary must be 1-70 characters"));
    }
    let (_, mut after) =
        delimiter(body, boundary, 0).ok_or(MultipartError("no boundary in the body"))?;
    let mut parts = Vec::new();
    loop {
        if body.get(after..after + 2) == Some(b"--") {
            if parts.is_empty() {
                return Err(MultipartError("no body part"));
            }
            return Ok(parts);
        }
        let start = end_of_line(body, after)?;
        let (end, next) = delimiter(body, boundary, start)
            .ok_or(MultipartError("the closing boundary is missing"))?;
        let part = body.get(start..end).unwrap_or_default();
        // The header block ends at the first blank line; a part may have no headers at all.
        let (headers, content) = if part.starts_with(b"\r\n") {
            (&part[..0], &part[2..])
        } else {
            let blank = part
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or(MultipartError(
                    "a part's headers must end with a blank line",
                ))?;
            (&part[..blank], &part[blank + 4..])
        };
        if parts.len() == MAX_PARTS {
            return Err(MultipartError("too many parts"));
        }
        parts.push(Part {
            headers,
            body: content,
        });
        after = next;
    }
}

/// A multipart body of `parts` (header block, body) with `boundary`, as §5.1.1 writes it.
pub fn write(boundary: &[u8], parts: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, body) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(b"\r\n");
        if !headers.is_empty() {
            out.extend_from_slice(headers);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests;
