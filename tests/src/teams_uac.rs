//! A scripted Teams-side client: one mutual-TLS connection to our Teams listener (as a
//! Microsoft SIP proxy keeps one), over which a test sends the exact requests Teams would and
//! reads every message teamsgw sends back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use teamsgw_sip::test_pki::{LeafFiles, TestCa};

pub struct TeamsUac {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

/// A Teams SDES offer (teams-direct-routing.md §4.1), media nowhere in particular.
pub const OFFER: &str = "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/SAVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:JPEaIxHegfuv53ykBPZk8hV0GO8kTiiqRMfHimEE|2^31\r\na=rtcp-mux\r\na=sendrecv\r\n";

impl TeamsUac {
    pub fn connect(port: u16, ca: &TestCa, client: &LeafFiles) -> TeamsUac {
        let config = ca.client_config(Some(client));
        let conn =
            ClientConnection::new(config, ServerName::try_from("sbc.test").unwrap()).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        TeamsUac {
            tls: StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }

    /// An INVITE as Teams sends it for a call from `caller` to `called` on `tenant` (§3.3).
    pub fn invite(call_id: &str, caller: &str, called: &str, tenant: &str, sdp: &str) -> String {
        format!(
            "INVITE sip:{called}@{tenant}:5061;user=phone;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-{call_id}\r\n\
             From: <sip:{caller}@sip.pstnhub.microsoft.com:5061;user=phone>;tag=t-{call_id}\r\n\
             To: <sip:{called}@{tenant}:5061;user=phone>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContact: <sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=t>\r\n\
             P-Asserted-Identity: <sip:{caller}@sip.pstnhub.microsoft.com:5061;user=phone>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// The CANCEL for [`TeamsUac::invite`] with the same identifiers (RFC 3261 §9.1).
    pub fn cancel(call_id: &str, caller: &str, called: &str, tenant: &str) -> String {
        format!(
            "CANCEL sip:{called}@{tenant}:5061;user=phone;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-{call_id}\r\n\
             From: <sip:{caller}@sip.pstnhub.microsoft.com:5061;user=phone>;tag=t-{call_id}\r\n\
             To: <sip:{called}@{tenant}:5061;user=phone>\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    }

    /// A call from the Teams user `caller` to `called` on `tenant` with [`OFFER`], answered
    /// and acknowledged: returns our 200's text.
    pub fn call(&mut self, call_id: &str, caller: &str, called: &str, tenant: &str) -> String {
        self.send(&Self::invite(call_id, caller, called, tenant, OFFER));
        let ok = self.expect(200);
        self.send(&in_dialog("ACK", call_id, 1, &ok, "", NO_BODY));
        ok
    }

    /// Sends `text` and closes our side at once, as Teams does after a request (§1.5): the
    /// TLS close_notify and the FIN follow the request in the same flight, so teamsgw reads
    /// the request and then the end of the connection before it can answer on it. The socket
    /// stays open for reading (no reset) until `self` is dropped.
    pub fn send_and_close(&mut self, text: &str) {
        self.tls.write_all(text.as_bytes()).unwrap();
        self.tls.conn.send_close_notify();
        self.tls.flush().unwrap();
        let _ = self.tls.sock.shutdown(std::net::Shutdown::Write);
    }

    pub fn send(&mut self, text: &str) {
        self.tls.write_all(text.as_bytes()).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next message teamsgw sends, or `None` after `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(msg) = self.take_message() {
                return Some(msg);
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match self.tls.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }

    /// Reads until a response with `status` arrives, returning it (others are skipped).
    pub fn expect(&mut self, status: u16) -> String {
        self.expect_start(&format!("SIP/2.0 {status} "))
    }

    /// Reads until a request with `method` arrives, returning it (others are skipped).
    pub fn expect_request(&mut self, method: &str) -> String {
        self.expect_start(&format!("{method} "))
    }

    /// The next message whose start line begins with `start`, within 15 s.
    fn expect_start(&mut self, start: &str) -> String {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let Some(msg) = self.next(Duration::from_millis(500)) else {
                continue;
            };
            if msg.starts_with(start) {
                return msg;
            }
            seen.push(msg.lines().next().unwrap_or("").to_owned());
        }
        panic!("no {start:?} from teamsgw; saw {seen:?}");
    }

    /// Answers `request` with `status` (RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq
    /// copied; a To tag added when there is none).
    pub fn reply(&mut self, request: &str, status: u16, reason: &str) {
        let mut out = format!("SIP/2.0 {status} {reason}\r\n");
        for line in request.split("\r\n").take_while(|l| !l.is_empty()).skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq"
            ) {
                out.push_str(&format!("{name}:{value}\r\n"));
            } else if matches!(lower.as_str(), "to" | "t") {
                let tag = if value.contains(";tag=") {
                    ""
                } else {
                    ";tag=uac"
                };
                out.push_str(&format!("{name}:{value}{tag}\r\n"));
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.send(&out);
    }

    fn take_message(&mut self) -> Option<String> {
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let len = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if self.buf.len() < end + len {
            return None;
        }
        let msg = String::from_utf8_lossy(&self.buf[..end + len]).into_owned();
        self.buf.drain(..end + len);
        Some(msg)
    }
}

/// A request from the Teams side inside the dialog of our 200 `ok` to the INVITE `call_id`
/// that the client sent (its From, our To with our tag, to our Contact).
pub fn in_dialog(
    method: &str,
    call_id: &str,
    cseq: u32,
    ok: &str,
    extra: &str,
    body: (&str, &str),
) -> String {
    let h = |n| header(ok, n).unwrap_or_default();
    let target = h("Contact").trim_matches(|c| c == '<' || c == '>');
    let (content_type, body) = body;
    let ct = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-{method}-{cseq}-{call_id}\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         {extra}{ct}Content-Length: {}\r\n\r\n{body}",
        h("From"),
        h("To"),
        body.len()
    )
}

/// A Teams SDP body for [`in_dialog`].
pub fn sdp(body: &str) -> (&'static str, &str) {
    ("application/sdp", body)
}

/// No body, for [`in_dialog`].
pub const NO_BODY: (&str, &str) = ("", "");

/// The value of header `name` in a message's text.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
