//! The SIP layer of teamsgw and the SBC's security perimeter.
//!
//! Owns: SIP messages (zero-copy parser and builder), stream and datagram framing, the UDP, TCP
//! and TLS (mutual) transports with how a peer's certificate is verified (`peer_verifier`) and
//! the TLS pre-flight facts (`tls_audit`), multipart bodies read as slices (`multipart`, for
//! carrying their parts across, never decoding them), the sans-IO transaction and dialog
//! state machines, digest authentication, and HEPv3 capture of what the transports carry
//! (`hep`). Every byte from Teams, from PBXs and from the internet passes through here first,
//! so nothing in this crate may panic on input.
//!
//! Must never know: media, SDP semantics (bodies are opaque bytes), the provisioning database,
//! licensing, or which customer a message belongs to. Routing decisions belong to the gateway.

pub mod acl;
pub mod certnames;
pub mod dialog;
pub mod digest;
pub mod framing;
pub mod hep;
pub mod message;
pub mod metrics;
pub mod multipart;
pub mod peer_verifier;
pub mod refusal_log;
#[cfg(feature = "test-pki")]
pub mod test_pki;
pub mod tls;
pub mod tls_audit;
pub mod transaction;
pub mod transport;

pub use message::{HeaderName, Limits, Message, Method};
