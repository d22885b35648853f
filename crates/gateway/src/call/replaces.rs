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
        match self.phase {
            Phase::Confirmed => {}
            // §3: an early dialog Teams opened is not ours to replace.
            Phase::Proceeding | Phase::Early if teams == Leg::Inbound => {
                return Err(Refusal::new(
                    481,
                    "Call/Transaction Does Not Exist",
                    "Replaces names an early dialog we did not initiate (RFC 3891 §3)",
                ));
            }
            // §7.1: one we opened (our call still ringing in Teams) is picked up.
            Phase::Proceeding | Phase::Early => return self.pick_up(ctx, tx, request, source),
            Phase::Answered => {
                return Err(Refusal::new(
                    491,
                    "Request Pending",
                    "the replaced call is being answered",
                ));
            }
            Phase::Terminating | Phase::Done => {
                return Err(Refusal::new(
                    603,
                    "Decline",
                    "the replaced dialog has ended (RFC 3891 §3)",
                ));
            }
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
        let (tag, dialog, timer) = new_dialog(ctx, request)?;
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
                self.answer_on_outbound(ctx, tx, request, source, (tag, dialog, timer), answer);
            }
        }
        self.replaced(ctx, request);
        if let Some(hold) = hold {
            self.pass_hold(ctx, Self::other(teams), hold);
        }
        Ok(())
    }

    /// Our call still ringing in Teams is picked up by the new INVITE (RFC 3891 §7.1): its
    /// offer stands in for the answer the ringing dialog would have brought, the ringing
    /// INVITE is CANCELled ("call completed elsewhere", so no missed call shows there), and
    /// the PBX gets its 2xx as if Teams had answered.
    fn pick_up(
        &mut self,
        ctx: &mut Ctx<'_>,
        tx: TxId,
        request: &Message,
        source: Source,
    ) -> Result<(), Refusal> {
        if request.body().is_empty() {
            return Err(Refusal::new(
                488,
                "Not Acceptable Here",
                "an SDP offer is required (teams-direct-routing.md §3.3)",
            ));
        }
        let parts = new_dialog(ctx, request)?;
        let (answer, pbx) = self
            .sdp
            .picked_up(request.body())
            .map_err(|e| Refusal::new(488, "Not Acceptable Here", format!("SDP: {}", e.reason)))?;
        ctx.dialog(self.teams_dialog_key(), false);
        self.outbound.cancel_reason = Some(COMPLETED_ELSEWHERE.to_owned());
        self.outbound.cancel(ctx.layer, ctx.now);
        self.outbound.picked_up = self.outbound.tx.take();
        self.answer_on_outbound(ctx, tx, request, source, parts, answer);
        self.replaced(ctx, request);
        self.answer_caller(ctx, pbx);
        Ok(())
    }

    /// A response to the INVITE a pickup cancelled: a 2xx that crossed our CANCEL is a
    /// dialog nobody wants (RFC 3261 §15: acknowledged, then BYE); anything else ends it.
    pub(super) fn on_picked_up_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        match msg.status() {
            Some(200..=299) => {
                if let Some(mut dialog) = self.outbound.track(msg) {
                    let branch = ctx.branch();
                    self.outbound.ack(ctx.layer, &dialog, &branch);
                    let branch = ctx.branch();
                    let reason = Some(COMPLETED_ELSEWHERE);
                    self.outbound
                        .bye_at_target(ctx.layer, &mut dialog, &branch, reason, ctx.now);
                }
            }
            Some(101..=199) | None => {}
            Some(_) => self.outbound.picked_up = None,
        }
    }

    /// We answer the new INVITE as UAS on the leg we had called. Teams is TLS, so the 2xx is
    /// not retransmitted (RFC 3261 §13.3.1.4) and its ACK only confirms the dialog.
    fn answer_on_outbound(
        &mut self,
        ctx: &mut Ctx<'_>,
        tx: TxId,
        request: &Message,
        source: Source,
        (tag, dialog, timer): (String, Dialog, Option<SessionTimer>),
        answer: String,
    ) {
        let profile = self.outbound.profile.clone();
        let mut uas = Inbound::new(profile, tx, request.clone(), source.clone(), tag);
        self.outbound_timer = timer;
        let headers = self.timer_headers(Leg::Outbound);
        let timers = ctx.settings.timers;
        uas.accept(ctx.layer, &timers, Some(&answer), &headers, ctx.now);
        self.outbound.adopt(dialog, source);
        self.last_outbound_sdp = Some(answer);
    }

    /// The new dialog is the Teams leg's from now on: routed here, correlated, counted.
    fn replaced(&mut self, ctx: &mut Ctx<'_>, request: &Message) {
        ctx.dialog(self.teams_dialog_key(), true);
        let replacing = String::from_utf8_lossy(request.call_id().unwrap_or_default()).into_owned();
        ctx.correlate(&replacing, &self.id);
        self.apply_media(ctx);
        ctx.transfer_event("replaces", "completed");
        tracing::info!(call_id = %self.log_id(), replaced_by = %replacing, "Teams leg replaced (RFC 3891)");
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

/// RFC 3326 with the cause Q.850 leaves for a call answered elsewhere: Teams shows no missed
/// call on the phones that rang.
const COMPLETED_ELSEWHERE: &str = r#"SIP;cause=200;text="Call completed elsewhere""#;

/// Our side of the new INVITE's dialog: our tag, the dialog, and the session timer Teams
/// offered, honoured as on a new call (RFC 4028 §8.1; 422 below our minimum).
fn new_dialog(
    ctx: &mut Ctx<'_>,
    request: &Message,
) -> Result<(String, Dialog, Option<SessionTimer>), Refusal> {
    let tag = ctx.local_tag();
    let dialog = Dialog::uas(request, &tag)
        .map_err(|e| Refusal::new(400, "Bad Request", format!("no dialog: {e}")))?;
    let timer = SessionTimer::as_uas(request, None, ctx.now).map_err(|TooSmall(min)| {
        let mut r = Refusal::new(
            422,
            "Session Interval Too Small",
            format!("Session-Expires below {} s (RFC 4028 §8.1)", min.as_secs()),
        );
        r.min_se = Some(min.as_secs());
        r
    })?;
    Ok((tag, dialog, timer))
}
