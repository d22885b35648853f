//! Admission of a new INVITE: routing it, the session timer, the direct route's call limit,
//! media ports and the offer, each refusal releasing what the earlier steps took; and the
//! INVITE with Replaces, which never starts a call of its own.

use std::time::Instant;

use teamsgw_sip::Message;
use teamsgw_sip::message::HeaderName;
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::Source;

use super::{CallCore, Handle, Slot};
use crate::call::body_parts;
use crate::call::inbound::Inbound;
use crate::call::media::MediaPlane;
use crate::call::outbound::Outbound;
use crate::call::replaces::Refusal;
use crate::call::routing::Rejection;
use crate::call::sdp_bridge::SdpBridge;
use crate::call::session_timer::{SessionTimer, TooSmall};
use crate::call::setup;
use crate::call::state::{Call, Phase};
use crate::call::{CallEvent, Direction, Output};
use crate::stateless::warning;

impl<M: MediaPlane> CallCore<M> {
    /// An INVITE with Replaces (RFC 3891) never starts a call of its own: it takes the place
    /// of the Teams leg it names (`call/replaces.rs`), or gets the RFC's answer: 400 for a
    /// bad or second Replaces, 481 for no such dialog, 486 for `early-only` against a
    /// confirmed one (§3).
    pub(super) fn on_replaces(
        &mut self,
        now: Instant,
        tx: TxId,
        message: &Message,
        source: Source,
    ) {
        let named = match message.replaces() {
            _ if message.values(HeaderName::Replaces).count() > 1 => Err(Refusal::new(
                400,
                "Bad Request",
                "more than one Replaces (RFC 3891 §3)",
            )),
            Some(Err(e)) => Err(Refusal::new(400, "Bad Replaces", format!("Replaces: {e}"))),
            None => return,
            Some(Ok(r)) => {
                let key = (r.call_id.to_vec(), r.to_tag.to_vec());
                let named = self.by_dialog.get(&key).copied().filter(|&h| {
                    // §3: the to-tag is our tag, the from-tag the peer's; a dialog with Teams
                    // only, from Teams (the PBX leg's identifiers never reach Teams).
                    self.call(h).is_some_and(|call| {
                        let tag = String::from_utf8_lossy(r.to_tag);
                        let teams = call.teams_leg();
                        source.listener != "pbx"
                            && call.leg_of(&tag) == Some(teams)
                            && call.is_remote_tag(teams, r.from_tag)
                    })
                });
                let confirmed = named
                    .and_then(|h| self.call(h))
                    .is_some_and(|c| c.phase == Phase::Confirmed);
                match named {
                    None => Err(Refusal::new(
                        481,
                        "Call/Transaction Does Not Exist",
                        "Replaces names no dialog of ours (RFC 3891 §3)",
                    )),
                    Some(_) if confirmed && r.early_only => Err(Refusal::new(
                        486,
                        "Busy Here",
                        "early-only, and the dialog is confirmed (RFC 3891 §3)",
                    )),
                    Some(h) => Ok(h),
                }
            }
        };
        let refusal = match named {
            Err(r) => Some(r),
            Ok(h) => {
                let mut outcome = None;
                self.with_call(h, now, |call, ctx| {
                    outcome = call.replace_teams_leg(ctx, tx, message, source).err();
                });
                outcome
            }
        };
        let Some(r) = refusal else { return };
        let mut extra = vec![("Warning", warning(&r.why))];
        if let Some(min) = r.min_se {
            extra.push(("Min-SE", min.to_string()));
        }
        self.stateless(now, tx, message, r.status, r.reason, &extra);
        self.refused("replaces");
        self.out.push_back(Output::Event(CallEvent::Transfer {
            kind: "replaces",
            result: "failed",
        }));
    }

    pub(super) fn new_call(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        source: Source,
    ) -> Result<Handle, Rejection> {
        let view = std::sync::Arc::clone(&self.view);
        let direction = if source.listener == "pbx" {
            Direction::ToTeams
        } else {
            Direction::FromTeams
        };
        let parts = match direction {
            Direction::FromTeams => setup::from_teams(&self.settings, &view, request, &source)?,
            Direction::ToTeams => setup::to_teams(&self.settings, &view, request, &source)?,
        };
        // RFC 4028 §8.1: a PBX that offers no timer gets ours; Teams' offer is honoured.
        let ours = (direction == Direction::ToTeams).then_some(self.settings.session_expires);
        let inbound_timer =
            SessionTimer::as_uas(request, ours, now).map_err(|TooSmall(min)| Rejection {
                status: 422,
                reason: "Session Interval Too Small",
                warning: format!("Session-Expires below {} s (RFC 4028 §8.1)", min.as_secs()),
                label: "session_interval",
            })?;
        // RFC 2046: a multipart body's SDP is negotiated, its other parts carried across.
        let (body, carried) = body_parts::split(request).map_err(|e| Rejection {
            status: 400,
            reason: "Bad Request",
            warning: e.to_string(),
            label: "bad_body",
        })?;
        let tenant = parts.tenant.clone();
        // An emergency call is counted but never refused for the direct route's limits.
        if !parts.emergency
            && !self
                .settings
                .rates
                .try_admit(&tenant.fqdn, tenant.max_cps, now)
        {
            return Err(setup::admission(
                "max_cps",
                format!(
                    "{} is over its limit of {} new calls per second",
                    tenant.fqdn,
                    tenant.max_cps.unwrap_or_default()
                ),
            ));
        }
        let limit = (!parts.emergency).then_some(tenant.max_sessions).flatten();
        if !self.settings.sessions.try_acquire(&tenant.fqdn, limit) {
            return Err(setup::admission(
                "max_sessions",
                format!("{} is at its limit of concurrent calls", tenant.fqdn),
            ));
        }
        let Some(media) = self.media.allocate() else {
            self.settings.sessions.release(&tenant.fqdn);
            return Err(setup::admission(
                "media_ports",
                "no free media ports".into(),
            ));
        };
        let mut sdp = SdpBridge::new(
            &self.settings.media_address,
            media.teams_port,
            media.pbx_port,
            media.local_key.clone(),
            self.rng.next_u64() >> 1,
            &parts.pbx_codecs,
        );
        let offer = match direction {
            Direction::FromTeams if body.is_empty() => Err(crate::call::sdp_bridge::unacceptable(
                "an SDP offer is required (teams-direct-routing.md §3.3)",
            )),
            Direction::FromTeams => sdp.offer_from_teams(body),
            Direction::ToTeams => sdp.offer_from_pbx((!body.is_empty()).then_some(body)),
        };
        let offer = match offer {
            Ok(o) => o,
            Err(e) => {
                self.media.release(media.session);
                self.settings.sessions.release(&tenant.fqdn);
                return Err(Rejection {
                    status: 488,
                    reason: "Not Acceptable Here",
                    warning: format!("SDP: {}", e.reason),
                    label: "bad_sdp",
                });
            }
        };
        let local_tag = self.rng.token();
        let call_id = format!("{}-c{}@teamsgw", self.rng.token(), self.settings.shard);
        let from_tag = self.rng.token();
        let location = carried.as_ref().is_some_and(|c| c.has_other_parts())
            || request.other_header("Geolocation").next().is_some();
        let mut template = parts.template;
        template.sdp = Some(offer.clone());
        template.parts = carried;
        let inbound = Inbound::new(
            parts.inbound,
            tx,
            request.clone(),
            source,
            local_tag.clone(),
        );
        let outbound = Outbound::new(
            parts.outbound,
            parts.target,
            call_id.clone(),
            from_tag.clone(),
            template,
            parts.credentials,
        );
        let session = media.session;
        let emergency = parts.emergency.then(|| {
            (
                tenant.enterprise.clone(),
                parts.caller.clone(),
                parts.callee.clone(),
            )
        });
        let call = Call {
            id: String::from_utf8_lossy(request.call_id().unwrap_or_default()).into_owned(),
            direction,
            phase: Phase::Proceeding,
            tenant,
            user: parts.user,
            pbx: parts.pbx,
            caller: parts.caller,
            callee: parts.callee,
            emergency: parts.emergency,
            inbound,
            outbound,
            sdp,
            media,
            proxies: parts.proxies,
            down_proxies: Vec::new(),
            last_resort: false,
            proxy: None,
            failovers: Vec::new(),
            attempt_deadline: None,
            no_answer_deadline: Some(now + self.settings.no_answer_timeout),
            terminating_deadline: None,
            started: now,
            ringing: None,
            answered: None,
            last_inbound_sdp: None,
            last_outbound_sdp: Some(offer),
            inbound_timer,
            outbound_timer: None,
            reinvite: None,
            queued: None,
            transfer: None,
            pbx_refer: None,
            pbx_call: None,
            bridged: None,
            media_released: None,
            end: None,
            scheduled: None,
            txs: vec![tx],
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    call: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.call = Some(call);
        let h = Handle {
            index,
            generation: slot.generation,
        };
        self.by_tx.insert(tx, h);
        let inbound_call_id = request.call_id().unwrap_or_default().to_vec();
        self.by_dialog
            .insert((inbound_call_id.clone(), local_tag.into_bytes()), h);
        self.by_dialog
            .insert((call_id.clone().into_bytes(), from_tag.into_bytes()), h);
        self.by_session.insert(session, h);
        if self.settings.correlate_legs {
            self.out.push_back(Output::Correlate {
                call_id,
                correlation: Some(String::from_utf8_lossy(&inbound_call_id).into_owned()),
            });
        }
        self.out
            .push_back(Output::Event(CallEvent::Started { direction }));
        if let Some((enterprise, caller, number)) = emergency {
            self.out.push_back(Output::Event(CallEvent::Emergency {
                enterprise,
                caller,
                number,
                location,
            }));
        }
        Ok(h)
    }
}
