//! Reads the DNS names (subjectAltName dNSName entries) of a certificate, to match a verified
//! peer against allowed names such as `*.pstnhub.microsoft.com`.
//!
//! A minimal DER walk instead of a full X.509 parser: it only runs on certificates whose chain
//! has already been verified, it only needs one extension, and it fails closed (no names) on
//! anything it does not understand.

const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// One DER element: (tag, contents, rest).
pub(crate) fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

pub(crate) fn children(mut der: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = element(der)?;
        der = rest;
        Some((tag, content))
    })
}

/// DNS names from the subjectAltName extension, lower-cased. Empty when absent or unreadable.
pub fn dns_names(cert_der: &[u8]) -> Vec<String> {
    dns_names_inner(cert_der).unwrap_or_default()
}

fn dns_names_inner(cert_der: &[u8]) -> Option<Vec<String>> {
    let (_, cert, _) = element(cert_der)?; // Certificate SEQUENCE
    let (_, tbs, _) = element(cert)?; // TBSCertificate SEQUENCE
    // Extensions are the [3] EXPLICIT element of the TBSCertificate.
    let (_, ext_wrapper) = children(tbs).find(|&(tag, _)| tag == 0xa3)?;
    let (_, exts, _) = element(ext_wrapper)?;
    for (_, ext) in children(exts) {
        let mut parts = children(ext);
        let (oid_tag, oid) = parts.next()?;
        if oid_tag != 0x06 || oid != SAN_OID {
            continue;
        }
        // Optional BOOLEAN critical, then OCTET STRING holding GeneralNames.
        let value = parts.find(|&(tag, _)| tag == 0x04)?.1;
        let (_, names, _) = element(value)?;
        return Some(
            children(names)
                .filter(|&(tag, _)| tag == 0x82) // dNSName [2] IA5String
                .filter_map(|(_, n)| std::str::from_utf8(n).ok())
                .map(str::to_ascii_lowercase)
                .collect(),
        );
    }
    Some(Vec::new())
}

/// Whether a certificate name matches an allowed pattern: exact (case-insensitive), or
/// `*.domain` matching one label under `domain` (and a certificate wildcard for that domain).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    if pattern == name {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(domain) => name
            .strip_suffix(domain)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => false,
    }
}

/// Whether a verified certificate carries a DNS name that one of `patterns` allows (a
/// listener's allowed peer names); the names it does carry when none is allowed.
pub fn allowed(cert_der: &[u8], patterns: &[String]) -> Result<(), Vec<String>> {
    let names = dns_names(cert_der);
    if names
        .iter()
        .any(|n| patterns.iter().any(|p| name_matches(p, n)))
    {
        Ok(())
    } else {
        Err(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_san_dns_names_of_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec![
            "sip.pstnhub.microsoft.com".to_owned(),
            "Sip2.PSTNhub.microsoft.com".to_owned(),
        ])
        .unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            dns_names(cert.der()),
            vec!["sip.pstnhub.microsoft.com", "sip2.pstnhub.microsoft.com"]
        );
    }

    #[test]
    fn garbage_yields_no_names() {
        assert!(dns_names(b"").is_empty());
        assert!(dns_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(dns_names(&[0x30, 0x03, 0x30, 0x01]).is_empty());
    }

    #[test]
    fn wildcard_patterns_match_one_label() {
        assert!(name_matches(
            "*.pstnhub.microsoft.com",
            "sip.pstnhub.microsoft.com"
        ));
        assert!(name_matches(
            "*.pstnhub.microsoft.com",
            "*.pstnhub.microsoft.com"
        ));
        assert!(!name_matches(
            "*.pstnhub.microsoft.com",
            "a.b.pstnhub.microsoft.com"
        ));
        assert!(!name_matches(
            "*.pstnhub.microsoft.com",
            "pstnhub.microsoft.com"
        ));
        assert!(!name_matches(
            "*.pstnhub.microsoft.com",
            "evilpstnhub.microsoft.com"
        ));
        assert!(name_matches("sip.example.com", "SIP.example.com"));
    }
}
