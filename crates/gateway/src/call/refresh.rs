//! Session refreshes on each leg (RFC 4028). A peer's re-INVITE or UPDATE that changes
//! nothing is answered on its own leg and never relayed (dsiprouter#489: carrier refreshes
//! made Teams hang up); ours go out at half the interval; a leg whose refresh fails, or whose
//! peer stops refreshing, ends the whole call with a Reason on both legs (§10).

use teamsgw_sip::Message;
use teamsgw_sip::message::Method;
use teamsgw_sip::transaction::TxId;

use super::cause::{EndCause, Side};
use super::core::Ctx;
use super::session_timer::{SessionTimer, TooSmall, min_se};
use super::state::{Call, Leg, Phase};

/// Our refresh re-INVITE on one leg.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub leg: Leg,
    pub tx: TxId,
    /// Its CSeq number, for the ACK of each 2xx.
    pub seq: u32,
    pub answered: bool,
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

    fn side_of(&self, leg: Leg) -> Side {
        match leg {
            Leg::Inbound => self.inbound_side(),
            Leg::Outbound => self.outbound_side(),
        }
    }

    /// The description we gave this leg last: a refresh repeats it, same version (RFC 3264 §8).
    fn last_sdp(&self, leg: Leg) -> Option<String> {
        match leg {
            Leg::Inbound => self.last_inbound_sdp.clone(),
            Leg::Outbound => self.last_outbound_sdp.clone(),
        }
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

    /// A re-INVITE or UPDATE from this leg's peer: a refresh, answered here.
    pub(super) fn on_peer_refresh(&mut self, ctx: &mut Ctx<'_>, leg: Leg, tx: TxId, msg: &Message) {
        // An UPDATE without an offer is answered without one (RFC 3311 §5.2).
        let sdp = if msg.method() == Some(Method::Update) && msg.body().is_empty() {
            None
        } else {
            match self.last_sdp(leg) {
                Some(s) => Some(s),
                None => {
                    self.answer(ctx, leg, tx, msg, 488, "Not Acceptable Here", None);
                    return;
                }
            }
        };
        let ours = self.timer(leg).map(|t| t.interval);
        match SessionTimer::as_uas(msg, ours, ctx.now) {
            Err(TooSmall(min)) => {
                let extra = [("Min-SE", min.as_secs().to_string())];
                let status = (422, "Session Interval Too Small");
                self.answer_with(ctx, leg, tx, msg, status, None, &extra);
                return;
            }
            Ok(Some(t)) => match leg {
                Leg::Inbound => self.inbound_timer = Some(t),
                Leg::Outbound => self.outbound_timer = Some(t),
            },
            Ok(None) => {}
        }
        let headers = self.timer_headers(leg);
        self.answer_with(ctx, leg, tx, msg, (200, "OK"), sdp.as_deref(), &headers);
    }

    fn timers_run(&self) -> bool {
        matches!(self.phase, Phase::Answered | Phase::Confirmed)
    }

    /// The next refresh to send, or the time a peer's refresh is overdue.
    pub(super) fn session_deadline(&self) -> Option<std::time::Instant> {
        if !self.timers_run() {
            return None;
        }
        let in_flight = self.refresh.as_ref().filter(|r| !r.answered).map(|r| r.leg);
        [Leg::Inbound, Leg::Outbound]
            .into_iter()
            .filter_map(|leg| {
                let t = self.timer(leg)?;
                // While our refresh is in flight its transaction times out, not the timer.
                (!(t.we_refresh && in_flight == Some(leg))).then(|| t.deadline())
            })
            .min()
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
            if t.we_refresh {
                if self.refresh.as_ref().is_none_or(|r| r.answered) {
                    self.send_refresh(ctx, leg);
                }
            } else {
                let side = self.side_of(leg);
                tracing::warn!(call_id = %self.log_id(), side = side.as_str(), "session expired: no refresh (RFC 4028 §10)");
                self.hangup(ctx, EndCause::SessionExpired(side), None);
                return;
            }
        }
    }

    fn send_refresh(&mut self, ctx: &mut Ctx<'_>, leg: Leg) {
        let Some(t) = self.timer(leg) else { return };
        let extra = [
            ("Session-Expires", t.refresh_header()),
            ("Supported", "timer".to_owned()),
        ];
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
        self.refresh = Some(Refresh {
            leg,
            tx,
            seq,
            answered: false,
        });
    }

    /// A response to our refresh re-INVITE.
    pub(super) fn on_refresh_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let (Some(r), Some(status)) = (self.refresh.as_mut(), msg.status()) else {
            return;
        };
        let (leg, seq) = (r.leg, r.seq);
        match status {
            100..=199 => {}
            200..=299 => {
                r.answered = true;
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
                let now = ctx.now;
                if let Some(t) = self.timer_mut(leg) {
                    // The 2xx may set another interval or refresher (RFC 4028 §7.2).
                    *t = SessionTimer::as_uac(msg, t.interval, now);
                }
            }
            491 => {
                // RFC 3261 §14.1: glare; the same refresh again after a random wait.
                self.refresh = None;
                let at = ctx.now + ctx.random_wait(std::time::Duration::from_secs(2));
                if let Some(t) = self.timer_mut(leg) {
                    t.retry_at(at);
                }
            }
            _ => self.on_refresh_failed(ctx),
        }
    }

    /// Our refresh was refused, timed out or could not be sent: the session is over (§10).
    pub(super) fn on_refresh_failed(&mut self, ctx: &mut Ctx<'_>) {
        let Some(r) = self.refresh.take() else { return };
        let side = self.side_of(r.leg);
        tracing::warn!(call_id = %self.log_id(), side = side.as_str(), "session refresh failed");
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
