//! Writing requests and responses. Values are written as given except that CR and LF are
//! replaced by spaces, so nothing taken from a peer can inject a header line.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::{HeaderName, HeaderRef, Message};

pub struct MessageBuilder {
    buf: BytesMut,
}

fn put_clean(buf: &mut BytesMut, value: &[u8]) {
    for &b in value {
        buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
}

impl MessageBuilder {
    pub fn request(method: &str, uri: &str) -> Self {
        let mut buf = BytesMut::with_capacity(1024);
        put_clean(&mut buf, method.as_bytes());
        buf.put_u8(b' ');
        put_clean(&mut buf, uri.as_bytes());
        buf.put_slice(b" SIP/2.0\r\n");
        Self { buf }
    }

    pub fn response(status: u16, reason: &str) -> Self {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_slice(format!("SIP/2.0 {status} ").as_bytes());
        put_clean(&mut buf, reason.as_bytes());
        buf.put_slice(b"\r\n");
        Self { buf }
    }

    /// A response to `request` (RFC 3261 §8.2.6.2): every Via in order, From, To, Call-ID
    /// and CSeq copied as received; `to_tag` is added when the To header has none. With
    /// `source`, the top Via gets `received` and a filled-in `rport` (RFC 3261 §18.2.1,
    /// RFC 3581 §4) so the response can reach a peer behind NAT.
    pub fn response_to(
        request: &Message,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
        source: Option<SocketAddr>,
    ) -> Self {
        let mut b = Self::response(status, reason);
        for (i, via) in request.values(HeaderName::Via).enumerate() {
            b.buf.put_slice(b"Via: ");
            match (i, source) {
                (0, Some(src)) => b.put_top_via(via, src),
                _ => put_clean(&mut b.buf, via),
            }
            b.buf.put_slice(b"\r\n");
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if let Some(value) = request.header(name) {
                b.buf.put_slice(name.as_str().as_bytes());
                b.buf.put_slice(b": ");
                put_clean(&mut b.buf, value);
                if name == HeaderName::To
                    && let Some(tag) = to_tag
                    && request.to_tag().is_none()
                {
                    b.buf.put_slice(b";tag=");
                    put_clean(&mut b.buf, tag.as_bytes());
                }
                b.buf.put_slice(b"\r\n");
            }
        }
        b
    }

    fn put_top_via(&mut self, via: &[u8], source: SocketAddr) {
        let parsed = super::Via::parse(via).ok();
        let wants_rport = parsed.is_some_and(|v| v.rport().is_some());
        let host_matches = parsed.is_some_and(|v| match v.host {
            super::Host::Ipv4(a) => std::net::IpAddr::V4(a) == source.ip(),
            super::Host::Ipv6(a) => std::net::IpAddr::V6(a) == source.ip(),
            super::Host::Name(_) => false,
        });
        // Rewrite parameters: drop stale received/rport, then add ours.
        let (head, params) = match via.iter().position(|&b| b == b';') {
            Some(i) => (&via[..i], &via[i..]),
            None => (via, &b""[..]),
        };
        put_clean(&mut self.buf, head);
        for (name, value) in super::Params::new(params).iter() {
            let skip = (name.eq_ignore_ascii_case(b"rport") && wants_rport)
                || (name.eq_ignore_ascii_case(b"received") && (!host_matches || wants_rport));
            if skip {
                continue;
            }
            self.buf.put_u8(b';');
            put_clean(&mut self.buf, name);
            if let Some(v) = value {
                self.buf.put_u8(b'=');
                put_clean(&mut self.buf, v);
            }
        }
        if !host_matches || wants_rport {
            self.buf
                .put_slice(format!(";received={}", source.ip()).as_bytes());
        }
        if wants_rport {
            self.buf
                .put_slice(format!(";rport={}", source.port()).as_bytes());
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        put_clean(&mut self.buf, name.as_bytes());
        self.buf.put_slice(b": ");
        put_clean(&mut self.buf, value.as_ref());
        self.buf.put_slice(b"\r\n");
        self
    }

    /// Forwards a received header line byte-exact (folding included).
    pub fn header_line(mut self, header: &HeaderRef<'_>) -> Self {
        self.buf.put_slice(header.line);
        self.buf.put_slice(b"\r\n");
        self
    }

    /// Ends the headers with Content-Length: 0.
    pub fn finish(self) -> Bytes {
        self.body(None, b"")
    }

    /// Adds Content-Type (when given), Content-Length and the body.
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) -> Bytes {
        if let Some(ct) = content_type {
            self = self.header("Content-Type", ct);
        }
        self = self.header("Content-Length", body.len().to_string());
        self.buf.put_slice(b"\r\n");
        self.buf.put_slice(body);
        self.buf.freeze()
    }
}
