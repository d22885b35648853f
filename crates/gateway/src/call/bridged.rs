//! A call whose Teams side was transferred to a number we called ourselves
//! (`bridge_transfer.rs`): both legs are now the PBX's parties, their media goes party to
//! party, and teamsgw stays in the signalling, as the B2BUA it is. Each leg is still
//! answered on its own terms: a session refresh (no offer, or the same SDP version) is
//! answered on its leg and never relayed; a real offer (a hold, a new address) goes to the
//! other party in our re-INVITE, and its answer comes back. Every description keeps its
//! dialog's own origin (RFC 3264 §8: one `o=` per dialog, its version counting up).

use bytes::Bytes;
use teamsgw_sip::Message;
use teamsgw_sip::message::Method;
use teamsgw_sip::transaction::TxId;
use teamsgw_sip::transport::Target;

use super::core::Ctx;
use super::reinvite::Purpose;
use super::state::{Call, Leg};

/// The signalling of a bridged call beyond its two dialogs.
pub struct Bridged {
    /// Our INVITE to the target, its address and our ACK: a retransmitted 2xx gets the
    /// same ACK again (RFC 3261 §13.2.2.4).
    pub target_tx: TxId,
    pub target: Target,
    pub target_ack: Bytes,
    /// The `o=` line each party sent last (by leg): the same again is a refresh.
    origins: [Option<String>; 2],
    relaying: Option<Relaying>,
}

/// A party's offer passed to the other party, until that one answers.
struct Relaying {
    from: Leg,
    tx: TxId,
    request: Message,
    origin: Option<String>,
    /// What the other party had from us before (restored when it refuses).
    previous: Option<String>,
}

fn slot(leg: Leg) -> usize {
    match leg {
        Leg::Inbound => 0,
        Leg::Outbound => 1,
    }
}

impl Bridged {
    /// `target` is the target's INVITE, address and ACK; the target sits on `target_leg`.
    pub fn new(
        (target_tx, target, target_ack): (TxId, Target, Bytes),
        target_leg: Leg,
        target_offer: &str,
        party_answer: &str,
    ) -> Self {
        let mut origins = [None, None];
        origins[slot(target_leg)] = origin_of(target_offer);
        origins[slot(Call::other(target_leg))] = origin_of(party_answer);
        Self {
            target_tx,
            target,
            target_ack,
            origins,
            relaying: None,
        }
    }
}

impl Call {
    /// A re-INVITE or UPDATE from one of the bridged parties.
    pub(super) fn on_bridged_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        leg: Leg,
        tx: TxId,
        msg: &Message,
    ) {
        if !self.admit_peer_offer(ctx, leg, tx, msg) {
            return;
        }
        let body = String::from_utf8_lossy(msg.body()).into_owned();
        let origin = origin_of(&body);
        let busy = self.reinvite.as_ref().is_some_and(|r| !r.answered);
        let other = Self::other(leg);
        let previous = self.last_sdp(other);
        let Some(b) = self.bridged.as_mut() else {
            return;
        };
        if body.is_empty() || (origin.is_some() && origin == b.origins[slot(leg)]) {
            // A refresh: answered here with what this party has (an UPDATE without an offer
            // without one, RFC 3311 §5.2).
            let update = msg.method() == Some(Method::Update);
            let sdp = if body.is_empty() && update {
                None
            } else {
                self.last_sdp(leg)
            };
            let headers = self.timer_headers(leg);
            self.answer_with(ctx, leg, tx, msg, (200, "OK"), sdp.as_deref(), &headers);
            return;
        }
        if busy || b.relaying.is_some() {
            // RFC 3261 §14.2: one offer at a time; the party retries.
            self.answer(ctx, leg, tx, msg, 491, "Request Pending", None);
            return;
        }
        b.relaying = Some(Relaying {
            from: leg,
            tx,
            request: msg.clone(),
            origin,
            previous: previous.clone(),
        });
        self.set_last_sdp(other, reorigin(&body, previous.as_deref()));
        self.send_reinvite(ctx, other, Purpose::Relay);
    }

    /// The other party answered the passed offer: the answer goes back to the offerer.
    pub(super) fn relay_answered(&mut self, ctx: &mut Ctx<'_>, msg: &Message) {
        let Some(b) = self.bridged.as_mut() else {
            return;
        };
        let Some(r) = b.relaying.take() else { return };
        b.origins[slot(r.from)] = r.origin;
        let answer = String::from_utf8_lossy(msg.body());
        let answer = reorigin(&answer, self.last_sdp(r.from).as_deref());
        self.set_last_sdp(r.from, answer.clone());
        let headers = self.timer_headers(r.from);
        let status = (200, "OK");
        self.answer_with(
            ctx,
            r.from,
            r.tx,
            &r.request,
            status,
            Some(&answer),
            &headers,
        );
    }

    /// The other party refused the passed offer (or never answered): the offerer hears the
    /// same status, and both keep what they had (RFC 3261 §14.1).
    pub(super) fn relay_refused(&mut self, ctx: &mut Ctx<'_>, status: u16) {
        let Some(r) = self.bridged.as_mut().and_then(|b| b.relaying.take()) else {
            return;
        };
        if let Some(previous) = r.previous {
            self.set_last_sdp(Self::other(r.from), previous);
        }
        let reason = if status == 491 {
            "Request Pending"
        } else {
            "Not Accepted"
        };
        self.answer(ctx, r.from, r.tx, &r.request, status, reason, None);
    }
}

/// The `o=` line of a description.
fn origin_of(sdp: &str) -> Option<String> {
    sdp.lines()
        .find(|l| l.starts_with("o="))
        .map(|l| l.trim_end().to_owned())
}

/// `sdp` with the origin of `ours` (the last description we gave that dialog) and its
/// version one up (RFC 3264 §8); unchanged when there was none before.
pub(super) fn reorigin(sdp: &str, ours: Option<&str>) -> String {
    let fields: Option<Vec<&str>> = ours
        .and_then(|o| o.lines().find_map(|l| l.trim_end().strip_prefix("o=")))
        .map(|o| o.split(' ').collect());
    let Some(f) = fields.filter(|f| f.len() == 6) else {
        return sdp.to_owned();
    };
    let Ok(version) = f[2].parse::<u64>() else {
        return sdp.to_owned();
    };
    let origin = format!(
        "o={} {} {} {} {} {}",
        f[0],
        f[1],
        version.wrapping_add(1),
        f[3],
        f[4],
        f[5]
    );
    map_lines(sdp, |l| l.starts_with("o=").then(|| origin.clone()))
}

/// An answer to `offer` that rejects every stream (port 0, RFC 3264 §6); empty without one.
pub(super) fn answer_rejecting(offer: &str) -> String {
    map_lines(offer, |l| {
        let rest = l.strip_prefix("m=")?;
        let mut parts = rest.splitn(3, ' ');
        let (media, _port, tail) = (parts.next()?, parts.next()?, parts.next()?);
        Some(format!("m={media} 0 {tail}"))
    })
}

/// `sdp` with each line `f` returns a replacement for replaced, line endings kept.
fn map_lines(sdp: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sdp.len() + 8);
    for line in sdp.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix("\r\n") {
            Some(t) => (t, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            },
        };
        match f(text) {
            Some(new) => {
                out.push_str(&new);
                out.push_str(end);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "v=0\r\no=teamsgw 77 3 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\n";
    const THEIRS: &str = "v=0\r\no=phone 5 9 IN IP4 192.0.2.7\r\ns=call\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0 8 101\r\na=sendrecv\r\n";

    /// RFC 3264 §8: a dialog's descriptions share one origin, the version one up each change.
    #[test]
    fn a_passed_description_keeps_the_dialogs_origin_with_the_next_version() {
        let passed = reorigin(THEIRS, Some(OURS));
        assert!(
            passed.contains("\r\no=teamsgw 77 4 IN IP4 203.0.113.5\r\n"),
            "{passed}"
        );
        assert!(passed.contains("c=IN IP4 192.0.2.7\r\n") && passed.contains("m=audio 7078 "));
        let expected = THEIRS.replace(
            "o=phone 5 9 IN IP4 192.0.2.7",
            "o=teamsgw 77 4 IN IP4 203.0.113.5",
        );
        assert_eq!(passed, expected, "nothing else changes");
        assert_eq!(
            reorigin(THEIRS, None),
            THEIRS,
            "the dialog's first description"
        );
    }

    /// RFC 3264 §6: a stream is rejected with port 0 in the answer.
    #[test]
    fn the_rejecting_answer_zeroes_every_stream_port() {
        let answer = answer_rejecting(THEIRS);
        assert!(
            answer.contains("\r\nm=audio 0 RTP/AVP 0 8 101\r\n"),
            "{answer}"
        );
        assert_eq!(origin_of(&answer), origin_of(THEIRS));
        assert_eq!(answer_rejecting(""), "");
    }
}
