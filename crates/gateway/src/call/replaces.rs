//! INVITE with Replaces from Teams (RFC 3891; teams-direct-routing.md §3.7): a consultative
//! transfer or a call park pickup. The new dialog takes the place of the call's Teams leg:
//! we answer it from the anchor the call already has (same address, port and key, §3.5),
//! the relay moves to the new peer's media and key, and the replaced dialog ends with BYE
//! (§3). The PBX leg keeps its dialog and hears nothing, unless the replaced leg had it on
//! hold (a parked call): then it hears the resume.
//!
//! Which dialog is named, and the answers for one we do not hold, are the core's
//! (`core/admission.rs`); here the named call decides whether it can be replaced now.

use teamsgw_sip::Message;
use teamsgw_sip::dialog::Dialog;
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::Source;

use super::core::Ctx;
use super::inbound::Inbound;
use super::session_timer::{SessionTimer, TooSmall};
use super::state::{Call, Leg, Phase};

/// Why the named call cannot be replaced now: the new INVITE's answer, the call unchanged.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub why: String,
    /// `Min-SE` for a 422 (RFC 4028 §8.1).
    pub min_se: Option<u64>,
}

impl Refusal {
    pub fn new(status: u16, reason: &'static str, why: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            why: why.into(),
            min_se: None,
        }
    }
}

impl Call {
    /// The new INVITE `request` (server transaction `tx`, from `source`) replaces this call's
    /// Teams leg, or is refused with the call left as it was.
    pub(super) fn replace_teams_leg(
        &mut self,
        ctx: &mut Ctx<'_>,
        tx: TxId,
        request: &Message,
        source: Source,
    ) -> Result<(), Refusal> {
        let teams = self.teams_leg();
        if self.phase != Phase::Confirmed {
            // §3: an early dialog Teams opened gets 481. One we opened (a call still ringing
            // in Teams) could be answered by the new INVITE; that pickup is not built.
            return Err(match teams {
                Leg::Inbound => Refusal::new(
                    481,
                    "Call/Transaction Does Not Exist",
                    "Replaces names an early dialog we did not initiate (RFC 3891 §3)",
                ),
                Leg::Outbound => Refusal::new(
                    403,
                    "Forbidden",
                    "replacing a call that is still ringing in Teams is not supported",
                ),
            });
        }
        if self.transfer.is_some() || self.reinvite.as_ref().is_some_and(|r| !r.answered) {
            return Err(Refusal::new(
                491,
                "Request Pending",
                "a transfer or re-INVITE is in progress on the replaced call",
            ));
        }
        if request.body().is_empty() {
            return Err(Refusal::new(
                488,
                "Not Acceptable Here",
                "an SDP offer is required (teams-direct-routing.md §3.3)",
            ));
        }
        let tag = ctx.local_tag();
        let dialog = Dialog::uas(request, &tag)
            .map_err(|e| Refusal::new(400, "Bad Request", format!("no dialog: {e}")))?;
        // Teams' timer offer is honoured as on a new call (RFC 4028 §8.1).
        let timer = SessionTimer::as_uas(request, None, ctx.now).map_err(|TooSmall(min)| {
            let mut r = Refusal::new(
                422,
                "Session Interval Too Small",
                format!("Session-Expires below {} s (RFC 4028 §8.1)", min.as_secs()),
            );
            r.min_se = Some(min.as_secs());
            r
        })?;
        let (answer, hold) = self
            .sdp
            .offer_from_replacing_leg(request.body())
            .map_err(|e| Refusal::new(488, "Not Acceptable Here", format!("SDP: {}", e.reason)))?;

        // §3: the replaced dialog ends; its peer is the one Teams moved away from.
        ctx.dialog(self.teams_dialog_key(), false);
        match teams {
            Leg::Inbound => {
                self.bye_inbound(ctx, None);
                let profile = self.inbound.profile.clone();
                self.inbound = Inbound::new(profile, tx, request.clone(), source, tag);
                self.inbound_timer = timer;
                let headers = self.timer_headers(teams);
                let timers = ctx.settings.timers;
                self.inbound
                    .accept(ctx.layer, &timers, Some(&answer), &headers, ctx.now);
                self.last_inbound_sdp = Some(answer);
            }
            Leg::Outbound => {
                self.bye_outbound(ctx, None);
                // We answer as UAS on a leg we had called: Teams is TLS, so the 2xx is not
                // retransmitted (RFC 3261 §13.3.1.4) and its ACK only confirms the dialog.
                let profile = self.outbound.profile.clone();
                let mut uas = Inbound::new(profile, tx, request.clone(), source.clone(), tag);
                self.outbound_timer = timer;
                let headers = self.timer_headers(teams);
                let timers = ctx.settings.timers;
                uas.accept(ctx.layer, &timers, Some(&answer), &headers, ctx.now);
                self.outbound.adopt(dialog, source);
                self.last_outbound_sdp = Some(answer);
            }
        }
        ctx.dialog(self.teams_dialog_key(), true);
        let replacing = String::from_utf8_lossy(request.call_id().unwrap_or_default()).into_owned();
        ctx.correlate(&replacing, &self.id);
        self.apply_media(ctx);
        ctx.transfer_event("replaces", "completed");
        tracing::info!(call_id = %self.log_id(), replaced_by = %String::from_utf8_lossy(request.call_id().unwrap_or_default()), "Teams leg replaced (RFC 3891)");
        if let Some(hold) = hold {
            self.pass_hold(ctx, Self::other(teams), hold);
        }
        Ok(())
    }

    /// (Call-ID, our tag) of the Teams leg's dialog.
    pub(super) fn teams_dialog_key(&self) -> (Vec<u8>, Vec<u8>) {
        let [inbound, outbound] = self.dialog_keys();
        match self.teams_leg() {
            Leg::Inbound => inbound,
            Leg::Outbound => outbound,
        }
    }
}
