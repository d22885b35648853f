//! Offers inside a confirmed call (RFC 3264 §8), one leg at a time. The Teams-facing
//! address, port, key and rtcp-mux never change (teams-direct-routing.md §3.5), and the
//! codec stays the one the call settled on (no transcoding); what may change is a peer's
//! address, key and direction. A hold on one leg becomes our re-offer on the other: towards
//! the PBX as `sendonly` (so it plays music on hold), towards Teams only as `a=inactive` with
//! a real address (§3.6).

use teamsgw_sdp::SessionDescription;
use teamsgw_sdp::negotiate::{
    Codec, NegotiationError, answer_pbx_offer, answer_teams_offer, offer_to_pbx, offer_to_teams,
};

use super::{
    SdpBridge, keep_encodings, parse_body, pbx_from_leg, read_teams_answer, teams_from_leg,
    unacceptable,
};

/// What a peer's offer in a confirmed call means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReOffer {
    /// The same version as before: a session refresh, answered with what we sent last.
    Unchanged,
    /// A real change, answered with `answer`. `hold` is the peer's new hold state when it
    /// changed: the other leg must hear of it.
    Changed { answer: String, hold: Option<bool> },
}

/// The new hold state when it differs from the old one (the other leg must hear of it).
fn hold_change(old: Option<bool>, new: bool) -> Option<bool> {
    (old != Some(new)).then_some(new)
}

/// `text` with the `o=` line's version set to `version`.
fn with_version(sdp: &SessionDescription, version: u64) -> String {
    let mut sdp = sdp.clone();
    sdp.origin.session_version = version;
    sdp.to_string()
}

/// Whether two descriptions differ other than in their `o=` version.
fn differs(a: &str, b: &str) -> bool {
    let body = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("o="))
            .map(str::to_owned)
            .collect()
    };
    body(a) != body(b)
}

impl SdpBridge {
    /// The codecs of the call as its answer settled them (audio codec, telephone-event, CN),
    /// with the numbers we offered them under.
    fn call_codecs(&self) -> Vec<Codec> {
        self.offered
            .iter()
            .filter(|c| {
                self.agreed
                    .iter()
                    .any(|a| a.encoding.eq_ignore_ascii_case(&c.encoding))
            })
            .cloned()
            .collect()
    }

    /// The offer cut to the call's codec; 488 when it no longer offers it (no transcoding).
    fn keep_call_codec(
        &self,
        offer: &SessionDescription,
    ) -> Result<SessionDescription, NegotiationError> {
        let codecs = self.call_codecs();
        let kept = keep_encodings(offer, &codecs);
        let has_audio = kept.audio().is_some_and(|a| {
            a.formats.iter().any(|f| {
                f.parse::<u8>().ok().is_some_and(|pt| {
                    a.rtpmap(pt)
                        .or_else(|| teamsgw_sdp::model::static_rtpmap(pt))
                        .is_some_and(|m| {
                            !m.encoding.eq_ignore_ascii_case("telephone-event")
                                && !m.encoding.eq_ignore_ascii_case("CN")
                        })
                })
            })
        });
        if has_audio {
            Ok(kept)
        } else {
            Err(unacceptable(format!(
                "the offer drops {}, the codec of this call (no transcoding)",
                self.chosen.as_deref().unwrap_or("its codec")
            )))
        }
    }

    /// Our description for one side: the next version when it differs from what we sent
    /// last, the same version when it does not (RFC 3264 §8).
    pub(super) fn versioned(&mut self, teams: bool, sdp: &SessionDescription) -> String {
        let (local, sent) = if teams {
            (&mut self.teams_local, &mut self.teams_sent)
        } else {
            (&mut self.pbx_local, &mut self.pbx_sent)
        };
        let same = with_version(sdp, local.session_version);
        let text = match sent.as_deref() {
            Some(last) if !differs(last, &same) => last.to_owned(),
            _ => {
                local.session_version += 1;
                with_version(sdp, local.session_version)
            }
        };
        *sent = Some(text.clone());
        text
    }

    /// Teams' offer in a confirmed call (a refresh, new keys, hold or resume).
    pub fn reoffer_from_teams(&mut self, body: &[u8]) -> Result<ReOffer, NegotiationError> {
        let offer = parse_body(body)?;
        if self.teams_version == Some(offer.origin.session_version) {
            return Ok(ReOffer::Unchanged);
        }
        let (answer, hold) = self.take_teams_offer(&offer)?;
        Ok(ReOffer::Changed { answer, hold })
    }

    /// The offer of a Teams dialog that replaces the call's Teams leg (RFC 3891): a new
    /// dialog, so its version says nothing; answered from the anchor the call already has.
    /// Returns the answer and the new hold state when it differs from the replaced leg's.
    pub fn offer_from_replacing_leg(
        &mut self,
        body: &[u8],
    ) -> Result<(String, Option<bool>), NegotiationError> {
        self.take_teams_offer(&parse_body(body)?)
    }

    /// Teams' new description, taken unless it drops the call's codec (then nothing changes).
    fn take_teams_offer(
        &mut self,
        offer: &SessionDescription,
    ) -> Result<(String, Option<bool>), NegotiationError> {
        let kept = self.keep_call_codec(offer)?;
        let leg = answer_teams_offer(&kept, &self.teams_local, &self.local_key)?;
        let new = teams_from_leg(&leg)?;
        self.teams_version = Some(offer.origin.session_version);
        self.teams_numbers = leg.codecs.clone();
        let hold = hold_change(self.teams.as_ref().map(|t| t.hold), new.hold);
        self.teams = Some(new);
        Ok((self.versioned(true, &leg.sdp), hold))
    }

    /// The PBX's offer in a confirmed call (a refresh, a new address, hold or resume).
    pub fn reoffer_from_pbx(&mut self, body: &[u8]) -> Result<ReOffer, NegotiationError> {
        let offer = parse_body(body)?;
        if self.pbx_version == Some(offer.origin.session_version) {
            return Ok(ReOffer::Unchanged);
        }
        let kept = self.keep_call_codec(&offer)?;
        let leg = answer_pbx_offer(&kept, &self.pbx_local, &self.allowed())?;
        self.pbx_version = Some(offer.origin.session_version);
        self.pbx_numbers = leg.codecs.clone();
        let hold = hold_change(self.pbx.as_ref().map(|p| p.hold), leg.hold);
        self.pbx = Some(pbx_from_leg(&leg));
        let answer = self.versioned(false, &leg.sdp);
        Ok(ReOffer::Changed { answer, hold })
    }

    /// Our re-offer to the PBX carrying Teams' hold state: `sendonly` on hold.
    pub fn hold_offer_to_pbx(&mut self, hold: bool) -> String {
        let sdp = offer_to_pbx(&self.pbx_local, &self.call_codecs(), hold);
        self.versioned(false, &sdp)
    }

    /// Our re-offer to Teams carrying the PBX's hold state: `a=inactive` on hold, our real
    /// address, port and key as before (§3.5, §3.6).
    pub fn hold_offer_to_teams(&mut self, hold: bool) -> String {
        let sdp = offer_to_teams(
            &self.teams_local,
            &self.local_key,
            &self.call_codecs(),
            hold,
        );
        self.versioned(true, &sdp)
    }

    /// Teams' answer to our re-offer: its key may be new (applied without a gap, the relay
    /// restarts that context's rollover counter).
    pub fn reanswer_from_teams(&mut self, body: &[u8]) -> Result<(), NegotiationError> {
        let answer = parse_body(body)?;
        let teams = read_teams_answer(&answer)?;
        self.teams_version = Some(answer.origin.session_version);
        if let Some(audio) = answer.audio() {
            self.teams_numbers = teamsgw_sdp::negotiate::relayable_codecs(audio);
        }
        self.teams = Some(teams);
        Ok(())
    }
}
