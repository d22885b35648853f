//! SIP messages as views into one received buffer.
//!
//! [`Message::parse`] reads the start line, splits header lines (folding, compact names, LWS
//! around the colon) and frames the body by Content-Length, recording spans into the buffer:
//! no header value is copied. Typed accessors parse a header when asked. Parsing is split in two
//! on purpose: a message whose *structure* is unreadable is an error (dropped and counted); a
//! message that is readable but breaks a rule carries a [`Defect`] so that a request can still
//! be answered with 400 (or 505) naming the defect, as RFC 3261 §8.2 and RFC 4475 expect.

mod builder;
mod method;
mod name;
mod params;
pub(crate) mod scan;
mod typed;
mod uri;

pub use builder::MessageBuilder;

pub use method::Method;
pub use name::HeaderName;
pub use params::Params;
pub use typed::{
    Auth, CSeq, Contact, HeaderError, MediaType, NameAddr, RAck, Reason, Replaces, RetryAfter,
    SessionExpires, Via,
};
pub use uri::{
    Host, Scheme, SipUri, TelUri, Uri, UriError, display_text, escape_user, quoted_display,
    unescape,
};

use bytes::Bytes;
use scan::{eq_ignore_case, is_token_str, split_top_level, trim};

/// Bounds on what one message may use. Both apply to datagrams and streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_headers: 256,
        }
    }
}

/// Why bytes could not be read as a SIP message at all. These are dropped, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message larger than the limit")]
    TooLarge,
    #[error("more header lines than the limit")]
    TooManyHeaders,
    #[error("unreadable start line")]
    BadStartLine,
    #[error("start line is not UTF-8 text")]
    NotText,
}

impl ParseError {
    /// Short label for the `reason` of `teamsgw_sip_messages_dropped_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::TooLarge => "too_large",
            ParseError::TooManyHeaders => "too_many_headers",
            ParseError::BadStartLine => "bad_start_line",
            ParseError::NotText => "not_text",
        }
    }
}

/// A readable message that breaks a rule. Requests with a defect are answered with
/// [`Defect::status`] and the defect as reason phrase; responses with one are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// SIP-Version other than 2.0 (RFC 3261 §8.2.2.2 ... answered 505).
    UnsupportedVersion,
    BadRequestLine(&'static str),
    BadRequestUri(UriError),
    MalformedHeaderLine,
    MissingHeader(HeaderName),
    BadHeader(HeaderName, HeaderError),
    /// CSeq method differs from the request method (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.14).
    CSeqMethodMismatch,
    /// Content-Length repeated with different values.
    ConflictingContentLength,
    /// Content-Length larger than what the datagram holds (RFC 3261 §18.3).
    ContentLengthTooLarge,
    /// A single-valued header given more than once (RFC 3261 §7.3.1, RFC 4475 §3.3.9).
    DuplicateHeader(HeaderName),
}

impl Defect {
    pub fn status(&self) -> u16 {
        match self {
            Defect::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Defect::UnsupportedVersion => "unsupported_version",
            Defect::BadRequestLine(_) => "bad_request_line",
            Defect::BadRequestUri(_) => "bad_request_uri",
            Defect::MalformedHeaderLine => "malformed_header_line",
            Defect::MissingHeader(_) => "missing_header",
            Defect::BadHeader(..) => "bad_header",
            Defect::CSeqMethodMismatch => "cseq_method_mismatch",
            Defect::ConflictingContentLength => "conflicting_content_length",
            Defect::ContentLengthTooLarge => "content_length_too_large",
            Defect::DuplicateHeader(_) => "duplicate_header",
        }
    }
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Defect::UnsupportedVersion => f.write_str("SIP Version Not Supported"),
            Defect::BadRequestLine(why) => write!(f, "Bad Request-Line: {why}"),
            Defect::BadRequestUri(e) => write!(f, "Bad Request-URI: {e}"),
            Defect::MalformedHeaderLine => f.write_str("Malformed header line"),
            Defect::MissingHeader(h) => write!(f, "Missing {} header", h.as_str()),
            Defect::BadHeader(h, e) => write!(f, "Bad {} header: {e}", h.as_str()),
            Defect::CSeqMethodMismatch => {
                f.write_str("CSeq method does not match the request method")
            }
            Defect::ConflictingContentLength => f.write_str("Conflicting Content-Length headers"),
            Defect::ContentLengthTooLarge => {
                f.write_str("Content-Length larger than the message body")
            }
            Defect::DuplicateHeader(h) => write!(f, "More than one {} header", h.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        // Messages are bounded by Limits (far below 4 GiB), so offsets fit u32.
        Self {
            start: start as u32,
            end: end as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone, Copy)]
enum StartLine {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        status: u16,
        reason: Span,
    },
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: HeaderName,
    raw_name: Span,
    value: Span,
    /// The whole header line(s) as received, without the final line break.
    line: Span,
}

/// One header line as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    pub name: HeaderName,
    pub raw_name: &'a [u8],
    /// The value, trimmed; folded continuation lines are still in it (LWS).
    pub value: &'a [u8],
    /// Name, colon and value exactly as received, for byte-exact forwarding.
    pub line: &'a [u8],
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    fields: Vec<Field>,
    body: Span,
    defect: Option<Defect>,
}

impl Message {
    /// Parses one datagram (or one framed stream message) with default limits. On datagrams
    /// a missing Content-Length means the body runs to the end and extra octets after the
    /// Content-Length are ignored (RFC 3261 §18.3).
    pub fn parse(buf: Bytes) -> Result<Self, ParseError> {
        Self::parse_with(buf, &Limits::default())
    }

    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<Self, ParseError> {
        if buf.len() > limits.max_message_size {
            return Err(ParseError::TooLarge);
        }
        let data: &[u8] = &buf;
        // RFC 3261 §7.5: ignore CRLFs before the start line.
        let mut pos = data
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let (line_end, next) = line_at(data, pos).ok_or(ParseError::BadStartLine)?;
        let (start, mut defect) = parse_start_line(data, pos, line_end)?;
        pos = next;

        let mut fields: Vec<Field> = Vec::with_capacity(24);
        let body_start = loop {
            let Some((end, next)) = line_at(data, pos) else {
                // No blank line: everything was headers (tolerated on datagrams).
                break data.len();
            };
            if end == pos {
                break next; // the empty line
            }
            let line = &data[pos..end];
            if matches!(line[0], b' ' | b'\t') {
                // Folded continuation of the previous header (RFC 3261 §7.3.1).
                match fields.last_mut() {
                    Some(f) if !trim(line).is_empty() => {
                        f.value.end = end as u32 - trailing_ws(line) as u32;
                        f.line.end = end as u32;
                    }
                    Some(_) => {}
                    None => {
                        defect.get_or_insert(Defect::MalformedHeaderLine);
                    }
                }
            } else if fields.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            } else {
                match split_header_line(line) {
                    Some((name_end, value_start, value_end)) => {
                        let raw_name = &line[..name_end];
                        fields.push(Field {
                            name: HeaderName::lookup(raw_name),
                            raw_name: Span::new(pos, pos + name_end),
                            value: Span::new(pos + value_start, pos + value_end),
                            line: Span::new(pos, end),
                        });
                    }
                    None => {
                        defect.get_or_insert(Defect::MalformedHeaderLine);
                    }
                }
            }
            pos = next;
        };

        let mut msg = Self {
            buf,
            start,
            fields,
            body: Span::new(body_start, body_start),
            defect,
        };
        msg.frame_body(body_start);
        Ok(msg)
    }

    fn frame_body(&mut self, body_start: usize) {
        let available = self.buf.len() - body_start;
        let mut declared: Option<usize> = None;
        let mut problem = None;
        for v in self.values_raw(HeaderName::ContentLength) {
            match typed::content_length(v) {
                Ok(n) if declared.is_some_and(|d| d != n) => {
                    problem = Some(Defect::ConflictingContentLength)
                }
                Ok(n) => declared = Some(n),
                Err(e) => problem = Some(Defect::BadHeader(HeaderName::ContentLength, e)),
            }
        }
        let len = match declared {
            Some(n) if n > available => {
                problem.get_or_insert(Defect::ContentLengthTooLarge);
                available
            }
            Some(n) => n,
            None => available,
        };
        if let Some(p) = problem {
            self.defect.get_or_insert(p);
        }
        self.body = Span::new(body_start, body_start + len);
    }

    fn slice(&self, span: Span) -> &[u8] {
        &self.buf[span.range()]
    }

    /// The whole message as received (the buffer it was parsed from, including any octets
    /// after the body that were ignored).
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<Method<'_>> {
        match self.start {
            StartLine::Request { method, .. } => Method::parse(self.slice(method)),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for responses.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<Result<Uri<'_>, UriError>> {
        self.request_uri_raw().map(Uri::parse)
    }

    pub fn version(&self) -> &[u8] {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.slice(version)
            }
        }
    }

    /// Status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason_phrase(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as a shared slice of the receive buffer (no copy).
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.fields.iter().map(|f| HeaderRef {
            name: f.name,
            raw_name: self.slice(f.raw_name),
            value: self.slice(f.value),
            line: self.slice(f.line),
        })
    }

    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// The first line's whole value of a header (not split at commas).
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| self.slice(f.value))
    }

    /// Values of an extension header by name (case-insensitive), whole lines.
    pub fn other_header(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.fields
            .iter()
            .filter(move |f| {
                f.name == HeaderName::Other
                    && eq_ignore_case(self.slice(f.raw_name), name.as_bytes())
            })
            .map(|f| self.slice(f.value))
    }

    /// Whole-line values of every line of a header.
    fn values_raw(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> {
        self.fields
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| self.slice(f.value))
    }

    /// Every value of a header: repeated lines and, for list headers, comma-separated
    /// elements are one list (RFC 3261 §7.3.1). Elements are trimmed; empty ones are skipped.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> {
        let list = name.is_list();
        self.values_raw(name).flat_map(move |v| {
            let pieces = if list {
                split_top_level(v, b',')
            } else {
                scan::no_split(v)
            };
            pieces.map(trim).filter(|e| !e.is_empty())
        })
    }

    /// The first structural defect found while parsing, if any.
    pub fn structural_defect(&self) -> Option<&Defect> {
        self.defect.as_ref()
    }

    /// Checks the rules a request or response must meet before anything acts on it.
    pub fn validate(&self) -> Result<(), Defect> {
        if let Some(d) = &self.defect {
            return Err(d.clone());
        }
        if !self.version().eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(Defect::UnsupportedVersion);
        }
        if let StartLine::Request { method, uri, .. } = self.start {
            if Method::parse(self.slice(method)).is_none() {
                return Err(Defect::BadRequestLine("method is not a token"));
            }
            Uri::parse(self.slice(uri)).map_err(Defect::BadRequestUri)?;
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
            HeaderName::ContentType,
        ] {
            if self
                .fields
                .iter()
                .filter(|f| f.name == name)
                .nth(1)
                .is_some()
            {
                return Err(Defect::DuplicateHeader(name));
            }
        }
        self.top_via()
            .ok_or(Defect::MissingHeader(HeaderName::Via))?
            .map_err(|e| Defect::BadHeader(HeaderName::Via, e))?;
        for via in self.vias() {
            via.map_err(|e| Defect::BadHeader(HeaderName::Via, e))?;
        }
        for (name, value) in [(HeaderName::From, self.from()), (HeaderName::To, self.to())] {
            value
                .ok_or(Defect::MissingHeader(name))?
                .map_err(|e| Defect::BadHeader(name, e))?;
        }
        let call_id = self
            .call_id()
            .ok_or(Defect::MissingHeader(HeaderName::CallId))?;
        if call_id.is_empty() || call_id.iter().any(|&b| scan::is_ws(b)) {
            return Err(Defect::BadHeader(
                HeaderName::CallId,
                HeaderError("Call-ID must be one word"),
            ));
        }
        let cseq = self
            .cseq()
            .ok_or(Defect::MissingHeader(HeaderName::CSeq))?
            .map_err(|e| Defect::BadHeader(HeaderName::CSeq, e))?;
        if let Some(method) = self.method()
            && cseq.method != method
        {
            return Err(Defect::CSeqMethodMismatch);
        }
        if let Some(mf) = self.header(HeaderName::MaxForwards) {
            typed::max_forwards(mf).map_err(|e| Defect::BadHeader(HeaderName::MaxForwards, e))?;
        }
        for c in self.contacts() {
            c.map_err(|e| Defect::BadHeader(HeaderName::Contact, e))?;
        }
        if let Some(e) = self.header(HeaderName::Expires) {
            typed::delta_with_params(e).map_err(|e| Defect::BadHeader(HeaderName::Expires, e))?;
        }
        if let Some(ct) = self.header(HeaderName::ContentType) {
            MediaType::parse(ct).map_err(|e| Defect::BadHeader(HeaderName::ContentType, e))?;
        }
        Ok(())
    }

    /// Whether a response can be built: a top Via to send it to and the headers a response
    /// copies (RFC 3261 §8.2.6.2). Below this, a broken request can only be dropped.
    pub fn can_answer(&self) -> bool {
        self.is_request()
            && matches!(self.top_via(), Some(Ok(_)))
            && [
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
            ]
            .iter()
            .all(|&h| self.header(h).is_some_and(|v| !v.is_empty()))
    }

    // ---- typed accessors -------------------------------------------------------------

    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> {
        self.values(HeaderName::Via).map(Via::parse)
    }

    pub fn top_via(&self) -> Option<Result<Via<'_>, HeaderError>> {
        self.vias().next()
    }

    pub fn from(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.header(HeaderName::From).map(NameAddr::parse)
    }

    pub fn to(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.header(HeaderName::To).map(NameAddr::parse)
    }

    pub fn from_tag(&self) -> Option<&[u8]> {
        self.from()?.ok()?.tag()
    }

    pub fn to_tag(&self) -> Option<&[u8]> {
        self.to()?.ok()?.tag()
    }

    pub fn call_id(&self) -> Option<&[u8]> {
        self.header(HeaderName::CallId).map(trim)
    }

    pub fn cseq(&self) -> Option<Result<CSeq<'_>, HeaderError>> {
        self.header(HeaderName::CSeq).map(CSeq::parse)
    }

    pub fn max_forwards(&self) -> Option<Result<u8, HeaderError>> {
        self.header(HeaderName::MaxForwards)
            .map(typed::max_forwards)
    }

    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, HeaderError>> {
        self.values(HeaderName::Contact).map(Contact::parse)
    }

    fn name_addrs(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> {
        self.values(name).map(NameAddr::parse)
    }

    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> {
        self.name_addrs(HeaderName::Route)
    }

    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> {
        self.name_addrs(HeaderName::RecordRoute)
    }

    pub fn p_asserted_identities(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> {
        self.name_addrs(HeaderName::PAssertedIdentity)
    }

    pub fn history_info(&self) -> impl Iterator<Item = Result<NameAddr<'_>, HeaderError>> {
        self.name_addrs(HeaderName::HistoryInfo)
    }

    pub fn refer_to(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.header(HeaderName::ReferTo).map(NameAddr::parse)
    }

    pub fn referred_by(&self) -> Option<Result<NameAddr<'_>, HeaderError>> {
        self.header(HeaderName::ReferredBy).map(NameAddr::parse)
    }

    pub fn content_type(&self) -> Option<Result<MediaType<'_>, HeaderError>> {
        self.header(HeaderName::ContentType).map(MediaType::parse)
    }

    /// The declared Content-Length (the body is framed by it; see [`Message::body`]).
    pub fn content_length(&self) -> Option<Result<usize, HeaderError>> {
        self.header(HeaderName::ContentLength)
            .map(typed::content_length)
    }

    pub fn expires(&self) -> Option<Result<u32, HeaderError>> {
        self.header(HeaderName::Expires)
            .map(|v| typed::delta_with_params(v).map(|(n, _)| n))
    }

    pub fn min_expires(&self) -> Option<Result<u32, HeaderError>> {
        self.header(HeaderName::MinExpires)
            .map(|v| typed::delta_with_params(v).map(|(n, _)| n))
    }

    fn tokens(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.values(name).map(typed::token)
    }

    pub fn allow(&self) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.tokens(HeaderName::Allow)
    }

    pub fn supported(&self) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.tokens(HeaderName::Supported)
    }

    pub fn require(&self) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.tokens(HeaderName::Require)
    }

    pub fn proxy_require(&self) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.tokens(HeaderName::ProxyRequire)
    }

    pub fn accept(&self) -> impl Iterator<Item = Result<MediaType<'_>, HeaderError>> {
        self.values(HeaderName::Accept).map(MediaType::parse)
    }

    pub fn www_authenticate(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> {
        self.values_raw(HeaderName::WwwAuthenticate)
            .map(Auth::parse)
    }

    pub fn proxy_authenticate(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> {
        self.values_raw(HeaderName::ProxyAuthenticate)
            .map(Auth::parse)
    }

    pub fn authorization(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> {
        self.values_raw(HeaderName::Authorization).map(Auth::parse)
    }

    pub fn proxy_authorization(&self) -> impl Iterator<Item = Result<Auth<'_>, HeaderError>> {
        self.values_raw(HeaderName::ProxyAuthorization)
            .map(Auth::parse)
    }

    pub fn session_expires(&self) -> Option<Result<SessionExpires<'_>, HeaderError>> {
        self.header(HeaderName::SessionExpires)
            .map(SessionExpires::parse)
    }

    pub fn min_se(&self) -> Option<Result<u32, HeaderError>> {
        self.header(HeaderName::MinSe)
            .map(|v| typed::delta_with_params(v).map(|(n, _)| n))
    }

    pub fn rseq(&self) -> Option<Result<u32, HeaderError>> {
        self.header(HeaderName::RSeq)
            .map(|v| typed::delta_with_params(v).map(|(n, _)| n))
    }

    pub fn rack(&self) -> Option<Result<RAck<'_>, HeaderError>> {
        self.header(HeaderName::RAck).map(RAck::parse)
    }

    pub fn replaces(&self) -> Option<Result<Replaces<'_>, HeaderError>> {
        self.header(HeaderName::Replaces).map(Replaces::parse)
    }

    pub fn privacy(&self) -> impl Iterator<Item = &[u8]> {
        self.values_raw(HeaderName::Privacy)
            .flat_map(typed::privacy_values)
    }

    pub fn reasons(&self) -> impl Iterator<Item = Result<Reason<'_>, HeaderError>> {
        self.values(HeaderName::Reason).map(Reason::parse)
    }

    pub fn retry_after(&self) -> Option<Result<RetryAfter<'_>, HeaderError>> {
        self.header(HeaderName::RetryAfter).map(RetryAfter::parse)
    }

    pub fn user_agent(&self) -> Option<&[u8]> {
        self.header(HeaderName::UserAgent)
    }

    pub fn server(&self) -> Option<&[u8]> {
        self.header(HeaderName::Server)
    }
}

/// (end of line content, start of next line) for the line starting at `pos`; accepts CRLF and
/// bare LF. `None` when no line break follows.
fn line_at(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lf = pos + data.get(pos..)?.iter().position(|&b| b == b'\n')?;
    let end = if lf > pos && data[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

fn trailing_ws(line: &[u8]) -> usize {
    line.iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()
}

/// (name end, value start, value end) within a header line: `token *WSP ":" *LWS value`.
fn split_header_line(line: &[u8]) -> Option<(usize, usize, usize)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name_end = colon - trailing_ws(&line[..colon]);
    if !is_token_str(&line[..name_end]) {
        return None;
    }
    let after = &line[colon + 1..];
    let lead = after
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let value_start = colon + 1 + lead;
    let value_end = line.len() - trailing_ws(&line[value_start..]);
    Some((name_end, value_start, value_end.max(value_start)))
}

fn parse_start_line(
    data: &[u8],
    start: usize,
    end: usize,
) -> Result<(StartLine, Option<Defect>), ParseError> {
    let line = &data[start..end];
    if line.starts_with(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (reason may be empty).
        let sp = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseError::BadStartLine)?;
        let code = line.get(sp + 1..sp + 4).ok_or(ParseError::BadStartLine)?;
        let status = scan::digits_u64(code)
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::BadStartLine)? as u16;
        let reason_start = match line.get(sp + 4) {
            None => sp + 4,
            Some(b' ') => sp + 5,
            Some(_) => return Err(ParseError::BadStartLine),
        };
        let response = StartLine::Response {
            version: Span::new(start, start + sp),
            status,
            reason: Span::new(start + reason_start.min(line.len()), end),
        };
        return Ok((response, None));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version. The URI is what lies between the
    // first and the last space, so a URI with spaces or a padded line is readable and gets a
    // 400 from validate() rather than being dropped (RFC 4475 §3.1.2.7, §3.1.2.8).
    if !line.is_ascii() {
        return Err(ParseError::NotText);
    }
    // Trailing whitespace is readable but wrong (RFC 4475 §3.1.2.9): answer 400.
    let padded = trailing_ws(line);
    let (line, end) = (&line[..line.len() - padded], end - padded);
    let defect = (padded > 0).then_some(Defect::BadRequestLine("trailing whitespace"));
    let first = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ParseError::BadStartLine)?;
    let last = line
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(ParseError::BadStartLine)?;
    if first == last || !line[last + 1..].starts_with(b"SIP/") {
        return Err(ParseError::BadStartLine);
    }
    let request = StartLine::Request {
        method: Span::new(start, start + first),
        uri: Span::new(start + first + 1, start + last),
        version: Span::new(start + last + 1, end),
    };
    Ok((request, defect))
}

#[cfg(test)]
mod tests;
