//! SDP for teamsgw: the session-description model, parser and writer (RFC 8866), SDES crypto
//! attributes (RFC 4568) and the offer/answer helpers (RFC 3264) that shape what each leg sees.
//!
//! Owns: turning SDP bytes into a typed description and back, and the rules for the Teams-facing
//! (`RTP/SAVP`, SDES, rtcp-mux, `a=inactive` hold) and PBX-facing (`RTP/AVP`) variants.
//!
//! Must never know: SIP dialogs or transports, sockets, the media relay's internals, the
//! provisioning database. It is a pure data crate: bytes in, bytes out.

pub mod crypto;
pub mod model;
pub mod negotiate;
pub mod parse;

pub use crypto::Crypto;
pub use model::{Attribute, Connection, Direction, Media, SessionDescription};
pub use parse::{SdpError, parse};
