//! One call: the inbound leg (who called us), the outbound leg (who we call), the offer/answer
//! bridge and the media session, and every rule that carries an event from one leg to the
//! other. Each leg answers its own peer (RFC 3261 §13, §15, §9); only call-level facts cross.
//! Here: the call's state and time; its outbound INVITE (failover, forks, answer, failure
//! mapping) is in `progress.rs`, requests inside the dialogs in `dialogs.rs`, re-INVITEs and
//! session timers in `reinvite.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use teamsgw_sip::transaction::TxId;

use super::Direction;
use super::bridge_transfer::PbxCall;
use super::bridged::Bridged;
use super::cause::{EndCause, Side, q850_for};
use super::core::Ctx;
use super::inbound::Inbound;
use super::media::{Allocation, MediaCounters};
use super::outbound::Outbound;
use super::pbx_transfer::PbxRefer;
use super::reinvite::{Queued, Reinvite};
use super::routing::{PbxDialing, TeamsProxy, Tenant, UserRoute};
use super::sdp_bridge::SdpBridge;
use super::session_timer::SessionTimer;
use super::transfer::Transfer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// INVITE sent on the outbound leg, nothing final yet.
    Proceeding,
    /// A 18x reached the caller.
    Early,
    /// Our 2xx went to the caller; its ACK is awaited.
    Answered,
    Confirmed,
    /// The call is ending; the outbound INVITE's final response (after CANCEL) is awaited.
    Terminating,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Proceeding => "proceeding",
            Phase::Early => "early",
            Phase::Answered => "answered",
            Phase::Confirmed => "confirmed",
            Phase::Terminating => "terminating",
            Phase::Done => "done",
        }
    }
}

/// Which leg a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Inbound,
    Outbound,
}

pub struct Call {
    /// The Call-ID of the INVITE that started the call: its id in logs, `call list` and the
    /// CDR, whatever dialogs later replace its legs.
    pub id: String,
    pub direction: Direction,
    pub phase: Phase,
    pub tenant: Tenant,
    pub user: UserRoute,
    /// How the user's PBX addresses a number (a transfer to a number goes there).
    pub pbx: PbxDialing,
    pub caller: String,
    pub callee: String,
    /// A call from Teams to one of `emergency_numbers` (admitted past `max_sessions`).
    pub emergency: bool,
    pub inbound: Inbound,
    pub outbound: Outbound,
    pub sdp: SdpBridge,
    pub media: Allocation,
    /// Teams proxies still to try, in `teams.proxies` order (§1.6).
    pub proxies: VecDeque<TeamsProxy>,
    /// Proxies trunk health holds down, kept for a last try.
    pub down_proxies: Vec<TeamsProxy>,
    pub last_resort: bool,
    pub proxy: Option<String>,
    pub failovers: Vec<(String, String)>,
    pub attempt_deadline: Option<Instant>,
    pub no_answer_deadline: Option<Instant>,
    pub terminating_deadline: Option<Instant>,
    pub started: Instant,
    pub ringing: Option<Instant>,
    pub answered: Option<Instant>,
    /// What we last sent each leg, repeated for a session refresh (RFC 4028 §7).
    pub last_inbound_sdp: Option<String>,
    pub last_outbound_sdp: Option<String>,
    /// Each leg's session timer (RFC 4028), once its dialog is confirmed or offered.
    pub inbound_timer: Option<SessionTimer>,
    pub outbound_timer: Option<SessionTimer>,
    /// Our re-INVITE in flight (or its 2xx, re-ACKed when retransmitted).
    pub reinvite: Option<Reinvite>,
    /// A re-INVITE of ours waiting for its turn (after glare, or behind one in flight).
    pub queued: Option<Queued>,
    /// A transfer Teams asked for (REFER), while its new leg is being called.
    pub transfer: Option<Box<Transfer>>,
    /// A transfer to a number, handed to the PBX with our REFER (`pbx_transfer.rs`).
    pub pbx_refer: Option<PbxRefer>,
    /// The same, done by us when the PBX takes no REFER (`bridge_transfer.rs`).
    pub pbx_call: Option<Box<PbxCall>>,
    /// Both legs are the PBX's parties after that transfer (`bridged.rs`).
    pub bridged: Option<Box<Bridged>>,
    /// The media session's counters, when it ended before the call (a bridged call's
    /// media goes party to party).
    pub media_released: Option<MediaCounters>,
    pub end: Option<(EndCause, u16, Option<Side>)>,
    /// Every transaction this call started or serves (the core routes their events here).
    pub txs: Vec<TxId>,
    /// The deadline the core's timer heap holds for this call.
    pub scheduled: Option<Instant>,
}

impl Call {
    pub fn log_id(&self) -> &str {
        &self.id
    }

    pub(super) fn inbound_side(&self) -> Side {
        self.inbound.profile.peers.side()
    }

    pub(super) fn outbound_side(&self) -> Side {
        self.outbound.profile.peers.side()
    }

    /// The leg on the Teams side.
    pub(super) fn teams_leg(&self) -> Leg {
        match self.direction {
            Direction::FromTeams => Leg::Inbound,
            Direction::ToTeams => Leg::Outbound,
        }
    }

    /// The (Call-ID, our tag) of both legs' dialogs, as the core routes them.
    pub fn dialog_keys(&self) -> [(Vec<u8>, Vec<u8>); 2] {
        [
            self.inbound.dialog_key(),
            (
                self.outbound.call_id.clone().into_bytes(),
                self.outbound.from_tag.clone().into_bytes(),
            ),
        ]
    }

    pub(super) fn finish(&mut self, cause: EndCause, status: u16, by: Option<Side>) {
        if self.end.is_none() {
            self.end = Some((cause, status, by));
        }
        self.phase = Phase::Done;
    }

    // ---- the outbound INVITE ---------------------------------------------------------------

    /// Sends the first INVITE (or the next failover attempt towards Teams).
    pub fn start(&mut self, ctx: &mut Ctx<'_>) {
        if self.direction == Direction::ToTeams {
            self.next_proxy(ctx);
        } else {
            self.send_invite(ctx);
        }
    }

    /// A final failure to the caller, with a Warning that says why (RFC 3261 §20.43) and, for
    /// Teams, a Q.850 Reason (§3.8: 486 is cause 17).
    pub fn fail_caller(&mut self, ctx: &mut Ctx<'_>, status: u16, reason: &str, why: &str) {
        let mut extra = vec![("Warning", crate::stateless::warning(why))];
        if self.inbound_side() == Side::Teams
            && let Some((cause, text)) = q850_for(status)
        {
            extra.push(("Reason", format!("Q.850;cause={cause};text=\"{text}\"")));
        }
        if status == 503 {
            extra.push(("Retry-After", "5".into()));
        }
        self.inbound
            .reject(ctx.layer, status, reason, &extra, ctx.now);
    }

    pub(super) fn apply_media(&mut self, ctx: &mut Ctx<'_>) {
        if self.media_released.is_some() {
            return;
        }
        if let Some(params) = self.sdp.params() {
            ctx.media.apply(self.media.session, params);
        }
    }

    // ---- time --------------------------------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.attempt_deadline,
            self.no_answer_deadline,
            self.terminating_deadline,
            self.inbound.poll_timeout(),
            self.session_deadline(),
            self.pbx_refer.as_ref().map(|r| r.expires),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.pbx_refer.as_ref().is_some_and(|r| now >= r.expires) {
            self.on_pbx_refer_expired(ctx);
        }
        if self.terminating_deadline.is_some_and(|d| now >= d) {
            self.terminating_deadline = None;
            self.phase = Phase::Done;
            return;
        }
        if self.attempt_deadline.is_some_and(|d| now >= d) {
            self.attempt_deadline = None;
            // No response at all from this proxy: abandon its transaction (§1.6).
            if let Some(tx) = self.outbound.tx.take() {
                ctx.layer.transport_error(tx);
            }
            self.fail_over(ctx, "timeout");
            return;
        }
        if self.no_answer_deadline.is_some_and(|d| now >= d) {
            self.no_answer_deadline = None;
            self.outbound.cancel(ctx.layer, now);
            let status = if self.inbound_side() == Side::Teams {
                480
            } else {
                408
            };
            let reason = if status == 480 {
                "Temporarily Unavailable"
            } else {
                "Request Timeout"
            };
            self.fail_caller(ctx, status, reason, "no answer");
            self.end = Some((EndCause::NoAnswer, status, None));
            self.enter_terminating(ctx);
            return;
        }
        if self.inbound.handle_timeout(ctx.layer, now) {
            self.hangup(ctx, EndCause::AckTimeout, None);
            return;
        }
        self.on_session_timeout(ctx);
    }
}
