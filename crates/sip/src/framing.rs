//! Framing SIP on byte streams (TCP, TLS): messages are delimited by the empty line after the
//! headers and the Content-Length that follows (RFC 3261 §18.3), and a double CRLF between
//! messages is a keep-alive ping that wants a single CRLF pong (RFC 5626 §3.5.1).
//!
//! A stream that exceeds the size limit or whose Content-Length cannot be read has lost its
//! framing for good: the caller closes it.

use bytes::{Buf, Bytes, BytesMut};

use crate::message::Limits;
use crate::message::scan::{digits_u64, eq_ignore_case, trim};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (headers and exactly Content-Length body octets).
    Message(Bytes),
    /// CRLFCRLF keep-alive; answer with a single CRLF.
    Ping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message larger than the limit")]
    TooLarge,
    #[error("Content-Length missing a usable value or given twice differently")]
    BadContentLength,
}

impl FramingError {
    pub fn label(&self) -> &'static str {
        match self {
            FramingError::TooLarge => "too_large",
            FramingError::BadContentLength => "bad_content_length",
        }
    }
}

pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// Where the search for the end of headers resumes (bytes before were already scanned).
    scanned: usize,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::with_capacity(8 * 1024),
            limits,
            scanned: 0,
        }
    }

    /// The receive buffer, for `read_buf`.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                self.scanned = 0;
                return Ok(Some(Frame::Ping));
            }
            match self.buf.first() {
                // A lone CRLF is a pong, and stray line breaks before a message are ignored.
                Some(b'\n') => self.buf.advance(1),
                Some(b'\r') if self.buf.len() >= 2 && self.buf[1] == b'\n' => {
                    if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf) {
                        return Ok(None); // maybe a ping still arriving
                    }
                    self.buf.advance(2);
                }
                Some(b'\r') if self.buf.len() < 2 => return Ok(None),
                _ => break,
            }
            self.scanned = 0;
        }
        let Some(header_end) = self.find_header_end() else {
            if self.buf.len() > self.limits.max_message_size {
                return Err(FramingError::TooLarge);
            }
            return Ok(None);
        };
        let length = content_length(&self.buf[..header_end])?;
        let total = header_end
            .checked_add(length)
            .filter(|&t| t <= self.limits.max_message_size)
            .ok_or(FramingError::TooLarge)?;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }

    /// Index just past the empty line that ends the headers (CRLFCRLF or LFLF).
    fn find_header_end(&mut self) -> Option<usize> {
        let start = self.scanned.saturating_sub(3);
        let data = &self.buf[start..];
        let mut i = 0;
        while let Some(off) = data[i..].iter().position(|&b| b == b'\n') {
            let lf = i + off;
            if data.get(lf + 1) == Some(&b'\n') {
                return Some(start + lf + 2);
            }
            if data.get(lf + 1) == Some(&b'\r') && data.get(lf + 2) == Some(&b'\n') {
                return Some(start + lf + 3);
            }
            i = lf + 1;
        }
        self.scanned = self.buf.len();
        None
    }
}

/// The Content-Length of a header block; 0 when absent (required on streams, RFC 3261 §20.14,
/// but some peers omit it on bodiless messages).
fn content_length(headers: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    for line in headers.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if !(eq_ignore_case(name, b"content-length") || eq_ignore_case(name, b"l")) {
            continue;
        }
        let value = digits_u64(trim(&line[colon + 1..]))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(FramingError::BadContentLength)?;
        if found.is_some_and(|f| f != value) {
            return Err(FramingError::BadContentLength);
        }
        found = Some(value);
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    fn framer() -> StreamFramer {
        StreamFramer::new(Limits::default())
    }

    #[test]
    fn byte_by_byte_and_several_per_read() {
        let mut f = framer();
        for &b in OPTIONS {
            assert_eq!(f.next_frame().unwrap(), None);
            f.extend(&[b]);
        }
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(OPTIONS)))
        );
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(OPTIONS);
        f.extend(&two);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn keepalive_ping_and_pong_rfc5626_3_5_1() {
        let mut f = framer();
        f.extend(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.extend(b"\r\n");
        assert_eq!(
            f.next_frame().unwrap(),
            None,
            "could be the start of a ping"
        );
        f.extend(OPTIONS);
        assert!(
            matches!(f.next_frame().unwrap(), Some(Frame::Message(m)) if m.as_ref() == OPTIONS)
        );
    }

    #[test]
    fn oversize_and_unreadable_length_lose_framing() {
        let mut f = StreamFramer::new(Limits {
            max_message_size: 1024,
            max_headers: 10,
        });
        f.extend(&vec![b'A'; 2000]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge));
        let mut f = framer();
        f.extend(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge));
        let mut f = framer();
        f.extend(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
        let mut f = framer();
        f.extend(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
    }

    #[test]
    fn header_end_split_across_reads() {
        let mut f = framer();
        let (a, b) =
            OPTIONS.split_at(OPTIONS.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2);
        f.extend(a);
        assert_eq!(f.next_frame().unwrap(), None);
        f.extend(b);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }
}
