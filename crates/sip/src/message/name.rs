//! Header names: the ones we type, their compact forms, and which ones are comma lists.

use super::scan::eq_ignore_case;

/// Headers teamsgw reads or writes by name. Anything else is `Other` and is forwarded as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Diversion,
    Event,
    Expires,
    From,
    HistoryInfo,
    MaxForwards,
    MinExpires,
    MinSe,
    PAssertedIdentity,
    PPreferredIdentity,
    Privacy,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RAck,
    Reason,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Replaces,
    Require,
    RetryAfter,
    Route,
    RSeq,
    Server,
    SessionExpires,
    Subject,
    Supported,
    Timestamp,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    Other,
}

use HeaderName::*;

/// (canonical name, compact form, variant); compact forms from RFC 3261 §7.3.3 and the
/// extensions that define them (RFC 3515 r, RFC 3892 b, RFC 4028 x, RFC 6665 o/u).
const NAMES: &[(&str, Option<u8>, HeaderName)] = &[
    ("Accept", None, Accept),
    ("Allow", None, Allow),
    ("Allow-Events", Some(b'u'), AllowEvents),
    ("Authorization", None, Authorization),
    ("Call-ID", Some(b'i'), CallId),
    ("Contact", Some(b'm'), Contact),
    ("Content-Disposition", None, ContentDisposition),
    ("Content-Encoding", Some(b'e'), ContentEncoding),
    ("Content-Length", Some(b'l'), ContentLength),
    ("Content-Type", Some(b'c'), ContentType),
    ("CSeq", None, CSeq),
    ("Date", None, Date),
    ("Diversion", None, Diversion),
    ("Event", Some(b'o'), Event),
    ("Expires", None, Expires),
    ("From", Some(b'f'), From),
    ("History-Info", None, HistoryInfo),
    ("Max-Forwards", None, MaxForwards),
    ("Min-Expires", None, MinExpires),
    ("Min-SE", None, MinSe),
    ("P-Asserted-Identity", None, PAssertedIdentity),
    ("P-Preferred-Identity", None, PPreferredIdentity),
    ("Privacy", None, Privacy),
    ("Proxy-Authenticate", None, ProxyAuthenticate),
    ("Proxy-Authorization", None, ProxyAuthorization),
    ("Proxy-Require", None, ProxyRequire),
    ("RAck", None, RAck),
    ("Reason", None, Reason),
    ("Record-Route", None, RecordRoute),
    ("Refer-To", Some(b'r'), ReferTo),
    ("Referred-By", Some(b'b'), ReferredBy),
    ("Replaces", None, Replaces),
    ("Require", None, Require),
    ("Retry-After", None, RetryAfter),
    ("Route", None, Route),
    ("RSeq", None, RSeq),
    ("Server", None, Server),
    ("Session-Expires", Some(b'x'), SessionExpires),
    ("Subject", Some(b's'), Subject),
    ("Supported", Some(b'k'), Supported),
    ("Timestamp", None, Timestamp),
    ("To", Some(b't'), To),
    ("Unsupported", None, Unsupported),
    ("User-Agent", None, UserAgent),
    ("Via", Some(b'v'), Via),
    ("Warning", None, Warning),
    ("WWW-Authenticate", None, WwwAuthenticate),
];

impl HeaderName {
    /// Case-insensitive lookup of a long or compact name.
    pub fn lookup(name: &[u8]) -> HeaderName {
        if let [c] = name {
            let c = c.to_ascii_lowercase();
            return NAMES
                .iter()
                .find(|(_, compact, _)| *compact == Some(c))
                .map_or(Other, |&(_, _, n)| n);
        }
        // Dispatch on length first: most lookups then compare against one or two names.
        NAMES
            .iter()
            .find(|(long, _, _)| long.len() == name.len() && eq_ignore_case(long.as_bytes(), name))
            .map_or(Other, |&(_, _, n)| n)
    }

    /// The canonical spelling we write.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|&&(_, _, n)| n == self)
            .map_or("", |&(long, _, _)| long)
    }

    /// Headers whose values are comma-separated lists, equivalent to repeated header lines
    /// (RFC 3261 §7.3.1). Headers like WWW-Authenticate or Date use commas otherwise.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Accept
                | Allow
                | AllowEvents
                | Contact
                | ContentEncoding
                | Diversion
                | HistoryInfo
                | PAssertedIdentity
                | PPreferredIdentity
                | ProxyRequire
                | Reason
                | RecordRoute
                | Require
                | Route
                | Supported
                | Unsupported
                | Via
                | Warning
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names_rfc3261_7_3_3() {
        assert_eq!(HeaderName::lookup(b"v"), Via);
        assert_eq!(HeaderName::lookup(b"V"), Via);
        assert_eq!(HeaderName::lookup(b"MaX-fOrWaRdS"), MaxForwards);
        assert_eq!(HeaderName::lookup(b"i"), CallId);
        assert_eq!(HeaderName::lookup(b"l"), ContentLength);
        assert_eq!(HeaderName::lookup(b"x"), SessionExpires);
        assert_eq!(HeaderName::lookup(b"X-Unknown"), Other);
        assert_eq!(HeaderName::lookup(b"q"), Other);
        for &(long, _, n) in NAMES {
            assert_eq!(HeaderName::lookup(long.as_bytes()), n);
            assert_eq!(n.as_str(), long);
        }
    }
}
