//! What the daemon says about its TLS material at start-up and on every reload: a warning for
//! each of Microsoft's roots the trust anchors lack (teams-direct-routing.md §1.3: a missing
//! root fails Teams' handshakes with nothing in Teams' admin center saying why), and the
//! expiry of each certificate in our chain as a gauge for the alert rules.

use prometheus::IntGaugeVec;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use teamsgw_sip::tls::TlsMaterial;
use teamsgw_sip::tls_audit;

/// Logs and publishes what `material` holds.
pub fn observe(material: &TlsMaterial, expiry: &IntGaugeVec) {
    let anchors: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&material.paths.trust_anchors)
            .map(|certs| certs.filter_map(Result::ok).collect())
            .unwrap_or_default();
    for (root, held) in tls_audit::microsoft_roots(&anchors) {
        if !held {
            tracing::warn!(
                root = root.name,
                sha256 = root.sha256,
                trust_anchors = %material.paths.trust_anchors.display(),
                "a root Microsoft's SIP proxies use is missing from the trust anchors; Teams connections chained to it will fail (run `teamsgw check-tls`)"
            );
        }
    }
    // The chain may be shorter than before a reload: no series of the old one stays behind.
    expiry.reset();
    for (i, cert) in material.certified_key.cert.iter().enumerate() {
        let label = match i {
            0 => "sbc".to_owned(),
            n => format!("sbc-chain-{n}"),
        };
        if let Some(facts) = tls_audit::facts(cert) {
            expiry.with_label_values(&[&label]).set(facts.not_after);
        }
    }
}
