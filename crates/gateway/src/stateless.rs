//! The stateless answers the SBC gives to requests no call or registration logic claims
//! (yet): a pure function from a received message to what to send back.
//!
//! Rules, in order (RFC 3261 section in brackets):
//! 1. responses without a transaction are dropped; ACK gets nothing (§17.2.3) or goes to the
//!    call layer;
//! 2. a malformed request is answered 400 (505 for another SIP version) naming the defect in
//!    the reason phrase and a Warning, or dropped when it cannot be answered (§8.2, RFC 4475);
//! 3. while draining, every request outside a call gets 503 with Retry-After so Teams fails
//!    over (reference: teams-direct-routing.md §3.8);
//! 4. an unsupported Request-URI scheme gets 416 (§8.2.2.1);
//! 5. a Require we do not support gets 420 with Unsupported (§8.2.2.3; not for CANCEL);
//! 6. OPTIONS gets 200 with Allow, Accept and Supported — whatever its Max-Forwards, because
//!    we are the endpoint (§11.2);
//! 7. REGISTER gets 403: we are not a registrar;
//! 8. unknown methods get 501 with Allow (§8.2.1);
//! 9. CANCEL and requests inside a dialog we do not have get 481 (§9.2, §12.2.2);
//! 10. anything else gets 404.
//!
//! With the call layer ([`StatelessPolicy::with_calls`]) INVITE, ACK, CANCEL, BYE and every
//! in-dialog request pass to it after rule 5 instead of rules 9 and 10.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;

use bytes::Bytes;
use teamsgw_sip::message::{Defect, Message, MessageBuilder, Method};

/// Methods we accept (Allow): what the B2BUA handles end to end. REFER makes Teams hand
/// transfers to us as Transferor (teams-direct-routing.md §3.7).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER";
/// Towards a PBX: no REFER (a PBX's REFER is refused, see `call::transfer`).
pub const PBX_ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";
/// Option tags we support (Supported / checked against Require): session timers (RFC 4028;
/// 100rel and replaces come with the rest of the mid-call work).
pub const SUPPORTED: &[&str] = &["timer"];

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Respond(Bytes),
    /// A malformed request answered with 400/505; the label is for metrics.
    Reject(Bytes, &'static str),
    /// Dropped unanswered; the label is for metrics.
    Drop(&'static str),
    Ignore,
    /// A valid request the call layer handles (INVITE, ACK, CANCEL, BYE, in-dialog).
    Pass,
}

pub struct StatelessPolicy {
    /// Keys the To-tags: a retransmitted request gets the same tag, without any state.
    tag_key: RandomState,
    server: String,
    retry_after_seconds: u32,
    calls: bool,
}

impl StatelessPolicy {
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            tag_key: RandomState::new(),
            server: server.into(),
            retry_after_seconds: 30,
            calls: false,
        }
    }

    /// Passes call requests to the call layer instead of answering them (rules 9 and 10).
    pub fn with_calls(mut self) -> Self {
        self.calls = true;
        self
    }

    fn for_calls(&self, msg: &Message, method: Method<'_>) -> bool {
        self.calls
            && method != Method::Register
            && (matches!(
                method,
                Method::Invite | Method::Ack | Method::Cancel | Method::Bye
            ) || msg.to_tag().is_some())
    }

    pub fn handle(&self, msg: &Message, source: SocketAddr, draining: bool) -> Verdict {
        self.handle_with_contact(msg, source, draining, None)
    }

    /// [`Self::handle`] answering OPTIONS with `contact` (Teams computes its next hop from
    /// it: teams-direct-routing.md §2.2).
    pub fn handle_with_contact(
        &self,
        msg: &Message,
        source: SocketAddr,
        draining: bool,
        contact: Option<&str>,
    ) -> Verdict {
        if !msg.is_request() {
            return Verdict::Drop("unmatched_response");
        }
        if let Err(defect) = msg.validate() {
            if !msg.can_answer() {
                return Verdict::Drop(defect.label());
            }
            let response = self.reject(msg, source, &defect);
            return Verdict::Reject(response, defect.label());
        }
        let Some(method) = msg.method() else {
            return Verdict::Drop("bad_request_line");
        };
        if method == Method::Ack {
            return if self.calls {
                Verdict::Pass
            } else {
                Verdict::Ignore
            };
        }
        // Calls already up keep their in-dialog requests and CANCEL while draining.
        let in_call = self.calls && (msg.to_tag().is_some() || method == Method::Cancel);
        if draining && !in_call {
            let r = self
                .base(msg, source, 503, "Service Unavailable")
                .header("Retry-After", self.retry_after_seconds.to_string())
                .header("Warning", warning("shutting down"))
                .finish();
            return Verdict::Respond(r);
        }
        let scheme = msg
            .request_uri()
            .and_then(|u| u.ok())
            .and_then(|u| u.scheme());
        if scheme.is_none() {
            let r = self
                .base(msg, source, 416, "Unsupported URI Scheme")
                .finish();
            return Verdict::Respond(r);
        }
        if method != Method::Cancel {
            let unsupported: Vec<&str> = msg
                .require()
                .filter_map(Result::ok)
                .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
                .collect();
            if !unsupported.is_empty() {
                let r = self
                    .base(msg, source, 420, "Bad Extension")
                    .header("Unsupported", unsupported.join(", "))
                    .finish();
                return Verdict::Respond(r);
            }
        }
        if self.for_calls(msg, method) {
            return Verdict::Pass;
        }
        let response = match method {
            Method::Options => {
                let mut b = self.base(msg, source, 200, "OK");
                if let Some(contact) = contact {
                    b = b.header("Contact", contact);
                }
                b.header("Allow", ALLOW)
                    .header("Accept", "application/sdp")
                    .header("Supported", SUPPORTED.join(", "))
                    .finish()
            }
            Method::Register => self
                .base(msg, source, 403, "Forbidden")
                .header("Warning", warning("this SBC is not a registrar"))
                .finish(),
            Method::Extension(_) => self
                .base(msg, source, 501, "Not Implemented")
                .header("Allow", ALLOW)
                .finish(),
            _ if method == Method::Cancel || msg.to_tag().is_some() => self
                .base(msg, source, 481, "Call/Transaction Does Not Exist")
                .finish(),
            _ => self.base(msg, source, 404, "Not Found").finish(),
        };
        Verdict::Respond(response)
    }

    fn reject(&self, msg: &Message, source: SocketAddr, defect: &Defect) -> Bytes {
        let reason = defect.to_string();
        self.base(msg, source, defect.status(), &reason)
            .header("Warning", warning(&reason))
            .finish()
    }

    fn base(&self, msg: &Message, source: SocketAddr, status: u16, reason: &str) -> MessageBuilder {
        let tag = self.to_tag(msg);
        MessageBuilder::response_to(msg, status, reason, Some(&tag), Some(source))
            .header("Server", &self.server)
    }

    fn to_tag(&self, msg: &Message) -> String {
        let branch = msg
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch())
            .unwrap_or_default();
        let key = (msg.call_id(), msg.from_tag(), branch);
        format!("{:016x}", self.tag_key.hash_one(key))
    }
}

/// `Warning: 399 teamsgw "text"` (RFC 3261 §20.43), text escaped for a quoted-string.
pub(crate) fn warning(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("399 teamsgw \"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(first_line: &str, extra: &str) -> Message {
        let method = first_line.split(' ').next().unwrap();
        let text = format!(
            "{first_line}\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK77;rport\r\n\
             From: <sip:a@example.com>;tag=9\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn answer(v: Verdict) -> Message {
        match v {
            Verdict::Respond(b) | Verdict::Reject(b, _) => Message::parse(b).unwrap(),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    const SRC: &str = "198.51.100.7:5070";

    fn policy() -> StatelessPolicy {
        StatelessPolicy::new("teamsgw")
    }

    #[test]
    fn options_is_answered_by_the_endpoint_even_with_max_forwards_0_rfc3261_11_2() {
        let p = policy();
        let req = request("OPTIONS sip:sbc.example.com SIP/2.0", "")
            .as_bytes()
            .clone();
        let req = Message::parse(Bytes::from(
            String::from_utf8(req.to_vec())
                .unwrap()
                .replace("Max-Forwards: 70", "Max-Forwards: 0"),
        ))
        .unwrap();
        let r = answer(p.handle(&req, SRC.parse().unwrap(), false));
        assert_eq!(r.status(), Some(200));
        assert_eq!(
            r.header(teamsgw_sip::HeaderName::Allow),
            Some(ALLOW.as_bytes())
        );
        assert!(r.to_tag().is_some());
        let via = r.top_via().unwrap().unwrap();
        assert_eq!(via.rport(), Some(Some(5070)), "RFC 3581 rport filled in");
        assert_eq!(via.received(), Some(&b"198.51.100.7"[..]));
        // Same request again: same To-tag, without state.
        let again = answer(p.handle(&req, SRC.parse().unwrap(), false));
        assert_eq!(again.to_tag(), r.to_tag());
    }

    /// teams-direct-routing.md §2.2: OPTIONS from Teams get 200 with our Contact and Allow.
    #[test]
    fn options_from_teams_carry_our_contact() {
        let req = request("OPTIONS sip:sbc.example.com SIP/2.0", "");
        let contact = "<sip:sbc.carrier.example:5061;transport=tls>";
        let r =
            answer(policy().handle_with_contact(&req, SRC.parse().unwrap(), false, Some(contact)));
        assert_eq!(r.status(), Some(200));
        assert_eq!(
            r.header(teamsgw_sip::HeaderName::Contact),
            Some(contact.as_bytes())
        );
        assert_eq!(
            r.header(teamsgw_sip::HeaderName::Allow),
            Some(ALLOW.as_bytes())
        );
    }

    #[test]
    fn method_rules() {
        let p = policy();
        let src = SRC.parse().unwrap();
        let status = |first: &str, extra: &str| {
            answer(p.handle(&request(first, extra), src, false)).status()
        };
        assert_eq!(status("REGISTER sip:example.com SIP/2.0", ""), Some(403));
        assert_eq!(
            status("INVITE sip:+1555@example.com SIP/2.0", ""),
            Some(404)
        );
        assert_eq!(status("FOO sip:x@example.com SIP/2.0", ""), Some(501));
        assert_eq!(status("CANCEL sip:x@example.com SIP/2.0", ""), Some(481));
        assert_eq!(status("BYE sip:x@example.com SIP/2.0", "").unwrap(), 404);
        assert_eq!(status("INVITE mailto:x@example.com SIP/2.0", ""), Some(416));
        let r = answer(p.handle(
            &request(
                "INVITE sip:x@example.com SIP/2.0",
                "Require: 100rel, foo\r\n",
            ),
            src,
            false,
        ));
        assert_eq!(r.status(), Some(420));
        assert_eq!(
            r.header(teamsgw_sip::HeaderName::Unsupported),
            Some(&b"100rel, foo"[..])
        );
        // RFC 4028 §9: session timers are supported, so `Require: timer` passes to the calls.
        let calls = StatelessPolicy::new("teamsgw").with_calls();
        assert_eq!(
            calls.handle(
                &request("INVITE sip:x@example.com SIP/2.0", "Require: timer\r\n"),
                src,
                false
            ),
            Verdict::Pass
        );
        assert_eq!(
            p.handle(&request("ACK sip:x@example.com SIP/2.0", ""), src, false),
            Verdict::Ignore
        );
    }

    #[test]
    fn in_dialog_request_without_dialog_gets_481_rfc3261_12_2_2() {
        let p = policy();
        let text = String::from_utf8(
            request("BYE sip:x@example.com SIP/2.0", "")
                .as_bytes()
                .to_vec(),
        )
        .unwrap()
        .replace("To: <sip:b@example.com>", "To: <sip:b@example.com>;tag=abc");
        let r = answer(p.handle(
            &Message::parse(Bytes::from(text)).unwrap(),
            SRC.parse().unwrap(),
            false,
        ));
        assert_eq!(r.status(), Some(481));
        assert_eq!(r.to_tag(), Some(&b"abc"[..]), "the existing To-tag is kept");
    }

    #[test]
    fn malformed_requests_get_400_naming_the_defect_and_505_for_other_versions() {
        let p = policy();
        let text = String::from_utf8(
            request("OPTIONS sip:x@example.com SIP/2.0", "")
                .as_bytes()
                .to_vec(),
        )
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        let v = p.handle(
            &Message::parse(Bytes::from(text)).unwrap(),
            SRC.parse().unwrap(),
            false,
        );
        let Verdict::Reject(_, label) = v.clone() else {
            panic!("{v:?}")
        };
        assert_eq!(label, "cseq_method_mismatch");
        let r = answer(v);
        assert_eq!(r.status(), Some(400));
        assert_eq!(
            r.reason_phrase(),
            Some(&b"CSeq method does not match the request method"[..])
        );
        assert!(
            r.header(teamsgw_sip::HeaderName::Warning)
                .unwrap()
                .starts_with(b"399 teamsgw \"CSeq")
        );

        let text = String::from_utf8(
            request("OPTIONS sip:x@example.com SIP/2.0", "")
                .as_bytes()
                .to_vec(),
        )
        .unwrap()
        .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia");
        let r = answer(p.handle(
            &Message::parse(Bytes::from(text)).unwrap(),
            SRC.parse().unwrap(),
            false,
        ));
        assert_eq!(r.status(), Some(505));
    }

    #[test]
    fn draining_answers_503_with_retry_after() {
        let p = policy();
        let r = answer(p.handle(
            &request("INVITE sip:x@example.com SIP/2.0", ""),
            SRC.parse().unwrap(),
            true,
        ));
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.retry_after().unwrap().unwrap().seconds, 30);
    }

    #[test]
    fn responses_and_unanswerable_requests_are_dropped() {
        let p = policy();
        let resp = Message::parse(Bytes::from_static(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            p.handle(&resp, SRC.parse().unwrap(), false),
            Verdict::Drop("unmatched_response")
        );
        let no_from = Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            p.handle(&no_from, SRC.parse().unwrap(), false),
            Verdict::Drop("missing_header")
        );
    }

    #[test]
    fn warning_text_is_escaped() {
        assert_eq!(
            warning("a \"b\" \\c\r\n"),
            "399 teamsgw \"a \\\"b\\\" \\\\c  \""
        );
    }
}
