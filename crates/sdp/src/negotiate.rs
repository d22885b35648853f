//! Offer/answer (RFC 3264) for the two legs, with the rules each peer imposes.
//!
//! Teams leg (reference: teams-direct-routing.md §3.5, §3.6, §4): `RTP/SAVP` with SDES
//! `AES_CM_128_HMAC_SHA1_80` and the `|2^31` lifetime, rtcp-mux, G.711 plus telephone-event
//! and CN, one stable address and port for the whole call, hold only as `a=inactive` (never
//! `sendonly`/`recvonly`, never `c=0.0.0.0`), and no ICE attributes (we do not answer ICE).
//! From several Teams crypto lines we take the first `_80` (else `_32`) without MKI.
//!
//! PBX leg: `RTP/AVP`, the codecs both sides share (G.711 first, no transcoding),
//! telephone-event and CN; Microsoft-specific and ICE attributes never reach the PBX; the PBX
//! hold forms `sendonly`, `inactive` and `c=0.0.0.0` are all understood.

use crate::crypto::Crypto;
use crate::model::{
    Attribute, Connection, Direction, Media, Origin, OtherLine, SessionDescription, static_rtpmap,
};

/// A negotiation that cannot succeed; the call layer answers `status` (488) with `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct NegotiationError {
    pub status: u16,
    pub reason: String,
}

fn not_acceptable(reason: impl Into<String>) -> NegotiationError {
    NegotiationError {
        status: 488,
        reason: reason.into(),
    }
}

/// Where our side of a leg receives media, and the description's version counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub address: String,
    pub port: u16,
    pub session_id: String,
    /// Incremented by the caller for every new description it sends (RFC 3264 §8).
    pub session_version: u64,
}

/// A payload type chosen for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub fmtp: Option<String>,
}

impl Codec {
    fn is(&self, name: &str) -> bool {
        self.encoding.eq_ignore_ascii_case(name)
    }
}

pub fn pcmu() -> Codec {
    Codec {
        payload_type: 0,
        encoding: "PCMU".into(),
        clock_rate: 8000,
        fmtp: None,
    }
}

pub fn pcma() -> Codec {
    Codec {
        payload_type: 8,
        encoding: "PCMA".into(),
        clock_rate: 8000,
        fmtp: None,
    }
}

pub fn telephone_event() -> Codec {
    Codec {
        payload_type: 101,
        encoding: "telephone-event".into(),
        clock_rate: 8000,
        fmtp: Some("0-16".into()),
    }
}

pub fn comfort_noise() -> Codec {
    Codec {
        payload_type: 13,
        encoding: "CN".into(),
        clock_rate: 8000,
        fmtp: None,
    }
}

pub fn g722() -> Codec {
    Codec {
        payload_type: 9,
        encoding: "G722".into(),
        // RFC 3551 §4.5.2: G.722's RTP clock is 8000 Hz, though it samples at 16 kHz.
        clock_rate: 8000,
        fmtp: None,
    }
}

pub fn g729() -> Codec {
    Codec {
        payload_type: 18,
        encoding: "G729".into(),
        clock_rate: 8000,
        fmtp: None,
    }
}

/// The audio codecs we relay: Teams' SBC leg speaks them all (reference §4.4), and the relay
/// moves their packets without decoding them. SILK (16 kHz) stays on the Teams side.
const AUDIO_CODECS: [&str; 4] = ["PCMU", "PCMA", "G722", "G729"];
const AUXILIARY: [&str; 2] = ["telephone-event", "CN"];

/// Attributes that never cross to the PBX: ICE, SRTP keys and Microsoft extensions.
fn is_teams_only(a: &Attribute) -> bool {
    let n = a.name.to_ascii_lowercase();
    n.starts_with("ice-")
        || n.starts_with("x-")
        || matches!(
            n.as_str(),
            "candidate"
                | "remote-candidates"
                | "crypto"
                | "label"
                | "cryptoscale"
                | "rtcp-fb"
                | "fingerprint"
                | "setup"
        )
}

/// The codecs of an offer we can relay (G.711, G.722, G.729, telephone-event and CN, all with
/// an 8000 Hz RTP clock), in the offer's order, with the offer's payload type numbers.
pub fn relayable_codecs(media: &Media) -> Vec<Codec> {
    media
        .payload_types()
        .into_iter()
        .filter_map(|pt| {
            let map = media.rtpmap(pt).or_else(|| static_rtpmap(pt))?;
            let known = AUDIO_CODECS
                .iter()
                .chain(AUXILIARY.iter())
                .any(|c| map.encoding.eq_ignore_ascii_case(c));
            (known && map.clock_rate == 8000).then(|| Codec {
                payload_type: pt,
                encoding: map.encoding,
                clock_rate: map.clock_rate,
                fmtp: media.fmtp(pt).map(Into::into),
            })
        })
        .collect()
}

fn audio_section(
    local: &Local,
    proto: &str,
    codecs: &[Codec],
    direction: Direction,
    extra: Vec<Attribute>,
) -> SessionDescription {
    let mut attributes = Vec::new();
    for c in codecs {
        attributes.push(Attribute::value(
            "rtpmap",
            format!("{} {}/{}", c.payload_type, c.encoding, c.clock_rate),
        ));
        if let Some(f) = &c.fmtp {
            attributes.push(Attribute::value("fmtp", format!("{} {f}", c.payload_type)));
        }
    }
    attributes.push(Attribute::value("ptime", "20"));
    attributes.extend(extra);
    attributes.push(Attribute::flag(direction.as_str()));
    SessionDescription {
        origin: Origin {
            username: "teamsgw".into(),
            session_id: local.session_id.clone(),
            session_version: local.session_version,
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: local.address.clone(),
        },
        session_name: "-".into(),
        info: Vec::new(),
        connection: Some(Connection::ip4(local.address.clone())),
        bandwidths: Vec::new(),
        timing: vec![OtherLine {
            kind: 't',
            value: "0 0".into(),
        }],
        attributes: Vec::new(),
        media: vec![Media {
            kind: "audio".into(),
            port: local.port,
            port_count: None,
            proto: proto.into(),
            formats: codecs.iter().map(|c| c.payload_type.to_string()).collect(),
            info: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            attributes,
        }],
    }
}

/// RFC 3264 §6: "the answer MUST contain exactly the same number of m= lines as the offer",
/// in its order. `answer` holds our one audio stream, which takes the place of the offer's
/// bridged audio ([`SessionDescription::audio_index`]); every other stream (video, a second
/// audio, T.38, anything unknown) is rejected with port 0 and keeps its media type, transport
/// and formats, which the offerer ignores (§6, §8.2).
fn every_stream_answered(
    offer: &SessionDescription,
    mut answer: SessionDescription,
) -> SessionDescription {
    let (Some(bridged), Some(ours)) = (offer.audio_index(), answer.media.pop()) else {
        return answer;
    };
    let mut ours = Some(ours);
    answer.media = offer
        .media
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            if i == bridged {
                return ours.take();
            }
            Some(Media {
                kind: m.kind.clone(),
                port: 0,
                port_count: None,
                proto: m.proto.clone(),
                formats: m.formats.clone(),
                info: Vec::new(),
                connection: None,
                bandwidths: Vec::new(),
                attributes: Vec::new(),
            })
        })
        .collect();
    answer
}

/// An offer whose bridged audio is missing or disabled: 488, saying what was offered instead.
fn no_audio(offer: &SessionDescription) -> NegotiationError {
    let active = |kind: &str| offer.media.iter().any(|m| m.kind == kind && m.port != 0);
    if active("image") {
        not_acceptable("T.38 not supported towards Teams")
    } else {
        not_acceptable("no audio stream offered")
    }
}

/// Teams understands only `a=inactive` for hold (reference §3.6).
fn teams_direction(d: Direction) -> Direction {
    if d == Direction::SendRecv {
        Direction::SendRecv
    } else {
        Direction::Inactive
    }
}

/// Whether a description puts the call on hold: `sendonly`/`inactive`, or `c=0.0.0.0`.
pub fn is_hold(sdp: &SessionDescription) -> bool {
    let Some(audio) = sdp.audio() else {
        return false;
    };
    let zero = sdp.connection_for(audio).is_some_and(Connection::is_zero);
    zero || matches!(
        audio.direction_or(sdp.session_direction()),
        Direction::SendOnly | Direction::Inactive
    )
}

/// The Teams leg as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsLeg {
    pub sdp: SessionDescription,
    pub codecs: Vec<Codec>,
    pub suite: String,
    /// Teams' key||salt (to decrypt what Teams sends).
    pub remote_key: Vec<u8>,
    /// Teams' media address and port.
    pub remote_address: String,
    pub remote_port: u16,
    pub rtcp_mux: bool,
    pub hold: bool,
}

/// Our answer to a Teams offer. `local_key` is the 30-byte key||salt we send with.
pub fn answer_teams_offer(
    offer: &SessionDescription,
    local: &Local,
    local_key: &[u8],
) -> Result<TeamsLeg, NegotiationError> {
    let audio = offer
        .audio()
        .filter(|a| a.port != 0)
        .ok_or_else(|| no_audio(offer))?;
    if !audio.proto.ends_with("RTP/SAVP") {
        return Err(not_acceptable(format!(
            "audio must be RTP/SAVP, offered {}",
            audio.proto
        )));
    }
    let cryptos = audio.cryptos();
    let chosen = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]
        .iter()
        .find_map(|suite| {
            cryptos
                .iter()
                .find(|c| c.suite == *suite && !c.has_mki() && c.keys.len() == 1)
        })
        .ok_or_else(|| not_acceptable("no AES_CM_128_HMAC_SHA1_80/_32 crypto line without MKI"))?;
    let codecs = relayable_codecs(audio);
    if !codecs.iter().any(|c| AUDIO_CODECS.iter().any(|n| c.is(n))) {
        return Err(not_acceptable(
            "no codec we relay offered (G.722, G.711 or G.729)",
        ));
    }
    let remote = offer
        .connection_for(audio)
        .ok_or_else(|| not_acceptable("no connection address"))?;
    let rtcp_mux = audio.rtcp_mux();
    let direction = teams_direction(audio.direction_or(offer.session_direction()).answer_to());
    let mut extra = Vec::new();
    if rtcp_mux {
        // RFC 8035: an offered rtcp-mux is accepted, and then kept for the whole call.
        extra.push(Attribute::flag("rtcp-mux"));
    }
    let ours = Crypto::inline(chosen.tag, &chosen.suite, local_key);
    extra.push(Attribute::value("crypto", ours.to_value()));
    let sdp = every_stream_answered(
        offer,
        audio_section(local, "RTP/SAVP", &codecs, direction, extra),
    );
    Ok(TeamsLeg {
        sdp,
        codecs,
        suite: chosen.suite.clone(),
        remote_key: chosen.keys[0].key_salt.clone(),
        remote_address: remote.address.clone(),
        remote_port: audio.port,
        rtcp_mux,
        hold: is_hold(offer),
    })
}

/// Our offer to Teams for the given codecs (from the PBX leg), on hold or not.
pub fn offer_to_teams(
    local: &Local,
    local_key: &[u8],
    codecs: &[Codec],
    hold: bool,
) -> SessionDescription {
    let extra = vec![
        Attribute::flag("rtcp-mux"),
        Attribute::value(
            "crypto",
            Crypto::inline(1, "AES_CM_128_HMAC_SHA1_80", local_key).to_value(),
        ),
    ];
    let direction = if hold {
        Direction::Inactive
    } else {
        Direction::SendRecv
    };
    audio_section(local, "RTP/SAVP", codecs, direction, extra)
}

/// The PBX leg as negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxLeg {
    pub sdp: SessionDescription,
    pub codecs: Vec<Codec>,
    pub remote_address: String,
    pub remote_port: u16,
    /// RTCP port when not multiplexed (a=rtcp or port + 1).
    pub remote_rtcp_port: Option<u16>,
    pub rtcp_mux: bool,
    pub hold: bool,
}

/// Our answer to a PBX offer, keeping the codecs we can relay to Teams (`allowed`, by name,
/// preferred first).
pub fn answer_pbx_offer(
    offer: &SessionDescription,
    local: &Local,
    allowed: &[&str],
) -> Result<PbxLeg, NegotiationError> {
    let audio = offer
        .audio()
        .filter(|a| a.port != 0)
        .ok_or_else(|| no_audio(offer))?;
    if audio.proto != "RTP/AVP" {
        return Err(not_acceptable(format!(
            "audio must be RTP/AVP, offered {}",
            audio.proto
        )));
    }
    let mut codecs: Vec<Codec> = relayable_codecs(audio)
        .into_iter()
        .filter(|c| AUXILIARY.iter().any(|a| c.is(a)) || allowed.iter().any(|a| c.is(a)))
        .collect();
    // Audio codecs in `allowed`'s order (the PBX's provisioned preference, so Teams is
    // offered the PBX's first choice first), then telephone-event and CN in the offer's order.
    codecs.sort_by_key(|c| {
        allowed
            .iter()
            .position(|a| c.is(a))
            .filter(|_| AUDIO_CODECS.iter().any(|n| c.is(n)))
            .unwrap_or(usize::MAX)
    });
    if !codecs.iter().any(|c| AUDIO_CODECS.iter().any(|n| c.is(n))) {
        return Err(not_acceptable(format!(
            "no codec in common with the PBX's {} (no transcoding)",
            allowed.join(",")
        )));
    }
    let remote = offer
        .connection_for(audio)
        .ok_or_else(|| not_acceptable("no connection address"))?;
    let rtcp_mux = audio.rtcp_mux();
    let direction = audio.direction_or(offer.session_direction()).answer_to();
    let hold = is_hold(offer);
    // On c=0.0.0.0 hold the direction may still say sendrecv; answer recvonly then.
    let direction = if hold && direction == Direction::SendRecv {
        Direction::RecvOnly
    } else {
        direction
    };
    let extra = if rtcp_mux {
        vec![Attribute::flag("rtcp-mux")]
    } else {
        Vec::new()
    };
    let sdp = every_stream_answered(
        offer,
        audio_section(local, "RTP/AVP", &codecs, direction, extra),
    );
    Ok(PbxLeg {
        sdp,
        codecs,
        remote_address: remote.address.clone(),
        remote_port: audio.port,
        remote_rtcp_port: (!rtcp_mux)
            .then(|| audio.rtcp_port().unwrap_or(audio.port.wrapping_add(1))),
        rtcp_mux,
        hold,
    })
}

/// Our offer to the PBX for codecs negotiated with Teams; hold is `sendonly` (music on hold).
pub fn offer_to_pbx(local: &Local, codecs: &[Codec], hold: bool) -> SessionDescription {
    let direction = if hold {
        Direction::SendOnly
    } else {
        Direction::SendRecv
    };
    audio_section(local, "RTP/AVP", codecs, direction, Vec::new())
}

/// A Teams description with what a PBX must never see removed (ICE, crypto, Microsoft `x-`
/// attributes, labels, rtcp-fb) and the profile set to RTP/AVP.
pub fn strip_for_pbx(sdp: &SessionDescription) -> SessionDescription {
    let mut out = sdp.clone();
    out.attributes.retain(|a| !is_teams_only(a));
    for m in &mut out.media {
        m.attributes.retain(|a| !is_teams_only(a));
        if m.proto.ends_with("RTP/SAVP") {
            m.proto = "RTP/AVP".into();
        }
    }
    out
}

#[cfg(test)]
mod tests;
