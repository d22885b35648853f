//! The pre-flight facts a carrier needs before Teams can call: is our certificate one Microsoft
//! accepts, and do our trust anchors hold every root Microsoft's proxies may present
//! (teams-direct-routing.md §1.2, §1.3). Used by `teamsgw check-tls`, at start-up and on reload
//! (a warning per missing root), and for the certificate expiry gauge.
//!
//! Pure functions over DER: the few certificate facts needed (EKU, notAfter, key type) are read
//! by the same fail-closed DER walk as [`crate::certnames`], on certificates we loaded ourselves.

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};

use crate::certnames::{self, children, element};

/// A root certificate Microsoft's SIP proxies chain to, by its SHA-256 fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicrosoftRoot {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// The seven roots an SBC must trust from 2026 (§1.3, MC1213773). The reference lists their
/// SHA-1 thumbprints; these SHA-256 fingerprints are of the same certificates (as Debian's
/// ca-certificates ships them, whose SHA-1 thumbprints match the reference's).
pub const MICROSOFT_ROOTS: [MicrosoftRoot; 7] = [
    MicrosoftRoot {
        name: "DigiCert Global Root CA",
        sha256: "4348A0E9444C78CB265E058D5E8944B4D84F9662BD26DB257F8934A443C70161",
    },
    MicrosoftRoot {
        name: "DigiCert Global Root G2",
        sha256: "CB3CCBB76031E5E0138F8DD39A23F9DE47FFC35E43C1144CEA27D46A5AB1CB5F",
    },
    MicrosoftRoot {
        name: "DigiCert Global Root G3",
        sha256: "31AD6648F8104138C738F39EA4320133393E3A18CC02296EF97C2AC9EF6731D0",
    },
    MicrosoftRoot {
        name: "DigiCert TLS ECC P384 Root G5",
        sha256: "018E13F0772532CF809BD1B17281867283FC48C6E13BE9C69812854A490C1B05",
    },
    MicrosoftRoot {
        name: "DigiCert TLS RSA4096 Root G5",
        sha256: "371A00DC0533B3721A7EEB40E8419E70799D2B0A0F2C1D80693165F7CEC4AD75",
    },
    MicrosoftRoot {
        name: "Microsoft ECC Root Certificate Authority 2017",
        sha256: "358DF39D764AF9E1B766E9C972DF352EE15CFAC227AF6AD1D70E8E4A6EDCBA02",
    },
    MicrosoftRoot {
        name: "Microsoft RSA Root Certificate Authority 2017",
        sha256: "C741F70F4B2A8D88BF2E71C14122EF53EF10EBA0CFA5E64CFA20F418853073E0",
    },
];

/// The SHA-256 fingerprint of a certificate, upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Each Microsoft root and whether `anchors` (DER certificates) hold it.
pub fn microsoft_roots(anchors: &[CertificateDer<'_>]) -> Vec<(MicrosoftRoot, bool)> {
    let held: Vec<String> = anchors.iter().map(|a| fingerprint(a)).collect();
    MICROSOFT_ROOTS
        .iter()
        .map(|root| (*root, held.iter().any(|f| f == root.sha256)))
        .collect()
}

/// One line of the report; `blocking` ones stop calls (and make `check-tls` exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub blocking: bool,
    pub text: String,
}

impl Finding {
    fn ok(text: String) -> Self {
        Self {
            ok: true,
            blocking: false,
            text,
        }
    }

    fn problem(blocking: bool, text: String) -> Self {
        Self {
            ok: false,
            blocking,
            text,
        }
    }
}

/// Purposes of an Extended Key Usage extension that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ServerAuth,
    ClientAuth,
    Other,
}

const EKU_OID: &[u8] = &[0x55, 0x1d, 0x25]; // 2.5.29.37
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The facts of a certificate the report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub dns_names: Vec<String>,
    /// `None`: no EKU extension (any purpose, RFC 5280 §4.2.1.12).
    pub purposes: Option<Vec<Purpose>>,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// `RSA 2048`, `ECDSA P-256`...
    pub key: String,
}

/// Reads [`CertFacts`]; `None` when the DER is not a certificate as expected.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let fields: Vec<(u8, &[u8])> = children(tbs).collect();
    // [0] version is optional; then serial, signature, issuer, validity, subject, SPKI.
    let at = usize::from(fields.first()?.0 == 0xa0);
    let validity = fields.get(at + 3)?.1;
    let spki = fields.get(at + 5)?.1;
    let mut times = children(validity);
    let _not_before = times.next()?;
    let (tag, not_after) = times.next()?;
    let purposes = fields
        .iter()
        .find(|(tag, _)| *tag == 0xa3)
        .and_then(|(_, wrapper)| eku(wrapper));
    Some(CertFacts {
        dns_names: certnames::dns_names(der),
        purposes,
        not_after: time(tag, not_after)?,
        key: key_type(spki)?,
    })
}

fn eku(wrapper: &[u8]) -> Option<Vec<Purpose>> {
    let (_, exts, _) = element(wrapper)?;
    for (_, ext) in children(exts) {
        let mut parts = children(ext);
        let (_, oid) = parts.next()?;
        if oid != EKU_OID {
            continue;
        }
        let value = parts.find(|&(tag, _)| tag == 0x04)?.1;
        let (_, list, _) = element(value)?;
        return Some(
            children(list)
                .map(|(_, oid)| match oid {
                    SERVER_AUTH => Purpose::ServerAuth,
                    CLIENT_AUTH => Purpose::ClientAuth,
                    _ => Purpose::Other,
                })
                .collect(),
        );
    }
    None
}

/// UTCTime (`YYMMDDHHMMSSZ`, RFC 5280 §4.1.2.5.1) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn key_type(spki: &[u8]) -> Option<String> {
    let mut parts = children(spki);
    let (_, algorithm) = parts.next()?;
    let (_, key) = parts.next()?;
    let mut alg = children(algorithm);
    let (_, oid) = alg.next()?;
    Some(match oid {
        RSA => {
            // BIT STRING: unused-bits octet, then RSAPublicKey { modulus, exponent }.
            let (_, rsa, _) = element(key.get(1..)?)?;
            let (_, modulus) = children(rsa).next()?;
            let bytes = modulus.iter().skip_while(|&&b| b == 0).count();
            format!("RSA {}", bytes * 8)
        }
        EC => match alg.next().map(|(_, curve)| curve) {
            Some(P256) => "ECDSA P-256".to_owned(),
            Some(P384) => "ECDSA P-384".to_owned(),
            _ => "ECDSA (other curve)".to_owned(),
        },
        ED25519 => "Ed25519".to_owned(),
        _ => "unknown key type".to_owned(),
    })
}

/// The report on our own certificate (§1.2): the chain verifies to a root in `anchors`, the
/// names cover `base_fqdn` and `*.base_fqdn` (the tenants' derived trunks), both EKUs are
/// present (Microsoft has required clientAuth too since March 2024), and the days left.
pub fn audit_own_certificate(
    chain: &[CertificateDer<'_>],
    anchors: &RootCertStore,
    base_fqdn: &str,
    now: UnixTime,
) -> Vec<Finding> {
    let Some(leaf) = chain.first() else {
        return vec![Finding::problem(true, "no certificate".to_owned())];
    };
    let Some(facts) = facts(leaf) else {
        return vec![Finding::problem(
            true,
            "the certificate cannot be read".to_owned(),
        )];
    };
    let mut report = Vec::new();
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    // The chain is judged inside the leaf's validity; expiry has a finding of its own.
    let at = now
        .as_secs()
        .min(u64::try_from(facts.not_after - 1).unwrap_or(0));
    let verified = EndEntityCert::try_from(leaf).and_then(|cert| {
        cert.verify_for_usage(
            algorithms.all,
            &anchors.roots,
            &chain[1..],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at)),
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
    });
    report.push(match verified {
        Ok(_) => Finding::ok(format!(
            "chain: {} certificate(s), complete to a trusted root",
            chain.len()
        )),
        Err(e) => Finding::problem(
            true,
            format!("chain: does not verify to a trusted root ({e}): include the intermediates, leaf first"),
        ),
    });
    for wanted in [base_fqdn.to_owned(), format!("*.{base_fqdn}")] {
        let covered = facts
            .dns_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&wanted));
        report.push(if covered {
            Finding::ok(format!("names: {wanted} covered"))
        } else {
            Finding::problem(
                true,
                format!(
                    "names: {wanted} missing (the certificate names {:?}; Teams needs the SBC's FQDN and the tenants' subdomains)",
                    facts.dns_names
                ),
            )
        });
    }
    let has = |p: Purpose| facts.purposes.as_ref().is_none_or(|ps| ps.contains(&p));
    for (purpose, name) in [
        (Purpose::ServerAuth, "serverAuth"),
        (Purpose::ClientAuth, "clientAuth"),
    ] {
        report.push(if has(purpose) {
            Finding::ok(format!("key usage: {name} present"))
        } else {
            Finding::problem(
                true,
                format!("key usage: {name} missing (Microsoft requires both serverAuth and clientAuth on the SBC's certificate; renewals in 2026 may drop clientAuth)"),
            )
        });
    }
    let days = (facts.not_after - now.as_secs() as i64).div_euclid(86_400);
    report.push(match days {
        d if d < 0 => Finding::problem(true, format!("expiry: expired {} days ago", -d)),
        d if d < 30 => Finding::problem(false, format!("expiry: {d} days left (renew now)")),
        d => Finding::ok(format!("expiry: {d} days left")),
    });
    report.push(Finding::ok(format!("key: {}", facts.key)));
    report
}

#[cfg(test)]
mod tests;
