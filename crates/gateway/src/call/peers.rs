//! Who may speak in a call's dialogs (issue 31 §2). A dialog's Call-ID and tags cross the
//! PBX side in clear, and a branch is only as secret as its peer keeps it: knowing them must
//! not be enough to end a call, re-route its media or answer its requests. Each leg knows its
//! peer, and a message from anyone else acts on nothing.
//!
//! - Teams: any connection that passed mTLS, ours or one Microsoft opened to our Teams
//!   listener. Teams opens a new connection per transaction (teams-direct-routing.md §1.5),
//!   so no single address or connection can be pinned.
//! - A PBX: the addresses that already screen its new INVITEs, over the leg's transport.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use teamsgw_sip::transport::{Source, Transport};

use super::Dest;
use super::cause::Side;

/// A leg's peer.
#[derive(Debug, Clone)]
pub enum Peers {
    Teams,
    Pbx {
        /// Ports aside: a PBX may send from another port than it listens on.
        sources: Arc<[SocketAddr]>,
        transport: Transport,
    },
}

impl Peers {
    pub fn side(&self) -> Side {
        match self {
            Peers::Teams => Side::Teams,
            Peers::Pbx { .. } => Side::Pbx,
        }
    }

    /// Whether a message from `source` may come from this peer.
    pub fn allow(&self, source: &Source) -> bool {
        match self {
            Peers::Teams => is_teams_connection(source),
            Peers::Pbx { sources, transport } => {
                source.transport == *transport && sources.iter().any(|a| a.ip() == source.peer.ip())
            }
        }
    }
}

/// A connection that passed mTLS against Microsoft's names: our Teams listener, or one we
/// opened and checked.
pub fn is_teams_connection(source: &Source) -> bool {
    source.transport == Transport::Tls && matches!(source.listener, "teams" | "outbound")
}

/// The transaction layer's peer check: a response comes over the transport kind its request
/// used and from where it went; a CANCEL or ACK comes from where its INVITE came. Towards
/// Teams, any mTLS connection is Microsoft's: it answers on a new connection when ours closed
/// (RFC 3261 §18.2.2).
pub fn same_peer(peer: &Dest, incoming: &Dest) -> bool {
    let Dest::Reply(source) = incoming else {
        return false;
    };
    if source.transport != peer.transport() {
        return false;
    }
    match peer {
        Dest::Reply(p) if is_teams_connection(p) => is_teams_connection(source),
        Dest::Reply(p) => p.peer.ip() == source.peer.ip(),
        Dest::To(t) => {
            t.addr.ip() == source.peer.ip()
                || (t.transport == Transport::Tls && source.listener == "teams")
        }
        Dest::Hop(h) => {
            h.peers.allow(source)
                || h.host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip == source.peer.ip())
                || h.fallback.as_ref().is_some_and(|f| same_peer(f, incoming))
        }
    }
}

#[cfg(test)]
mod tests {
    use teamsgw_sip::transport::Target;

    use super::*;
    use crate::call::next_hop::Hop;

    fn source(transport: Transport, listener: &'static str, peer: &str) -> Source {
        Source {
            transport,
            listener,
            peer: peer.parse().unwrap(),
            local: "203.0.113.5:5060".parse().unwrap(),
            conn: None,
        }
    }

    fn to(transport: Transport, addr: &str) -> Dest {
        Dest::To(Target {
            transport,
            addr: addr.parse::<SocketAddr>().unwrap(),
            server_name: None,
        })
    }

    #[test]
    fn a_pbx_leg_hears_only_its_pbx_addresses_over_its_transport_issue_31_2() {
        let pbx = Peers::Pbx {
            sources: Arc::from(["192.0.2.10:5060".parse::<SocketAddr>().unwrap()]),
            transport: Transport::Udp,
        };
        assert!(pbx.allow(&source(Transport::Udp, "pbx", "192.0.2.10:5062")));
        assert!(!pbx.allow(&source(Transport::Udp, "pbx", "192.0.2.66:5060")));
        assert!(!pbx.allow(&source(Transport::Tcp, "pbx", "192.0.2.10:5060")));
        // Teams' connections are no PBX either.
        assert!(!pbx.allow(&source(Transport::Tls, "teams", "52.114.0.1:5061")));
    }

    #[test]
    fn a_teams_leg_hears_any_mtls_connection_and_nothing_else_reference_1_5() {
        assert!(Peers::Teams.allow(&source(Transport::Tls, "teams", "52.114.0.1:5061")));
        assert!(Peers::Teams.allow(&source(Transport::Tls, "outbound", "52.114.0.2:5061")));
        assert!(!Peers::Teams.allow(&source(Transport::Udp, "pbx", "52.114.0.1:5061")));
        assert!(!Peers::Teams.allow(&source(Transport::Tcp, "pbx", "52.114.0.1:5061")));
    }

    #[test]
    fn a_response_comes_from_where_its_request_went_over_the_same_transport() {
        let incoming = |s| Dest::Reply(s);
        let pbx = to(Transport::Udp, "192.0.2.10:5060");
        assert!(same_peer(
            &pbx,
            &incoming(source(Transport::Udp, "pbx", "192.0.2.10:5060"))
        ));
        assert!(!same_peer(
            &pbx,
            &incoming(source(Transport::Udp, "pbx", "192.0.2.66:5060"))
        ));
        assert!(!same_peer(
            &pbx,
            &incoming(source(Transport::Tcp, "pbx", "192.0.2.10:5060"))
        ));
        // A Teams hop by name: any mTLS connection, not a PBX-listener stranger.
        let hop = Dest::Hop(Arc::new(Hop {
            host: "api-du-b-euwe.pstnhub.microsoft.com".into(),
            port: 443,
            transport: Transport::Tls,
            peers: Peers::Teams,
            fallback: None,
        }));
        assert!(same_peer(
            &hop,
            &incoming(source(Transport::Tls, "outbound", "52.114.7.7:443"))
        ));
        assert!(!same_peer(
            &hop,
            &incoming(source(Transport::Tls, "pbx", "52.114.7.7:443"))
        ));
        // A CANCEL for an INVITE that came over Teams' mTLS may use a new connection.
        let invite = Dest::Reply(source(Transport::Tls, "teams", "52.114.0.1:5061"));
        assert!(same_peer(
            &invite,
            &incoming(source(Transport::Tls, "teams", "52.114.0.9:5061"))
        ));
        let invite = Dest::Reply(source(Transport::Udp, "pbx", "192.0.2.10:5060"));
        assert!(!same_peer(
            &invite,
            &incoming(source(Transport::Udp, "pbx", "192.0.2.66:5060"))
        ));
    }
}
