//! Where a call's in-dialog requests go (RFC 3261 §12.2.1.1): to the dialog's first Route,
//! else to its remote target, never simply back the way the INVITE came. A hosted PBX's
//! proxy record-routes and answers 404 to a BYE that skips it; Teams opens a new TLS
//! connection per transaction and closes old ones, so the connection its INVITE came on may
//! be gone when our BYE leaves (teams-direct-routing.md §1.5).
//!
//! A hop that is a name (Teams' `api-du-…pstnhub.microsoft.com`, a PBX proxy's host) is a
//! [`Hop`] the driver resolves and dials, so no call shard waits on DNS. Towards Teams it
//! carries where to go when the name cannot be reached: the connection the dialog last used,
//! then (added by the driver) the configured proxies in order.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use teamsgw_sip::dialog::{Dialog, NextHop};
use teamsgw_sip::transport::{Target, Transport};

use super::peers::Peers;
use super::{Dest, Side};

/// An in-dialog request's next hop, for the driver to resolve and dial.
#[derive(Debug, Clone)]
pub struct Hop {
    /// A DNS name or an IP literal.
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// Who may answer there (towards Teams: fall back to `fallback`, then to the configured
    /// proxies).
    pub peers: Peers,
    /// Where to go when `host` cannot be reached (the connection the dialog last used).
    pub fallback: Option<Dest>,
}

impl Hop {
    pub fn teams(&self) -> bool {
        matches!(self.peers, Peers::Teams)
    }

    /// The name a TLS server certificate must carry: the host, when it is a name.
    pub fn server_name(&self) -> Option<String> {
        self.host
            .parse::<IpAddr>()
            .is_err()
            .then(|| self.host.clone())
    }

    /// The target for one of the host's addresses.
    pub fn target(&self, ip: IpAddr) -> Target {
        Target {
            transport: self.transport,
            addr: SocketAddr::new(ip, self.port),
            server_name: self.server_name(),
        }
    }
}

/// Where a request in `dialog` goes on a leg of `side` whose own transport is `transport`.
/// `last` is the way the dialog's messages last came (or the target we called): the
/// fallback towards Teams, and the destination when the dialog names no SIP hop.
pub fn in_dialog(dialog: Option<&Dialog>, peers: &Peers, transport: Transport, last: Dest) -> Dest {
    let Some(next) = dialog.and_then(Dialog::next_hop) else {
        return last;
    };
    let teams = peers.side() == Side::Teams;
    // Teams speaks TLS only (§1.1); elsewhere a URI without a transport keeps the leg's.
    let transport = match (teams, next.transport) {
        (true, _) => Transport::Tls,
        (false, Some(t)) => t,
        (false, None) => transport,
    };
    let NextHop { host, port, .. } = next;
    let port = port.unwrap_or(match transport {
        Transport::Tls => 5061,
        _ => 5060,
    });
    if !teams && let Ok(ip) = host.parse::<IpAddr>() {
        return Dest::To(Target {
            transport,
            addr: SocketAddr::new(ip, port),
            server_name: None,
        });
    }
    Dest::Hop(Arc::new(Hop {
        host,
        port,
        transport,
        peers: peers.clone(),
        fallback: teams.then_some(last),
    }))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use teamsgw_sip::Message;

    use super::*;

    fn dialog(contact: &str, record_route: &str) -> Dialog {
        let text = format!(
            "INVITE sip:bob@sbc.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKx\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@sbc.test>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nContact: <{contact}>\r\n{record_route}Content-Length: 0\r\n\r\n"
        );
        Dialog::uas(&Message::parse(Bytes::from(text)).unwrap(), "t").unwrap()
    }

    fn pbx() -> Peers {
        Peers::Pbx {
            sources: Arc::from([]),
            transport: Transport::Udp,
        }
    }

    fn last() -> Dest {
        Dest::To(Target {
            transport: Transport::Tls,
            addr: "192.0.2.9:5061".parse().unwrap(),
            server_name: None,
        })
    }

    #[test]
    fn teams_contact_name_is_a_hop_with_the_last_connection_as_fallback_reference_1_5() {
        let d = dialog(
            "sip:api-du-b-euwe.pstnhub.microsoft.com:443;x-i=1;x-c=2;transport=tls",
            "",
        );
        let Dest::Hop(hop) = in_dialog(Some(&d), &Peers::Teams, Transport::Tls, last()) else {
            panic!("a name is resolved by the driver")
        };
        assert_eq!(hop.host, "api-du-b-euwe.pstnhub.microsoft.com");
        assert_eq!(
            (hop.port, hop.transport, hop.teams()),
            (443, Transport::Tls, true)
        );
        assert_eq!(
            hop.server_name().as_deref(),
            Some("api-du-b-euwe.pstnhub.microsoft.com"),
            "SNI and certificate check use the hop's name"
        );
        assert!(matches!(hop.fallback, Some(Dest::To(_))));
    }

    #[test]
    fn pbx_record_route_comes_before_the_contact_rfc3261_12_2_1_1() {
        let d = dialog(
            "sip:1000@192.0.2.20:5080",
            "Record-Route: <sip:192.0.2.30:5070;lr>\r\n",
        );
        let Dest::To(t) = in_dialog(Some(&d), &pbx(), Transport::Udp, last()) else {
            panic!("an IP hop is a plain target")
        };
        assert_eq!(t.addr, "192.0.2.30:5070".parse().unwrap());
        assert_eq!(t.transport, Transport::Udp);
        let d = dialog("sip:1000@192.0.2.20:5080;transport=tcp", "");
        let Dest::To(t) = in_dialog(Some(&d), &pbx(), Transport::Udp, last()) else {
            panic!("an IP hop is a plain target")
        };
        assert_eq!(
            (t.addr, t.transport),
            ("192.0.2.20:5080".parse().unwrap(), Transport::Tcp)
        );
        let d = dialog("sip:1000@phone.example.com", "");
        let Dest::Hop(hop) = in_dialog(Some(&d), &pbx(), Transport::Udp, last()) else {
            panic!("a name is resolved by the driver")
        };
        assert_eq!(
            (hop.port, hop.teams(), hop.fallback.is_none()),
            (5060, false, true)
        );
    }

    #[test]
    fn no_dialog_or_no_sip_hop_keeps_the_last_way() {
        assert!(matches!(
            in_dialog(None, &Peers::Teams, Transport::Tls, last()),
            Dest::To(_)
        ));
        let mut d = dialog("sip:x@192.0.2.20", "");
        d.remote_target = "tel:+4930".into();
        assert!(matches!(
            in_dialog(Some(&d), &pbx(), Transport::Udp, last()),
            Dest::To(t) if t.addr.port() == 5061
        ));
    }
}
