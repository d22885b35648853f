//! Whole calls through the sans-IO core with a virtual clock and scripted peers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bridge_transfer;
mod call_rate;
mod codecs;
mod dialog_peers;
mod emergency;
mod hold;
mod identity;
mod max_forwards;
mod media_streams;
mod operator_connect;
mod pbx_to_teams;
mod pbx_transfer;
mod replaces;
mod route_sets;
mod session_timers;
mod supervision;
mod teams_to_pbx;
mod transfer;
mod world;
