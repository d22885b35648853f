//! A throwaway PKI for TLS tests: one CA and leaf certificates it signs, written as PEM files.
//! Only built with the `test-pki` feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// An intermediate CA under `issuer`, for chains shaped like Microsoft's.
    intermediate: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

/// PEM files of one leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LeafFiles {
    /// A `[tls]` config section serving this certificate and trusting `ca`.
    pub fn tls_section(&self, ca: &TestCa) -> String {
        format!(
            "[tls]\ncertificate = \"{}\"\nkey = \"{}\"\ntrust_anchors = \"{}\"\n",
            self.cert.display(),
            self.key.display(),
            ca.ca_path().display()
        )
    }
}

impl TestCa {
    /// A new CA whose PEM certificate is written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let ca = |common_name: String| {
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params
        };
        let issuer = CertifiedIssuer::self_signed(
            ca(format!("{name} test CA")),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), issuer.pem()).unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca(format!("{name} test intermediate CA")),
            KeyPair::generate().unwrap(),
            &issuer,
        )
        .unwrap();
        Self {
            issuer,
            intermediate,
            dir: dir.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A TLS client that trusts this CA and presents `client` (or no certificate).
    pub fn client_config(&self, client: Option<&LeafFiles>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.ca_path()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match client {
            Some(leaf) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(&leaf.cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(&leaf.key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// A leaf for `dns_names` (plus 127.0.0.1), usable as server and client certificate.
    /// Names that are IP addresses become IP subject alternative names.
    pub fn leaf(&self, file_stem: &str, dns_names: &[&str]) -> LeafFiles {
        self.issue(
            file_stem,
            dns_names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            false,
        )
    }

    /// A leaf shaped like Microsoft's SIP proxy certificates since 2026 (MC1213773;
    /// teams-direct-routing.md §1.3): Extended Key Usage serverAuth only, issued by an
    /// intermediate CA, the file holding the leaf and then the intermediate.
    pub fn microsoft_leaf(&self, file_stem: &str, dns_names: &[&str]) -> LeafFiles {
        self.issue(
            file_stem,
            dns_names,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            true,
        )
    }

    fn issue(
        &self,
        file_stem: &str,
        dns_names: &[&str],
        ekus: &[ExtendedKeyUsagePurpose],
        under_intermediate: bool,
    ) -> LeafFiles {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or(file_stem),
        );
        params.subject_alt_names = dns_names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .chain([SanType::IpAddress("127.0.0.1".parse().unwrap())])
            .collect();
        params.extended_key_usages = ekus.to_vec();
        let key = KeyPair::generate().unwrap();
        let files = LeafFiles {
            cert: self.dir.join(format!("{file_stem}.pem")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        let pem = if under_intermediate {
            params.signed_by(&key, &self.intermediate).unwrap().pem() + &self.intermediate.pem()
        } else {
            params.signed_by(&key, &self.issuer).unwrap().pem()
        };
        std::fs::write(&files.cert, pem).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}
