//! One call: the inbound leg (who called us), the outbound leg (who we call), the offer/answer
//! bridge and the media session, and every rule that carries an event from one leg to the
//! other. Each leg answers its own peer (RFC 3261 §13, §15, §9); only call-level facts cross.
//! Here: the call's state and its outbound INVITE (failover, digest, forks, answer, failure
//! mapping) and time; requests inside the dialogs are in `dialogs.rs`, re-INVITEs and session
//! timers in `reinvite.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use teamsgw_sip::Message;
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::Target;
use teamsgw_sip::transport::Transport;

use super::bridge_transfer::PbxCall;
use super::bridged::Bridged;
use super::cause::{EndCause, Side, q850_for};
use super::core::{Ctx, ProxyState};
use super::inbound::Inbound;
use super::media::{Allocation, MediaCounters};
use super::outbound::Outbound;
use super::pbx_transfer::PbxRefer;
use super::reinvite::{Queued, Reinvite};
use super::routing::{PbxDialing, TeamsProxy, Tenant, UserRoute};
use super::sdp_bridge::{SdpBridge, unacceptable};
use super::session_timer::SessionTimer;
use super::transfer::Transfer;
use super::{CallEvent, Direction, Output};

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

/// Status codes on which an INVITE to Teams moves to the next proxy (§1.6).
fn fails_over(status: u16) -> bool {
    matches!(status, 408 | 503 | 504)
}

impl Call {
    pub fn log_id(&self) -> &str {
        &self.id
    }

    pub(super) fn inbound_side(&self) -> Side {
        self.inbound.profile.side
    }

    pub(super) fn outbound_side(&self) -> Side {
        self.outbound.profile.side
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

    pub(super) fn send_invite(&mut self, ctx: &mut Ctx<'_>) {
        let branch = ctx.branch();
        if let Some(tx) = self.outbound.send_invite(ctx.layer, &branch, ctx.now) {
            self.txs.push(tx);
            ctx.own(tx);
        }
    }

    /// §1.6: the next proxy in order that is up. Proxies trunk health saw down are tried
    /// last, after every other one failed (its last OPTIONS may be older than the outage's
    /// end); those held down by a 503 with Retry-After are not tried at all.
    fn next_proxy(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(p) = self.proxies.pop_front() {
            let Some(addr) = p.addr else {
                self.failovers.push((p.name, "unresolved".into()));
                continue;
            };
            match ctx.proxy_state(&p.name) {
                ProxyState::Held => {
                    self.failovers.push((p.name, "retry_after".into()));
                    continue;
                }
                ProxyState::Down if !self.last_resort => {
                    self.failovers.push((p.name.clone(), "down".into()));
                    self.down_proxies.push(p);
                    continue;
                }
                _ => {}
            }
            let port = addr.port();
            self.outbound.template.uri = format!(
                "sip:{}@{}:{port};user=phone;transport=tls",
                self.user.number, p.name
            );
            self.outbound.target = Target {
                transport: Transport::Tls,
                addr,
                server_name: Some(p.name.clone()),
            };
            self.proxy = Some(p.name);
            self.attempt_deadline = Some(ctx.now + ctx.settings.invite_timeout);
            self.send_invite(ctx);
            return;
        }
        if !self.last_resort && !self.down_proxies.is_empty() {
            self.last_resort = true;
            self.proxies = std::mem::take(&mut self.down_proxies).into();
            self.next_proxy(ctx);
            return;
        }
        self.proxy = None;
        self.attempt_deadline = None;
        tracing::warn!(call_id = %self.log_id(), tried = ?self.failovers, "no Teams proxy left to try");
        self.fail_caller(ctx, 503, "Service Unavailable", "no Teams proxy reachable");
        self.finish(EndCause::Unreachable, 503, None);
    }

    /// Leaves the current Teams proxy for `cause` and tries the next one.
    fn fail_over(&mut self, ctx: &mut Ctx<'_>, cause: &'static str) {
        if let Some(p) = self.proxy.take() {
            ctx.out.push_back(Output::Event(CallEvent::Failover {
                from_proxy: p.clone(),
                cause,
            }));
            self.failovers.push((p, cause.into()));
        }
        self.outbound.tx = None;
        self.next_proxy(ctx);
    }

    /// Timer B/F, our shorter INVITE timeout, or a send failure on the INVITE in flight.
    pub fn on_invite_failed(&mut self, ctx: &mut Ctx<'_>, tx: TxId, cause: &'static str) {
        if self.is_transfer_tx(tx) {
            self.on_transfer_timeout(ctx);
            return;
        }
        if self.is_pbx_call_tx(tx) {
            self.on_pbx_call_timeout(ctx);
            return;
        }
        if self.is_pbx_refer_tx(tx) {
            self.on_pbx_refer_timeout(ctx);
            return;
        }
        if self.reinvite.as_ref().is_some_and(|r| r.tx == tx) {
            self.on_reinvite_failed(ctx, 408);
            return;
        }
        if self.outbound.tx != Some(tx) {
            return;
        }
        self.outbound.tx = None;
        if self.phase == Phase::Terminating {
            self.phase = Phase::Done;
            return;
        }
        if self.direction == Direction::ToTeams && self.outbound.confirmed.is_none() {
            self.fail_over(ctx, cause);
            return;
        }
        let text = format!("the PBX did not answer ({cause})");
        self.fail_caller(ctx, 503, "Service Unavailable", &text);
        self.finish(EndCause::Unreachable, 503, None);
    }

    /// A response to the outbound INVITE.
    pub fn on_invite_response(&mut self, ctx: &mut Ctx<'_>, tx: TxId, msg: Message) {
        if self.is_transfer_tx(tx) {
            self.on_transfer_response(ctx, &msg);
            return;
        }
        if self.is_pbx_call_tx(tx) {
            self.on_pbx_call_response(ctx, &msg);
            return;
        }
        if self.is_pbx_refer_tx(tx) {
            self.on_pbx_refer_response(ctx, &msg);
            return;
        }
        if self.reinvite.as_ref().is_some_and(|r| r.tx == tx) {
            self.on_reinvite_response(ctx, &msg);
            return;
        }
        if self.outbound.picked_up == Some(tx) {
            self.on_picked_up_response(ctx, &msg);
            return;
        }
        if self.outbound.tx != Some(tx) {
            return;
        }
        let Some(status) = msg.status() else { return };
        self.outbound.heard = true;
        self.attempt_deadline = None;
        match status {
            100 => {}
            101..=199 => self.on_provisional(ctx, &msg, status),
            200..=299 => self.on_success(ctx, &msg),
            _ => self.on_failure(ctx, &msg, status),
        }
    }

    fn on_provisional(&mut self, ctx: &mut Ctx<'_>, msg: &Message, status: u16) {
        self.outbound.provisional = true;
        self.outbound.track(msg);
        if self.outbound.cancel_pending {
            self.outbound.cancel(ctx.layer, ctx.now);
            return;
        }
        if self.phase == Phase::Terminating {
            return;
        }
        if self.ringing.is_none() {
            self.ringing = Some(ctx.now);
            ctx.setup_event(self.direction, "ringing", ctx.now - self.started);
        }
        let sdp = (!msg.body().is_empty()).then(|| msg.body().to_vec());
        match self.direction {
            Direction::FromTeams => match sdp {
                // Early media from the PBX: 183 with our answer, media flowing (§3.4).
                Some(body) => match self.sdp.answer_from_pbx(&body) {
                    Ok(answer) => {
                        self.apply_media(ctx);
                        let reason = if status == 180 {
                            "Ringing"
                        } else {
                            "Session Progress"
                        };
                        self.inbound
                            .provisional(ctx.layer, status, reason, Some(&answer), ctx.now);
                        self.last_inbound_sdp = Some(answer);
                        self.inbound.ringing_sent = true;
                    }
                    Err(e) => self.sdp_failed_outbound(ctx, &e.reason),
                },
                None if (!self.inbound.ringing_sent || status == 180)
                    && self.last_inbound_sdp.is_none() =>
                {
                    self.inbound
                        .provisional(ctx.layer, 180, "Ringing", None, ctx.now);
                    self.inbound.ringing_sent = true;
                }
                None => {}
            },
            Direction::ToTeams => {
                // §3.4: 183+SDP from Teams sets up media but reaches the PBX as one 180 without
                // SDP, so the PBX keeps playing ringback (the silent-ringback fault).
                if let Some(body) = sdp {
                    match self.sdp.answer_from_teams(&body) {
                        Ok(_) => self.apply_media(ctx),
                        Err(e) => {
                            self.sdp_failed_outbound(ctx, &e.reason);
                            return;
                        }
                    }
                }
                if !self.inbound.ringing_sent {
                    self.inbound
                        .provisional(ctx.layer, 180, "Ringing", None, ctx.now);
                    self.inbound.ringing_sent = true;
                }
            }
        }
        if self.phase == Phase::Proceeding {
            self.phase = Phase::Early;
        }
    }

    fn on_success(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        self.outbound.provisional = true;
        let Some(mut dialog) = self.outbound.track(msg) else {
            return;
        };
        let branch = ctx.branch();
        self.outbound.ack(ctx.layer, &dialog, &branch);
        if let Some(confirmed) = &self.outbound.confirmed {
            if confirmed.id != dialog.id {
                // §13.2.2.4: a 2xx from a second fork is acknowledged, then ended.
                let branch = ctx.branch();
                self.outbound
                    .bye(ctx.layer, &mut dialog, &branch, None, ctx.now);
            }
            return;
        }
        self.outbound.confirmed = Some(dialog);
        if matches!(self.phase, Phase::Terminating | Phase::Done) {
            // Answered after we gave up (CANCEL crossed the 2xx): end it at once.
            self.bye_outbound(ctx, None);
            self.phase = Phase::Done;
            return;
        }
        let body = msg.body().to_vec();
        let answer = match self.direction {
            Direction::FromTeams if !body.is_empty() => self.sdp.answer_from_pbx(&body),
            // The answer already went to Teams with the 183 (early media).
            Direction::FromTeams => self
                .last_inbound_sdp
                .clone()
                .ok_or_else(|| unacceptable("no SDP answer in the 2xx")),
            Direction::ToTeams if !body.is_empty() => self.sdp.answer_from_teams(&body),
            Direction::ToTeams => Err(unacceptable("no SDP answer in the 2xx")),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let text = format!("{} SDP: {}", self.outbound_side().as_str(), e.reason);
                self.bye_outbound(ctx, Some(r#"SIP;cause=488;text="SDP not acceptable""#));
                self.fail_caller(ctx, 488, "Not Acceptable Here", &text);
                self.finish(EndCause::Refused(488), 488, None);
                return;
            }
        };
        self.apply_media(ctx);
        self.outbound_timer = Some(SessionTimer::as_uac(
            msg,
            ctx.settings.session_expires,
            ctx.now,
        ));
        self.answer_caller(ctx, answer);
    }

    /// The outbound leg answered (or a pickup took its place): our 2xx with `answer` goes
    /// to the caller, whose ACK confirms the call.
    pub(super) fn answer_caller(&mut self, ctx: &mut Ctx<'_>, answer: String) {
        let timer_headers = self.timer_headers(Leg::Inbound);
        self.inbound.accept(
            ctx.layer,
            &ctx.settings.timers,
            Some(&answer),
            &timer_headers,
            ctx.now,
        );
        self.last_inbound_sdp = Some(answer);
        self.answered = Some(ctx.now);
        self.attempt_deadline = None;
        self.no_answer_deadline = None;
        self.phase = Phase::Answered;
        ctx.setup_event(self.direction, "answered", ctx.now - self.started);
    }

    fn on_failure(&mut self, ctx: &mut Ctx<'_>, msg: &Message, status: u16) {
        self.outbound.tx = None;
        if self.phase == Phase::Terminating {
            self.phase = Phase::Done;
            return;
        }
        // A challenge from the PBX is answered once with the user's credentials (RFC 3261
        // §22.2); the PBX then applies its own rules to its registered device.
        if matches!(status, 401 | 407)
            && self.outbound.credentials.is_some()
            && let Some(invite) = self.outbound.invite.clone()
            && self.outbound.digest.on_challenge(&invite, msg).is_ok()
        {
            self.send_invite(ctx);
            return;
        }
        if status == 422 && self.retry_with_min_se(ctx, msg) {
            return;
        }
        if self.direction == Direction::ToTeams && fails_over(status) {
            if status == 503
                && let Some(Ok(ra)) = msg.retry_after()
                && let Some(p) = &self.proxy
            {
                ctx.out.push_back(Output::ProxyDown {
                    proxy: p.clone(),
                    retry_after: std::time::Duration::from_secs(u64::from(ra.seconds)),
                });
            }
            let cause = match status {
                408 => "408",
                503 => "503",
                _ => "504",
            };
            self.fail_over(ctx, cause);
            return;
        }
        let phrase = msg
            .reason_phrase()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .unwrap_or_default();
        let (code, reason, cause) = match status {
            486 | 600 => (486, "Busy Here".to_owned(), EndCause::Busy),
            401 | 407 => (403, "Forbidden".to_owned(), EndCause::Rejected(status)),
            408 | 500..=599 if self.direction == Direction::FromTeams => (
                503,
                "Service Unavailable".to_owned(),
                EndCause::Rejected(status),
            ),
            480 if self.direction == Direction::FromTeams => {
                (480, phrase.clone(), EndCause::NoAnswer)
            }
            s => (s, phrase.clone(), EndCause::Rejected(s)),
        };
        let text = format!(
            "{} answered {status} {phrase}",
            self.outbound_side().as_str()
        );
        self.fail_caller(ctx, code, &reason, &text);
        self.finish(cause, code, Some(self.outbound_side()));
    }

    /// The outbound leg's SDP cannot be bridged: end that leg, answer the caller 488.
    fn sdp_failed_outbound(&mut self, ctx: &mut Ctx<'_>, reason: &str) {
        self.outbound.cancel(ctx.layer, ctx.now);
        let text = format!("{} SDP: {reason}", self.outbound_side().as_str());
        self.fail_caller(ctx, 488, "Not Acceptable Here", &text);
        self.end = Some((EndCause::Refused(488), 488, None));
        self.enter_terminating(ctx);
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
