//! The pre-flight report on certificates made here (teams-direct-routing.md §1.2, §1.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::*;

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "test root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    ekus: &[ExtendedKeyUsagePurpose],
    not_after: (i32, u8, u8),
) -> CertificateDer<'static> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = ekus.to_vec();
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2);
    params
        .signed_by(&KeyPair::generate().unwrap(), ca)
        .unwrap()
        .der()
        .clone()
}

const BOTH: [ExtendedKeyUsagePurpose; 2] = [
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];
/// 2026-12-07T00:00:00Z.
const NOW: u64 = 1_796_601_600;

fn audit(ca: &CertifiedIssuer<'static, KeyPair>, cert: CertificateDer<'static>) -> Vec<Finding> {
    let mut anchors = RootCertStore::empty();
    anchors.add(ca.der().clone()).unwrap();
    audit_own_certificate(
        &[cert],
        &anchors,
        "sbc.carrier.example",
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW)),
    )
}

fn blocking(report: &[Finding]) -> Vec<&str> {
    report
        .iter()
        .filter(|f| f.blocking)
        .map(|f| f.text.as_str())
        .collect()
}

#[test]
fn facts_read_names_purposes_expiry_and_key() {
    let ca = ca();
    let der = leaf(
        &ca,
        &["sbc.carrier.example", "*.sbc.carrier.example"],
        &[ExtendedKeyUsagePurpose::ServerAuth],
        (2027, 3, 1),
    );
    let f = facts(&der).unwrap();
    assert_eq!(
        f.dns_names,
        ["sbc.carrier.example", "*.sbc.carrier.example"]
    );
    assert_eq!(f.purposes, Some(vec![Purpose::ServerAuth]));
    // `date -u -d 2027-03-01 +%s`
    assert_eq!(f.not_after, 1_803_859_200);
    assert_eq!(f.key, "ECDSA P-256");
    let none = leaf(&ca, &["x.example"], &[], (2027, 3, 1));
    assert_eq!(facts(&none).unwrap().purposes, None);
    assert_eq!(facts(b"garbage"), None);
}

#[test]
fn a_certificate_teams_accepts_has_no_blocking_finding() {
    let ca = ca();
    let report = audit(
        &ca,
        leaf(
            &ca,
            &["sbc.carrier.example", "*.sbc.carrier.example"],
            &BOTH,
            (2027, 12, 7),
        ),
    );
    assert!(blocking(&report).is_empty(), "{report:?}");
    assert!(
        report.iter().any(|f| f.text == "expiry: 365 days left"),
        "{report:?}"
    );
}

#[test]
fn server_auth_only_a_missing_wildcard_and_expiry_are_named() {
    let ca = ca();
    let report = audit(
        &ca,
        leaf(
            &ca,
            &["sbc.carrier.example"],
            &[ExtendedKeyUsagePurpose::ServerAuth],
            (2026, 12, 1),
        ),
    );
    let problems = blocking(&report);
    assert_eq!(problems.len(), 3, "{report:?}");
    assert!(problems[0].starts_with("names: *.sbc.carrier.example missing"));
    assert!(problems[1].starts_with("key usage: clientAuth missing"));
    assert_eq!(problems[2], "expiry: expired 6 days ago");
}

#[test]
fn a_chain_to_another_root_is_blocking() {
    let (ca, other) = (ca(), ca());
    let report = audit(
        &other,
        leaf(
            &ca,
            &["sbc.carrier.example", "*.sbc.carrier.example"],
            &BOTH,
            (2027, 12, 7),
        ),
    );
    let problems = blocking(&report);
    assert_eq!(problems.len(), 1, "{report:?}");
    assert!(problems[0].starts_with("chain: does not verify"));
}

#[test]
fn microsoft_roots_are_found_by_fingerprint() {
    let ca = ca();
    let found = microsoft_roots(&[ca.der().clone()]);
    assert_eq!(found.len(), 7);
    assert!(found.iter().all(|(_, held)| !held));
    // The table's fingerprints are SHA-256 of DER: 64 upper-case hex digits each.
    for (root, _) in &found {
        assert_eq!(root.sha256.len(), 64);
        assert!(
            root.sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
    assert_eq!(
        fingerprint(b"abc"),
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    );
}
