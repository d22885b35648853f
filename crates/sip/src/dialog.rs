//! Dialogs (RFC 3261 §12) and what INVITE adds to them (§13): state, route set, remote
//! target, CSeq rules, in-dialog request construction, forked early dialogs, the UAS's 2xx
//! retransmission until the ACK, and the UAC's ACK for a 2xx.
//!
//! Plain data and functions over received messages; the caller decides when to send.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{HeaderName, Message, MessageBuilder, Method, Uri};
use crate::transaction::TimerSettings;
use crate::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("the message lacks {0} needed for a dialog")]
    Missing(&'static str),
    #[error("the response does not create a dialog (status {0})")]
    NotDialogCreating(u16),
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our From (UAC) or To (UAS) header value, with our tag.
    pub local_party: String,
    /// The peer's header value, with its tag.
    pub remote_party: String,
    /// Where in-dialog requests go: the peer's Contact URI.
    pub remote_target: String,
    /// Route headers for in-dialog requests, in order.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    pub secure: bool,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn contact_uri(msg: &Message) -> Option<String> {
    match msg.contacts().next()?.ok()? {
        crate::message::Contact::Addr(a) => Some(text(a.uri_raw)),
        crate::message::Contact::Star => None,
    }
}

fn record_route(msg: &Message) -> Vec<String> {
    msg.values(HeaderName::RecordRoute).map(text).collect()
}

impl Dialog {
    /// The UAC's dialog from the request it sent and a response carrying a To tag:
    /// 101–199 make it early, 2xx confirmed (§12.1.2). The route set is the Record-Route in
    /// reverse order.
    pub fn uac(request: &Message, response: &Message) -> Result<Self, DialogError> {
        let status = response.status().ok_or(DialogError::Missing("a status"))?;
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let remote_tag = response.to_tag().ok_or(DialogError::Missing("a To tag"))?;
        let mut route_set = record_route(response);
        route_set.reverse();
        Ok(Self {
            id: DialogId {
                call_id: text(request.call_id().ok_or(DialogError::Missing("Call-ID"))?),
                local_tag: text(
                    request
                        .from_tag()
                        .ok_or(DialogError::Missing("a From tag"))?,
                ),
                remote_tag: text(remote_tag),
            },
            state,
            local_party: text(
                request
                    .header(HeaderName::From)
                    .ok_or(DialogError::Missing("From"))?,
            ),
            remote_party: text(
                response
                    .header(HeaderName::To)
                    .ok_or(DialogError::Missing("To"))?,
            ),
            remote_target: contact_uri(response).ok_or(DialogError::Missing("Contact"))?,
            route_set,
            local_cseq: request.cseq().and_then(Result::ok).map_or(1, |c| c.seq),
            remote_cseq: None,
            secure: matches!(request.request_uri(), Some(Ok(Uri::Sip(u))) if u.secure),
        })
    }

    /// The UAS's dialog from a dialog-creating request and the tag it answers with
    /// (§12.1.1). The route set is the Record-Route in order. Early until [`Dialog::confirm`].
    pub fn uas(request: &Message, local_tag: &str) -> Result<Self, DialogError> {
        let to = request
            .header(HeaderName::To)
            .ok_or(DialogError::Missing("To"))?;
        Ok(Self {
            id: DialogId {
                call_id: text(request.call_id().ok_or(DialogError::Missing("Call-ID"))?),
                local_tag: local_tag.to_owned(),
                remote_tag: text(
                    request
                        .from_tag()
                        .ok_or(DialogError::Missing("a From tag"))?,
                ),
            },
            state: DialogState::Early,
            local_party: format!("{};tag={local_tag}", text(to)),
            remote_party: text(
                request
                    .header(HeaderName::From)
                    .ok_or(DialogError::Missing("From"))?,
            ),
            remote_target: contact_uri(request).ok_or(DialogError::Missing("Contact"))?,
            route_set: record_route(request),
            local_cseq: 0,
            remote_cseq: request.cseq().and_then(Result::ok).map(|c| c.seq),
            secure: matches!(request.request_uri(), Some(Ok(Uri::Sip(u))) if u.secure),
        })
    }

    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// A response within this dialog (UAC): a 2xx confirms an early dialog, takes its route
    /// set (§13.2.2.4) and refreshes the remote target (§12.2.1.2).
    pub fn on_response(&mut self, request_method: Method<'_>, response: &Message) {
        let Some(status) = response.status() else {
            return;
        };
        if (200..300).contains(&status) {
            if self.state == DialogState::Early {
                let mut route_set = record_route(response);
                route_set.reverse();
                self.route_set = route_set;
            }
            self.confirm();
        }
        if is_target_refresh(request_method)
            && (200..300).contains(&status)
            && let Some(target) = contact_uri(response)
        {
            self.remote_target = target;
        }
        if request_method == Method::Invite
            && (300..700).contains(&status)
            && self.state == DialogState::Early
        {
            self.state = DialogState::Terminated;
        }
    }

    /// A request within this dialog (§12.2.2): CSeq must grow (else 500), target refresh
    /// requests update the remote target, BYE terminates.
    pub fn on_request(&mut self, request: &Message) -> Result<(), u16> {
        let method = request.method().ok_or(400u16)?;
        let seq = request.cseq().and_then(Result::ok).ok_or(400u16)?.seq;
        // ACK and CANCEL reuse the CSeq number of the request they belong to.
        if !matches!(method, Method::Ack | Method::Cancel) {
            if self.remote_cseq.is_some_and(|r| seq <= r) {
                return Err(500);
            }
            self.remote_cseq = Some(seq);
        }
        if is_target_refresh(method)
            && let Some(target) = contact_uri(request)
        {
            self.remote_target = target;
        }
        if method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// Starts an in-dialog request (§12.2.1.1): Request-URI and Route from the remote target
    /// and route set (loose or strict routing), From/To/Call-ID of the dialog, the next local
    /// CSeq (ACK and CANCEL are built elsewhere). The caller adds Via, Contact and the body.
    pub fn request(&mut self, method: &str) -> MessageBuilder {
        self.local_cseq += 1;
        let seq = self.local_cseq;
        self.request_with_cseq(method, seq)
    }

    fn request_with_cseq(&self, method: &str, seq: u32) -> MessageBuilder {
        let first_is_strict = self
            .route_set
            .first()
            .is_some_and(|r| !r.to_ascii_lowercase().contains(";lr"));
        let (uri, routes): (String, Vec<String>) = if first_is_strict {
            // Strict routing: the first route becomes the Request-URI, the remote target the
            // last Route (§12.2.1.1).
            let first = self.route_set[0]
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (first, rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut b = MessageBuilder::request(method, &uri);
        for r in routes {
            b = b.header("Route", r);
        }
        b.header("From", &self.local_party)
            .header("To", &self.remote_party)
            .header("Call-ID", &self.id.call_id)
            .header("CSeq", format!("{seq} {method}"))
            .header("Max-Forwards", "70")
    }

    /// Where this dialog's next request goes first ([`NextHop`]); `None` for a URI that is
    /// not SIP (the dialog then has nowhere to send).
    pub fn next_hop(&self) -> Option<NextHop> {
        NextHop::of_uri(self.route_set.first().unwrap_or(&self.remote_target))
    }

    /// The ACK for a 2xx to the INVITE with CSeq number `invite_cseq` (§13.2.2.4): a new
    /// transaction-less request with its own branch, sent again for every 2xx retransmission.
    pub fn ack(&self, invite_cseq: u32) -> MessageBuilder {
        self.request_with_cseq("ACK", invite_cseq)
    }
}

/// Where an in-dialog request is sent first (RFC 3261 §12.2.1.1 with §8.1.2): the URI of
/// the first Route (loose or strict, both go to it), else the remote target. The host may be
/// a name for the caller to resolve; no port and no transport mean the caller's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
    /// `;transport=` of the URI, or TLS for a `sips:` URI.
    pub transport: Option<Transport>,
}

impl NextHop {
    /// The hop a SIP or SIPS URI names (`<...>` and a display name allowed around it).
    pub fn of_uri(value: &str) -> Option<NextHop> {
        let uri = match (value.find('<'), value.rfind('>')) {
            (Some(a), Some(b)) if a < b => &value[a + 1..b],
            _ => value.trim(),
        };
        let Ok(Uri::Sip(sip)) = Uri::parse(uri.as_bytes()) else {
            return None;
        };
        let named = match sip.params.get(b"transport").flatten() {
            Some(t) if t.eq_ignore_ascii_case(b"tls") => Some(Transport::Tls),
            Some(t) if t.eq_ignore_ascii_case(b"tcp") => Some(Transport::Tcp),
            Some(t) if t.eq_ignore_ascii_case(b"udp") => Some(Transport::Udp),
            _ => None,
        };
        let host = match sip.host {
            crate::message::Host::Name(n) => n.to_ascii_lowercase(),
            crate::message::Host::Ipv4(a) => a.to_string(),
            crate::message::Host::Ipv6(a) => a.to_string(),
        };
        Some(NextHop {
            host,
            port: sip.port,
            transport: if sip.secure {
                Some(Transport::Tls)
            } else {
                named
            },
        })
    }
}

fn is_target_refresh(method: Method<'_>) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify
    )
}

/// The UAC's view of one INVITE that may fork: each To tag is its own early dialog; the
/// first 2xx confirms one (§13.2.2.4, §12.1.2).
#[derive(Debug)]
pub struct ForkedDialogs {
    request: Message,
    dialogs: HashMap<String, Dialog>,
}

impl ForkedDialogs {
    pub fn new(invite: Message) -> Self {
        Self {
            request: invite,
            dialogs: HashMap::new(),
        }
    }

    /// Applies a response; returns the dialog it belongs to (created on first sight of its tag).
    pub fn on_response(&mut self, response: &Message) -> Option<&Dialog> {
        let tag = text(response.to_tag()?);
        if !self.dialogs.contains_key(&tag) {
            let dialog = Dialog::uac(&self.request, response).ok()?;
            self.dialogs.insert(tag.clone(), dialog);
        } else if let Some(d) = self.dialogs.get_mut(&tag) {
            d.on_response(Method::Invite, response);
        }
        self.dialogs.get(&tag)
    }

    pub fn dialogs(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs.values()
    }

    pub fn get(&self, remote_tag: &str) -> Option<&Dialog> {
        self.dialogs.get(remote_tag)
    }
}

/// The UAS's 2xx retransmission (§13.3.1.4): T1 doubling to T2 until the ACK arrives, giving
/// up after 64*T1 (then the UAS should end the dialog with BYE).
#[derive(Debug)]
pub struct TwoXxRetransmitter {
    response: Bytes,
    interval: Duration,
    t2: Duration,
    next_at: Option<Instant>,
    give_up_at: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Retransmit {
    Send(Bytes),
    GaveUp,
}

impl TwoXxRetransmitter {
    /// Call only on unreliable transports; on reliable ones the transport does the work.
    pub fn new(response: Bytes, timers: &TimerSettings, now: Instant) -> Self {
        Self {
            response,
            interval: timers.t1,
            t2: timers.t2,
            next_at: Some(now + timers.t1),
            give_up_at: now + timers.t1 * 64,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at.map(|n| n.min(self.give_up_at))
    }

    pub fn on_ack(&mut self) {
        self.next_at = None;
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<Retransmit> {
        let next = self.next_at?;
        if now >= self.give_up_at {
            self.next_at = None;
            return Some(Retransmit::GaveUp);
        }
        if now < next {
            return None;
        }
        self.interval = (self.interval * 2).min(self.t2);
        self.next_at = Some(now + self.interval);
        Some(Retransmit::Send(self.response.clone()))
    }
}

#[cfg(test)]
mod tests;
