//! Transfers (teams-direct-routing.md §3.7). With REFER in our Allow, Teams is the Transferor
//! (RFC 5589 §6) and teamsgw, standing for the party on the PBX side, is the Transferee: it
//! calls the Refer-To target itself, reports progress with NOTIFY on the REFER's implicit
//! subscription (RFC 3515 §2.4.4), and once the target answers moves the Teams side of the
//! media to it and ends the old Teams leg. The PBX leg never notices: same address, same
//! dialog, no re-INVITE.
//!
//! A REFER from the PBX is refused with 403 (see [`Call::on_refer`] for why).

use teamsgw_sip::Message;
use teamsgw_sip::message::{Host, Uri};
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::{Target, Transport};

use super::cause::{EndCause, Side};
use super::core::Ctx;
use super::outbound::{InviteTemplate, MAX_FORWARDS, Outbound};
use super::session_timer::SessionTimer;
use super::setup;
use super::state::{Call, Leg, Phase};
use crate::stateless::warning;

/// A transfer in progress: the new Teams leg being called.
pub struct Transfer {
    pub leg: Outbound,
    /// Our offer to the target (the call's Teams-facing anchor).
    offer: String,
    proxy: String,
    /// The transferor hung up after our 202 (siphon-sip#220): nobody to notify, and the
    /// transferred party stays until the target answers or refuses.
    pub transferor_gone: bool,
}

/// `message/sipfrag` status lines and the subscription they end (RFC 3515 §2.4.5).
pub(super) enum Progress<'a> {
    Trying,
    Final(u16, &'a str),
    /// The PBX's own NOTIFY body, passed on (a transfer to a number).
    Relayed {
        frag: &'a str,
        terminated: bool,
    },
}

impl Call {
    /// REFER inside the call. From Teams: the transfer above. From the PBX: 403. Accepting
    /// would make teamsgw place, as the Teams user's registered device, a call the user never
    /// dialled; a hosted PBX transfers its own parties itself (it holds both of them), and
    /// the 403 tells it to.
    pub(super) fn on_refer(&mut self, ctx: &mut Ctx<'_>, leg: Leg, tx: TxId, msg: &Message) {
        let refuse = |call: &Call, ctx: &mut Ctx<'_>, status: (u16, &str), why: &str| {
            let extra = [
                (
                    "Reason",
                    format!("SIP;cause={};text=\"{}\"", status.0, why.replace('"', "'")),
                ),
                ("Warning", warning(why)),
            ];
            call.answer_with(ctx, leg, tx, msg, status, None, &extra);
        };
        if self.side_of(leg) == Side::Pbx {
            let why =
                "teamsgw does not take transfers from the PBX; the PBX transfers its own parties";
            refuse(self, ctx, (403, "Forbidden"), why);
            return;
        }
        if self.phase != Phase::Confirmed || self.transferring() {
            refuse(
                self,
                ctx,
                (491, "Request Pending"),
                "a transfer is in progress",
            );
            return;
        }
        // RFC 3515 §2.4.1: exactly one Refer-To, else 400.
        let target = match msg.refer_to() {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                refuse(self, ctx, (400, "Bad Refer-To"), &format!("Refer-To: {e}"));
                return;
            }
            None => {
                refuse(
                    self,
                    ctx,
                    (400, "Missing Refer-To"),
                    "no Refer-To (RFC 3515 §2.4.1)",
                );
                return;
            }
        };
        let Uri::Sip(uri) = target.uri else {
            refuse(self, ctx, (403, "Forbidden"), "Refer-To is not a SIP URI");
            return;
        };
        if let Some(user) = uri.user {
            // A number or extension: the PBX's rules decide (`pbx_transfer.rs`).
            let Some(number) = super::pbx_transfer::dialable(user) else {
                let why = "Refer-To user part is not a number";
                refuse(self, ctx, (403, "Forbidden"), why);
                return;
            };
            let number = number.to_owned();
            self.answer(ctx, leg, tx, msg, 202, "Accepted", None);
            self.notify(ctx, Progress::Trying);
            self.refer_to_pbx(ctx, &number);
            return;
        }
        let Host::Name(host) = uri.host else {
            refuse(
                self,
                ctx,
                (403, "Forbidden"),
                "Refer-To host is not a Teams proxy",
            );
            return;
        };
        // The target's host is a Teams proxy; go to it as configured, else to the first one.
        let proxy = ctx
            .proxies
            .iter()
            .filter(|p| p.addr.is_some())
            .find(|p| p.name.eq_ignore_ascii_case(host))
            .or_else(|| ctx.proxies.iter().find(|p| p.addr.is_some()));
        let Some((name, addr)) = proxy.and_then(|p| Some((p.name.clone(), p.addr?))) else {
            refuse(
                self,
                ctx,
                (503, "Service Unavailable"),
                "no Teams proxy to call the target at",
            );
            return;
        };
        // The Request-URI and To are the Refer-To URI, copied as it is: any `?headers` (a
        // Replaces above all, §3.2) stay out.
        let raw = String::from_utf8_lossy(target.uri_raw);
        let request_uri = raw.split('?').next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        if let Some(by) = msg.header(teamsgw_sip::HeaderName::ReferredBy) {
            headers.push(("Referred-By", String::from_utf8_lossy(by).into_owned()));
        }
        headers.extend(setup::session_timer_offer(ctx.settings));
        let fqdn = self.tenant.fqdn.clone();
        // The transferred party: whoever is on the PBX side of this call.
        let party = match self.direction {
            super::Direction::ToTeams => self.caller.clone(),
            super::Direction::FromTeams => self.callee.clone(),
        };
        let offer = self.sdp.offer_to_new_teams_leg();
        let template = InviteTemplate {
            max_forwards: MAX_FORWARDS,
            uri: request_uri.clone(),
            from: format!("<sip:{party}@{fqdn};user=phone>"),
            to: format!("<{request_uri}>"),
            headers,
            sdp: Some(offer.clone()),
            parts: None,
        };
        let profile = setup::teams_profile(ctx.settings, &fqdn, self.tenant.port, None);
        let call_id = format!("{}-c{}@teamsgw", ctx.token(), ctx.settings.shard);
        let target = Target {
            transport: Transport::Tls,
            addr,
            server_name: Some(name.clone()),
        };
        ctx.correlate(&call_id, &self.id);
        let mut new_leg = Outbound::new(profile, target, call_id, ctx.token(), template, None);
        self.answer(ctx, leg, tx, msg, 202, "Accepted", None);
        self.notify(ctx, Progress::Trying);
        let branch = ctx.branch();
        if let Some(tx) = new_leg.send_invite(ctx.layer, &branch, ctx.now) {
            ctx.own(tx);
            self.txs.push(tx);
        }
        tracing::info!(call_id = %self.log_id(), target = %request_uri, "transfer: calling the target");
        self.transfer = Some(Box::new(Transfer {
            leg: new_leg,
            offer,
            proxy: name,
            transferor_gone: false,
        }));
    }

    pub(super) fn is_transfer_tx(&self, tx: TxId) -> bool {
        self.transfer.as_ref().is_some_and(|t| t.leg.tx == Some(tx))
    }

    /// A response to the new Teams leg's INVITE.
    pub(super) fn on_transfer_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let Some(status) = msg.status() else { return };
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        t.leg.heard = true;
        match status {
            100 => {}
            101..=199 => {
                t.leg.provisional = true;
                t.leg.track(msg);
            }
            200..=299 => self.transfer_answered(ctx, msg),
            _ => {
                let reason = String::from_utf8_lossy(msg.reason_phrase().unwrap_or_default());
                self.transfer_failed(ctx, status, &reason);
            }
        }
    }

    /// Timer B or a transport failure on the new leg's INVITE.
    pub(super) fn on_transfer_timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.transfer_failed(ctx, 408, "Request Timeout");
    }

    fn transfer_answered(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let Some(mut t) = self.transfer.take() else {
            return;
        };
        t.leg.provisional = true;
        let Some(mut dialog) = t.leg.track(msg) else {
            self.transfer = Some(t);
            return;
        };
        let branch = ctx.branch();
        t.leg.ack(ctx.layer, &dialog, &branch);
        if let Err(e) = self.sdp.new_teams_leg_answered(msg.body(), t.offer.clone()) {
            let branch = ctx.branch();
            let reason = r#"SIP;cause=488;text="SDP not acceptable""#;
            t.leg
                .bye(ctx.layer, &mut dialog, &branch, Some(reason), ctx.now);
            tracing::warn!(call_id = %self.log_id(), reason = %e.reason, "transfer: target's SDP refused");
            self.transfer = Some(t);
            self.transfer_failed(ctx, 488, "Not Acceptable Here");
            return;
        }
        self.apply_media(ctx);
        let teams = self.teams_leg();
        // Tell the transferor, then end its leg (§3.7: "then BYEs the old Teams leg").
        if !t.transferor_gone {
            self.transfer = Some(t);
            self.notify(ctx, Progress::Final(200, "OK"));
            let Some(back) = self.transfer.take() else {
                return;
            };
            t = back;
            match teams {
                Leg::Inbound => self.bye_inbound(ctx, None),
                Leg::Outbound => self.bye_outbound(ctx, None),
            }
        }
        // The new leg is the call's Teams leg from now on.
        ctx.dialog(self.teams_dialog_key(), false);
        let timer = SessionTimer::as_uac(msg, ctx.settings.session_expires, ctx.now);
        match teams {
            Leg::Inbound => {
                self.inbound.adopt(dialog, t.leg.target.clone());
                self.inbound_timer = Some(timer);
                self.last_inbound_sdp = Some(t.offer);
            }
            Leg::Outbound => {
                t.leg.confirmed = Some(dialog);
                self.outbound = t.leg;
                self.outbound_timer = Some(timer);
                self.last_outbound_sdp = Some(t.offer);
            }
        }
        ctx.dialog(self.teams_dialog_key(), true);
        self.proxy = Some(t.proxy);
        ctx.transfer_event("teams_user", "completed");
        tracing::info!(call_id = %self.log_id(), "transfer: completed");
    }

    /// The target refused (or never answered): the call stays as it was, and the
    /// transferor hears why; with the transferor gone, the call ends.
    fn transfer_failed(&mut self, ctx: &mut Ctx<'_>, status: u16, reason: &str) {
        let Some(t) = self.transfer.as_ref() else {
            return;
        };
        tracing::info!(call_id = %self.log_id(), status, "transfer: target refused");
        ctx.transfer_event("teams_user", "failed");
        if t.transferor_gone {
            self.transfer = None;
            self.end_transfer_refused(ctx, status);
            return;
        }
        self.notify(ctx, Progress::Final(status, reason));
        self.transfer = None;
    }

    /// A transfer failed after the transferor left: nobody is left on the Teams side, so the
    /// PBX leg ends too, with the target's status as the Reason.
    pub(super) fn end_transfer_refused(&mut self, ctx: &mut Ctx<'_>, status: u16) {
        let why = format!("SIP;cause={status};text=\"transfer target refused\"");
        match Self::other(self.teams_leg()) {
            Leg::Inbound => self.bye_inbound(ctx, Some(&why)),
            Leg::Outbound => self.bye_outbound(ctx, Some(&why)),
        }
        let status = self.inbound.final_status.unwrap_or(200);
        self.finish(EndCause::HungUp(Side::Teams), status, Some(Side::Teams));
    }

    /// The transferor's BYE while the target is being called: answered, and the transfer
    /// goes on (siphon-sip#220). Its session timer goes with it.
    pub(super) fn transferor_left(&mut self, ctx: &mut Ctx<'_>, leg: Leg, tx: TxId, msg: &Message) {
        self.answer(ctx, leg, tx, msg, 200, "OK", None);
        if let Some(t) = self.transfer.as_mut() {
            t.transferor_gone = true;
        }
        if let Some(r) = self.pbx_refer.as_mut() {
            r.transferor_gone = true;
        }
        if let Some(c) = self.pbx_call.as_mut() {
            c.transferor_gone = true;
        }
        match leg {
            Leg::Inbound => self.inbound_timer = None,
            Leg::Outbound => self.outbound_timer = None,
        }
    }

    pub(super) fn transferor_is_gone(&self) -> bool {
        self.transfer.as_ref().is_some_and(|t| t.transferor_gone)
            || self.pbx_refer.as_ref().is_some_and(|r| r.transferor_gone)
            || self.pbx_call.as_ref().is_some_and(|c| c.transferor_gone)
    }

    /// A transfer Teams asked for is under way, in any of its forms.
    pub(super) fn transferring(&self) -> bool {
        self.transfer.is_some() || self.pbx_refer.is_some() || self.pbx_call.is_some()
    }

    /// The call ends while the target is being called: the new leg is cancelled.
    pub(super) fn abandon_transfer(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut t) = self.transfer.take() {
            t.leg.cancel(ctx.layer, ctx.now);
        }
        self.abandon_pbx_call(ctx);
    }

    /// NOTIFY on the REFER's implicit subscription (RFC 3515 §2.4.4, §2.4.5), in the
    /// transferor's dialog.
    pub(super) fn notify(&mut self, ctx: &mut Ctx<'_>, progress: Progress<'_>) {
        let (frag, state) = match progress {
            Progress::Trying => ("SIP/2.0 100 Trying\r\n".to_owned(), "active;expires=60"),
            Progress::Final(status, reason) => (
                format!("SIP/2.0 {status} {reason}\r\n"),
                "terminated;reason=noresource",
            ),
            Progress::Relayed { frag, terminated } => (
                frag.to_owned(),
                if terminated {
                    "terminated;reason=noresource"
                } else {
                    "active;expires=60"
                },
            ),
        };
        let headers = [
            ("Event", "refer".to_owned()),
            ("Subscription-State", state.to_owned()),
        ];
        let body = ("message/sipfrag;version=2.0", frag.as_bytes());
        self.request_on(ctx, self.teams_leg(), "NOTIFY", &headers, Some(body));
    }

    /// Sends our request `method` inside `leg`'s dialog, with our Via and Contact.
    pub(super) fn request_on(
        &mut self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        method: &str,
        headers: super::inbound::Extra<'_>,
        body: Option<(&str, &[u8])>,
    ) -> Option<TxId> {
        let branch = ctx.branch();
        let (dialog, profile) = match leg {
            Leg::Inbound => (self.inbound.dialog.as_mut(), &self.inbound.profile),
            Leg::Outbound => (self.outbound.confirmed.as_mut(), &self.outbound.profile),
        };
        let mut b = dialog?
            .request(method)
            .header("Via", profile.via(&branch))
            .header("Contact", &profile.contact);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        let b = profile.add_headers(b);
        let data = match body {
            Some((ctype, body)) => b.body(Some(ctype), body),
            None => b.finish(),
        };
        let msg = Message::parse(data).ok()?;
        match leg {
            Leg::Inbound => self.inbound.send(ctx.layer, msg, ctx.now),
            Leg::Outbound => self.outbound.send(ctx.layer, msg, ctx.now),
        }
    }
}
