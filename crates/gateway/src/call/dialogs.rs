//! Requests inside a call's dialogs, each answered on its own leg (RFC 3261 §12.2.2): the
//! caller's CANCEL and ACK, BYE from either side, OPTIONS and INFO (re-INVITE and UPDATE go to
//! `reinvite.rs`), and how teamsgw itself ends a call: BYE or CANCEL on both legs.

use teamsgw_sip::Message;
use teamsgw_sip::message::Method;
use teamsgw_sip::transaction::TxId;

use super::cause::{EndCause, Side};
use super::core::Ctx;
use super::state::{Call, Leg, Phase};

impl Call {
    /// The caller CANCELled (the transaction layer already answered 200 and 487, §9.2).
    pub fn on_cancelled(&mut self, ctx: &mut Ctx<'_>, reason: Option<String>) {
        self.inbound.answered = true;
        self.inbound.final_status = Some(487);
        self.end = Some((EndCause::Cancelled, 487, Some(self.inbound_side())));
        self.outbound.cancel_reason = reason;
        self.outbound.cancel(ctx.layer, ctx.now);
        self.enter_terminating(ctx);
    }

    pub(super) fn enter_terminating(&mut self, ctx: &mut Ctx<'_>) {
        if self.outbound.tx.is_none() {
            self.phase = Phase::Done;
            return;
        }
        self.phase = Phase::Terminating;
        self.attempt_deadline = None;
        self.no_answer_deadline = None;
        self.terminating_deadline = Some(ctx.now + ctx.settings.timers.t1 * 64);
    }

    /// The ACK for our 2xx on the inbound leg; for a delayed offer it carries the PBX's
    /// answer (RFC 3264 §5, RFC 3261 §13.2.1).
    pub fn on_ack(&mut self, ctx: &mut Ctx<'_>, leg: Leg, ack: &Message) {
        if leg == Leg::Outbound {
            // Our 2xx on a leg we had called: a Teams dialog that replaced it (RFC 3891).
            if let Some(d) = self.outbound.confirmed.as_mut() {
                d.confirm();
            }
            return;
        }
        if !self.inbound.on_ack() {
            return;
        }
        if self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
        }
        if self.sdp.awaits_ack_answer() {
            match self.sdp.pbx_answer(ack.body()) {
                Ok(()) => self.apply_media(ctx),
                Err(e) => {
                    let why = format!("SIP;cause=488;text=\"{}\"", e.reason.replace('"', "'"));
                    self.hangup(ctx, EndCause::Refused(488), Some(&why));
                }
            }
        }
    }

    /// Whether a message in `leg`'s dialog may come from `source` (issue 31 §2).
    pub fn peer_allows(&self, leg: Leg, source: &teamsgw_sip::transport::Source) -> bool {
        match leg {
            Leg::Inbound => self.inbound.profile.peers.allow(source),
            Leg::Outbound => self.outbound.profile.peers.allow(source),
        }
    }

    /// A request in `leg`'s dialog came from `source`, its peer (`peer_allows`): the way back
    /// to it now. A stranger who forged the dialog's ids never becomes where our BYE falls
    /// back to.
    pub fn heard(&mut self, leg: Leg, source: &teamsgw_sip::transport::Source) {
        match leg {
            Leg::Inbound => self.inbound.heard(source),
            Leg::Outbound => self.outbound.heard(source),
        }
    }

    /// A request inside one of the call's dialogs.
    pub fn on_in_dialog(&mut self, ctx: &mut Ctx<'_>, leg: Leg, tx: TxId, msg: &Message) {
        let Some(method) = msg.method() else { return };
        let dialog_ok = match leg {
            Leg::Inbound => self.inbound.dialog.as_mut().map(|d| d.on_request(msg)),
            Leg::Outbound => self.outbound.confirmed.as_mut().map(|d| d.on_request(msg)),
        };
        // §12.2.2: a CSeq lower than the last one gets 500.
        if let Some(Err(code)) = dialog_ok {
            self.answer(ctx, leg, tx, msg, code, "Server Internal Error", None);
            return;
        }
        match method {
            Method::Bye if self.transferring() && leg == self.teams_leg() => {
                self.transferor_left(ctx, leg, tx, msg);
            }
            Method::Bye => {
                self.answer(ctx, leg, tx, msg, 200, "OK", None);
                let teams_gone = self.transferor_is_gone();
                self.abandon_transfer(ctx);
                let side = match leg {
                    Leg::Inbound => self.inbound_side(),
                    Leg::Outbound => self.outbound_side(),
                };
                // RFC 3326 §2: why the peer hung up crosses to the other leg.
                let reason = msg
                    .header(teamsgw_sip::HeaderName::Reason)
                    .map(|r| String::from_utf8_lossy(r).into_owned());
                match leg {
                    _ if teams_gone => {}
                    Leg::Inbound => self.bye_outbound(ctx, reason.as_deref()),
                    Leg::Outbound => self.bye_inbound(ctx, reason.as_deref()),
                }
                let status = self.inbound.final_status.unwrap_or(200);
                self.finish(EndCause::HungUp(side), status, Some(side));
            }
            Method::Invite | Method::Update if self.bridged.is_some() => {
                self.on_bridged_offer(ctx, leg, tx, msg)
            }
            Method::Invite | Method::Update => self.on_peer_reinvite(ctx, leg, tx, msg),
            Method::Refer => self.on_refer(ctx, leg, tx, msg),
            Method::Notify if self.pbx_refer.is_some() && leg != self.teams_leg() => {
                self.on_pbx_notify(ctx, leg, tx, msg)
            }
            Method::Options | Method::Info => self.answer(ctx, leg, tx, msg, 200, "OK", None),
            _ => self.answer(ctx, leg, tx, msg, 501, "Not Implemented", None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer(
        &self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        tx: TxId,
        msg: &Message,
        status: u16,
        reason: &str,
        sdp: Option<&str>,
    ) {
        self.answer_with(ctx, leg, tx, msg, (status, reason), sdp, &[]);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_with(
        &self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        tx: TxId,
        msg: &Message,
        status: (u16, &str),
        sdp: Option<&str>,
        extra: super::inbound::Extra<'_>,
    ) {
        match leg {
            Leg::Inbound => self
                .inbound
                .answer_request(ctx.layer, tx, msg, status, sdp, extra, ctx.now),
            Leg::Outbound => self
                .outbound
                .answer_request(ctx.layer, tx, msg, status, sdp, extra, ctx.now),
        }
    }

    pub(super) fn bye_inbound(&mut self, ctx: &mut Ctx<'_>, reason: Option<&str>) {
        if self.inbound.final_status == Some(200) {
            let branch = ctx.branch();
            let tx = self.inbound.bye(ctx.layer, &branch, reason, ctx.now);
            ctx.bye_sent(tx, self.inbound_side());
        } else {
            self.fail_caller(
                ctx,
                480,
                "Temporarily Unavailable",
                "the called side hung up",
            );
        }
    }

    pub(super) fn bye_outbound(&mut self, ctx: &mut Ctx<'_>, reason: Option<&str>) {
        match self.outbound.confirmed.take() {
            Some(mut d) => {
                let branch = ctx.branch();
                let tx = self
                    .outbound
                    .bye(ctx.layer, &mut d, &branch, reason, ctx.now);
                ctx.bye_sent(tx, self.outbound_side());
                self.outbound.confirmed = Some(d);
            }
            None => self.outbound.cancel(ctx.layer, ctx.now),
        }
    }

    /// teamsgw ends the call (media timeout, drain, no ACK): BYE or CANCEL on both legs.
    pub fn hangup(&mut self, ctx: &mut Ctx<'_>, cause: EndCause, reason: Option<&str>) {
        let reason = reason.map(str::to_owned).or_else(|| cause.bye_reason());
        self.abandon_transfer(ctx);
        if self.inbound.final_status.is_none() {
            let why = cause.describe();
            self.fail_caller(ctx, 503, "Service Unavailable", &why);
        } else {
            self.bye_inbound(ctx, reason.as_deref());
        }
        self.bye_outbound(ctx, reason.as_deref());
        let status = self.inbound.final_status.unwrap_or(503);
        self.end = Some((cause, status, Some(Side::Gateway)));
        if self.outbound.confirmed.is_some() || self.outbound.tx.is_none() {
            self.phase = Phase::Done;
        } else {
            self.enter_terminating(ctx);
        }
    }

    /// The leg a dialog belongs to, by our tag.
    pub fn leg_of(&self, local_tag: &str) -> Option<Leg> {
        if self.inbound.local_tag == local_tag {
            Some(Leg::Inbound)
        } else if self.outbound.from_tag == local_tag {
            Some(Leg::Outbound)
        } else {
            None
        }
    }

    /// Whether `tag` is the peer's tag in this leg's dialog or, on the leg we call while it
    /// rings, in one of its early dialogs (a pickup names one, RFC 3891 §7.1).
    pub fn is_remote_tag(&self, leg: Leg, tag: &[u8]) -> bool {
        if let Some(t) = self.remote_tag(leg) {
            return t.as_bytes() == tag;
        }
        leg == Leg::Outbound
            && self
                .outbound
                .forks
                .as_ref()
                .is_some_and(|f| f.dialogs().any(|d| d.id.remote_tag.as_bytes() == tag))
    }

    /// The peer's tag in this leg's dialog: the caller's From tag, or the To tag of the
    /// answer we took.
    pub fn remote_tag(&self, leg: Leg) -> Option<String> {
        match leg {
            Leg::Inbound => match &self.inbound.dialog {
                Some(d) => Some(d.id.remote_tag.clone()),
                None => self
                    .inbound
                    .request
                    .from_tag()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            },
            Leg::Outbound => self
                .outbound
                .confirmed
                .as_ref()
                .map(|d| d.id.remote_tag.clone()),
        }
    }
}
