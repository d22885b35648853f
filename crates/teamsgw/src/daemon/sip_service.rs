//! Wires the SIP transports to the protocol logic: every received request goes through the
//! stateless policy, which passes calls' requests to the call shards; responses go to their
//! owner by Call-ID (a call shard, else the registration agent and trunk health).

use std::sync::Arc;

use teamsgw_gateway::call_driver::CallsHandle;
use teamsgw_gateway::stateless::{StatelessPolicy, Verdict};
use teamsgw_sip::acl::{AllowList, Cidr};
use teamsgw_sip::message::Limits;
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::transport::{Incoming, ListenerSpec, SipTransport, Transport, TransportSettings};
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::daemon::drain::Drain;

/// The listeners the config asks for.
pub fn listener_specs(settings: &Settings) -> Vec<ListenerSpec> {
    // Entries were validated with the config; an unparsable one cannot reach here.
    let allow = |list: &[String]| {
        AllowList::new(list.iter().filter_map(|c| c.parse::<Cidr>().ok()).collect())
    };
    let pbx_allow = allow(&settings.pbx.allowed_sources);
    vec![
        ListenerSpec {
            name: "teams",
            transport: Transport::Tls,
            addr: settings.teams.listen,
            allow: allow(&settings.teams.allowed_sources),
            peer_names: settings.teams.allowed_peer_names.clone(),
        },
        ListenerSpec {
            name: "pbx",
            transport: Transport::Udp,
            addr: settings.pbx.listen_udp,
            allow: pbx_allow.clone(),
            peer_names: Vec::new(),
        },
        ListenerSpec {
            name: "pbx",
            transport: Transport::Tcp,
            addr: settings.pbx.listen_tcp,
            allow: pbx_allow,
            peer_names: Vec::new(),
        },
    ]
}

/// The config key behind a listener, for error messages.
pub fn listener_key(name: &str, transport: Transport) -> &'static str {
    match (name, transport) {
        ("teams", _) => "teams.listen",
        (_, Transport::Udp) => "pbx.listen_udp",
        _ => "pbx.listen_tcp",
    }
}

pub fn transport_settings(settings: &Settings) -> TransportSettings {
    let secs = std::time::Duration::from_secs;
    TransportSettings {
        limits: Limits {
            max_message_size: settings.sip.max_message_size,
            max_headers: settings.sip.max_headers,
        },
        idle_timeout: secs(settings.sip.idle_timeout_seconds),
        max_connections: settings.sip.max_connections,
        handshake_timeout: secs(settings.sip.tls_handshake_timeout_seconds),
        udp_receive_buffer: settings.sip.udp_receive_buffer_bytes,
        ..TransportSettings::default()
    }
}

/// Our Contact towards Teams: the carrier FQDN and the TLS listener's port (§2.1, §2.2).
pub fn teams_contact(settings: &Settings) -> String {
    format!(
        "<sip:{}:{};transport=tls>",
        settings.teams.base_fqdn,
        settings.teams.listen.port()
    )
}

/// Answers what arrives on `inbound` until the transports shut down. Responses to calls go
/// to their shard; the rest belong to the requests the client driver originates
/// (`responses`).
pub async fn run(
    transport: SipTransport,
    mut inbound: mpsc::Receiver<Incoming>,
    responses: mpsc::Sender<Incoming>,
    calls: CallsHandle,
    metrics: SipMetrics,
    drain: Arc<Drain>,
    teams_contact: String,
) {
    let policy = StatelessPolicy::new("teamsgw").with_calls();
    while let Some(incoming) = inbound.recv().await {
        if !incoming.message.is_request() {
            let label = incoming.source.transport.as_str();
            let for_calls = CallsHandle::owns_response(&incoming.message);
            let queued = if for_calls {
                calls.dispatch(incoming)
            } else {
                responses.try_send(incoming).is_ok()
            };
            if !queued {
                metrics
                    .dropped
                    .with_label_values(&[label, "overload"])
                    .inc();
            }
            continue;
        }
        let transport_label = incoming.source.transport.as_str();
        let contact = (incoming.source.listener == "teams").then_some(teams_contact.as_str());
        let verdict = policy.handle_with_contact(
            &incoming.message,
            incoming.source.peer,
            drain.is_draining(),
            contact,
        );
        if verdict == Verdict::Pass {
            if !calls.dispatch(incoming) {
                metrics
                    .dropped
                    .with_label_values(&[transport_label, "overload"])
                    .inc();
            }
            continue;
        }
        let Incoming { message: _, source } = incoming;
        let response = match verdict {
            Verdict::Respond(r) => r,
            Verdict::Reject(r, reason) => {
                metrics
                    .rejected
                    .with_label_values(&[transport_label, reason])
                    .inc();
                r
            }
            Verdict::Drop(reason) => {
                metrics
                    .dropped
                    .with_label_values(&[transport_label, reason])
                    .inc();
                continue;
            }
            Verdict::Ignore | Verdict::Pass => continue,
        };
        if let Err(e) = transport.respond(&source, response).await {
            metrics
                .dropped
                .with_label_values(&[transport_label, "send_failed"])
                .inc();
            tracing::debug!(peer = %source.peer, error = %e, "cannot send response");
        }
    }
}
