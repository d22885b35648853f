//! Turns the daemon's configuration into the gateway's plain settings (the gateway never sees
//! the config file).

use std::sync::Arc;
use std::time::Duration;

use teamsgw_gateway::call::{CallSettings, SessionCounts};
use teamsgw_gateway::registration::AgentSettings;
use teamsgw_gateway::trunk::TrunkSettings;

use crate::build_info::VERSION;
use crate::config::{PLACEHOLDER_BASE_FQDN, Settings};

pub fn agent(settings: &Settings) -> AgentSettings {
    let pbx = &settings.pbx;
    let contact_host = match &pbx.advertised_address {
        Some(a) => a.clone(),
        None if !pbx.listen_udp.ip().is_unspecified() => pbx.listen_udp.ip().to_string(),
        None => {
            tracing::warn!(
                "pbx.advertised_address is not set and pbx.listen_udp is a wildcard: REGISTER \
                 Contacts carry 127.0.0.1, which only a PBX on this host can reach"
            );
            "127.0.0.1".to_owned()
        }
    };
    let contact_host = match contact_host.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => contact_host,
    };
    AgentSettings {
        contact_host,
        udp_port: pbx.listen_udp.port(),
        tcp_port: pbx.listen_tcp.port(),
        rate_per_second: pbx.register_rate_per_second,
        max_auth_attempts: pbx.max_auth_attempts,
        min_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(300),
        user_agent: format!("teamsgw/{VERSION}"),
        seed: None,
    }
}

pub fn trunk(settings: &Settings) -> TrunkSettings {
    let teams = &settings.teams;
    let placeholder = teams.base_fqdn == PLACEHOLDER_BASE_FQDN;
    if placeholder && !teams.proxies.is_empty() {
        tracing::info!(
            "teams.base_fqdn is the placeholder {PLACEHOLDER_BASE_FQDN}: no OPTIONS to the Teams proxies"
        );
    }
    TrunkSettings {
        proxies: if placeholder {
            Vec::new()
        } else {
            teams.proxies.clone()
        },
        port: teams.proxy_port,
        interval: Duration::from_secs(teams.options_interval_seconds),
        fqdn: teams.base_fqdn.clone(),
        local_port: teams.listen.port(),
        sbc_header: format!("{}/teamsgw/{VERSION}", teams.sbc_vendor),
        seed: None,
    }
}

/// The call layer's settings. The contact host is the registration agent's, so a call from
/// the PBX's point of view comes from the same device as the user's binding.
pub fn calls(settings: &Settings, sessions: Arc<SessionCounts>) -> CallSettings {
    let media_address = match settings.media.advertised_address {
        Some(a) => a.to_string(),
        None if !settings.media.bind_address.is_unspecified() => {
            settings.media.bind_address.to_string()
        }
        None => {
            tracing::warn!(
                "media.advertised_address is not set and media.bind_address is a wildcard: SDP \
                 carries 127.0.0.1, which only peers on this host can reach"
            );
            "127.0.0.1".to_owned()
        }
    };
    let agent = agent(settings);
    CallSettings {
        sbc_header: format!("{}/teamsgw/{VERSION}", settings.teams.sbc_vendor),
        user_agent: format!("teamsgw/{VERSION}"),
        pbx_host: agent.contact_host,
        pbx_udp_port: settings.pbx.listen_udp.port(),
        pbx_tcp_port: settings.pbx.listen_tcp.port(),
        media_address,
        invite_timeout: Duration::from_secs(settings.teams.invite_timeout_seconds),
        session_expires: Duration::from_secs(settings.pbx.session_expires_seconds),
        relay_pbx_hold: settings.teams.hold_towards_teams == "relay",
        seed: None,
        sessions,
        correlate_legs: settings.hep.collector.is_some(),
        emergency_numbers: settings.calls.emergency_numbers.clone(),
        ..CallSettings::default()
    }
}
