//! `;name[=value]` parameter lists of URIs and header values, read lazily from the raw text.

use super::scan::{eq_ignore_case, split_top_level, trim, unquote};

/// A parameter list as written, starting at its first `;` (or empty).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(&'a [u8]);

impl std::fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Params({:?})", String::from_utf8_lossy(self.0))
    }
}

impl<'a> Params<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self(raw)
    }

    pub fn raw(&self) -> &'a [u8] {
        self.0
    }

    /// `(name, value)` pairs; names and values trimmed of LWS, quoted values unquoted
    /// (escapes inside are left as written). Empty pieces (`;;`) are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        split_top_level(self.0, b';').filter_map(|piece| {
            let piece = trim(piece);
            if piece.is_empty() {
                return None;
            }
            Some(match piece.iter().position(|&b| b == b'=') {
                Some(i) => (trim(&piece[..i]), Some(unquote(trim(&piece[i + 1..])))),
                None => (piece, None),
            })
        })
    }

    /// `Some(Some(v))` for `name=v`, `Some(None)` for a bare `name`, `None` when absent.
    /// Names compare case-insensitively.
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|(n, _)| eq_ignore_case(n, name))
            .map(|(_, v)| v)
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lws_around_names_values_and_semicolons() {
        // RFC 4475 §3.1.1.1 (wsinv): LWS between semicolons, names and values.
        let p = Params::new(b" ;   tag    = 1918181833n ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33");
        assert_eq!(p.get(b"TAG"), Some(Some(&b"1918181833n"[..])));
        assert_eq!(p.get(b"newparam"), Some(Some(&b"newvalue"[..])));
        assert_eq!(p.get(b"secondparam"), Some(None));
        assert_eq!(p.get(b"q"), Some(Some(&b"0.33"[..])));
        assert_eq!(p.get(b"missing"), None);
    }

    #[test]
    fn quoted_values_may_hold_semicolons() {
        let p = Params::new(br#";+sip.instance="<urn:uuid:1;2>";expires=60"#);
        assert_eq!(p.get(b"+sip.instance"), Some(Some(&b"<urn:uuid:1;2>"[..])));
        assert_eq!(p.get(b"expires"), Some(Some(&b"60"[..])));
    }
}
