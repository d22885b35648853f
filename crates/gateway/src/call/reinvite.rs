//! re-INVITEs and UPDATEs inside a confirmed call, each leg on its own terms. A peer's
//! request that changes nothing (a session refresh, the same SDP version) is answered on its
//! own leg and never relayed (dsiprouter#489: carrier refreshes made Teams hang up). A real
//! change is answered on its leg too, with the media updated; only a hold or resume crosses
//! to the other leg, as our own re-INVITE there (teams-direct-routing.md §3.6). Our
//! re-INVITEs also refresh sessions (RFC 4028): at half the interval when we are the
//! refresher. A leg whose refresh fails, or whose peer stops refreshing, ends the whole call
//! with a Reason on both legs (§10).

use std::time::{Duration, Instant};

use teamsgw_sip::Message;
use teamsgw_sip::message::Method;
use teamsgw_sip::transaction::TxId;

use super::cause::{EndCause, Side};
use super::core::Ctx;
use super::sdp_bridge::ReOffer;
use super::session_timer::{SessionTimer, TooSmall, min_se};
use super::state::{Call, Leg, Phase};

/// Why we send a re-INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A session refresh (RFC 4028 §7.4): the same description again.
    Refresh,
    /// The other leg's hold or resume (§3.6): a new description whose answer we apply.
    Update,
    /// A transfer target's offer to the PBX's party (`bridge_transfer.rs`): its answer
    /// completes the transfer.
    Bridge,
    /// A bridged party's offer passed to the other party (`bridged.rs`): its answer goes
    /// back to the offerer.
    Relay,
}

/// Our re-INVITE on one leg.
#[derive(Debug, Clone)]
pub struct Reinvite {
    pub leg: Leg,
    pub purpose: Purpose,
    pub tx: TxId,
    /// Its CSeq number, for the ACK of each 2xx.
    pub seq: u32,
    pub answered: bool,
}

/// A re-INVITE of ours to send at `at` (after a 491, or once the one in flight is done).
#[derive(Debug, Clone, Copy)]
pub struct Queued {
    pub leg: Leg,
    pub purpose: Purpose,
    pub at: Instant,
}

impl Call {
    fn timer(&self, leg: Leg) -> Option<&SessionTimer> {
        match leg {
            Leg::Inbound => self.inbound_timer.as_ref(),
            Leg::Outbound => self.outbound_timer.as_ref(),
        }
    }

    fn timer_mut(&mut self, leg: Leg) -> Option<&mut SessionTimer> {
        match leg {
            Leg::Inbound => self.inbound_timer.as_mut(),
            Leg::Outbound => self.outbound_timer.as_mut(),
        }
    }

    pub(super) fn side_of(&self, leg: Leg) -> Side {
        match leg {
            Leg::Inbound => self.inbound_side(),
            Leg::Outbound => self.outbound_side(),
        }
    }

    pub(super) fn other(leg: Leg) -> Leg {
        match leg {
            Leg::Inbound => Leg::Outbound,
            Leg::Outbound => Leg::Inbound,
        }
    }

    /// The description we gave this leg last: a refresh repeats it, same version (RFC 3264 §8).
    pub(super) fn last_sdp(&self, leg: Leg) -> Option<String> {
        match leg {
            Leg::Inbound => self.last_inbound_sdp.clone(),
            Leg::Outbound => self.last_outbound_sdp.clone(),
        }
    }

    pub(super) fn set_last_sdp(&mut self, leg: Leg, sdp: String) {
        match leg {
            Leg::Inbound => self.last_inbound_sdp = Some(sdp),
            Leg::Outbound => self.last_outbound_sdp = Some(sdp),
        }
    }

    pub(super) fn in_flight(&self, leg: Leg) -> bool {
        self.reinvite
            .as_ref()
            .is_some_and(|r| r.leg == leg && !r.answered)
    }

    /// `Session-Expires` (and `Require: timer` when the peer supports it, §9) for our 2xx on
    /// this leg; nothing when the leg has no session timer.
    pub(super) fn timer_headers(&self, leg: Leg) -> Vec<(&'static str, String)> {
        let Some(t) = self.timer(leg) else {
            return Vec::new();
        };
        let mut headers = vec![("Session-Expires", t.answer_header())];
        if t.peer_supports {
            headers.push(("Require", "timer".to_owned()));
        }
        headers
    }

    // ---- the peer's re-INVITE or UPDATE ------------------------------------------------------

    pub(super) fn on_peer_reinvite(
        &mut self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        tx: TxId,
        msg: &Message,
    ) {
        if !self.admit_peer_offer(ctx, leg, tx, msg) {
            return;
        }
        let body = msg.body();
        let mut crossing = None;
        let sdp = if body.is_empty() {
            // An UPDATE without an offer is answered without one (RFC 3311 §5.2); an INVITE
            // without one gets our last description as the offer (RFC 3261 §14.2).
            (msg.method() == Some(Method::Invite))
                .then(|| self.last_sdp(leg))
                .flatten()
        } else {
            let outcome = match self.side_of(leg) {
                Side::Teams => self.sdp.reoffer_from_teams(body),
                _ => self.sdp.reoffer_from_pbx(body),
            };
            match outcome {
                Err(e) => {
                    // The call stays as it was (RFC 3261 §14.2: a failed re-INVITE changes nothing).
                    let extra = [("Warning", crate::stateless::warning(&e.reason))];
                    let status = (488, "Not Acceptable Here");
                    self.answer_with(ctx, leg, tx, msg, status, None, &extra);
                    return;
                }
                Ok(ReOffer::Unchanged) => self.last_sdp(leg),
                Ok(ReOffer::Changed { answer, hold }) => {
                    self.apply_media(ctx);
                    self.set_last_sdp(leg, answer.clone());
                    crossing = hold;
                    Some(answer)
                }
            }
        };
        let headers = self.timer_headers(leg);
        self.answer_with(ctx, leg, tx, msg, (200, "OK"), sdp.as_deref(), &headers);
        if let Some(hold) = crossing {
            self.pass_hold(ctx, Self::other(leg), hold);
        }
    }

    /// What every re-INVITE or UPDATE from a peer passes first: glare (RFC 3261 §14.2: an
    /// INVITE while ours on the same dialog is pending gets 491) and its session interval
    /// (RFC 4028 §8: too small gets 422 with our Min-SE). False when it was answered here.
    pub(super) fn admit_peer_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        tx: TxId,
        msg: &Message,
    ) -> bool {
        if msg.method() == Some(Method::Invite) && self.in_flight(leg) {
            self.answer(ctx, leg, tx, msg, 491, "Request Pending", None);
            return false;
        }
        let ours = self.timer(leg).map(|t| t.interval);
        match SessionTimer::as_uas(msg, ours, ctx.now) {
            Err(TooSmall(min)) => {
                let extra = [("Min-SE", min.as_secs().to_string())];
                let status = (422, "Session Interval Too Small");
                self.answer_with(ctx, leg, tx, msg, status, None, &extra);
                return false;
            }
            Ok(Some(t)) => match leg {
                Leg::Inbound => self.inbound_timer = Some(t),
                Leg::Outbound => self.outbound_timer = Some(t),
            },
            Ok(None) => {}
        }
        true
    }

    /// The other leg's hold or resume, as our re-offer on `leg` (§3.6).
    pub(super) fn pass_hold(&mut self, ctx: &mut Ctx<'_>, leg: Leg, hold: bool) {
        let offer = match self.side_of(leg) {
            // Teams stays un-held and hears the PBX's music on hold, when so configured.
            Side::Teams if ctx.settings.relay_pbx_hold => return,
            Side::Teams => self.sdp.hold_offer_to_teams(hold),
            _ => self.sdp.hold_offer_to_pbx(hold),
        };
        tracing::info!(call_id = %self.log_id(), hold, towards = self.side_of(leg).as_str(), "hold passed to the other leg");
        self.set_last_sdp(leg, offer);
        self.send_or_queue(ctx, leg, Purpose::Update);
    }

    pub(super) fn send_or_queue(&mut self, ctx: &mut Ctx<'_>, leg: Leg, purpose: Purpose) {
        if self.reinvite.as_ref().is_some_and(|r| !r.answered) {
            self.queued = Some(Queued {
                leg,
                purpose,
                at: ctx.now,
            });
        } else {
            self.send_reinvite(ctx, leg, purpose);
        }
    }

    // ---- time ----------------------------------------------------------------------------------

    fn timers_run(&self) -> bool {
        matches!(self.phase, Phase::Answered | Phase::Confirmed)
    }

    /// The next re-INVITE to send, or the time a peer's refresh is overdue.
    pub(super) fn session_deadline(&self) -> Option<Instant> {
        if !self.timers_run() {
            return None;
        }
        let busy = self.reinvite.as_ref().is_some_and(|r| !r.answered);
        let timers = [Leg::Inbound, Leg::Outbound].into_iter().filter_map(|leg| {
            let t = self.timer(leg)?;
            // While our re-INVITE is in flight its transaction times out, not our timer.
            (!(t.we_refresh && busy)).then(|| t.deadline())
        });
        let queued = self.queued.filter(|_| !busy).map(|q| q.at);
        timers.chain(queued).min()
    }

    pub(super) fn on_session_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if !self.timers_run() {
            return;
        }
        for leg in [Leg::Inbound, Leg::Outbound] {
            let Some(t) = self.timer(leg) else { continue };
            if ctx.now < t.deadline() {
                continue;
            }
            if !t.we_refresh {
                let side = self.side_of(leg);
                tracing::warn!(call_id = %self.log_id(), side = side.as_str(), "session expired: no refresh (RFC 4028 §10)");
                self.hangup(ctx, EndCause::SessionExpired(side), None);
                return;
            }
            if !self.in_flight(leg) {
                self.send_or_queue(ctx, leg, Purpose::Refresh);
            }
        }
        if let Some(q) = self.queued
            && ctx.now >= q.at
            && self.reinvite.as_ref().is_none_or(|r| r.answered)
        {
            self.queued = None;
            self.send_reinvite(ctx, q.leg, q.purpose);
        }
    }

    // ---- our re-INVITE ------------------------------------------------------------------------

    /// Our re-INVITE on `leg` with the description we gave it last (for an update, the new
    /// one `pass_hold` just stored).
    pub(super) fn send_reinvite(&mut self, ctx: &mut Ctx<'_>, leg: Leg, purpose: Purpose) {
        let mut extra = vec![("Supported", "timer".to_owned())];
        if let Some(t) = self.timer(leg) {
            extra.push(("Session-Expires", t.refresh_header()));
        }
        let sdp = self.last_sdp(leg);
        let branch = ctx.branch();
        let built = match leg {
            Leg::Inbound => self.inbound.dialog.as_mut().and_then(|d| {
                self.inbound
                    .profile
                    .reinvite(d, &branch, &extra, sdp.as_deref())
            }),
            Leg::Outbound => self.outbound.confirmed.as_mut().and_then(|d| {
                self.outbound
                    .profile
                    .reinvite(d, &branch, &extra, sdp.as_deref())
            }),
        };
        let Some((msg, seq)) = built else { return };
        let tx = match leg {
            Leg::Inbound => self.inbound.send(ctx.layer, msg, ctx.now),
            Leg::Outbound => self.outbound.send(ctx.layer, msg, ctx.now),
        };
        let Some(tx) = tx else { return };
        ctx.own(tx);
        self.txs.push(tx);
        self.reinvite = Some(Reinvite {
            leg,
            purpose,
            tx,
            seq,
            answered: false,
        });
    }

    /// A response to our re-INVITE.
    pub(super) fn on_reinvite_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let (Some(r), Some(status)) = (self.reinvite.as_mut(), msg.status()) else {
            return;
        };
        let (leg, seq, purpose, first) = (r.leg, r.seq, r.purpose, !r.answered);
        match status {
            100..=199 => {}
            200..=299 => {
                r.answered = true;
                self.ack_reinvite(ctx, leg, seq);
                if !first {
                    return;
                }
                let now = ctx.now;
                if let Some(t) = self.timer_mut(leg) {
                    // Any 2xx refreshes; it may set another interval or refresher (§7.2).
                    *t = SessionTimer::as_uac(msg, t.interval, now);
                }
                match purpose {
                    Purpose::Bridge => self.bridge_answered(ctx, msg),
                    Purpose::Relay => self.relay_answered(ctx, msg),
                    _ => {}
                }
                if purpose == Purpose::Update && !msg.body().is_empty() {
                    let applied = match self.side_of(leg) {
                        Side::Teams => self.sdp.reanswer_from_teams(msg.body()),
                        _ => self.sdp.pbx_answer(msg.body()),
                    };
                    match applied {
                        Ok(()) => self.apply_media(ctx),
                        Err(e) => {
                            tracing::warn!(call_id = %self.log_id(), reason = %e.reason, "the answer to our re-INVITE cannot be used; media as before")
                        }
                    }
                }
                if let Some(q) = self.queued.as_mut() {
                    q.at = q.at.max(now);
                }
            }
            491 if purpose == Purpose::Relay => self.on_reinvite_failed(ctx, status),
            491 => {
                // RFC 3261 §14.1: glare; the same re-INVITE again after a random wait.
                self.reinvite = None;
                let at = ctx.now + ctx.random_wait(Duration::from_secs(2));
                self.queued = Some(Queued { leg, purpose, at });
            }
            _ => self.on_reinvite_failed(ctx, status),
        }
    }

    fn ack_reinvite(&mut self, ctx: &mut Ctx<'_>, leg: Leg, seq: u32) {
        // Every 2xx is acknowledged, retransmissions too (RFC 3261 §13.2.2.4).
        let branch = ctx.branch();
        match leg {
            Leg::Inbound => {
                if let Some(d) = &self.inbound.dialog {
                    let ack = self.inbound.profile.ack(d, seq, &branch);
                    self.inbound.send_ack(ctx.layer, ack);
                }
            }
            Leg::Outbound => {
                if let Some(d) = &self.outbound.confirmed {
                    let ack = self.outbound.profile.ack(d, seq, &branch);
                    self.outbound.send_ack(ctx.layer, ack);
                }
            }
        }
    }

    /// Our re-INVITE was refused, timed out or could not be sent. A failed refresh ends the
    /// session (RFC 4028 §10), and so does a dialog the peer no longer knows (408, 481,
    /// RFC 3261 §14.1); a refused update leaves the call as it was.
    pub(super) fn on_reinvite_failed(&mut self, ctx: &mut Ctx<'_>, status: u16) {
        let Some(r) = self.reinvite.take() else {
            return;
        };
        let side = self.side_of(r.leg);
        match r.purpose {
            Purpose::Bridge => self.bridge_refused(ctx, status),
            Purpose::Relay => self.relay_refused(ctx, status),
            _ => {}
        }
        if r.purpose != Purpose::Refresh && !matches!(status, 408 | 481) {
            tracing::warn!(call_id = %self.log_id(), status, side = side.as_str(), "re-INVITE refused; the call goes on as it was");
            return;
        }
        tracing::warn!(call_id = %self.log_id(), status, side = side.as_str(), "re-INVITE failed; ending the call");
        self.hangup(ctx, EndCause::RefreshFailed(side), None);
    }

    /// RFC 4028 §7.3: a 422 to our INVITE is retried with its Min-SE, once per size.
    pub(super) fn retry_with_min_se(&mut self, ctx: &mut Ctx<'_>, msg: &Message) -> bool {
        let Some(min) = min_se(msg) else { return false };
        let headers = &mut self.outbound.template.headers;
        let Some(se) = headers.iter_mut().find(|(n, _)| *n == "Session-Expires") else {
            return false;
        };
        let asked: u64 = se.1.parse().unwrap_or(0);
        if min.as_secs() <= asked {
            return false;
        }
        se.1 = min.as_secs().to_string();
        headers.push(("Min-SE", min.as_secs().to_string()));
        self.send_invite(ctx);
        true
    }
}
