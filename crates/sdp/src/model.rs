//! The session description as data (RFC 8866), parsed from and written back to text.
//!
//! Lines we do not interpret (`i=`, `u=`, `e=`, `p=`, `z=`, `k=`, `r=` and every unknown
//! attribute) are kept in order, so a description passes through unchanged where we do not
//! deliberately change it.

use std::fmt;

use crate::crypto::Crypto;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

impl Connection {
    pub fn ip4(address: impl Into<String>) -> Self {
        Self {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: address.into(),
        }
    }

    /// The RFC 2543 hold form `c=IN IP4 0.0.0.0` (RFC 3264 §8.4 says use `sendonly` instead).
    pub fn is_zero(&self) -> bool {
        self.address == "0.0.0.0" || self.address == "::"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }

    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// A line other than the ones modelled (kept verbatim, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherLine {
    pub kind: char,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The answer's direction for an offered one (RFC 3264 §6.1).
    pub fn answer_to(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub info: Vec<OtherLine>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    /// Lines between `s=` and `t=` other than `c=` and `b=` (i, u, e, p).
    pub info: Vec<OtherLine>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<String>,
    /// `t=` lines with their `r=`/`z=` companions, verbatim.
    pub timing: Vec<OtherLine>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<Media>,
}

impl Media {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn attributes_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attributes_named("rtpmap")
            .filter_map(|a| parse_rtpmap(a.value.as_deref()?))
            .collect()
    }

    /// The rtpmap of a payload type, or the static RFC 3551 assignment for 0, 8, 9, 13, 18.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.rtpmaps()
            .into_iter()
            .find(|r| r.payload_type == pt)
            .or_else(|| static_rtpmap(pt))
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes_named("fmtp").find_map(|a| {
            let v = a.value.as_deref()?;
            let (p, rest) = v.split_once(' ')?;
            (p.parse::<u8>().ok()? == pt).then_some(rest)
        })
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")?
            .value
            .as_deref()?
            .trim()
            .parse()
            .ok()
    }

    /// The media-level direction, defaulting to the session's and then to sendrecv.
    pub fn direction_or(&self, session: Option<Direction>) -> Direction {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::parse(&a.name))
            .or(session)
            .unwrap_or(Direction::SendRecv)
    }

    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes
            .retain(|a| Direction::parse(&a.name).is_none());
        self.attributes.push(Attribute::flag(direction.as_str()));
    }

    pub fn rtcp_mux(&self) -> bool {
        self.has_flag("rtcp-mux")
    }

    /// `a=rtcp:<port> [nettype addrtype address]` (RFC 3605).
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attribute("rtcp")?
            .value
            .as_deref()?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    /// Parsed `a=crypto` lines; unparsable ones are skipped (see [`crate::crypto`]).
    pub fn cryptos(&self) -> Vec<Crypto> {
        self.attributes_named("crypto")
            .filter_map(|a| Crypto::parse(a.value.as_deref()?).ok())
            .collect()
    }

    pub fn payload_types(&self) -> Vec<u8> {
        self.formats.iter().filter_map(|f| f.parse().ok()).collect()
    }
}

impl SessionDescription {
    pub fn session_direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .rev()
            .find_map(|a| Direction::parse(&a.name))
    }

    /// The connection address for a media section (media-level, else session-level).
    pub fn connection_for<'a>(&'a self, media: &'a Media) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The audio section a call bridges: the first one in use (port not 0), else the first
    /// one. A second audio stream, video, T.38 and the rest are answered with port 0.
    pub fn audio(&self) -> Option<&Media> {
        self.audio_index().map(|i| &self.media[i])
    }

    pub fn audio_mut(&mut self) -> Option<&mut Media> {
        self.audio_index().map(|i| &mut self.media[i])
    }

    /// Where [`SessionDescription::audio`] is among the m-lines.
    pub fn audio_index(&self) -> Option<usize> {
        let audio = |m: &Media| m.kind == "audio";
        self.media
            .iter()
            .position(|m| audio(m) && m.port != 0)
            .or_else(|| self.media.iter().position(audio))
    }
}

pub fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    Some(RtpMap {
        payload_type: pt.parse().ok()?,
        encoding: parts.next()?.to_owned(),
        clock_rate: parts.next()?.parse().ok()?,
        channels: parts.next().and_then(|c| c.parse().ok()),
    })
}

/// RFC 3551 static payload types we may meet without an rtpmap.
pub fn static_rtpmap(pt: u8) -> Option<RtpMap> {
    let (encoding, clock) = match pt {
        0 => ("PCMU", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        13 => ("CN", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        payload_type: pt,
        encoding: encoding.into(),
        clock_rate: clock,
        channels: None,
    })
}

fn write_attr(f: &mut fmt::Formatter<'_>, a: &Attribute) -> fmt::Result {
    match &a.value {
        Some(v) => write!(f, "a={}:{v}\r\n", a.name),
        None => write!(f, "a={}\r\n", a.name),
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {} {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.net_type,
            o.addr_type,
            o.address,
            self.session_name
        )?;
        for l in &self.info {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={} {} {}\r\n", c.net_type, c.addr_type, c.address)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        if self.timing.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for l in &self.timing {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        for a in &self.attributes {
            write_attr(f, a)?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            for l in &m.info {
                write!(f, "{}={}\r\n", l.kind, l.value)?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c={} {} {}\r\n", c.net_type, c.addr_type, c.address)?;
            }
            for b in &m.bandwidths {
                write!(f, "b={b}\r\n")?;
            }
            for a in &m.attributes {
                write_attr(f, a)?;
            }
        }
        Ok(())
    }
}
