//! The media plane of teamsgw: the RTP/SRTP relay between the Teams leg (SRTP with SDES keys,
//! rtcp-mux) and the PBX leg (plain RTP).
//!
//! Owns: the UDP port pool, media sessions with two legs, in-place SRTP/SRTCP transcryption,
//! symmetric-RTP latching with the PBX leg locked to its source (`pbx_source`), RTCP handling,
//! payload-type renumbering between the legs (`payload_map`; the relay never decodes a codec),
//! comfort noise towards Teams while the PBX leg is silent (`comfort_noise`), per-leg
//! statistics and media timeouts.
//!
//! Must never know: SIP (media never imports the sip crate), the provisioning database, or who
//! the call is for. The gateway drives it through a small session API with plain parameters.

pub mod comfort_noise;
pub mod payload_map;
pub mod pbx_source;
mod poller;
pub mod ports;
mod raw_send;
pub mod relay;
pub mod srtp;

pub use relay::{MediaEvent, MediaMetrics, Relay, RelayConfig, Session, SessionParams};
