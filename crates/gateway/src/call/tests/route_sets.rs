//! Route sets (RFC 3261 §12.1.1): as UAS, our 18x and 2xx copy the request's Record-Route
//! values in their order, on both legs, so the peer's in-dialog requests keep crossing the
//! proxies that asked to stay in the path (a hosted PBX's proxy answers 404 to a BYE that
//! skips it; Teams' proxies record-route too).

use super::world::*;

/// Every Record-Route line of a message we sent, in order.
fn record_routes(sent: &Sent) -> Vec<String> {
    sent.msg
        .headers()
        .filter(|h| h.raw_name.eq_ignore_ascii_case(b"Record-Route"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect()
}

const TEAMS_RR: &str = "Record-Route: <sip:rr1.pstnhub.microsoft.com:5061;transport=tls;lr>\r\n\
                        Record-Route: <sip:rr2.example.net;lr>, <sip:rr3.example.net;lr>\r\n";

#[test]
fn a_record_routed_teams_invite_gets_its_route_set_back_in_the_18x_and_the_200() {
    let mut w = World::new();
    let invite = teams_invite("rr1", "+4930111", "+4930222", TENANT, TEAMS_SDP).replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{TEAMS_RR}"),
        1,
    );
    w.teams_sends(invite);
    // The 100 is hop-by-hop (§8.2.6.1): no dialog, no route set.
    let trying = w.expect(TEAMS_PEER, "100");
    assert!(record_routes(&trying).is_empty());
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    let wanted = vec![
        "<sip:rr1.pstnhub.microsoft.com:5061;transport=tls;lr>".to_owned(),
        "<sip:rr2.example.net;lr>".to_owned(),
        "<sip:rr3.example.net;lr>".to_owned(),
    ];
    // Nothing of Teams' route set leaks to the other leg.
    assert!(record_routes(&to_pbx).is_empty());
    w.pbx_sends(reply(&to_pbx, 180, "Ringing", "k1", "", None));
    assert_eq!(record_routes(&w.expect(TEAMS_PEER, "180")), wanted);
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    assert_eq!(record_routes(&w.expect(TEAMS_PEER, "200")), wanted);
}

#[test]
fn a_record_routed_pbx_invite_gets_its_route_set_back_in_the_18x_and_the_200() {
    let mut w = World::new();
    let rr = "Record-Route: <sip:192.0.2.10;lr;ftag=pf>\r\n";
    let invite = pbx_invite("rr2", "tok1", "0301234567", Some(PBX_SDP)).replacen(
        "Max-Forwards: 69\r\n",
        &format!("Max-Forwards: 69\r\n{rr}"),
        1,
    );
    w.pbx_sends(invite);
    w.expect(PBX_ADDR, "100");
    let to_teams = w.expect(PROXY1, "INVITE");
    assert!(record_routes(&to_teams).is_empty());
    let wanted = vec!["<sip:192.0.2.10;lr;ftag=pf>".to_owned()];
    w.proxy_sends(PROXY1, reply(&to_teams, 180, "Ringing", "t1", "", None));
    assert_eq!(record_routes(&w.expect(PBX_ADDR, "180")), wanted);
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "t1", "", Some(TEAMS_ANSWER)),
    );
    assert_eq!(record_routes(&w.expect(PBX_ADDR, "200")), wanted);
}
