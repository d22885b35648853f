//! TLS material: our certificate chain and private key, and the trust anchors that peer
//! certificates are verified against.
//!
//! Material is loaded and checked as a whole before it replaces what is in use, so a broken file
//! on SIGHUP keeps the previous material serving (the running daemon never ends up with half a
//! certificate). Established connections keep the certificate they were negotiated with; new
//! handshakes read the current material from [`TlsStore`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::peer_verifier::PeerVerifier;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS material could not be loaded. Names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TlsError {
    pub path: PathBuf,
    pub problem: String,
}

impl TlsError {
    fn new(path: &Path, problem: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Where the material comes from, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub trust_anchors: PathBuf,
}

/// A loaded, validated set of TLS material.
pub struct TlsMaterial {
    pub paths: TlsPaths,
    /// Our chain (leaf first) and signing key, presented as server and as client certificate.
    pub certified_key: Arc<CertifiedKey>,
    /// The CAs we accept peer certificates from (mutual TLS in both directions).
    pub trust_anchors: Arc<RootCertStore>,
    /// Listener side: our certificate, and a client certificate is required and verified.
    pub server_config: Arc<ServerConfig>,
    /// Dialling side: our certificate as client certificate; the server is verified.
    pub client_config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("paths", &self.paths)
            .field("chain_len", &self.certified_key.cert.len())
            .field("trust_anchors", &self.trust_anchors.len())
            .finish()
    }
}

impl TlsMaterial {
    /// Loads and checks the certificate chain, the key (which must match the leaf certificate)
    /// and the trust anchors.
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        let chain = load_chain(&paths.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&paths.key)
            .map_err(|e| TlsError::new(&paths.key, format!("no usable private key: {e}")))?;
        let certified_key =
            CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|e| {
                TlsError::new(
                    &paths.key,
                    format!(
                        "key does not fit certificate {}: {e}",
                        paths.certificate.display()
                    ),
                )
            })?;
        let certified_key = Arc::new(certified_key);
        let trust_anchors = Arc::new(load_trust_anchors(&paths.trust_anchors)?);
        let provider = Arc::new(ring::default_provider());
        let config_error = |e: &dyn fmt::Display| {
            TlsError::new(
                &paths.trust_anchors,
                format!("cannot build TLS configuration: {e}"),
            )
        };
        let server_config = server_config(&provider, &certified_key, &trust_anchors)
            .map_err(|e| config_error(&e))?;
        let client_config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(&e))?
            .with_root_certificates(Arc::clone(&trust_anchors))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(
                &certified_key,
            ))));
        Ok(Self {
            paths: paths.clone(),
            certified_key,
            trust_anchors,
            server_config,
            client_config: Arc::new(client_config),
        })
    }
}

/// TLS 1.2 and 1.3 only (reference: teams-direct-routing.md §1.1), client certificate required
/// and verified by [`PeerVerifier`] (serverAuth-only certificates included, §1.3).
fn server_config(
    provider: &Arc<CryptoProvider>,
    certified_key: &Arc<CertifiedKey>,
    trust_anchors: &Arc<RootCertStore>,
) -> Result<Arc<ServerConfig>, String> {
    let verifier = Arc::new(PeerVerifier::new(
        Arc::clone(trust_anchors),
        provider.signature_verification_algorithms,
    ));
    let config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(certified_key))));
    Ok(Arc::new(config))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(path, format!("cannot read certificate file: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, format!("bad PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::new(path, "contains no PEM certificate"));
    }
    Ok(chain)
}

fn load_trust_anchors(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(path, format!("cannot read trust anchors: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, format!("bad PEM certificate: {e}")))?;
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::new(path, "contains no usable CA certificate"));
    }
    Ok(store)
}

/// The material in use, swapped atomically on reload. Cheap to read on every handshake.
#[derive(Debug)]
pub struct TlsStore(ArcSwap<TlsMaterial>);

impl TlsStore {
    pub fn new(material: TlsMaterial) -> Self {
        Self(ArcSwap::from_pointee(material))
    }

    pub fn current(&self) -> Arc<TlsMaterial> {
        self.0.load_full()
    }

    pub fn replace(&self, material: TlsMaterial) {
        self.0.store(Arc::new(material));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn missing_and_garbage_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("teamsgw-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = write(&dir, "garbage.pem", "not a certificate\n");
        let paths = TlsPaths {
            certificate: garbage.clone(),
            key: garbage.clone(),
            trust_anchors: garbage.clone(),
        };
        let err = TlsMaterial::load(&paths).unwrap_err();
        assert_eq!(err.path, garbage);
        assert!(err.problem.contains("no PEM certificate"), "{err}");

        let missing = dir.join("missing.pem");
        let paths = TlsPaths {
            certificate: missing.clone(),
            ..paths
        };
        let err = TlsMaterial::load(&paths).unwrap_err();
        assert_eq!(err.path, missing);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
