//! The `teamsgw` binary: the daemon and its command line, in four rooms, so a reader knows
//! where a thing lives:
//! - [`cli`]: the commands (`run`, `check-config`, provisioning, `user status`, `call list`);
//! - [`daemon`]: process life (start, SIGHUP reload, SIGTERM drain, systemd) and the
//!   background tasks that feed the gateway from provisioning (routes, registrations, CDRs,
//!   license monitoring);
//! - [`admin`]: the admin HTTP listener and everything on it (metrics, health, the REST API
//!   under /api/v1 and its OpenAPI document, the web console under /ui/);
//! - [`operations`]: the provisioning operations and reports behind every door (CLI, API),
//!   so a rule holds the same way whichever one a change comes through.
//!
//! [`config`] and [`build_info`] are shared by all four.
//!
//! Owns: process life, config loading and validation, how metrics are exposed, and turning
//! CLI/API input into store calls.
//!
//! Must never know: SIP, SDP or media internals (it hands settings to the gateway and the
//! transports), or SQL (the store crate owns it). Keep protocol logic out of here.

pub mod admin;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod operations;
