//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966), as views into the message.
//!
//! Nothing is unescaped while parsing: `%41` stays `%41` in every slice, so forwarding a URI
//! never changes it and nothing is ever unescaped twice. [`unescape`] is for callers that
//! compare user parts (RFC 3261 §19.1.4).

use std::borrow::Cow;

use super::params::Params;
use super::scan::{ascii, digits_u64, eq_ignore_case, is_ws};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A parsed URI. `Other` keeps schemes we do not route (answered with 416 where it matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    Sip(SipUri<'a>),
    Tel(TelUri<'a>),
    Other { scheme: &'a str, rest: &'a [u8] },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub secure: bool,
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The `?headers` part without the `?`.
    pub headers: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    pub number: &'a [u8],
    pub params: Params<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    Name(&'a str),
    Ipv4(std::net::Ipv4Addr),
    /// The address; the brackets of the IPv6 reference are not part of it.
    Ipv6(std::net::Ipv6Addr),
}

impl Host<'_> {
    pub fn parse(s: &[u8]) -> Option<Host<'_>> {
        if let [b'[', inner @ .., b']'] = s {
            return ascii(inner)?.parse().ok().map(Host::Ipv6);
        }
        let text = ascii(s)?;
        if text.is_empty() {
            return None;
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return text.parse().ok().map(Host::Ipv4);
        }
        let valid = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !text.starts_with(['-', '.']);
        valid.then_some(Host::Name(text))
    }
}

impl std::fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Why a URI did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    NoScheme,
    BadCharacter,
    BadEscape,
    BadHost,
    BadPort,
}

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UriError::NoScheme => "no URI scheme",
            UriError::BadCharacter => "whitespace or control character in URI",
            UriError::BadEscape => "bad %-escape in URI",
            UriError::BadHost => "bad host in URI",
            UriError::BadPort => "bad port in URI",
        })
    }
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>, UriError> {
        if s.iter().any(|&b| is_ws(b) || b.is_ascii_control()) {
            return Err(UriError::BadCharacter);
        }
        check_escapes(s)?;
        let colon = s
            .iter()
            .position(|&b| b == b':')
            .ok_or(UriError::NoScheme)?;
        let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(UriError::NoScheme);
        }
        if eq_ignore_case(scheme, b"sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if eq_ignore_case(scheme, b"sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if eq_ignore_case(scheme, b"tel") {
            let (number, params) = match rest.iter().position(|&b| b == b';') {
                Some(i) => (&rest[..i], Params::new(&rest[i..])),
                None => (rest, Params::new(&[])),
            };
            if number.is_empty() {
                return Err(UriError::BadHost);
            }
            Ok(Uri::Tel(TelUri { number, params }))
        } else {
            Ok(Uri::Other {
                scheme: ascii(scheme).ok_or(UriError::NoScheme)?,
                rest,
            })
        }
    }

    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Uri::Sip(u) if u.secure => Some(Scheme::Sips),
            Uri::Sip(_) => Some(Scheme::Sip),
            Uri::Tel(_) => Some(Scheme::Tel),
            Uri::Other { .. } => None,
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&'a [u8]> {
        match self {
            Uri::Sip(u) => u.user,
            Uri::Tel(t) => Some(t.number),
            Uri::Other { .. } => None,
        }
    }
}

fn parse_sip(rest: &[u8], secure: bool) -> Result<SipUri<'_>, UriError> {
    // '@' cannot appear unescaped in userinfo, hostport, params or headers, so the first one
    // ends the userinfo (whose user part may itself contain ';', '?' and ',').
    let (userinfo, hostpart) = match rest.iter().position(|&b| b == b'@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => match ui.iter().position(|&b| b == b':') {
            Some(i) => (Some(&ui[..i]), Some(&ui[i + 1..])),
            None => (Some(ui), None),
        },
        None => (None, None),
    };
    let (hostport, tail) = if hostpart.first() == Some(&b'[') {
        let close = hostpart
            .iter()
            .position(|&b| b == b']')
            .ok_or(UriError::BadHost)?;
        let after = &hostpart[close + 1..];
        let end = after
            .iter()
            .position(|&b| b == b';' || b == b'?')
            .unwrap_or(after.len());
        (&hostpart[..close + 1 + end], &after[end..])
    } else {
        let end = hostpart
            .iter()
            .position(|&b| b == b';' || b == b'?')
            .unwrap_or(hostpart.len());
        (&hostpart[..end], &hostpart[end..])
    };
    let (host, port) = split_host_port(hostport)?;
    let (params, headers) = match tail.iter().position(|&b| b == b'?') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params::new(params),
        headers,
    })
}

/// `host [":" port]`, with IPv6 references in brackets.
pub fn split_host_port(s: &[u8]) -> Result<(Host<'_>, Option<u16>), UriError> {
    let (host, port) = if s.first() == Some(&b'[') {
        let close = s.iter().position(|&b| b == b']').ok_or(UriError::BadHost)?;
        match &s[close + 1..] {
            [] => (&s[..=close], None),
            [b':', port @ ..] => (&s[..=close], Some(port)),
            _ => return Err(UriError::BadHost),
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    let host = Host::parse(host).ok_or(UriError::BadHost)?;
    let port = match port {
        Some(p) => Some(
            digits_u64(p)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(UriError::BadPort)?,
        ),
        None => None,
    };
    Ok((host, port))
}

fn check_escapes(s: &[u8]) -> Result<(), UriError> {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let ok =
                s.len() > i + 2 && s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(UriError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Decodes %-escapes once. Borrowed when there is nothing to decode.
pub fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// `s` as a SIP URI user part (RFC 3261 §25.1: `unreserved / escaped / user-unreserved`),
/// %-escaping every other byte, so a string from one peer cannot add parameters, headers or
/// another URI to what we send the other. Borrowed when nothing needs escaping.
pub fn escape_user(s: &str) -> Cow<'_, str> {
    // user-unreserved without `;` and `?`, which a number never has and which would read as
    // the start of URI parameters or headers to a lenient parser.
    let safe =
        |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) || b"&=+$,/".contains(&b);
    if s.bytes().all(safe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if safe(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// A display name as received (its quoted-pairs still escaped, quotes removed) as text:
/// the inverse of [`quoted_display`]'s escaping.
pub fn display_text(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next()),
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `display` as a quoted-string display name followed by a space (RFC 3261 §25.1:
/// `"` and `\` escaped as quoted-pairs, control characters and line breaks dropped,
/// at most 64 characters), or nothing for an empty one.
pub fn quoted_display(display: &str) -> String {
    let mut inner = String::with_capacity(display.len() + 2);
    for c in display.chars().filter(|c| !c.is_control()).take(64) {
        if c == '"' || c == '\\' {
            inner.push('\\');
        }
        inner.push(c);
    }
    if inner.trim().is_empty() {
        return String::new();
    }
    format!("\"{inner}\" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_string_is_escaped_into_a_uri_user_part_rfc3261_25_1() {
        assert_eq!(escape_user("+4930123"), "+4930123");
        assert!(matches!(escape_user("+4930123"), Cow::Borrowed(_)));
        assert_eq!(
            escape_user("123@evil.example;transport=udp>,<sip:x"),
            "123%40evil.example%3Btransport=udp%3E,%3Csip%3Ax"
        );
        assert_eq!(escape_user("a b\r\nX: y"), "a%20b%0D%0AX%3A%20y");
        // What it makes parses as a user part again, and unescapes to the original.
        let escaped = escape_user("1 2;3?4\"5");
        let uri = format!("sip:{escaped}@example.com");
        let Uri::Sip(u) = Uri::parse(uri.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(&*unescape(u.user.unwrap()), b"1 2;3?4\"5");
    }

    #[test]
    fn a_display_name_is_quoted_with_its_quotes_and_backslashes_escaped_rfc3261_25_1() {
        assert_eq!(quoted_display("Carol"), "\"Carol\" ");
        assert_eq!(quoted_display("ends in \\"), "\"ends in \\\\\" ");
        assert_eq!(quoted_display("say \"hi\""), "\"say \\\"hi\\\"\" ");
        assert_eq!(quoted_display("two\r\nlines"), "\"twolines\" ");
        assert_eq!(quoted_display(""), "");
        assert_eq!(display_text(br#"say \"hi\" \\"#), r#"say "hi" \"#);
        assert_eq!(
            quoted_display(&display_text(br#"a \"b\" \\"#)),
            "\"a \\\"b\\\" \\\\\" "
        );
        assert_eq!(quoted_display(&"x".repeat(200)).len(), 64 + 3);
    }

    #[test]
    fn sip_uri_with_everything() {
        let Uri::Sip(u) =
            Uri::parse(b"sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?X-Foo=bar&Y=1").unwrap()
        else {
            panic!()
        };
        assert!(u.secure);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"pw"[..]));
        assert_eq!(u.host, Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params.get(b"transport"), Some(Some(&b"tls"[..])));
        assert_eq!(u.params.get(b"lr"), Some(None));
        assert_eq!(u.headers, Some(&b"X-Foo=bar&Y=1"[..]));
    }

    #[test]
    fn user_part_may_hold_semicolons_and_question_marks_rfc4475_3_1_1_2() {
        let u = Uri::parse(b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        let u = u.as_sip().unwrap();
        assert_eq!(
            u.user,
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(u.host, Host::Name("example.com"));
    }

    #[test]
    fn escapes_are_kept_and_decoded_once_rfc4475_3_1_1_3() {
        let u = Uri::parse(b"sip:sips%3Auser%40example.com@example.net").unwrap();
        let user = u.user().unwrap();
        assert_eq!(user, b"sips%3Auser%40example.com");
        assert_eq!(&*unescape(user), b"sips:user@example.com");
        assert_eq!(&*unescape(b"%2541"), b"%41", "decoding once only");
        assert_eq!(Uri::parse(b"sip:a%zz@x").unwrap_err(), UriError::BadEscape);
    }

    #[test]
    fn tel_and_other_schemes() {
        let Uri::Tel(t) = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap()
        else {
            panic!()
        };
        assert_eq!(t.number, b"+1-201-555-0123");
        assert_eq!(
            t.params.get(b"phone-context"),
            Some(Some(&b"example.com"[..]))
        );
        assert!(matches!(
            Uri::parse(b"http://example.com/").unwrap(),
            Uri::Other { scheme: "http", .. }
        ));
    }

    #[test]
    fn rejected_uris() {
        assert_eq!(
            Uri::parse(b"sip:user@exa mple.com").unwrap_err(),
            UriError::BadCharacter
        );
        assert_eq!(
            Uri::parse(b"sip:user@host:99999").unwrap_err(),
            UriError::BadPort
        );
        assert_eq!(Uri::parse(b"sip:user@[::1").unwrap_err(), UriError::BadHost);
        assert_eq!(Uri::parse(b"sip:user@").unwrap_err(), UriError::BadHost);
        assert_eq!(Uri::parse(b"nocolon").unwrap_err(), UriError::NoScheme);
        assert_eq!(
            Uri::parse(b"sip:[2001:db8::1]x").unwrap_err(),
            UriError::BadHost
        );
    }
}
