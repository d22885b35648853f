//! How the call driver turns a call's [`Dest`] into the ways a message reaches its peer
//! ([`Plan`]): an in-dialog hop's name, then (towards Teams) the connection the dialog last
//! used and the configured proxies (teams-direct-routing.md §1.5); and a response whose
//! connection has closed, sent to its Via instead (RFC 3261 §18.2.2).

use bytes::Bytes;
use prometheus::IntCounterVec;
use teamsgw_sip::Message;
use teamsgw_sip::message::Host;
use teamsgw_sip::transport::{Target, Transport};

use crate::call::Dest;
use crate::sender::{Plan, Way};

/// Reasons a Teams in-dialog request left a way behind
/// (`teamsgw_teams_indialog_fallback_total{reason}`).
pub const FALLBACK_REASONS: [&str; 7] = [
    "not_found",
    "dns_failed",
    "refused",
    "timeout",
    "handshake",
    "connection_gone",
    "send_failed",
];

fn way(dest: &Dest) -> Way {
    match dest {
        Dest::Reply(s) => Way::Back(s.clone()),
        Dest::To(t) => Way::To(t.clone()),
        Dest::Hop(h) => Way::Name {
            host: h.host.clone(),
            port: h.port,
            transport: h.transport,
            server_name: h.server_name(),
        },
    }
}

/// The ways for a message to `dest`; for a Teams hop, its fallback and then `proxies` in
/// order (each address once), with each fallback counted in `fallbacks`.
pub fn plan(dest: &Dest, proxies: &[Target], fallbacks: &IntCounterVec) -> Plan {
    let Dest::Hop(hop) = dest else {
        return Plan {
            ways: vec![way(dest)],
            fallbacks: None,
        };
    };
    let mut ways = vec![way(dest)];
    ways.extend(hop.fallback.iter().map(way));
    if hop.teams() {
        for p in proxies {
            let known = ways
                .iter()
                .any(|w| matches!(w, Way::To(t) if t.addr == p.addr));
            if !known {
                ways.push(Way::To(p.clone()));
            }
        }
    }
    Plan {
        ways,
        fallbacks: hop.teams().then(|| fallbacks.clone()),
    }
}

/// RFC 3261 §18.2.2: a response over TCP/TLS whose connection has closed goes to the top
/// Via's `received` address (else its host) on the sent-by port, over a new connection.
pub fn via_way(response: &Bytes) -> Option<Way> {
    let msg = Message::parse(response.clone()).ok()?;
    msg.status()?;
    let via = msg.top_via()?.ok()?;
    let transport = match via.transport.to_ascii_uppercase().as_str() {
        "TLS" => Transport::Tls,
        "TCP" => Transport::Tcp,
        _ => return None,
    };
    let port = via.port.unwrap_or(if transport == Transport::Tls {
        5061
    } else {
        5060
    });
    let name = match via.host {
        Host::Name(n) => Some(n.to_ascii_lowercase()),
        _ => None,
    };
    let received = via
        .params
        .get(b"received")
        .flatten()
        .and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|r| r.trim_matches(|c| c == '[' || c == ']').parse().ok());
    let host = match (received, via.host) {
        (Some(ip), _) => ip,
        (None, Host::Ipv4(a)) => std::net::IpAddr::V4(a),
        (None, Host::Ipv6(a)) => std::net::IpAddr::V6(a),
        (None, Host::Name(n)) => {
            return Some(Way::Name {
                host: n.to_ascii_lowercase(),
                port,
                transport,
                server_name: name,
            });
        }
    };
    Some(Way::To(Target {
        transport,
        addr: std::net::SocketAddr::new(host, port),
        server_name: name,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::next_hop::Hop;

    fn counter() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("x", "x"), &["reason"]).unwrap()
    }

    fn proxy(addr: &str) -> Target {
        Target {
            transport: Transport::Tls,
            addr: addr.parse().unwrap(),
            server_name: Some("sip.pstnhub.microsoft.com".into()),
        }
    }

    #[test]
    fn teams_hop_falls_back_to_the_last_connection_then_the_proxies_reference_1_5() {
        let last = proxy("192.0.2.1:5061");
        let hop = Dest::Hop(Arc::new(Hop {
            host: "api-du-b-euwe.pstnhub.microsoft.com".into(),
            port: 443,
            transport: Transport::Tls,
            peers: crate::call::peers::Peers::Teams,
            fallback: Some(Dest::To(last)),
        }));
        let p = plan(
            &hop,
            &[proxy("192.0.2.1:5061"), proxy("192.0.2.2:5061")],
            &counter(),
        );
        let ways: Vec<String> = p
            .ways
            .iter()
            .map(|w| match w {
                Way::Name {
                    host, server_name, ..
                } => format!("{host} sni={}", server_name.as_deref().unwrap_or("")),
                Way::To(t) => t.addr.to_string(),
                Way::Back(s) => s.peer.to_string(),
            })
            .collect();
        assert_eq!(
            ways,
            [
                "api-du-b-euwe.pstnhub.microsoft.com sni=api-du-b-euwe.pstnhub.microsoft.com",
                "192.0.2.1:5061",
                "192.0.2.2:5061"
            ]
        );
        assert!(p.fallbacks.is_some(), "Teams fallbacks are counted");
        let plain = plan(
            &Dest::To(proxy("192.0.2.3:5061")),
            &[proxy("192.0.2.1:5061")],
            &counter(),
        );
        assert_eq!(plain.ways.len(), 1, "a plain target has one way");
    }

    #[test]
    fn a_response_whose_connection_closed_goes_to_its_via_rfc3261_18_2_2() {
        let response = |via: &str| {
            Bytes::from(format!(
                "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
                 Call-ID: x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        let Some(Way::To(t)) = via_way(&response(
            "SIP/2.0/TLS sip-du-a-eu.pstnhub.microsoft.com:5061;branch=z9hG4bK1;received=192.0.2.7",
        )) else {
            panic!("received names the address")
        };
        assert_eq!(t.addr, "192.0.2.7:5061".parse().unwrap());
        assert_eq!(
            t.server_name.as_deref(),
            Some("sip-du-a-eu.pstnhub.microsoft.com")
        );
        let Some(Way::Name { host, port, .. }) = via_way(&response(
            "SIP/2.0/TLS sip-du-a-eu.pstnhub.microsoft.com;branch=z9hG4bK1",
        )) else {
            panic!("a name without received is resolved")
        };
        assert_eq!(
            (host.as_str(), port),
            ("sip-du-a-eu.pstnhub.microsoft.com", 5061)
        );
        assert!(
            via_way(&response("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1")).is_none(),
            "UDP has no connection to lose"
        );
    }
}
