//! Transfer to a number (teams-direct-routing.md §3.7): a Refer-To with a user part names a
//! phone number or extension, and the PBX's rules decide where that goes. So the transfer is
//! handed to the PBX: our REFER on the PBX leg with `Refer-To: sip:<number>@<pbx domain>`
//! (RFC 3515), sent as the Teams user's registered device, and every NOTIFY the PBX sends on
//! it reaches Teams as ours, on Teams' REFER subscription. The transferee (the PBX's party)
//! then calls the target itself; once the PBX reports success, both our legs end (RFC 5589
//! §6: the transferor ends its dialog).
//!
//! A PBX that takes no REFER at all (403, 405, 501) gets the transfer as a call we place
//! ourselves (`bridge_transfer.rs`); any other refusal leaves the call as it was, and Teams
//! hears it in a final NOTIFY.

use std::time::{Duration, Instant};

use teamsgw_sip::Message;
use teamsgw_sip::transaction::TxId;

use super::cause::{EndCause, Side};
use super::core::Ctx;
use super::state::{Call, Leg};
use super::transfer::Progress;

/// Our REFER on the PBX leg, and what became of it.
#[derive(Debug)]
pub struct PbxRefer {
    /// The REFER's transaction, until its final response.
    pub tx: Option<TxId>,
    /// The number, for our own call to it when the PBX takes no REFER.
    pub number: String,
    /// The transferor hung up after our 202 (siphon-sip#220): nobody to notify; the PBX
    /// leg stays until the PBX's final NOTIFY.
    pub transferor_gone: bool,
    /// When the implicit subscription ends without a final NOTIFY (RFC 3515 §2.4.6).
    pub expires: Instant,
}

/// How long the PBX's NOTIFYs may take: the `expires` we announce to Teams, renewed by each
/// NOTIFY that keeps the subscription active.
const SUBSCRIPTION: Duration = Duration::from_secs(60);

/// A number a PBX can dial: digits, `+`, `*`, `#`.
pub(super) fn dialable(user: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(user).ok()?;
    let ok = !text.is_empty()
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'*' || b == b'#' || (b == b'+' && i == 0));
    ok.then_some(text)
}

impl Call {
    pub(super) fn pbx_leg(&self) -> Leg {
        Self::other(self.teams_leg())
    }

    /// Teams asked to transfer the PBX's party to `number`; our 202 and NOTIFY 100 went out.
    pub(super) fn refer_to_pbx(&mut self, ctx: &mut Ctx<'_>, number: &str) {
        let target = self.pbx.uri(number);
        let headers = [
            ("Refer-To", format!("<{target}>")),
            (
                "Referred-By",
                format!("<sip:{}@{}>", self.user.extension, self.pbx.domain),
            ),
        ];
        let tx = self.request_on(ctx, self.pbx_leg(), "REFER", &headers, None);
        if let Some(tx) = tx {
            ctx.own(tx);
            self.txs.push(tx);
        }
        tracing::info!(call_id = %self.log_id(), target = %target, "transfer to a number: REFER to the PBX");
        self.pbx_refer = Some(PbxRefer {
            tx,
            number: number.to_owned(),
            transferor_gone: false,
            expires: ctx.now + SUBSCRIPTION,
        });
        if tx.is_none() {
            self.pbx_refer_ended(ctx, 500, "Server Internal Error");
        }
    }

    pub(super) fn is_pbx_refer_tx(&self, tx: TxId) -> bool {
        self.pbx_refer.as_ref().is_some_and(|r| r.tx == Some(tx))
    }

    /// The PBX's answer to our REFER: 2xx, and its NOTIFYs tell the rest (RFC 3515 §2.4.2);
    /// anything else ends the transfer with that status.
    pub(super) fn on_pbx_refer_response(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let Some(status) = msg.status() else { return };
        if status < 200 {
            return;
        }
        if let Some(r) = self.pbx_refer.as_mut() {
            r.tx = None;
        }
        if status >= 300 && super::bridge_transfer::takes_no_refer(status) {
            tracing::info!(call_id = %self.log_id(), status, "transfer to a number: the PBX takes no REFER");
            if let Some(r) = self.pbx_refer.take() {
                self.call_transfer_target(ctx, &r.number, r.transferor_gone);
            }
        } else if status >= 300 {
            let reason = String::from_utf8_lossy(msg.reason_phrase().unwrap_or_default());
            tracing::info!(call_id = %self.log_id(), status, "transfer to a number: the PBX refused REFER");
            self.pbx_refer_ended(ctx, status, &reason);
        }
    }

    /// The PBX never sent its final NOTIFY: the transfer failed as far as Teams can know,
    /// and the call stays as it is.
    pub(super) fn on_pbx_refer_expired(&mut self, ctx: &mut Ctx<'_>) {
        tracing::info!(call_id = %self.log_id(), "transfer to a number: no final NOTIFY from the PBX");
        self.pbx_refer_ended(ctx, 408, "Request Timeout");
    }

    /// No answer to our REFER (Timer F) or a transport failure.
    pub(super) fn on_pbx_refer_timeout(&mut self, ctx: &mut Ctx<'_>) {
        self.pbx_refer_ended(ctx, 408, "Request Timeout");
    }

    /// A NOTIFY from the PBX on our REFER's subscription: answered, and passed to Teams.
    pub(super) fn on_pbx_notify(&mut self, ctx: &mut Ctx<'_>, leg: Leg, tx: TxId, msg: &Message) {
        self.answer(ctx, leg, tx, msg, 200, "OK", None);
        let terminated = msg
            .other_header("Subscription-State")
            .next()
            .is_some_and(|s| s.to_ascii_lowercase().starts_with(b"terminated"));
        let frag = String::from_utf8_lossy(msg.body()).into_owned();
        let gone = self.pbx_refer.as_ref().is_some_and(|r| r.transferor_gone);
        if let Some(r) = self.pbx_refer.as_mut() {
            r.expires = ctx.now + SUBSCRIPTION;
        }
        if !gone {
            self.notify(
                ctx,
                Progress::Relayed {
                    frag: &frag,
                    terminated,
                },
            );
        }
        // RFC 5589 §6: the transferor ends its dialog once the transfer succeeded; we are
        // the PBX party's transferor, and the call has nobody left.
        let succeeded = frag.starts_with("SIP/2.0 2");
        if terminated {
            self.pbx_refer = None;
            let result = if succeeded { "completed" } else { "failed" };
            ctx.transfer_event("number", result);
            if gone || succeeded {
                self.end_transferred(ctx, gone);
            }
        }
    }

    /// The transfer ended without the PBX's NOTIFYs: Teams hears `status`, the call stays.
    fn pbx_refer_ended(&mut self, ctx: &mut Ctx<'_>, status: u16, reason: &str) {
        let Some(r) = self.pbx_refer.take() else {
            return;
        };
        ctx.transfer_event("number", "failed");
        if r.transferor_gone {
            self.end_transferred(ctx, true);
        } else {
            self.notify(ctx, Progress::Final(status, reason));
        }
    }

    /// The PBX is done with the transfer, and the call with it: our PBX leg ends, and the
    /// Teams leg too unless the transferor already left.
    fn end_transferred(&mut self, ctx: &mut Ctx<'_>, teams_gone: bool) {
        let why = r#"SIP;cause=200;text="transferred""#;
        self.pbx_refer = None;
        let pbx = self.pbx_leg();
        for leg in [Leg::Inbound, Leg::Outbound] {
            if teams_gone && leg != pbx {
                continue;
            }
            match leg {
                Leg::Inbound => self.bye_inbound(ctx, Some(why)),
                Leg::Outbound => self.bye_outbound(ctx, Some(why)),
            }
        }
        let status = self.inbound.final_status.unwrap_or(200);
        self.finish(EndCause::HungUp(Side::Teams), status, Some(Side::Teams));
    }
}
