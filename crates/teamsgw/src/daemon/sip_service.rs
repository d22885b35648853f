//! Wires the SIP transports to the protocol logic: every received request goes through the
//! stateless policy, which passes calls' requests to the call shards; responses go to their
//! owner by Call-ID (a call shard, else the registration agent and trunk health).
//!
//! Two queues, two tasks: Teams' listener and our own connections on one, the PBX listeners
//! (open to the internet) on the other, so a flood on the PBX side never delays Teams. On
//! the PBX side, requests outside dialogs from anyone but a provisioned PBX pass a
//! per-source rate limit first ([`teamsgw_gateway::flood`]).

use std::sync::Arc;

use teamsgw_gateway::call_driver::CallsHandle;
use teamsgw_gateway::flood::{FloodGuard, FloodVerdict};
use teamsgw_gateway::stateless::{StatelessPolicy, Verdict};
use teamsgw_sip::acl::{AllowList, Cidr};
use teamsgw_sip::message::Limits;
use teamsgw_sip::message::Method;
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
            untrusted: false,
        },
        ListenerSpec {
            name: "pbx",
            transport: Transport::Udp,
            addr: settings.pbx.listen_udp,
            allow: pbx_allow.clone(),
            peer_names: Vec::new(),
            untrusted: true,
        },
        ListenerSpec {
            name: "pbx",
            transport: Transport::Tcp,
            addr: settings.pbx.listen_tcp,
            allow: pbx_allow,
            peer_names: Vec::new(),
            untrusted: true,
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
        message_timeout: secs(settings.sip.message_timeout_seconds),
        max_connections: settings.sip.max_connections,
        max_connections_per_source: settings.sip.max_connections_per_source,
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

/// What both queues' tasks share.
#[derive(Clone)]
pub struct Service {
    pub transport: SipTransport,
    pub responses: mpsc::Sender<Incoming>,
    pub calls: CallsHandle,
    pub metrics: SipMetrics,
    pub drain: Arc<Drain>,
    pub teams_contact: String,
    /// `pbx.max_requests_per_second_per_source`.
    pub pbx_rate: u32,
}

/// Serves the trusted and the untrusted queue, each on its own task.
pub fn spawn(
    service: Service,
    trusted: mpsc::Receiver<Incoming>,
    untrusted: mpsc::Receiver<Incoming>,
) {
    for label in ["rate_limit", "banned"] {
        service.metrics.refused_source.with_label_values(&[label]);
    }
    let flood = FloodGuard::new(service.pbx_rate);
    tokio::spawn(run(service.clone(), trusted, None));
    tokio::spawn(run(service, untrusted, Some(flood)));
}

/// Answers what arrives on `inbound` until the transports shut down. Responses to calls go
/// to their shard; the rest belong to the requests the client driver originates
/// (`responses`). With `flood`, requests outside dialogs pass it first.
async fn run(
    service: Service,
    mut inbound: mpsc::Receiver<Incoming>,
    mut flood: Option<FloodGuard>,
) {
    let Service {
        transport,
        responses,
        calls,
        metrics,
        drain,
        teams_contact,
        ..
    } = service;
    let policy = StatelessPolicy::new("teamsgw").with_calls();
    while let Some(incoming) = inbound.recv().await {
        if let Some(flood) = flood.as_mut()
            && incoming.message.is_request()
            && incoming.message.to_tag().is_none()
            && !matches!(
                incoming.message.method(),
                Some(Method::Ack | Method::Cancel)
            )
            // A provisioned PBX is known, not a stranger: its calls are never throttled here.
            && !calls.is_pbx_source(incoming.source.peer.ip())
        {
            let peer = incoming.source.peer;
            match flood.check(peer.ip(), std::time::Instant::now()) {
                FloodVerdict::Pass => {}
                FloodVerdict::Drop => {
                    metrics
                        .refused_source
                        .with_label_values(&["rate_limit"])
                        .inc();
                    continue;
                }
                FloodVerdict::Banned { newly } => {
                    if newly {
                        tracing::warn!(%peer, rate = flood.rate(), seconds = teamsgw_gateway::flood::BAN_FOR.as_secs(), "a source kept sending requests past its rate on the PBX listener: banned");
                    }
                    metrics.refused_source.with_label_values(&["banned"]).inc();
                    continue;
                }
            }
        }
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
