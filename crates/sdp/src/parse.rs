//! Parsing SDP text. Every error names the line (number and text) and what is wrong with it.

use crate::model::{Attribute, Connection, Media, Origin, OtherLine, SessionDescription};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line} ({text:?}): {problem}")]
pub struct SdpError {
    /// 1-based line number; 0 when the problem is the description as a whole.
    pub line: usize,
    pub text: String,
    pub problem: String,
}

fn err(line: usize, text: &str, problem: impl Into<String>) -> SdpError {
    SdpError {
        line,
        text: text.chars().take(120).collect(),
        problem: problem.into(),
    }
}

fn connection(n: usize, line: &str, v: &str) -> Result<Connection, SdpError> {
    let mut p = v.split(' ');
    match (p.next(), p.next(), p.next(), p.next()) {
        (Some(net), Some(addr_type), Some(address), None) if !address.is_empty() => {
            if addr_type == "IP4"
                && address
                    .split('/')
                    .next()
                    .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
                    .is_none()
                && !address.chars().any(|c| c.is_ascii_alphabetic())
            {
                return Err(err(n, line, "not an IPv4 address"));
            }
            Ok(Connection {
                net_type: net.into(),
                addr_type: addr_type.into(),
                address: address.into(),
            })
        }
        _ => Err(err(n, line, "c= needs <nettype> <addrtype> <address>")),
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<Self, SdpError> {
        parse(text)
    }
}

pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut origin = None;
    let mut session_name = None;
    let mut info = Vec::new();
    let mut connection_line = None;
    let mut bandwidths = Vec::new();
    let mut timing = Vec::new();
    let mut attributes = Vec::new();
    let mut media: Vec<Media> = Vec::new();
    let mut saw_version = false;

    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line.split_once('=') {
            Some((k, v)) if k.len() == 1 => (k.as_bytes()[0] as char, v),
            _ => return Err(err(n, line, "not a <type>=<value> line")),
        };
        if !saw_version {
            if kind != 'v' || value != "0" {
                return Err(err(n, line, "an SDP description starts with v=0"));
            }
            saw_version = true;
            continue;
        }
        match (kind, media.last_mut()) {
            ('v', _) => return Err(err(n, line, "v= repeated")),
            ('o', None) => {
                let p: Vec<&str> = value.split(' ').collect();
                let [user, id, version, net, addr_type, address] = p.as_slice() else {
                    return Err(err(n, line, "o= needs six fields"));
                };
                let session_version = version
                    .parse()
                    .map_err(|_| err(n, line, "session version is not a number"))?;
                origin = Some(Origin {
                    username: (*user).into(),
                    session_id: (*id).into(),
                    session_version,
                    net_type: (*net).into(),
                    addr_type: (*addr_type).into(),
                    address: (*address).into(),
                });
            }
            ('s', None) => session_name = Some(value.to_owned()),
            ('c', None) => connection_line = Some(connection(n, line, value)?),
            ('b', None) => bandwidths.push(value.to_owned()),
            ('t' | 'r' | 'z', None) => timing.push(OtherLine {
                kind,
                value: value.into(),
            }),
            ('a', None) => attributes.push(attribute(value)),
            ('i' | 'u' | 'e' | 'p' | 'k', None) => info.push(OtherLine {
                kind,
                value: value.into(),
            }),
            ('m', _) => media.push(media_line(n, line, value)?),
            ('c', Some(m)) => m.connection = Some(connection(n, line, value)?),
            ('b', Some(m)) => m.bandwidths.push(value.to_owned()),
            ('a', Some(m)) => {
                let a = attribute(value);
                if a.name.eq_ignore_ascii_case("crypto") {
                    crate::crypto::Crypto::parse(a.value.as_deref().unwrap_or_default())
                        .map_err(|e| err(n, line, e))?;
                }
                m.attributes.push(a)
            }
            ('i' | 'k', Some(m)) => m.info.push(OtherLine {
                kind,
                value: value.into(),
            }),
            (k, _) => return Err(err(n, line, format!("unexpected {k}= line here"))),
        }
    }
    if !saw_version {
        return Err(err(0, "", "empty description"));
    }
    Ok(SessionDescription {
        origin: origin.ok_or_else(|| err(0, "", "missing o= line"))?,
        session_name: session_name.ok_or_else(|| err(0, "", "missing s= line"))?,
        info,
        connection: connection_line,
        bandwidths,
        timing,
        attributes,
        media,
    })
}

fn attribute(value: &str) -> Attribute {
    match value.split_once(':') {
        Some((name, v)) => Attribute {
            name: name.into(),
            value: Some(v.into()),
        },
        None => Attribute {
            name: value.into(),
            value: None,
        },
    }
}

fn media_line(n: usize, line: &str, value: &str) -> Result<Media, SdpError> {
    let mut p = value.split(' ');
    let kind = p
        .next()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| err(n, line, "m= needs a media type"))?;
    let port_field = p.next().ok_or_else(|| err(n, line, "m= needs a port"))?;
    let (port, count) = match port_field.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (port_field, None),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| err(n, line, "port is not 0..=65535"))?;
    let port_count = count
        .map(|c| c.parse::<u16>().map_err(|_| err(n, line, "bad port count")))
        .transpose()?;
    let proto = p
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err(n, line, "m= needs a protocol"))?;
    let formats: Vec<String> = p.filter(|s| !s.is_empty()).map(Into::into).collect();
    if formats.is_empty() {
        return Err(err(n, line, "m= needs at least one format"));
    }
    if proto.contains("RTP")
        && formats
            .iter()
            .any(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
    {
        return Err(err(n, line, "RTP payload types are 0..=127"));
    }
    Ok(Media {
        kind: kind.into(),
        port,
        port_count,
        proto: proto.into(),
        formats,
        info: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
    })
}
