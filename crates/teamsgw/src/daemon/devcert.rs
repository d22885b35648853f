//! The development certificate: when `[tls]` names no certificate, a self-signed one for
//! `localhost` and `127.0.0.1` is generated into the state directory on first start and reused
//! afterwards, so the embedded defaults run on a fresh machine. It carries both serverAuth and
//! clientAuth usages because the same certificate is presented in both directions (mutual TLS).
//! Production configures a real certificate (see reference: teams-direct-routing.md §1.2).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};

pub const CERT_FILE: &str = "dev-cert.pem";
pub const KEY_FILE: &str = "dev-key.pem";

/// Returns (certificate, key) paths, generating both when either is missing.
pub fn ensure(state_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cert = state_dir.join(CERT_FILE);
    let key = state_dir.join(KEY_FILE);
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(state_dir).map_err(|e| {
        format!(
            "daemon.state_dir {}: cannot create: {e}",
            state_dir.display()
        )
    })?;
    let (cert_pem, key_pem) =
        generate().map_err(|e| format!("cannot generate dev certificate: {e}"))?;
    write_atomically(&key, key_pem.as_bytes(), 0o600)?;
    write_atomically(&cert, cert_pem.as_bytes(), 0o644)?;
    tracing::warn!(
        certificate = %cert.display(),
        "no [tls] certificate configured; generated a self-signed development certificate for localhost"
    );
    Ok((cert, key))
}

fn generate() -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "teamsgw development certificate");
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    result.map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use teamsgw_sip::tls::{TlsMaterial, TlsPaths};

    #[test]
    fn generated_once_then_reused_and_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("var");
        let (cert, key) = ensure(&state).unwrap();
        let first = std::fs::read(&cert).unwrap();
        let (cert2, _) = ensure(&state).unwrap();
        assert_eq!(cert, cert2);
        assert_eq!(
            std::fs::read(&cert2).unwrap(),
            first,
            "must be reused, not regenerated"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The certificate is its own trust anchor in development.
        let material = TlsMaterial::load(&TlsPaths {
            certificate: cert.clone(),
            key,
            trust_anchors: cert,
        })
        .unwrap();
        assert_eq!(material.certified_key.cert.len(), 1);
    }
}
