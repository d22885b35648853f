//! How a TLS client's certificate is verified on our listeners: the chain to the trust
//! anchors (with the intermediates the peer sends), validity and signatures, and an Extended
//! Key Usage that names serverAuth *or* clientAuth.
//!
//! Why not rustls' `WebPkiClientVerifier`: it demands clientAuth, and since Microsoft's SIP
//! proxies moved to public TLS certificates (MC1213773, April–June 2026; Chrome Root Program
//! policy 1.6 took clientAuth out of them) their certificates carry serverAuth only, so every
//! Teams handshake failed (teams-direct-routing.md §1.3). A certificate without an EKU
//! extension is valid for any purpose (RFC 5280 §4.2.1.12); one whose EKU names neither
//! purpose (code signing only, say) is refused. Peer *names* are checked per listener after
//! the handshake (`teams.allowed_peer_names`), where the listener is known.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter};

/// id-kp-serverAuth (1.3.6.1.5.5.7.3.1) and id-kp-clientAuth (1.3.6.1.5.5.7.3.2), DER contents.
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// The EKU rule above: absent, or naming serverAuth or clientAuth.
struct ServerOrClientAuth;

impl ExtendedKeyUsageValidator for ServerOrClientAuth {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let (server, client) = (
            KeyPurposeId::new(SERVER_AUTH),
            KeyPurposeId::new(CLIENT_AUTH),
        );
        let mut empty = true;
        for id in iter {
            empty = false;
            let id = id?;
            if id == server || id == client {
                return Ok(());
            }
        }
        if empty {
            Ok(())
        } else {
            // The context variant would name the wanted purpose, which is two here.
            #[allow(deprecated)]
            Err(webpki::Error::RequiredEkuNotFound)
        }
    }
}

/// Verifies client certificates against `anchors` by the rules in the module doc.
#[derive(Debug)]
pub struct PeerVerifier {
    anchors: Arc<RootCertStore>,
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PeerVerifier {
    pub fn new(anchors: Arc<RootCertStore>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        let subjects = anchors.subjects();
        Self {
            anchors,
            subjects,
            algorithms,
        }
    }

    /// The chain, validity at `now`, signatures and EKU of a peer's certificate.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let cert = EndEntityCert::try_from(end_entity).map_err(refusal)?;
        cert.verify_for_usage(
            self.algorithms.all,
            &self.anchors.roots,
            intermediates,
            now,
            ServerOrClientAuth,
            None,
            None,
        )
        .map(|_| ())
        .map_err(refusal)
    }
}

/// rustls' names for webpki's refusals, so handshake failures are counted by reason.
fn refusal(e: webpki::Error) -> Error {
    use webpki::Error as E;
    let reason = match e {
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        #[allow(deprecated)]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(reason)
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
