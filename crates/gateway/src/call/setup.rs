//! What a new call is built from, per direction: the routing decision it copies, how we
//! present ourselves on each leg (Contact, Via, Allow, X-MS-SBC), where the outbound INVITE
//! goes and what it says (teams-direct-routing.md §3.1, §3.2).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use teamsgw_sip::Message;
use teamsgw_sip::digest::Credentials;
use teamsgw_sip::transport::{Source, Target, Transport};

use super::CallSettings;
use super::identity;
use super::inbound::LegProfile;
use super::outbound::{InviteTemplate, MAX_FORWARDS};
use super::peers::Peers;
use super::routing::{self, Rejection, RoutingView};
use crate::registration::transport_token;
use crate::stateless::{ALLOW, PBX_ALLOW};

/// RFC 4028 §7.1: every INVITE we send asks for our session interval; the answer decides.
pub(super) fn session_timer_offer(settings: &CallSettings) -> Vec<(&'static str, String)> {
    vec![
        ("Supported", "timer".to_owned()),
        (
            "Session-Expires",
            settings.session_expires.as_secs().to_string(),
        ),
    ]
}

/// `port` is the direct route's SIP port: where Teams reaches us for this tenant.
pub(super) fn teams_profile(
    settings: &CallSettings,
    fqdn: &str,
    port: u16,
    user: Option<&str>,
) -> LegProfile {
    let contact = match user {
        // §3.2: `<sip:+caller@<tenant FQDN>:<port>;transport=tls>`; Teams picks the tenant
        // from this FQDN (§3.1).
        Some(u) => format!(
            "<sip:{}@{fqdn}:{port};transport=tls>",
            teamsgw_sip::message::escape_user(u)
        ),
        None => format!("<sip:{fqdn}:{port};transport=tls>"),
    };
    LegProfile {
        peers: Peers::Teams,
        contact,
        via_transport: "TLS",
        via_host: format!("{fqdn}:{port}"),
        headers: vec![
            ("Allow", ALLOW.to_owned()),
            ("X-MS-SBC", settings.sbc_header.clone()),
        ],
    }
}

/// `sources`: the PBX's signalling addresses, the only ones heard in the leg's dialogs.
pub(super) fn pbx_profile(
    settings: &CallSettings,
    token: &str,
    transport: Transport,
    sources: &Arc<[SocketAddr]>,
) -> LegProfile {
    let (via_transport, param) = transport_token(transport);
    let port = match transport {
        Transport::Udp => settings.pbx_udp_port,
        _ => settings.pbx_tcp_port,
    };
    let host = &settings.pbx_host;
    LegProfile {
        peers: Peers::Pbx {
            sources: Arc::clone(sources),
            transport,
        },
        // The same Contact as the user's registration, so the PBX sees its own device.
        contact: format!("<sip:{token}@{host}:{port}{param}>"),
        via_transport,
        via_host: format!("{host}:{port}"),
        headers: vec![
            ("Allow", PBX_ALLOW.to_owned()),
            ("User-Agent", settings.user_agent.clone()),
        ],
    }
}

pub(super) fn from_teams(
    settings: &CallSettings,
    view: &RoutingView,
    request: &Message,
    _source: &Source,
) -> Result<CallParts, Rejection> {
    let max_forwards = remaining_hops(request)?;
    let route = routing::route_teams_call(view, request)?;
    let pbx = &route.pbx;
    // An emergency call reaches the PBX as dialled (no number format), whatever the limits.
    let dialled = &route.dialled;
    let numbers = route
        .tenant
        .emergency_numbers
        .as_deref()
        .unwrap_or(&settings.emergency_numbers);
    let emergency = numbers
        .iter()
        .any(|n| n.trim_start_matches('+') == dialled.trim_start_matches('+'));
    let called = if emergency {
        dialled.clone()
    } else {
        route.called.clone()
    };
    let target = pbx
        .target()
        .ok_or_else(|| admission("pbx_unresolved", format!("cannot resolve {}", pbx.next_hop)))?;
    let user = &route.user;
    let anonymous = identity::caller_is_anonymous(request);
    let display = if anonymous {
        "\"Anonymous\" ".to_owned()
    } else {
        quoted_display(route.caller_display.as_deref())
    };
    let mut headers = session_timer_offer(settings);
    if anonymous {
        headers.push(("Privacy", "id".to_owned()));
    }
    if pbx.diversion
        && let Some(d) =
            identity::diversion_from_history(request, view, &route.tenant.enterprise_id, pbx)
    {
        headers.push(("Diversion", d));
    }
    // RFC 6442 §4: the location conveyance headers travel with the location.
    for name in ["Geolocation", "Geolocation-Routing", "Geolocation-Error"] {
        for value in request.other_header(name) {
            headers.push((name, String::from_utf8_lossy(value).into_owned()));
        }
    }
    Ok(CallParts {
        inbound: teams_profile(settings, &route.tenant.fqdn, route.tenant.port, None),
        outbound: pbx_profile(settings, &user.contact_token, pbx.transport, &pbx.addrs),
        target,
        template: InviteTemplate {
            uri: format!("sip:{called}@{}", pbx.domain),
            from: format!("{display}<sip:{}@{}>", user.extension, pbx.domain),
            to: format!("<sip:{called}@{}>", pbx.domain),
            headers,
            max_forwards,
            sdp: None,
            parts: None,
        },
        credentials: Some(Credentials {
            username: user.auth_user.clone(),
            password: user.password.clone(),
        }),
        proxies: VecDeque::new(),
        pbx_codecs: pbx.codecs.clone(),
        caller: route.caller.clone(),
        callee: called,
        pbx: pbx.dialing(),
        tenant: route.tenant,
        user: route.user,
        emergency,
    })
}

pub(super) fn to_teams(
    settings: &CallSettings,
    view: &RoutingView,
    request: &Message,
    source: &Source,
) -> Result<CallParts, Rejection> {
    let max_forwards = remaining_hops(request)?;
    let route = routing::route_pbx_call(view, request, source.peer.ip())?;
    let fqdn = &route.tenant.fqdn;
    let display = quoted_display(route.caller_display.as_deref());
    let number = &route.user.number;
    let anonymous = identity::caller_is_anonymous(request);
    let (from, mut headers) = identity::towards_teams(anonymous, &display, &route.caller, fqdn);
    headers.extend(session_timer_offer(settings));
    if let Some(h) = identity::history_from_diversion(request, &route.pbx, fqdn, number) {
        headers.push(("History-Info", h));
    }
    // An anonymous caller's number stays out of our Contact too.
    let contact_user = (!anonymous).then_some(route.caller.as_str());
    Ok(CallParts {
        inbound: pbx_profile(
            settings,
            &route.user.contact_token,
            source.transport,
            &route.pbx.addrs,
        ),
        outbound: teams_profile(settings, fqdn, route.tenant.port, contact_user),
        // Replaced by the first proxy tried.
        target: Target {
            transport: Transport::Tls,
            addr: source.peer,
            server_name: None,
        },
        template: InviteTemplate {
            uri: String::new(),
            from,
            to: format!("<sip:{number}@{fqdn};user=phone>"),
            headers,
            max_forwards,
            sdp: None,
            parts: None,
        },
        credentials: None,
        proxies: view.proxies.iter().cloned().collect(),
        pbx_codecs: route.pbx.codecs.clone(),
        caller: route.caller.clone(),
        callee: number.clone(),
        pbx: route.pbx.dialing(),
        tenant: route.tenant,
        user: route.user,
        emergency: false,
    })
}

/// The pieces a new call is built from, per direction.
pub(super) struct CallParts {
    pub inbound: LegProfile,
    pub outbound: LegProfile,
    pub target: Target,
    pub template: InviteTemplate,
    pub credentials: Option<Credentials>,
    pub proxies: VecDeque<routing::TeamsProxy>,
    pub pbx_codecs: Vec<String>,
    pub caller: String,
    pub callee: String,
    pub tenant: routing::Tenant,
    pub user: routing::UserRoute,
    pub pbx: routing::PbxDialing,
    /// A call from Teams to one of `emergency_numbers`.
    pub emergency: bool,
}

/// Max-Forwards for the INVITE we send: the caller's less one, or 70 when it gave none.
/// A B2BUA passes the count on like a proxy, so a routing loop through SBCs and PBXs ends
/// (RFC 7332 §3); at 0 the INVITE gets 483 (RFC 3261 §16.3 step 3).
fn remaining_hops(request: &Message) -> Result<u8, Rejection> {
    match request.max_forwards() {
        None => Ok(MAX_FORWARDS),
        Some(Ok(0)) => Err(Rejection {
            status: 483,
            reason: "Too Many Hops",
            warning: "Max-Forwards is 0 (RFC 7332 §3)".into(),
            label: "too_many_hops",
        }),
        Some(Ok(n)) => Ok(n - 1),
        Some(Err(e)) => Err(Rejection {
            status: 400,
            reason: "Bad Request",
            warning: e.to_string(),
            label: "bad_request",
        }),
    }
}

pub(super) fn admission(label: &'static str, warning: String) -> Rejection {
    Rejection {
        status: 503,
        reason: "Service Unavailable",
        warning,
        label,
    }
}

/// A peer's display name as ours to send: quoted and escaped (RFC 3261 §25.1).
fn quoted_display(display: Option<&str>) -> String {
    display
        .map(teamsgw_sip::message::quoted_display)
        .unwrap_or_default()
}
