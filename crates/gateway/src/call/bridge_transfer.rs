//! Transfer to a number when the PBX will not take our REFER (teams-direct-routing.md §3.7):
//! a PBX that answers it 403, 405 or 501 still gets the transfer, as a new call from the
//! transferring user's device to the number, so the PBX's rules apply as to any call the user
//! dials. The remaining party and the target are then both the PBX's, on plain RTP, and
//! nothing of Teams is left to relay: their media goes party to party, as after a REFER the
//! PBX had taken, and teamsgw keeps only the signalling (`bridged.rs`). The call is set up
//! as RFC 3725 §4.1 (flow I) does it: an INVITE without an offer to the target, the target's
//! offer to the remaining party in a re-INVITE, and that party's answer in the target's ACK.
//! Then Teams hears 200 in the final NOTIFY, its leg ends, and the media session is freed.
//!
//! Anything that fails on the way leaves the call as it was, and Teams hears the status.

use teamsgw_sip::Message;
use teamsgw_sip::dialog::Dialog;
use teamsgw_sip::digest::Credentials;
use teamsgw_sip::transaction::TxId;

use super::Dest;
use super::bridged::{Bridged, answer_rejecting, reorigin};
use super::core::Ctx;
use super::outbound::{InviteTemplate, MAX_FORWARDS, Outbound};
use super::reinvite::Purpose;
use super::session_timer::SessionTimer;
use super::setup;
use super::state::{Call, Leg};
use super::transfer::Progress;

/// The PBX statuses that mean "no REFER here" rather than "no such transfer": the fallback
/// places the call instead. Any other refusal reaches Teams as it is.
pub(super) fn takes_no_refer(status: u16) -> bool {
    matches!(status, 403 | 405 | 501)
}

/// Our call to the transfer target, until the remaining party has its offer.
pub struct PbxCall {
    pub leg: Outbound,
    /// The transferor hung up after our 202 (siphon-sip#220); the transfer goes on.
    pub transferor_gone: bool,
    /// The target's 2xx: its dialog, offer and session timer, while the remaining party is
    /// re-offered.
    answered: Option<Answered>,
    /// What the remaining party had from us before the target's offer (restored on failure).
    previous_sdp: Option<String>,
    ringing_told: bool,
}

struct Answered {
    dialog: Dialog,
    offer: String,
    timer: SessionTimer,
}

impl Call {
    /// The PBX refused our REFER as a method: call `number` ourselves, as the user.
    pub(super) fn call_transfer_target(
        &mut self,
        ctx: &mut Ctx<'_>,
        number: &str,
        transferor_gone: bool,
    ) {
        let Some(target) = self.pbx.target.clone() else {
            self.pbx_call_failed(ctx, 503, "Service Unavailable", transferor_gone);
            return;
        };
        let uri = self.pbx.uri(number);
        let template = InviteTemplate {
            max_forwards: MAX_FORWARDS,
            uri: uri.clone(),
            from: format!("<sip:{}@{}>", self.user.extension, self.pbx.domain),
            to: format!("<{uri}>"),
            headers: setup::session_timer_offer(ctx.settings),
            // RFC 3725 §4.1: the target makes the offer; the remaining party answers it.
            sdp: None,
            parts: None,
        };
        let profile = setup::pbx_profile(
            ctx.settings,
            &self.user.contact_token,
            target.transport,
            &self.pbx.sources,
        );
        let credentials = Credentials {
            username: self.user.auth_user.clone(),
            password: self.user.password.clone(),
        };
        let call_id = format!("{}-c{}@teamsgw", ctx.token(), ctx.settings.shard);
        ctx.correlate(&call_id, &self.id);
        let leg = Outbound::new(
            profile,
            target,
            call_id,
            ctx.token(),
            template,
            Some(credentials),
        );
        tracing::info!(call_id = %self.log_id(), target = %uri, "transfer to a number: the PBX takes no REFER; calling the target ourselves");
        self.pbx_call = Some(Box::new(PbxCall {
            leg,
            transferor_gone,
            answered: None,
            previous_sdp: None,
            ringing_told: false,
        }));
        self.send_pbx_call_invite(ctx);
    }

    fn send_pbx_call_invite(&mut self, ctx: &mut Ctx<'_>) {
        let branch = ctx.branch();
        let Some(pc) = self.pbx_call.as_mut() else {
            return;
        };
        match pc.leg.send_invite(ctx.layer, &branch, ctx.now) {
            Some(tx) => {
                ctx.own(tx);
                self.txs.push(tx);
            }
            None => self.pbx_call_failed(ctx, 500, "Server Internal Error", false),
        }
    }

    pub(super) fn is_pbx_call_tx(&self, tx: TxId) -> bool {
        self.pbx_call.as_ref().is_some_and(|c| c.leg.tx == Some(tx))
            || self.bridged.as_ref().is_some_and(|b| b.target_tx == tx)
    }

    /// A response to our INVITE to the target.
    pub(super) fn on_pbx_call_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let Some(status) = msg.status() else { return };
        if let Some(b) = &self.bridged {
            // A 2xx retransmitted after our ACK (RFC 3261 §13.2.2.4): the same ACK again.
            if (200..300).contains(&status) {
                ctx.layer
                    .send_stateless(Dest::To(b.target.clone()), b.target_ack.clone());
            }
            return;
        }
        let Some(pc) = self.pbx_call.as_mut() else {
            return;
        };
        pc.leg.heard = true;
        match status {
            100 => {}
            101..=199 => {
                pc.leg.provisional = true;
                pc.leg.track(msg);
                let tell = !pc.ringing_told && !pc.transferor_gone;
                pc.ringing_told = true;
                if tell {
                    let frag = "SIP/2.0 180 Ringing\r\n";
                    let terminated = false;
                    self.notify(ctx, Progress::Relayed { frag, terminated });
                }
            }
            200..=299 => self.pbx_call_answered(ctx, msg),
            401 | 407 => {
                let retried = pc.leg.invite.clone().is_some_and(|invite| {
                    pc.leg.tx = None;
                    pc.leg.digest.on_challenge(&invite, msg).is_ok()
                });
                if retried {
                    self.send_pbx_call_invite(ctx);
                } else {
                    self.pbx_call_failed(ctx, 403, "Forbidden", false);
                }
            }
            _ => {
                let reason = String::from_utf8_lossy(msg.reason_phrase().unwrap_or_default());
                self.pbx_call_failed(ctx, status, &reason, false);
            }
        }
    }

    /// Timer B or a transport failure on our INVITE to the target.
    pub(super) fn on_pbx_call_timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.pbx_call_failed(ctx, 408, "Request Timeout", false);
    }

    /// The target answered with its offer: it goes to the remaining party, whose answer the
    /// target's ACK will carry.
    fn pbx_call_answered(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let pbx = self.pbx_leg();
        let previous = self.last_sdp(pbx);
        let Some(pc) = self.pbx_call.as_mut() else {
            return;
        };
        if pc.answered.is_some() {
            // Retransmitted while the remaining party is being re-offered: acknowledged then.
            return;
        }
        pc.leg.provisional = true;
        let Some(dialog) = pc.leg.track(msg) else {
            return;
        };
        let timer = SessionTimer::as_uac(msg, ctx.settings.session_expires, ctx.now);
        let offer = String::from_utf8_lossy(msg.body()).into_owned();
        pc.answered = Some(Answered {
            dialog,
            offer: offer.clone(),
            timer,
        });
        if offer.is_empty() {
            tracing::warn!(call_id = %self.log_id(), "transfer to a number: the target's 2xx has no offer");
            self.bridge_refused(ctx, 488);
            return;
        }
        pc.previous_sdp = previous.clone();
        self.set_last_sdp(pbx, reorigin(&offer, previous.as_deref()));
        self.send_or_queue(ctx, pbx, Purpose::Bridge);
    }

    /// The remaining party answered the target's offer: the target gets the answer, Teams
    /// the news, and the call goes on between the PBX's two parties.
    pub(super) fn bridge_answered(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let answer = String::from_utf8_lossy(msg.body()).into_owned();
        if answer.is_empty() {
            // RFC 3264 §5: a 2xx to an offer carries the answer; without one, nothing bridges.
            self.bridge_refused(ctx, 488);
            return;
        }
        let Some(mut pc) = self.pbx_call.take() else {
            return;
        };
        let (Some(a), Some(target_tx)) = (pc.answered.take(), pc.leg.tx) else {
            return;
        };
        let branch = ctx.branch();
        let target_ack = pc
            .leg
            .ack_with(ctx.layer, &a.dialog, &branch, Some(&answer));
        let teams = self.teams_leg();
        if !pc.transferor_gone {
            self.notify(ctx, Progress::Final(200, "OK"));
            let why = r#"SIP;cause=200;text="transferred""#;
            match teams {
                Leg::Inbound => self.bye_inbound(ctx, Some(why)),
                Leg::Outbound => self.bye_outbound(ctx, Some(why)),
            }
        }
        // Media goes party to party now: the relay holds nothing of this call any more.
        self.media_released = Some(ctx.media.release(self.media.session));
        // The target takes the Teams leg's place in the call.
        let target = pc.leg.target.clone();
        ctx.dialog(self.teams_dialog_key(), false);
        match teams {
            Leg::Inbound => {
                self.inbound.adopt(a.dialog, target.clone());
                self.inbound.profile = pc.leg.profile.clone();
                self.inbound_timer = Some(a.timer);
                self.last_inbound_sdp = Some(answer.clone());
            }
            Leg::Outbound => {
                pc.leg.confirmed = Some(a.dialog);
                self.outbound = pc.leg;
                self.outbound_timer = Some(a.timer);
                self.last_outbound_sdp = Some(answer.clone());
            }
        }
        ctx.dialog(self.teams_dialog_key(), true);
        self.proxy = None;
        self.bridged = Some(Box::new(Bridged::new(
            (target_tx, target, target_ack),
            teams,
            &a.offer,
            &answer,
        )));
        ctx.transfer_event("number", "completed");
        tracing::info!(call_id = %self.log_id(), "transfer to a number: completed; the PBX's parties are bridged");
    }

    /// The target's offer could not be given to the remaining party (refused, no answer, no
    /// offer at all): the target's call ends, the remaining party keeps what it had, and
    /// Teams hears `status`.
    pub(super) fn bridge_refused(&mut self, ctx: &mut Ctx<'_>, status: u16) {
        let why =
            format!("SIP;cause={status};text=\"the transferred party did not take the call\"");
        self.end_target_call(ctx, Some(&why));
        self.pbx_call_failed(ctx, status, phrase(status), false);
    }

    /// Ends an answered call to the target before it was bridged: its 2xx acknowledged with
    /// every stream rejected, then BYE (RFC 3261 §13.2.2.4, RFC 3264 §6).
    fn end_target_call(&mut self, ctx: &mut Ctx<'_>, reason: Option<&str>) {
        let pbx = self.pbx_leg();
        let Some(pc) = self.pbx_call.as_mut() else {
            return;
        };
        let Some(mut a) = pc.answered.take() else {
            return;
        };
        let branch = ctx.branch();
        let rejected = answer_rejecting(&a.offer);
        let body = (!rejected.is_empty()).then_some(rejected.as_str());
        pc.leg.ack_with(ctx.layer, &a.dialog, &branch, body);
        let branch = ctx.branch();
        pc.leg
            .bye(ctx.layer, &mut a.dialog, &branch, reason, ctx.now);
        if let Some(previous) = pc.previous_sdp.take() {
            self.set_last_sdp(pbx, previous);
        }
    }

    /// The transfer failed: Teams hears `status` and the call stays, or with the transferor
    /// gone, the call ends.
    fn pbx_call_failed(&mut self, ctx: &mut Ctx<'_>, status: u16, reason: &str, gone: bool) {
        let gone = self.pbx_call.take().map_or(gone, |c| c.transferor_gone);
        tracing::info!(call_id = %self.log_id(), status, "transfer to a number: our call to the target failed");
        ctx.transfer_event("number", "failed");
        if gone {
            self.end_transfer_refused(ctx, status);
        } else {
            self.notify(ctx, Progress::Final(status, reason));
        }
    }

    /// The call ends while the target is being called: ringing, it is cancelled; answered,
    /// acknowledged and ended.
    pub(super) fn abandon_pbx_call(&mut self, ctx: &mut Ctx<'_>) {
        self.end_target_call(ctx, None);
        if let Some(mut pc) = self.pbx_call.take() {
            pc.leg.cancel(ctx.layer, ctx.now);
        }
    }
}

/// The reason phrase of a status a failed bridge reports in its sipfrag.
fn phrase(status: u16) -> &'static str {
    match status {
        408 => "Request Timeout",
        481 => "Call/Transaction Does Not Exist",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500..=599 => "Server Error",
        _ => "Transfer Failed",
    }
}
