//! The teamsgw back-to-back user agent: the only crate that knows both legs of a call.
//!
//! Owns: Teams trunk health (OPTIONS towards the Teams SIP proxies), the PBX registration agent
//! (one REGISTER binding per Teams user), calls (`call`: routing decisions against a view of
//! the provisioning snapshot, both legs, SDP bridging, media sessions, call records). Its
//! protocol cores are sans-IO (`registration`, `trunk`, `stateless`, `call`); thin tokio
//! layers drive them over the SIP transports: `client` for the requests we originate,
//! `call_driver` for the call shards, both sending through `sender`'s ordered per-peer queues.
//! `dns` resolves every name either of them dials. `supervision` restarts a call shard, the
//! client driver or the CDR writer that panicked; `flood` rate-limits strangers on the PBX listeners (the daemon applies it).
//!
//! Must never know: socket details below the SIP transport API, SQL, HTTP, or how the daemon is
//! configured and signalled (the binary hands it plain settings).

pub mod call;
pub mod call_dest;
pub mod call_driver;
pub mod client;
pub mod dns;
pub mod flood;
pub mod gauge_series;
pub mod registration;
mod rng;
pub mod sender;
pub mod stateless;
pub mod supervision;
pub mod trunk;
