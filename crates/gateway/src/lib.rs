//! The teamsgw back-to-back user agent: the only crate that knows both legs of a call.
//!
//! Owns: Teams trunk health (OPTIONS towards the Teams SIP proxies), the PBX registration agent
//! (one REGISTER binding per Teams user), call state machines, routing decisions against the
//! provisioning snapshot, and CDRs. Its protocol cores are sans-IO (`registration`, `trunk`,
//! `stateless`); a thin tokio layer (`client`) drives them over the SIP transports.
//!
//! Must never know: socket details below the SIP transport API, SQL, HTTP, or how the daemon is
//! configured and signalled (the binary hands it plain settings).

pub mod call;
pub mod call_driver;
pub mod client;
pub mod gauge_series;
pub mod registration;
mod rng;
pub mod sender;
pub mod stateless;
pub mod trunk;
