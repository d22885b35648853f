//! The client-certificate rules on certificates made here: a root, an intermediate under it
//! (as Microsoft's 2026 chains have), and leaves with each EKU shape (teams-direct-routing.md
//! §1.3; RFC 5280 §4.2.1.12).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{CertificateError, Error, RootCertStore};

use super::PeerVerifier;
use crate::certnames;

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A root and an intermediate under it.
struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} root")),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} intermediate")),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Self { root, intermediate }
    }

    fn anchors(&self) -> Arc<RootCertStore> {
        let mut store = RootCertStore::empty();
        store.add(self.root.der().clone()).unwrap();
        Arc::new(store)
    }
}

/// A leaf for `name` with exactly `ekus` (none: no EKU extension), issued by `issuer`.
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    ekus: &[ExtendedKeyUsagePurpose],
    expired: bool,
) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.extended_key_usages = ekus.to_vec();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    params
        .signed_by(&KeyPair::generate().unwrap(), issuer)
        .unwrap()
        .der()
        .clone()
}

fn verify(pki: &Pki, cert: &CertificateDer<'_>) -> Result<(), Error> {
    let verifier = PeerVerifier::new(
        pki.anchors(),
        rustls::crypto::ring::default_provider().signature_verification_algorithms,
    );
    let now = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    );
    verifier.verify(cert, &[pki.intermediate.der().clone()], now)
}

const TEAMS: &str = "sip.pstnhub.microsoft.com";

#[test]
fn server_auth_only_under_an_intermediate_is_accepted_as_microsoft_issues_it_since_2026() {
    let pki = Pki::new("ms");
    let cert = leaf(
        &pki.intermediate,
        TEAMS,
        &[ExtendedKeyUsagePurpose::ServerAuth],
        false,
    );
    verify(&pki, &cert).unwrap();
}

#[test]
fn client_auth_only_both_and_no_eku_at_all_are_accepted() {
    let pki = Pki::new("ms");
    for ekus in [
        &[ExtendedKeyUsagePurpose::ClientAuth][..],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &[],
    ] {
        let cert = leaf(&pki.intermediate, TEAMS, ekus, false);
        verify(&pki, &cert).unwrap_or_else(|e| panic!("{ekus:?}: {e}"));
    }
}

#[test]
fn code_signing_only_is_refused_for_its_purpose() {
    let pki = Pki::new("ms");
    let cert = leaf(
        &pki.intermediate,
        TEAMS,
        &[ExtendedKeyUsagePurpose::CodeSigning],
        false,
    );
    assert_eq!(
        verify(&pki, &cert),
        Err(Error::InvalidCertificate(CertificateError::InvalidPurpose))
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let pki = Pki::new("ms");
    let cert = leaf(
        &pki.intermediate,
        TEAMS,
        &[ExtendedKeyUsagePurpose::ServerAuth],
        true,
    );
    assert_eq!(
        verify(&pki, &cert),
        Err(Error::InvalidCertificate(CertificateError::Expired))
    );
}

#[test]
fn a_chain_to_an_untrusted_root_is_refused() {
    let (trusted, rogue) = (Pki::new("ms"), Pki::new("rogue"));
    let cert = leaf(
        &rogue.intermediate,
        TEAMS,
        &[ExtendedKeyUsagePurpose::ServerAuth],
        false,
    );
    let verifier = PeerVerifier::new(
        trusted.anchors(),
        rustls::crypto::ring::default_provider().signature_verification_algorithms,
    );
    let now = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    );
    assert_eq!(
        verifier.verify(&cert, &[rogue.intermediate.der().clone()], now),
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
    );
}

#[test]
fn a_name_outside_the_allowed_patterns_is_refused_by_the_listener_rule() {
    let pki = Pki::new("ms");
    let allowed = ["*.pstnhub.microsoft.com".to_owned()];
    let teams = leaf(
        &pki.intermediate,
        TEAMS,
        &[ExtendedKeyUsagePurpose::ServerAuth],
        false,
    );
    let outsider = leaf(
        &pki.intermediate,
        "evil.example.com",
        &[ExtendedKeyUsagePurpose::ServerAuth],
        false,
    );
    // Both chains verify; only the name tells them apart.
    verify(&pki, &outsider).unwrap();
    assert!(certnames::allowed(&teams, &allowed).is_ok());
    assert_eq!(
        certnames::allowed(&outsider, &allowed),
        Err(vec!["evil.example.com".to_owned()])
    );
}
