//! The leg that called us: we are its UAS. It owns the INVITE server transaction, the tag we
//! answer with, the dialog once we answer, and the 2xx retransmission until the ACK (RFC 3261
//! §13.3.1.4; over TLS/TCP the transport is reliable and only the ACK wait remains).

use std::time::Instant;

use bytes::Bytes;
use teamsgw_sip::Message;
use teamsgw_sip::dialog::{Dialog, Retransmit, TwoXxRetransmitter};
use teamsgw_sip::message::{HeaderName, MessageBuilder};
use teamsgw_sip::transaction::{TimerSettings, TransactionLayer, TxId};
use teamsgw_sip::transport::{Source, Target, Transport};

use super::peers::Peers;
use super::{Dest, next_hop};

/// How we present ourselves on one side: Contact, Via and the side's own headers.
#[derive(Debug, Clone)]
pub struct LegProfile {
    /// Who may speak in this leg's dialogs (and so its side).
    pub peers: Peers,
    /// The Contact header value, `<sip:...>`.
    pub contact: String,
    /// `TLS`, `UDP` or `TCP` for our Via.
    pub via_transport: &'static str,
    /// `host:port` for our Via.
    pub via_host: String,
    /// Added to every request and response on this side (Allow, X-MS-SBC, User-Agent...).
    pub headers: Vec<(&'static str, String)>,
}

/// `request`'s Record-Route values, one header line each, in their order (RFC 3261 §12.1.1).
fn copy_record_route(mut b: MessageBuilder, request: &Message) -> MessageBuilder {
    for value in request.values(HeaderName::RecordRoute) {
        b = b.header("Record-Route", value);
    }
    b
}

impl LegProfile {
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.via_transport, self.via_host
        )
    }

    /// Our answer to a request inside this leg's dialog (with our Contact when it carries
    /// SDP); `udp` is the source to stamp `received`/`rport` for (RFC 3581).
    pub fn answer(
        &self,
        request: &Message,
        (status, reason): (u16, &str),
        sdp: Option<&str>,
        extra: Extra<'_>,
        udp: Option<std::net::SocketAddr>,
    ) -> Bytes {
        let mut b = MessageBuilder::response_to(request, status, reason, None, udp);
        if sdp.is_some() {
            b = b.header("Contact", &self.contact);
        }
        if (101..300).contains(&status) {
            // §12.1.1 for the responses inside the dialog too: proxies that record-route a
            // re-INVITE see their Record-Route come back.
            b = copy_record_route(b, request);
        }
        let mut b = self.add_headers(b);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        match sdp {
            Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
            None => b.finish(),
        }
    }

    pub fn add_headers(&self, mut b: MessageBuilder) -> MessageBuilder {
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        b
    }

    /// A re-INVITE in `dialog` (a session refresh, RFC 4028 §7.4) with our Contact, `extra`
    /// headers and `sdp`; returns it with its CSeq number (for the ACK of its 2xx).
    pub fn reinvite(
        &self,
        dialog: &mut Dialog,
        branch: &str,
        extra: Extra<'_>,
        sdp: Option<&str>,
    ) -> Option<(Message, u32)> {
        let mut b = dialog
            .request("INVITE")
            .header("Via", self.via(branch))
            .header("Contact", &self.contact);
        b = self.add_headers(b);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        let data = match sdp {
            Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
            None => b.finish(),
        };
        let msg = Message::parse(data).ok()?;
        let seq = msg.cseq()?.ok()?.seq;
        Some((msg, seq))
    }

    /// The ACK for the 2xx to our in-dialog INVITE with CSeq number `seq` (§13.2.2.4).
    pub fn ack(&self, dialog: &Dialog, seq: u32, branch: &str) -> Bytes {
        let b = dialog.ack(seq).header("Via", self.via(branch));
        self.add_headers(b).finish()
    }
}

pub struct Inbound {
    pub profile: LegProfile,
    pub tx: TxId,
    pub request: Message,
    pub source: Source,
    pub local_tag: String,
    pub dialog: Option<Dialog>,
    /// A final response went out.
    pub answered: bool,
    pub final_status: Option<u16>,
    /// The ACK for our 2xx arrived.
    pub acked: bool,
    pub ringing_sent: bool,
    retransmit: Option<TwoXxRetransmitter>,
    /// Reliable transports: when to give up waiting for the ACK (64*T1).
    ack_deadline: Option<Instant>,
    /// After a transfer, the peer is the target we called: its requests go there.
    adopted: Option<Target>,
    /// Where the peer's last in-dialog request came from (its newest connection).
    last_heard: Option<Source>,
}

/// An extra header for one response (Reason, Warning, Retry-After...).
pub type Extra<'a> = &'a [(&'a str, String)];

impl Inbound {
    pub fn new(
        profile: LegProfile,
        tx: TxId,
        request: Message,
        source: Source,
        local_tag: String,
    ) -> Self {
        Self {
            profile,
            tx,
            request,
            source,
            local_tag,
            dialog: None,
            answered: false,
            final_status: None,
            acked: false,
            ringing_sent: false,
            retransmit: None,
            ack_deadline: None,
            adopted: None,
            last_heard: None,
        }
    }

    /// After a transfer (RFC 5589 §6) the leg's peer is the target we called: its dialog,
    /// our tag in it and where its requests go replace the caller's. The call keeps its
    /// original INVITE (its id and CDR).
    pub fn adopt(&mut self, dialog: Dialog, target: Target) {
        self.local_tag = dialog.id.local_tag.clone();
        self.dialog = Some(dialog);
        self.adopted = Some(target);
        self.last_heard = None;
        self.retransmit = None;
        self.ack_deadline = None;
    }

    /// (Call-ID, our tag) of this leg's dialog.
    pub fn dialog_key(&self) -> (Vec<u8>, Vec<u8>) {
        let call_id = match &self.dialog {
            Some(d) => d.id.call_id.as_bytes().to_vec(),
            None => self.request.call_id().unwrap_or_default().to_vec(),
        };
        (call_id, self.local_tag.clone().into_bytes())
    }

    /// A request in this leg's dialog came from `source`.
    pub fn heard(&mut self, source: &Source) {
        self.last_heard = Some(source.clone());
    }

    /// Where our requests in the dialog go (RFC 3261 §12.2.1.1): its route set, then the
    /// peer's Contact; the way the peer last reached us is the fallback towards Teams.
    fn peer(&self) -> Dest {
        let last = match (&self.last_heard, &self.adopted) {
            (Some(s), _) => Dest::Reply(s.clone()),
            (None, Some(t)) => Dest::To(t.clone()),
            (None, None) => Dest::Reply(self.source.clone()),
        };
        let transport = last.transport();
        next_hop::in_dialog(self.dialog.as_ref(), &self.profile.peers, transport, last)
    }

    pub fn reliable(&self) -> bool {
        let transport = match &self.adopted {
            Some(t) => t.transport,
            None => self.source.transport,
        };
        transport != Transport::Udp
    }

    fn response(&self, status: u16, reason: &str, extra: Extra<'_>) -> MessageBuilder {
        let udp = (!self.reliable()).then_some(self.source.peer);
        let mut b =
            MessageBuilder::response_to(&self.request, status, reason, Some(&self.local_tag), udp);
        if (101..300).contains(&status) {
            // §12.1.1: responses that establish a dialog carry our Contact, and the request's
            // Record-Route values in order, so the peer's route set keeps its proxies (a PBX
            // proxy answers 404 to a BYE that skips them).
            b = b.header("Contact", &self.profile.contact);
            b = copy_record_route(b, &self.request);
        }
        b = self.profile.add_headers(b);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        b
    }

    /// 100 Trying at once (RFC 3261 §8.2.6.1; §1.6: Teams fails over without it).
    pub fn trying(&self, layer: &mut TransactionLayer<Dest>, now: Instant) {
        let data = MessageBuilder::response_to(&self.request, 100, "Trying", None, None).finish();
        layer.respond(self.tx, 100, data, now);
    }

    /// A provisional response with or without SDP.
    pub fn provisional(
        &mut self,
        layer: &mut TransactionLayer<Dest>,
        status: u16,
        reason: &str,
        sdp: Option<&str>,
        now: Instant,
    ) {
        if self.answered {
            return;
        }
        let b = self.response(status, reason, &[]);
        let data = match sdp {
            Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
            None => b.finish(),
        };
        if self.dialog.is_none() {
            self.dialog = Dialog::uas(&self.request, &self.local_tag).ok();
        }
        layer.respond(self.tx, status, data, now);
    }

    /// The 2xx with our SDP (and `extra`, the session timer's headers); retransmitted over
    /// UDP until the ACK (§13.3.1.4).
    pub fn accept(
        &mut self,
        layer: &mut TransactionLayer<Dest>,
        timers: &TimerSettings,
        sdp: Option<&str>,
        extra: Extra<'_>,
        now: Instant,
    ) {
        if self.answered {
            return;
        }
        let b = self.response(200, "OK", extra);
        let data = match sdp {
            Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
            None => b.finish(),
        };
        if self.dialog.is_none() {
            self.dialog = Dialog::uas(&self.request, &self.local_tag).ok();
        }
        self.answered = true;
        self.final_status = Some(200);
        layer.respond(self.tx, 200, data.clone(), now);
        if self.reliable() {
            self.ack_deadline = Some(now + timers.t1 * 64);
        } else {
            self.retransmit = Some(TwoXxRetransmitter::new(data, timers, now));
        }
    }

    /// A final failure (3xx–6xx) with the extra headers that say why.
    pub fn reject(
        &mut self,
        layer: &mut TransactionLayer<Dest>,
        status: u16,
        reason: &str,
        extra: Extra<'_>,
        now: Instant,
    ) {
        if self.answered {
            return;
        }
        self.answered = true;
        self.final_status = Some(status);
        let data = self.response(status, reason, extra).finish();
        layer.respond(self.tx, status, data, now);
    }

    /// The ACK for our 2xx arrived; returns false if it was one we had seen.
    pub fn on_ack(&mut self) -> bool {
        let first = !self.acked;
        self.acked = true;
        self.ack_deadline = None;
        if let Some(r) = &mut self.retransmit {
            r.on_ack();
        }
        self.retransmit = None;
        if let Some(d) = &mut self.dialog {
            d.confirm();
        }
        first
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let r = self
            .retransmit
            .as_ref()
            .and_then(TwoXxRetransmitter::poll_timeout);
        [r, self.ack_deadline].into_iter().flatten().min()
    }

    /// Retransmits the 2xx when due; `true` when the ACK never came.
    pub fn handle_timeout(&mut self, layer: &mut TransactionLayer<Dest>, now: Instant) -> bool {
        if self.ack_deadline.is_some_and(|d| now >= d) {
            self.ack_deadline = None;
            return true;
        }
        match self.retransmit.as_mut().and_then(|r| r.handle_timeout(now)) {
            Some(Retransmit::Send(data)) => {
                layer.send_stateless(Dest::Reply(self.source.clone()), data);
                false
            }
            Some(Retransmit::GaveUp) => {
                self.retransmit = None;
                true
            }
            None => false,
        }
    }

    /// Answers an in-dialog request on this leg.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_request(
        &self,
        layer: &mut TransactionLayer<Dest>,
        tx: TxId,
        request: &Message,
        (status, reason): (u16, &str),
        sdp: Option<&str>,
        extra: Extra<'_>,
        now: Instant,
    ) {
        // `received`/`rport` name the caller's address; an adopted peer's requests are not its.
        let udp = (self.adopted.is_none() && !self.reliable()).then_some(self.source.peer);
        let data = self
            .profile
            .answer(request, (status, reason), sdp, extra, udp);
        layer.respond(tx, status, data, now);
    }

    /// Sends an in-dialog request we built to the dialog's next hop.
    pub fn send(
        &self,
        layer: &mut TransactionLayer<Dest>,
        request: Message,
        now: Instant,
    ) -> Option<TxId> {
        let dest = self.peer();
        let reliable = dest.transport() != Transport::Udp;
        layer.send_request(request, dest, reliable, now)
    }

    /// Sends an ACK (transaction-less) to this leg's peer.
    pub fn send_ack(&self, layer: &mut TransactionLayer<Dest>, ack: Bytes) {
        layer.send_stateless(self.peer(), ack);
    }

    /// A BYE on this leg's dialog, to this leg's peer; its transaction.
    pub fn bye(
        &mut self,
        layer: &mut TransactionLayer<Dest>,
        branch: &str,
        reason: Option<&str>,
        now: Instant,
    ) -> Option<TxId> {
        let dialog = self.dialog.as_mut()?;
        let mut b = dialog
            .request("BYE")
            .header("Via", self.profile.via(branch));
        b = self.profile.add_headers(b);
        if let Some(r) = reason {
            b = b.header("Reason", r);
        }
        let msg = Message::parse(b.finish()).ok()?;
        self.send(layer, msg, now)
    }
}
