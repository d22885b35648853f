//! Byte-level grammar helpers shared by the header and URI parsers (RFC 3261 §25.1).
//!
//! Header values are slices of the receive buffer and may still contain folded line breaks
//! (CRLF followed by whitespace), so "whitespace" here includes CR and LF: after a header has
//! been split into lines, any CR/LF left inside a value can only be LWS folding.

/// `token` characters (RFC 3261 §25.1).
pub fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// LWS, including the CR/LF of folded lines.
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

pub fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// ASCII text as `&str` (tokens, hosts, numbers are ASCII by grammar).
pub fn ascii(s: &[u8]) -> Option<&str> {
    if s.is_ascii() {
        std::str::from_utf8(s).ok()
    } else {
        None
    }
}

/// Parses `1*DIGIT` into a u64, refusing empty input, non-digits and overflow.
pub fn digits_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// `delta-seconds`: values beyond 2^32-1 are taken as 2^32-1 (RFC 3261 §20.19 and §20.33).
pub fn delta_seconds(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits_u64(s).map_or(u32::MAX, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// Index just past a quoted string that starts at `s[0] == b'"'`, honouring `\` quoted-pairs.
pub fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits at `sep` outside quoted strings and `<...>` (header list commas, parameter semicolons).
/// Yields the raw, untrimmed pieces; an unbalanced quote or bracket keeps the rest in one piece.
pub struct SplitTopLevel<'a> {
    rest: Option<&'a [u8]>,
    sep: Option<u8>,
}

pub fn split_top_level(s: &[u8], sep: u8) -> SplitTopLevel<'_> {
    SplitTopLevel {
        rest: Some(s),
        sep: Some(sep),
    }
}

/// The same iterator type, yielding `s` whole (for headers that are not lists).
pub fn no_split(s: &[u8]) -> SplitTopLevel<'_> {
    SplitTopLevel {
        rest: Some(s),
        sep: None,
    }
}

impl<'a> Iterator for SplitTopLevel<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        let Some(sep) = self.sep else {
            self.rest = None;
            return Some(s);
        };
        let mut i = 0;
        let mut angle = false;
        while i < s.len() {
            match s[i] {
                b'"' if !angle => match quoted_end(&s[i..]) {
                    Some(n) => {
                        i += n;
                        continue;
                    }
                    None => break,
                },
                b'<' => angle = true,
                b'>' => angle = false,
                b if b == sep && !angle => {
                    self.rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(s)
    }
}

/// Position of the first `b` outside quoted strings.
pub fn find_unquoted(s: &[u8], b: u8) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            i += quoted_end(&s[i..])?;
            continue;
        }
        if s[i] == b {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Strips the quotes of a quoted string; escapes (`\"`) are left as they are.
pub fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] if s.len() >= 2 => inner,
        _ => s,
    }
}

pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_split_respects_quotes_and_angles() {
        let v: Vec<&[u8]> =
            split_top_level(br#""a, b" <sip:x;a=1,2>;p=1, <sip:y>"#, b',').collect();
        assert_eq!(v, vec![&br#""a, b" <sip:x;a=1,2>;p=1"#[..], b" <sip:y>"]);
        let v: Vec<&[u8]> = split_top_level(b";;,,", b',').collect();
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn delta_seconds_saturates_per_rfc3261_20_19() {
        assert_eq!(delta_seconds(b"3600"), Some(3600));
        assert_eq!(delta_seconds(b"0009"), Some(9));
        assert_eq!(delta_seconds(b"99999999999999999999999"), Some(u32::MAX));
        assert_eq!(delta_seconds(b"-1"), None);
        assert_eq!(delta_seconds(b""), None);
    }

    #[test]
    fn quoted_pairs_do_not_end_a_quoted_string() {
        assert_eq!(quoted_end(br#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_end(br#""unterminated"#), None);
        assert_eq!(quoted_end(br#""ends in backslash\"#), None);
    }
}
