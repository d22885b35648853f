//! The `teamsgw` daemon and command line: configuration, the admin HTTP listener (metrics,
//! health, the REST API under /api/v1), signals and systemd integration, the provisioning
//! subcommands, user import and the license report.
//!
//! Owns: process life (start, SIGHUP reload, SIGTERM drain), config loading and validation,
//! how metrics are exposed, and turning CLI/API input into store calls.
//!
//! Must never know: SIP, SDP or media internals (it hands settings to the gateway and the
//! transports), or SQL (the store crate owns it). Keep protocol logic out of here.

pub mod admin;
pub mod api;
pub mod build_info;
pub mod call_routes;
pub mod cdr;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod devcert;
pub mod drain;
pub mod file_limit;
pub mod gateway_settings;
pub mod license_monitor;
pub mod license_report;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod operations;
pub mod provision_cli;
pub mod provisioning;
pub mod readiness;
pub mod registrations;
pub mod sip_service;
pub mod status_cli;
pub mod user_import;
