//! Typed views of header values (RFC 3261 §20, §25 and the extensions a Teams SBC meets).
//! Each parser takes one value (one list element for list headers) and borrows from it.

use super::method::Method;
use super::params::Params;
use super::scan::{
    ascii, delta_seconds, digits_u64, find_unquoted, is_token, is_token_str, is_ws, quoted_end,
    split_top_level, trim, unquote,
};
use super::uri::{Host, Uri, split_host_port};

/// A header value that does not fit its grammar; the text says what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderError(pub &'static str);

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

type Result<T> = std::result::Result<T, HeaderError>;

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To, Referred-By, P-Asserted-Identity, History-Info, Diversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written: quoted (quotes stripped, escapes kept) or the token sequence.
    pub display: Option<&'a [u8]>,
    /// The URI text as written (without `<>`).
    pub uri_raw: &'a [u8],
    pub uri: Uri<'a>,
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let angle = find_unquoted(v, b'<');
        let (display, uri_raw, rest) = match angle {
            Some(open) => {
                let close = open
                    + v[open..]
                        .iter()
                        .position(|&b| b == b'>')
                        .ok_or(HeaderError("unterminated <...>"))?;
                let display = trim(&v[..open]);
                let display = if display.is_empty() {
                    None
                } else if display[0] == b'"' {
                    if quoted_end(display) != Some(display.len()) {
                        return Err(HeaderError("bad quoted display name"));
                    }
                    Some(unquote(display))
                } else {
                    // *(token LWS): tokens separated by whitespace only.
                    if !display.iter().all(|&b| is_token(b) || is_ws(b)) {
                        return Err(HeaderError(
                            "display name must be tokens or a quoted string",
                        ));
                    }
                    Some(display)
                };
                (display, &v[open + 1..close], &v[close + 1..])
            }
            None => {
                if v.first() == Some(&b'"') {
                    return Err(HeaderError("quoted display name without <URI>"));
                }
                // addr-spec: parameters after the first ';' belong to the header (RFC 3261 §20.10).
                let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
                let uri = trim(&v[..end]);
                // A URI with ',', '?' or ';' must be enclosed in <> (RFC 4475 §3.1.2.12).
                if uri.iter().any(|&b| b == b',' || b == b'?') {
                    return Err(HeaderError(
                        "a URI containing ',', '?' or ';' must be in <>",
                    ));
                }
                (None, uri, &v[end..])
            }
        };
        let uri = Uri::parse(uri_raw).map_err(|e| {
            HeaderError(match e {
                super::uri::UriError::NoScheme => "no URI scheme",
                super::uri::UriError::BadCharacter => "whitespace or control character in URI",
                super::uri::UriError::BadEscape => "bad %-escape in URI",
                super::uri::UriError::BadHost => "bad host in URI",
                super::uri::UriError::BadPort => "bad port in URI",
            })
        })?;
        let rest = trim(rest);
        if !rest.is_empty() && rest[0] != b';' {
            return Err(HeaderError("text after the address"));
        }
        Ok(Self {
            display,
            uri_raw,
            uri,
            params: Params::new(rest),
        })
    }

    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get(b"tag").flatten()
    }
}

/// One Contact value: `*` or an address with `expires`, `q` and other parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        if trim(value) == b"*" {
            return Ok(Contact::Star);
        }
        NameAddr::parse(value).map(Contact::Addr)
    }

    pub fn expires(&self) -> Option<u32> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => a.params.get(b"expires").flatten().and_then(delta_seconds),
        }
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    pub protocol: &'a str,
    pub version: &'a str,
    pub transport: &'a str,
    pub host: Host<'a>,
    /// `host[:port]` exactly as written.
    pub sent_by: &'a [u8],
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let mut rest = trim(value);
        let mut part = |last: bool| -> Result<&'a str> {
            let end = rest
                .iter()
                .position(|&b| !is_token(b))
                .unwrap_or(rest.len());
            let tok = &rest[..end];
            if tok.is_empty() {
                return Err(HeaderError("bad sent-protocol"));
            }
            rest = trim_start(&rest[end..]);
            if !last {
                rest = trim_start(
                    rest.strip_prefix(b"/")
                        .ok_or(HeaderError("bad sent-protocol"))?,
                );
            }
            ascii(tok).ok_or(HeaderError("bad sent-protocol"))
        };
        let protocol = part(false)?;
        let version = part(false)?;
        let transport = part(true)?;
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        let sent_by = trim(&rest[..end]);
        // LWS is allowed around the port colon only as part of HCOLON-like folding; keep it simple.
        let (host, port) =
            split_host_port(sent_by).map_err(|_| HeaderError("bad sent-by host or port"))?;
        Ok(Self {
            protocol,
            version,
            transport,
            host,
            sent_by,
            port,
            params: Params::new(&rest[end..]),
        })
    }

    pub fn branch(&self) -> Option<&'a [u8]> {
        self.params.get(b"branch").flatten()
    }

    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get(b"received").flatten()
    }

    /// `None`: no rport; `Some(None)`: `rport` asked for (RFC 3581); `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get(b"rport")
            .map(|v| v.and_then(digits_u64).and_then(|p| u16::try_from(p).ok()))
    }

    /// RFC 3261 §8.1.1.7: a branch starting with the magic cookie identifies the transaction.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > 7 && b[..7].eq_ignore_ascii_case(b"z9hG4bK"))
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    &s[start..]
}

/// `CSeq: 1*DIGIT LWS Method`; the number must fit 32 bits (RFC 3261 §8.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let end = v
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(v.len());
        let seq = digits_u64(&v[..end])
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(HeaderError("CSeq number missing or above 2^32-1"))?;
        let method = trim(&v[end..]);
        if end == v.len() || !is_ws(v[end]) || !is_token_str(method) {
            return Err(HeaderError("CSeq needs a number and a method"));
        }
        Ok(Self {
            seq,
            method: Method::parse(method).ok_or(HeaderError("bad CSeq method"))?,
        })
    }
}

/// `Max-Forwards: 0..=255` (RFC 3261 §20.22; RFC 4475 §3.1.2.5 rejects larger values).
pub fn max_forwards(value: &[u8]) -> Result<u8> {
    digits_u64(trim(value))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(HeaderError("Max-Forwards must be 0..=255"))
}

/// A header that is a single `delta-seconds` with optional parameters
/// (Expires, Min-Expires, Min-SE, RSeq takes `response-num` the same way).
pub fn delta_with_params(value: &[u8]) -> Result<(u32, Params<'_>)> {
    let v = trim(value);
    let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
    let n = delta_seconds(trim(&v[..end])).ok_or(HeaderError("not a number of seconds"))?;
    Ok((n, Params::new(&v[end..])))
}

/// `Content-Length`: a plain non-negative number.
pub fn content_length(value: &[u8]) -> Result<usize> {
    digits_u64(trim(value))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(HeaderError("Content-Length is not a non-negative number"))
}

/// `type/subtype *(;param)` (Content-Type, Accept entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub kind: &'a str,
    pub subtype: &'a str,
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
        let essence = trim(&v[..end]);
        let slash = essence
            .iter()
            .position(|&b| b == b'/')
            .ok_or(HeaderError("media type needs type/subtype"))?;
        let (kind, subtype) = (trim(&essence[..slash]), trim(&essence[slash + 1..]));
        if !is_token_str(kind) || !is_token_str(subtype) {
            return Err(HeaderError("bad media type"));
        }
        Ok(Self {
            kind: ascii(kind).ok_or(HeaderError("bad media type"))?,
            subtype: ascii(subtype).ok_or(HeaderError("bad media type"))?,
            params: Params::new(&v[end..]),
        })
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// A token from a token-list header (Allow, Supported, Require, Proxy-Require, Unsupported).
pub fn token(value: &[u8]) -> Result<&str> {
    let t = trim(value);
    if is_token_str(t) {
        ascii(t).ok_or(HeaderError("not a token"))
    } else {
        Err(HeaderError("not a token"))
    }
}

/// A digest challenge or credentials: `scheme LWS auth-param *(COMMA auth-param)`
/// (WWW-Authenticate, Proxy-Authenticate, Authorization, Proxy-Authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    pub scheme: &'a str,
    params: &'a [u8],
}

impl<'a> Auth<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let end = v.iter().position(|&b| is_ws(b)).unwrap_or(v.len());
        let scheme = &v[..end];
        if !is_token_str(scheme) {
            return Err(HeaderError("bad authentication scheme"));
        }
        let auth = Self {
            scheme: ascii(scheme).ok_or(HeaderError("bad authentication scheme"))?,
            params: trim(&v[end..]),
        };
        for (name, _) in auth.params() {
            if !is_token_str(name) {
                return Err(HeaderError("bad auth-param"));
            }
        }
        Ok(auth)
    }

    /// `(name, value)` with quotes removed (quoted-pair escapes kept as written).
    pub fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        split_top_level(self.params, b',').filter_map(|p| {
            let p = trim(p);
            if p.is_empty() {
                return None;
            }
            let eq = p.iter().position(|&b| b == b'=')?;
            Some((trim(&p[..eq]), unquote(trim(&p[eq + 1..]))))
        })
    }

    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// `Session-Expires` (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    pub delta: u32,
    /// `uac` or `uas` when given.
    pub refresher: Option<&'a [u8]>,
    pub params: Params<'a>,
}

impl<'a> SessionExpires<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let (delta, params) = delta_with_params(value)?;
        Ok(Self {
            delta,
            refresher: params.get(b"refresher").flatten(),
            params,
        })
    }
}

/// `RAck: response-num LWS CSeq-num LWS Method` (RFC 3262 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RAck<'a> {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method<'a>,
}

impl<'a> RAck<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let mut words = trim(value).split(|&b| is_ws(b)).filter(|w| !w.is_empty());
        let mut number = || {
            words
                .next()
                .and_then(digits_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(HeaderError("RAck needs two numbers and a method"))
        };
        let rseq = number()?;
        let cseq = number()?;
        let method = words
            .next()
            .and_then(Method::parse)
            .ok_or(HeaderError("RAck needs two numbers and a method"))?;
        if words.next().is_some() {
            return Err(HeaderError("text after the RAck method"));
        }
        Ok(Self { rseq, cseq, method })
    }
}

/// `Replaces: callid;to-tag=..;from-tag=..[;early-only]` (RFC 3891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    pub call_id: &'a [u8],
    pub to_tag: &'a [u8],
    pub from_tag: &'a [u8],
    pub early_only: bool,
}

impl<'a> Replaces<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
        let call_id = trim(&v[..end]);
        let params = Params::new(&v[end..]);
        let tag = |name: &[u8]| {
            params
                .get(name)
                .flatten()
                .ok_or(HeaderError("Replaces needs to-tag and from-tag"))
        };
        if call_id.is_empty() {
            return Err(HeaderError("Replaces needs a Call-ID"));
        }
        Ok(Self {
            call_id,
            to_tag: tag(b"to-tag")?,
            from_tag: tag(b"from-tag")?,
            early_only: params.contains(b"early-only"),
        })
    }
}

/// One Reason value: `protocol ;cause=N ;text="..."` (RFC 3326).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason<'a> {
    pub protocol: &'a str,
    pub cause: Option<u16>,
    pub text: Option<&'a [u8]>,
    pub params: Params<'a>,
}

impl<'a> Reason<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
        let protocol = trim(&v[..end]);
        if !is_token_str(protocol) {
            return Err(HeaderError("bad Reason protocol"));
        }
        let params = Params::new(&v[end..]);
        Ok(Self {
            protocol: ascii(protocol).ok_or(HeaderError("bad Reason protocol"))?,
            cause: params
                .get(b"cause")
                .flatten()
                .and_then(digits_u64)
                .and_then(|c| u16::try_from(c).ok()),
            text: params.get(b"text").flatten(),
            params,
        })
    }
}

/// `Retry-After: delta-seconds [comment] *(;retry-param)` (RFC 3261 §20.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    pub seconds: u32,
    pub comment: Option<&'a [u8]>,
    pub duration: Option<u32>,
}

impl<'a> RetryAfter<'a> {
    pub fn parse(value: &'a [u8]) -> Result<Self> {
        let v = trim(value);
        let digits = v
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(v.len());
        let seconds =
            delta_seconds(&v[..digits]).ok_or(HeaderError("Retry-After needs seconds"))?;
        let mut rest = trim(&v[digits..]);
        let mut comment = None;
        if rest.first() == Some(&b'(') {
            let close = rest
                .iter()
                .rposition(|&b| b == b')')
                .ok_or(HeaderError("unterminated Retry-After comment"))?;
            comment = Some(&rest[1..close]);
            rest = trim(&rest[close + 1..]);
        }
        if !rest.is_empty() && rest[0] != b';' {
            return Err(HeaderError("text after Retry-After seconds"));
        }
        let params = Params::new(rest);
        Ok(Self {
            seconds,
            comment,
            duration: params.get(b"duration").flatten().and_then(delta_seconds),
        })
    }
}

/// `Privacy: priv-value *(";" priv-value)` (RFC 3323 §4.2).
pub fn privacy_values(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b';')
        .map(trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms_rfc3261_20_10() {
        let a = NameAddr::parse(br#""J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(a.display, Some(&br#"J Rosenberg \\\""#[..]));
        assert_eq!(a.tag(), Some(&b"98asjd8"[..]));
        // addr-spec: ;tag belongs to the header, not the URI.
        let a =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(a.tag(), Some(&b"1918181833n"[..]));
        assert!(a.uri.as_sip().unwrap().params.is_empty());
        // Tokens as display name.
        let a = NameAddr::parse(b"token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x")
            .unwrap();
        assert_eq!(a.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        // tel URI with parameters in angle brackets.
        let a = NameAddr::parse(b"<tel:+14155550100;phone-context=example.com>;tag=1").unwrap();
        assert_eq!(a.uri.user(), Some(&b"+14155550100"[..]));
    }

    #[test]
    fn invalid_name_addrs_rfc4475_3_1_2() {
        // badaspec: whitespace inside <>.
        assert!(NameAddr::parse(br#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        // baddn: display name with non-token characters, unquoted.
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        // quotbal: unbalanced quote.
        assert!(NameAddr::parse(br#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(b"<sip:a@b").is_err());
    }

    #[test]
    fn via_with_lws_everywhere_rfc4475_3_1_1_1() {
        let v =
            Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(b"SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKas3;received=2001:db8::9:255;rport=5062").unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport(), Some(Some(5062)));
        assert_eq!(v.received(), Some(&b"2001:db8::9:255"[..]));
        assert!(v.has_rfc3261_branch());
        assert!(Via::parse(b"SIP/2.0/UDP").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP host:70000").is_err());
    }

    #[test]
    fn cseq_rules() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        // RFC 4475 §3.1.2.5 scalarlg: a CSeq that does not fit 32 bits.
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse(b"INVITE").is_err());
        assert!(CSeq::parse(b"1").is_err());
        assert!(CSeq::parse(b"-1 INVITE").is_err());
    }

    #[test]
    fn auth_params_with_commas_in_quotes() {
        let a = Auth::parse(
            br#"Digest realm="a,b", nonce="n", qop="auth,auth-int", algorithm=SHA-256, stale=true"#,
        )
        .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("realm"), Some(&b"a,b"[..]));
        assert_eq!(a.param("QOP"), Some(&b"auth,auth-int"[..]));
        assert_eq!(a.param("stale"), Some(&b"true"[..]));
        assert!(Auth::parse(br#"Digest "bad"=1"#).is_err());
    }

    #[test]
    fn extension_headers() {
        let s = SessionExpires::parse(b"1800;refresher=uac").unwrap();
        assert_eq!((s.delta, s.refresher), (1800, Some(&b"uac"[..])));
        let r = RAck::parse(b"776656 1 INVITE").unwrap();
        assert_eq!((r.rseq, r.cseq, r.method), (776656, 1, Method::Invite));
        let r =
            Replaces::parse(b"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")
                .unwrap();
        assert_eq!(r.call_id, b"98732@sip.example.com");
        assert!(r.early_only);
        let r = Reason::parse(br#"Q.850;cause=16;text="Terminated""#).unwrap();
        assert_eq!(
            (r.protocol, r.cause, r.text),
            ("Q.850", Some(16), Some(&b"Terminated"[..]))
        );
        let r = RetryAfter::parse(b"18000 (I'm in a meeting);duration=3600").unwrap();
        assert_eq!((r.seconds, r.duration), (18000, Some(3600)));
        assert_eq!(r.comment, Some(&b"I'm in a meeting"[..]));
        let p: Vec<&[u8]> = privacy_values(b"id; header ;user").collect();
        assert_eq!(p, vec![&b"id"[..], b"header", b"user"]);
        assert_eq!(max_forwards(b"0068").unwrap(), 68);
        assert!(max_forwards(b"300").is_err());
        assert!(content_length(b"-5").is_err());
        assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
        let c = Contact::parse(b"<sip:a@b>;expires=3600;q=0.5").unwrap();
        assert_eq!(c.expires(), Some(3600));
        let m = MediaType::parse(b"multipart/mixed;boundary=unique-boundary-1").unwrap();
        assert!(m.is("MULTIPART", "mixed"));
    }
}
