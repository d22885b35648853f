//! Offer/answer across the two legs (RFC 3264): each leg negotiates on its own terms through
//! `crates/sdp`, and this bridge carries the codec choice from one leg to the other. The relay
//! never transcodes, so the answer on one leg may only list what the other leg chose.
//!
//! Teams calls: Teams' offer becomes our RTP/AVP offer to the PBX (the PBX's codecs among
//! G.722, G.711 and G.729, in its order; telephone-event, CN; ICE and Microsoft lines dropped); the PBX's answer picks the codec, and our SRTP answer
//! to Teams offers only that codec (teams-direct-routing.md §4.1, §4.4).
//! PBX calls: the PBX's offer (or, for a delayed offer, our own) becomes our SDES offer to
//! Teams (§3.2: Teams requires an offer); Teams' answer picks the codec for the PBX's answer.
//! Teams' address and port, and ours towards it, never change during the call (§3.5).

use teamsgw_sdp::negotiate::{
    self, Codec, Local, NegotiationError, answer_pbx_offer, answer_teams_offer, offer_to_pbx,
    offer_to_teams, relayable_codecs,
};
use teamsgw_sdp::{Direction, SessionDescription, model::static_rtpmap};

use super::media::{MasterKey, PayloadMap, PbxParams, SessionParams, Suite, TeamsParams, sdp_addr};

pub fn unacceptable(reason: impl Into<String>) -> NegotiationError {
    NegotiationError {
        status: 488,
        reason: reason.into(),
    }
}

/// Parses an SDP body; every defect is a 488 naming it (RFC 3261 §13.3.1.1).
pub fn parse_body(body: &[u8]) -> Result<SessionDescription, NegotiationError> {
    let text = std::str::from_utf8(body).map_err(|_| unacceptable("SDP is not UTF-8"))?;
    teamsgw_sdp::parse(text).map_err(|e| unacceptable(format!("malformed SDP: {e}")))
}

/// Teams' side as negotiated: where it listens and the key it sends with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TeamsRemote {
    address: String,
    port: u16,
    suite: Suite,
    key: MasterKey,
    hold: bool,
}

/// The PBX's side as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PbxRemote {
    address: String,
    port: u16,
    rtcp_port: Option<u16>,
    rtcp_mux: bool,
    hold: bool,
}

/// One call's offer/answer state on both legs.
#[derive(Debug)]
pub struct SdpBridge {
    teams_local: Local,
    pbx_local: Local,
    local_key: Vec<u8>,
    /// Codec names the PBX accepts (its provisioned list), preferred first.
    pbx_codecs: Vec<String>,
    teams_offer: Option<SessionDescription>,
    pbx_offer: Option<SessionDescription>,
    /// The codecs we offered on the leg we called.
    offered: Vec<Codec>,
    /// The audio codec the answer chose.
    chosen: Option<String>,
    /// Every codec the answer kept (audio, telephone-event, CN): what re-offers carry.
    agreed: Vec<Codec>,
    teams: Option<TeamsRemote>,
    pbx: Option<PbxRemote>,
    /// The SDP we sent to each side last (offer or answer): a changed description gets the
    /// next version, an unchanged one keeps it (RFC 3264 §8).
    teams_sent: Option<String>,
    pbx_sent: Option<String>,
    /// The `o=` version each side's description had last: the same again is a refresh.
    teams_version: Option<u64>,
    pbx_version: Option<u64>,
    /// Each side's payload type numbers, from the description it sent last.
    teams_numbers: Vec<Codec>,
    pbx_numbers: Vec<Codec>,
}

impl SdpBridge {
    pub fn new(
        media_address: &str,
        teams_port: u16,
        pbx_port: u16,
        local_key: Vec<u8>,
        session_id: u64,
        pbx_codecs: &[String],
    ) -> Self {
        let local = |port| Local {
            address: media_address.to_owned(),
            port,
            session_id: session_id.to_string(),
            session_version: 1,
        };
        Self {
            teams_local: local(teams_port),
            pbx_local: local(pbx_port),
            local_key,
            pbx_codecs: pbx_codecs.to_vec(),
            teams_offer: None,
            pbx_offer: None,
            offered: Vec::new(),
            chosen: None,
            agreed: Vec::new(),
            teams: None,
            pbx: None,
            teams_sent: None,
            pbx_sent: None,
            teams_version: None,
            pbx_version: None,
            teams_numbers: Vec::new(),
            pbx_numbers: Vec::new(),
        }
    }

    fn pbx_allows(&self, c: &Codec) -> bool {
        is_auxiliary(c)
            || self
                .pbx_codecs
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&c.encoding))
    }

    // ---- Teams called: Teams offers, the PBX answers -------------------------------------

    /// Teams' offer in; our offer to the PBX out.
    pub fn offer_from_teams(&mut self, body: &[u8]) -> Result<String, NegotiationError> {
        let offer = parse_body(body)?;
        // Validates the Teams offer now (SRTP, a usable crypto line) rather than after ringing.
        answer_teams_offer(&offer, &self.teams_local, &self.local_key)?;
        let audio = offer
            .audio()
            .ok_or_else(|| unacceptable("no audio stream offered"))?;
        let mut codecs: Vec<Codec> = relayable_codecs(audio)
            .into_iter()
            .filter(|c| self.pbx_allows(c))
            .collect();
        // The PBX's own preference among the codecs Teams offered.
        codecs.sort_by_key(|c| self.preference(c));
        if !codecs.iter().any(|c| !is_auxiliary(c)) {
            return Err(unacceptable(format!(
                "no codec in common with the PBX's {} (no transcoding)",
                self.pbx_codecs.join(",")
            )));
        }
        let hold = negotiate::is_hold(&offer);
        self.offered = codecs;
        self.teams_version = Some(offer.origin.session_version);
        self.teams_numbers = relayable_codecs(audio);
        self.teams_offer = Some(offer);
        let text = offer_to_pbx(&self.pbx_local, &self.offered, hold).to_string();
        self.pbx_sent = Some(text.clone());
        Ok(text)
    }

    fn preference(&self, c: &Codec) -> usize {
        self.pbx_codecs
            .iter()
            .position(|n| n.eq_ignore_ascii_case(&c.encoding))
            .unwrap_or(usize::MAX)
    }

    /// The PBX's answer (in a 183 or the 200) in; our answer to Teams out. The same PBX SDP
    /// twice gives the same answer.
    pub fn answer_from_pbx(&mut self, body: &[u8]) -> Result<String, NegotiationError> {
        let answer = parse_body(body)?;
        let (pbx, chosen) = read_pbx(&answer)?;
        self.pbx_version = Some(answer.origin.session_version);
        self.chosen = first_audio(&chosen);
        self.agreed = chosen.clone();
        self.pbx_numbers = chosen.clone();
        let offer = self
            .teams_offer
            .as_ref()
            .ok_or_else(|| unacceptable("no Teams offer to answer"))?;
        let filtered = keep_encodings(offer, &chosen);
        let leg = answer_teams_offer(&filtered, &self.teams_local, &self.local_key)?;
        self.teams = Some(teams_from_leg(&leg)?);
        self.pbx = Some(pbx);
        let text = leg.sdp.to_string();
        self.teams_sent = Some(text.clone());
        Ok(text)
    }

    // ---- the PBX called: we offer to Teams, Teams answers --------------------------------

    /// The PBX's offer (or none: a delayed offer) in; our offer to Teams out.
    pub fn offer_from_pbx(&mut self, body: Option<&[u8]>) -> Result<String, NegotiationError> {
        let (codecs, hold) = match body {
            Some(body) => {
                let offer = parse_body(body)?;
                // Validates the PBX offer (RTP/AVP, a shared G.711 codec) before ringing Teams.
                let leg = answer_pbx_offer(&offer, &self.pbx_local, &self.allowed())?;
                let hold = leg.hold;
                self.pbx_version = Some(offer.origin.session_version);
                self.pbx_numbers = leg.codecs.clone();
                self.pbx_offer = Some(offer);
                (leg.codecs, hold)
            }
            None => (self.default_codecs(), false),
        };
        self.offered = codecs;
        let text =
            offer_to_teams(&self.teams_local, &self.local_key, &self.offered, hold).to_string();
        self.teams_sent = Some(text.clone());
        Ok(text)
    }

    fn allowed(&self) -> Vec<&str> {
        self.pbx_codecs.iter().map(String::as_str).collect()
    }

    fn default_codecs(&self) -> Vec<Codec> {
        let mut codecs: Vec<Codec> = self
            .pbx_codecs
            .iter()
            .filter_map(|n| match n.to_ascii_uppercase().as_str() {
                "PCMU" => Some(negotiate::pcmu()),
                "PCMA" => Some(negotiate::pcma()),
                "G722" => Some(negotiate::g722()),
                "G729" => Some(negotiate::g729()),
                _ => None,
            })
            .collect();
        if codecs.is_empty() {
            codecs = vec![negotiate::pcmu(), negotiate::pcma()];
        }
        codecs.push(negotiate::telephone_event());
        codecs.push(negotiate::comfort_noise());
        codecs
    }

    /// Teams' answer (183 or 200) in; the SDP for the PBX out: our answer to its offer, or
    /// for a delayed offer our offer in the 200 (its answer comes in the ACK, §13.2.1).
    pub fn answer_from_teams(&mut self, body: &[u8]) -> Result<String, NegotiationError> {
        let answer = parse_body(body)?;
        let teams = read_teams_answer(&answer)?;
        self.teams_version = Some(answer.origin.session_version);
        let audio = answer
            .audio()
            .ok_or_else(|| unacceptable("no audio stream in the answer"))?;
        self.teams_chose(relayable_codecs(audio), teams)
    }

    /// Teams' offer in the dialog that picks up our call still ringing in Teams (RFC 3891
    /// §7.1): it stands in for the answer the ringing dialog would have brought. Our answer
    /// keeps one audio codec of those we offered (the PBX's), Teams' first, and the PBX gets
    /// what that answer would have given it. Returns (our answer to Teams, SDP for the PBX).
    pub fn picked_up(&mut self, body: &[u8]) -> Result<(String, String), NegotiationError> {
        let offer = parse_body(body)?;
        let shared = keep_encodings(&offer, &self.offered);
        let first = shared
            .audio()
            .and_then(|a| first_audio(&relayable_codecs(a)))
            .ok_or_else(|| unacceptable("Teams offered none of the codecs the PBX offered"))?;
        let keep: Vec<Codec> = self
            .offered
            .iter()
            .filter(|c| is_auxiliary(c) || c.encoding.eq_ignore_ascii_case(&first))
            .cloned()
            .collect();
        let leg = answer_teams_offer(
            &keep_encodings(&offer, &keep),
            &self.teams_local,
            &self.local_key,
        )?;
        let teams = teams_from_leg(&leg)?;
        let pbx = self.teams_chose(leg.codecs.clone(), teams)?;
        self.teams_version = Some(offer.origin.session_version);
        Ok((self.versioned(true, &leg.sdp), pbx))
    }

    /// The codecs Teams settled on (with its payload type numbers) become the call's, and
    /// the PBX gets the SDP that matches them.
    fn teams_chose(
        &mut self,
        chosen: Vec<Codec>,
        teams: TeamsRemote,
    ) -> Result<String, NegotiationError> {
        if !chosen.iter().any(|c| !is_auxiliary(c)) {
            return Err(unacceptable("Teams answered no codec we offered"));
        }
        self.chosen = first_audio(&chosen);
        self.agreed = chosen.clone();
        self.teams_numbers = chosen.clone();
        let text = match &self.pbx_offer {
            Some(offer) => {
                let filtered = keep_encodings(offer, &chosen);
                let leg = answer_pbx_offer(&filtered, &self.pbx_local, &self.allowed())?;
                self.pbx = Some(pbx_from_leg(&leg));
                leg.sdp.to_string()
            }
            None => offer_to_pbx(&self.pbx_local, &chosen, teams.hold).to_string(),
        };
        self.teams = Some(teams);
        self.pbx_sent = Some(text.clone());
        Ok(text)
    }

    /// The PBX's answer to our offer: in its ACK after a delayed offer (RFC 3264 §5), or in
    /// its 2xx to our re-offer.
    pub fn pbx_answer(&mut self, body: &[u8]) -> Result<(), NegotiationError> {
        let answer = parse_body(body)?;
        let (pbx, numbers) = read_pbx(&answer)?;
        self.pbx_version = Some(answer.origin.session_version);
        self.pbx_numbers = numbers;
        self.pbx = Some(pbx);
        Ok(())
    }

    pub fn awaits_ack_answer(&self) -> bool {
        self.pbx_offer.is_none() && self.pbx.is_none() && self.teams.is_some()
    }

    // ---- a transfer: a new Teams leg, the PBX leg kept -------------------------------------

    /// Our offer to the transfer target: the Teams-facing address, port and key the call
    /// already has (§3.5: the anchor never moves), with the codec the PBX leg uses.
    pub fn offer_to_new_teams_leg(&self) -> String {
        offer_to_teams(&self.teams_local, &self.local_key, &self.agreed, false).to_string()
    }

    /// The new Teams leg's answer: it replaces the old leg's address and key (the relay
    /// re-keys), and must keep the codec, as the PBX leg is not asked to change.
    pub fn new_teams_leg_answered(
        &mut self,
        body: &[u8],
        offer: String,
    ) -> Result<(), NegotiationError> {
        let answer = parse_body(body)?;
        let teams = read_teams_answer(&answer)?;
        let audio = answer
            .audio()
            .ok_or_else(|| unacceptable("no audio stream in the answer"))?;
        let numbers = relayable_codecs(audio);
        let keeps_codec = self.chosen.as_ref().is_some_and(|c| {
            numbers
                .iter()
                .any(|n| !is_auxiliary(n) && n.encoding.eq_ignore_ascii_case(c))
        });
        if !keeps_codec {
            return Err(unacceptable(
                "the transfer target answered without the call's codec",
            ));
        }
        self.teams_version = Some(answer.origin.session_version);
        self.teams_numbers = numbers;
        self.teams = Some(teams);
        self.teams_sent = Some(offer);
        Ok(())
    }

    /// What the relay needs, once both legs have negotiated (the PBX leg may still be
    /// unknown during early media from Teams: then it only latches).
    pub fn params(&self) -> Option<SessionParams> {
        let teams = self.teams.as_ref()?;
        let local_key = MasterKey::from_bytes(&self.local_key)?;
        let pbx = self.pbx.as_ref();
        Some(SessionParams {
            teams: TeamsParams {
                remote: sdp_addr(&teams.address, teams.port),
                suite: teams.suite,
                remote_key: teams.key.clone(),
                local_key,
                send: !teams.hold,
            },
            pbx: PbxParams {
                remote_rtp: pbx.and_then(|p| sdp_addr(&p.address, p.port)),
                remote_rtcp: pbx.and_then(|p| p.rtcp_port.and_then(|r| sdp_addr(&p.address, r))),
                rtcp_mux: pbx.is_some_and(|p| p.rtcp_mux),
                send: pbx.is_none_or(|p| !p.hold),
            },
            payload_map: self.payload_map(),
            teams_cn: self.teams_cn(),
        })
    }

    /// The same codec under each leg's number (RFC 3264 §6.1: each side sends with the
    /// numbers its peer declared); the relay renumbers between them.
    fn payload_map(&self) -> PayloadMap {
        let pairs: Vec<(u8, u8)> = self
            .teams_numbers
            .iter()
            .filter_map(|t| {
                let p = self
                    .pbx_numbers
                    .iter()
                    .find(|p| p.encoding.eq_ignore_ascii_case(&t.encoding))?;
                Some((t.payload_type, p.payload_type))
            })
            .collect();
        PayloadMap::new(&pairs)
    }

    /// Teams' number for CN when the call kept CN (both legs offered it): the relay then
    /// fills a silent PBX leg with comfort noise (issue 37 §4).
    fn teams_cn(&self) -> Option<u8> {
        let is_cn = |c: &Codec| c.encoding.eq_ignore_ascii_case("CN");
        self.agreed.iter().any(is_cn).then(|| {
            self.teams_numbers
                .iter()
                .find(|c| is_cn(c))
                .map(|c| c.payload_type)
        })?
    }

    /// The codec name the call settled on (for the CDR).
    pub fn codec(&self) -> Option<String> {
        self.chosen.clone()
    }
}

fn first_audio(codecs: &[Codec]) -> Option<String> {
    codecs
        .iter()
        .find(|c| !is_auxiliary(c))
        .map(|c| c.encoding.clone())
}

fn is_auxiliary(c: &Codec) -> bool {
    c.encoding.eq_ignore_ascii_case("telephone-event") || c.encoding.eq_ignore_ascii_case("CN")
}

fn teams_from_leg(leg: &negotiate::TeamsLeg) -> Result<TeamsRemote, NegotiationError> {
    Ok(TeamsRemote {
        address: leg.remote_address.clone(),
        port: leg.remote_port,
        suite: Suite::from_name(&leg.suite)
            .ok_or_else(|| unacceptable(format!("unsupported crypto suite {}", leg.suite)))?,
        key: MasterKey::from_bytes(&leg.remote_key)
            .ok_or_else(|| unacceptable("crypto key is not 30 bytes"))?,
        hold: leg.hold,
    })
}

fn pbx_from_leg(leg: &negotiate::PbxLeg) -> PbxRemote {
    PbxRemote {
        address: leg.remote_address.clone(),
        port: leg.remote_port,
        rtcp_port: leg.remote_rtcp_port,
        rtcp_mux: leg.rtcp_mux,
        hold: leg.hold,
    }
}

/// The PBX's answer: where it listens and which codecs it kept.
fn read_pbx(answer: &SessionDescription) -> Result<(PbxRemote, Vec<Codec>), NegotiationError> {
    let audio = answer
        .audio()
        .ok_or_else(|| unacceptable("no audio stream in the answer"))?;
    if audio.proto != "RTP/AVP" {
        return Err(unacceptable(format!(
            "audio must be RTP/AVP, answered {}",
            audio.proto
        )));
    }
    let codecs = relayable_codecs(audio);
    if !codecs.iter().any(|c| !is_auxiliary(c)) {
        return Err(unacceptable("the PBX answered no codec we offered"));
    }
    let conn = answer
        .connection_for(audio)
        .ok_or_else(|| unacceptable("no connection address"))?;
    let rtcp_mux = audio.rtcp_mux();
    let remote = PbxRemote {
        address: conn.address.clone(),
        port: audio.port,
        rtcp_port: (!rtcp_mux).then(|| audio.rtcp_port().unwrap_or(audio.port.wrapping_add(1))),
        rtcp_mux,
        hold: negotiate::is_hold(answer),
    };
    Ok((remote, codecs))
}

/// Teams' answer to our SDES offer: its key (RFC 4568 §7.1.2: one crypto line, ours answered).
fn read_teams_answer(answer: &SessionDescription) -> Result<TeamsRemote, NegotiationError> {
    let audio = answer
        .audio()
        .ok_or_else(|| unacceptable("no audio stream in the answer"))?;
    if !audio.proto.ends_with("RTP/SAVP") {
        return Err(unacceptable(format!(
            "audio must be RTP/SAVP, answered {}",
            audio.proto
        )));
    }
    let crypto = audio
        .cryptos()
        .into_iter()
        .find(|c| !c.has_mki() && c.keys.len() == 1 && Suite::from_name(&c.suite).is_some())
        .ok_or_else(|| unacceptable("no usable crypto line in the answer"))?;
    let conn = answer
        .connection_for(audio)
        .ok_or_else(|| unacceptable("no connection address"))?;
    let direction = audio.direction_or(answer.session_direction());
    Ok(TeamsRemote {
        address: conn.address.clone(),
        port: audio.port,
        suite: Suite::from_name(&crypto.suite)
            .ok_or_else(|| unacceptable("unsupported crypto suite"))?,
        key: MasterKey::from_bytes(&crypto.keys[0].key_salt)
            .ok_or_else(|| unacceptable("crypto key is not 30 bytes"))?,
        hold: matches!(direction, Direction::Inactive | Direction::SendOnly),
    })
}

/// `sdp` with its audio formats cut to the encodings in `keep` (by name), in its own order.
fn keep_encodings(sdp: &SessionDescription, keep: &[Codec]) -> SessionDescription {
    let mut out = sdp.clone();
    if let Some(audio) = out.audio_mut() {
        let kept: Vec<String> = audio
            .formats
            .iter()
            .filter(|f| {
                f.parse::<u8>().ok().is_some_and(|pt| {
                    let map = audio.rtpmap(pt).or_else(|| static_rtpmap(pt));
                    map.is_some_and(|m| {
                        keep.iter()
                            .any(|k| k.encoding.eq_ignore_ascii_case(&m.encoding))
                    })
                })
            })
            .cloned()
            .collect();
        audio.formats = kept;
    }
    out
}

mod reoffer;
#[cfg(test)]
mod tests;

pub use reoffer::ReOffer;
