//! The outbound INVITE of a call and what its responses do to the call: the Teams proxy
//! failover (§1.6), ringing and early media, the answer bridged to the caller, and failures
//! mapped for the caller. The call's state and its time are in `state.rs`.

use teamsgw_sip::Message;
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::Target;
use teamsgw_sip::transport::Transport;

use super::cause::EndCause;
use super::core::{Ctx, ProxyState};
use super::sdp_bridge::unacceptable;
use super::session_timer::SessionTimer;
use super::state::{Call, Leg, Phase};
use super::{CallEvent, Direction, Output};

/// Status codes on which an INVITE to Teams moves to the next proxy (§1.6).
fn fails_over(status: u16) -> bool {
    matches!(status, 408 | 503 | 504)
}

impl Call {
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
    pub(super) fn next_proxy(&mut self, ctx: &mut Ctx<'_>) {
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
    pub(super) fn fail_over(&mut self, ctx: &mut Ctx<'_>, cause: &'static str) {
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
                    // Bounded as trunk health bounds it: a peer's number never holds a proxy
                    // down for days.
                    retry_after: std::time::Duration::from_secs(u64::from(ra.seconds).min(3600)),
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
            // A 422 we could not meet (its Min-SE is above the day we keep) is the far leg's
            // refusal, not the caller's interval: a 422 to the caller would need a Min-SE
            // (RFC 4028 §6) the caller has already met.
            422 => (
                500,
                "Server Internal Error".to_owned(),
                EndCause::Rejected(422),
            ),
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
}
