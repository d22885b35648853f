//! The leg we call: we are its UAC. It owns the INVITE client transaction (a new one per
//! digest retry and per failover attempt), the early dialogs of every fork, the one dialog a
//! 2xx confirms, the ACK for each 2xx (RFC 3261 §13.2.2.4) and CANCEL (§9.1).

use std::time::Instant;

use teamsgw_sip::Message;
use teamsgw_sip::dialog::{Dialog, ForkedDialogs};
use teamsgw_sip::digest::{Credentials, DigestClient};
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::transaction::{TransactionLayer, TxId};
use teamsgw_sip::transport::{Source, Target, Transport};

use super::body_parts::CarriedParts;
use super::inbound::LegProfile;
use super::{Dest, next_hop};

/// Max-Forwards of a request we originate (RFC 3261 §8.1.1.6).
pub const MAX_FORWARDS: u8 = 70;

/// `n` in decimal, without the allocation of `to_string` (one per INVITE).
fn decimal(mut n: u8, buf: &mut [u8; 3]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + n % 10;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// What the INVITE we send is made of, so a retry can rebuild it.
#[derive(Debug, Clone)]
pub struct InviteTemplate {
    pub uri: String,
    /// From without the tag, To, and the body.
    pub from: String,
    pub to: String,
    pub headers: Vec<(&'static str, String)>,
    /// The caller's Max-Forwards less one (RFC 7332 §3), so a loop through B2BUAs ends.
    pub max_forwards: u8,
    pub sdp: Option<String>,
    /// A multipart body the SDP travels in (an emergency call's location).
    pub parts: Option<CarriedParts>,
}

pub struct Outbound {
    pub profile: LegProfile,
    pub target: Target,
    pub call_id: String,
    pub from_tag: String,
    pub template: InviteTemplate,
    /// The INVITE in flight and its transaction.
    pub invite: Option<Message>,
    pub tx: Option<TxId>,
    pub cseq: u32,
    pub forks: Option<ForkedDialogs>,
    /// The dialog the first 2xx confirmed.
    pub confirmed: Option<Dialog>,
    /// Any response (even 100) to the INVITE in flight.
    pub heard: bool,
    /// A provisional above 100: CANCEL may go now (§9.1).
    pub provisional: bool,
    /// CANCEL wanted before any provisional arrived: sent on the first one.
    pub cancel_pending: bool,
    /// The caller's CANCEL Reason (RFC 3326), passed on in ours: "call completed elsewhere"
    /// keeps a missed-call entry off the other side's phones.
    pub cancel_reason: Option<String>,
    pub cancelled: bool,
    pub digest: DigestClient,
    pub credentials: Option<Credentials>,
    /// After a Replaces (RFC 3891) the leg's dialog is one the peer opened: its requests go
    /// back the way its INVITE came.
    replaced_by: Option<Source>,
    /// Where the peer's last in-dialog request came from (its newest connection).
    last_heard: Option<Source>,
    /// The INVITE a pickup cancelled (RFC 3891 §7.1): a 2xx crossing our CANCEL is
    /// acknowledged and ended, its 487 closes it.
    pub picked_up: Option<TxId>,
}

impl Outbound {
    pub fn new(
        profile: LegProfile,
        target: Target,
        call_id: String,
        from_tag: String,
        template: InviteTemplate,
        credentials: Option<Credentials>,
    ) -> Self {
        Self {
            profile,
            target,
            call_id,
            from_tag,
            template,
            invite: None,
            tx: None,
            cseq: 0,
            forks: None,
            confirmed: None,
            heard: false,
            provisional: false,
            cancel_pending: false,
            cancel_reason: None,
            cancelled: false,
            digest: DigestClient::new(),
            credentials,
            replaced_by: None,
            last_heard: None,
            picked_up: None,
        }
    }

    /// The peer's INVITE with Replaces took this leg's place: its dialog (we are its UAS)
    /// and where it came from become the leg's.
    pub fn adopt(&mut self, dialog: Dialog, source: Source) {
        self.call_id = dialog.id.call_id.clone();
        self.from_tag = dialog.id.local_tag.clone();
        self.confirmed = Some(dialog);
        self.replaced_by = Some(source);
    }

    /// A request in this leg's dialog came from `source`.
    pub fn heard(&mut self, source: &Source) {
        self.last_heard = Some(source.clone());
    }

    /// Where our requests in the confirmed dialog go (RFC 3261 §12.2.1.1): its route set,
    /// then the peer's Contact; the way we last reached the peer is the fallback towards Teams.
    fn peer(&self) -> Dest {
        self.dest_in(self.confirmed.as_ref())
    }

    /// Where a request in `dialog` goes (one of this leg's dialogs).
    fn dest_in(&self, dialog: Option<&Dialog>) -> Dest {
        let last = match (&self.last_heard, &self.replaced_by) {
            (Some(s), _) | (None, Some(s)) => Dest::Reply(s.clone()),
            (None, None) => Dest::To(self.target.clone()),
        };
        let transport = last.transport();
        next_hop::in_dialog(dialog, &self.profile.peers, transport, last)
    }

    pub fn reliable(&self) -> bool {
        let transport = match &self.replaced_by {
            Some(s) => s.transport,
            None => self.target.transport,
        };
        transport != Transport::Udp
    }

    /// Sends the INVITE (again, after a challenge or to another target) in a new
    /// transaction with the next CSeq (§8.1.3.5, §22.2).
    pub fn send_invite(
        &mut self,
        layer: &mut TransactionLayer<Dest>,
        branch: &str,
        now: Instant,
    ) -> Option<TxId> {
        self.cseq += 1;
        let t = &self.template;
        let mut hops = [0u8; 3];
        let mut b = MessageBuilder::request("INVITE", &t.uri)
            .header("Via", self.profile.via(branch))
            .header("Max-Forwards", decimal(t.max_forwards, &mut hops))
            .header("From", format!("{};tag={}", t.from, self.from_tag))
            .header("To", &t.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{} INVITE", self.cseq))
            .header("Contact", &self.profile.contact);
        b = self.profile.add_headers(b);
        for (name, value) in &t.headers {
            b = b.header(name, value);
        }
        if let Some(creds) = &self.credentials {
            for (name, value) in self.digest.authorize(creds, "INVITE", &t.uri) {
                b = b.header(name, value);
            }
        }
        let data = match (&t.parts, &t.sdp) {
            (Some(parts), sdp) => b.body(
                Some(parts.content_type.as_str()),
                &parts.body_with(sdp.as_deref()),
            ),
            (None, Some(sdp)) => b.body(Some("application/sdp"), sdp.as_bytes()),
            (None, None) => b.finish(),
        };
        let msg = Message::parse(data).ok()?;
        self.forks = Some(ForkedDialogs::new(msg.clone()));
        self.invite = Some(msg.clone());
        self.heard = false;
        self.provisional = false;
        let tx = layer.send_request(msg, Dest::To(self.target.clone()), self.reliable(), now);
        self.tx = tx;
        tx
    }

    /// A response to the INVITE with a To tag: its fork's early or confirmed dialog.
    pub fn track(&mut self, response: &Message) -> Option<Dialog> {
        self.forks.as_mut()?.on_response(response).cloned()
    }

    /// The ACK for a 2xx of the fork `dialog` (§13.2.2.4): transaction-less, its own branch.
    /// Our INVITE carried the offer, so the ACK carries no body (RFC 3264 §5).
    pub fn ack(&self, layer: &mut TransactionLayer<Dest>, dialog: &Dialog, branch: &str) {
        self.ack_with(layer, dialog, branch, None);
    }

    /// [`Self::ack`] with the answer to the offer of a 2xx to an INVITE without one; returns
    /// the ACK, for each retransmission of that 2xx.
    pub fn ack_with(
        &self,
        layer: &mut TransactionLayer<Dest>,
        dialog: &Dialog,
        branch: &str,
        sdp: Option<&str>,
    ) -> bytes::Bytes {
        let mut b = dialog
            .ack(self.cseq)
            .header("Via", self.profile.via(branch));
        b = self.profile.add_headers(b);
        let data = match sdp {
            Some(s) => b.body(Some("application/sdp"), s.as_bytes()),
            None => b.finish(),
        };
        // §13.2.2.4: the ACK follows the dialog's route set like any request in it.
        let last = Dest::To(self.target.clone());
        let dest = next_hop::in_dialog(
            Some(dialog),
            &self.profile.peers,
            self.target.transport,
            last,
        );
        layer.send_stateless(dest, data.clone());
        data
    }

    /// CANCEL for the INVITE in flight (§9.1): same Request-URI, Call-ID, From, To, top Via
    /// and CSeq number; only after a provisional, else it waits for one.
    pub fn cancel(&mut self, layer: &mut TransactionLayer<Dest>, now: Instant) {
        if self.cancelled || self.confirmed.is_some() {
            return;
        }
        if !self.provisional {
            self.cancel_pending = true;
            return;
        }
        let Some(invite) = &self.invite else {
            return;
        };
        let header = |name| {
            invite
                .header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        use teamsgw_sip::HeaderName as H;
        let b = MessageBuilder::request("CANCEL", &self.template.uri)
            .header("Via", header(H::Via))
            .header("Max-Forwards", MAX_FORWARDS.to_string())
            .header("From", header(H::From))
            .header("To", header(H::To))
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{} CANCEL", self.cseq));
        let mut b = self.profile.add_headers(b);
        if let Some(reason) = &self.cancel_reason {
            b = b.header("Reason", reason);
        }
        self.cancelled = true;
        self.cancel_pending = false;
        if let Ok(msg) = Message::parse(b.finish()) {
            layer.send_request(msg, Dest::To(self.target.clone()), self.reliable(), now);
        }
    }

    /// BYE on a confirmed dialog (ours or a late fork's, §13.2.2.4).
    pub fn bye(
        &self,
        layer: &mut TransactionLayer<Dest>,
        dialog: &mut Dialog,
        branch: &str,
        reason: Option<&str>,
        now: Instant,
    ) -> Option<TxId> {
        let msg = self.bye_request(dialog, branch, reason)?;
        let dest = self.dest_in(Some(dialog));
        let reliable = dest.transport() != Transport::Udp;
        layer.send_request(msg, dest, reliable, now)
    }

    /// BYE on a dialog our INVITE made after the leg moved to a replacing dialog: it goes
    /// where the INVITE went, not to the replacing dialog's peer.
    pub fn bye_at_target(
        &self,
        layer: &mut TransactionLayer<Dest>,
        dialog: &mut Dialog,
        branch: &str,
        reason: Option<&str>,
        now: Instant,
    ) {
        if let Some(msg) = self.bye_request(dialog, branch, reason) {
            let last = Dest::To(self.target.clone());
            let dest = next_hop::in_dialog(
                Some(dialog),
                &self.profile.peers,
                self.target.transport,
                last,
            );
            let reliable = dest.transport() != Transport::Udp;
            layer.send_request(msg, dest, reliable, now);
        }
    }

    fn bye_request(
        &self,
        dialog: &mut Dialog,
        branch: &str,
        reason: Option<&str>,
    ) -> Option<Message> {
        let mut b = dialog
            .request("BYE")
            .header("Via", self.profile.via(branch));
        b = self.profile.add_headers(b);
        if let Some(r) = reason {
            b = b.header("Reason", r);
        }
        Message::parse(b.finish()).ok()
    }

    /// Answers an in-dialog request from this leg's peer.
    #[allow(clippy::too_many_arguments)]
    pub fn answer_request(
        &self,
        layer: &mut TransactionLayer<Dest>,
        tx: TxId,
        request: &Message,
        (status, reason): (u16, &str),
        sdp: Option<&str>,
        extra: super::inbound::Extra<'_>,
        now: Instant,
    ) {
        let data = self
            .profile
            .answer(request, (status, reason), sdp, extra, None);
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
    pub fn send_ack(&self, layer: &mut TransactionLayer<Dest>, ack: bytes::Bytes) {
        layer.send_stateless(self.peer(), ack);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_writes_every_u8() {
        let mut buf = [0u8; 3];
        for n in 0..=u8::MAX {
            assert_eq!(super::decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
