//! Route sets (RFC 3261 §12.1.1): as UAS, our 18x and 2xx copy the request's Record-Route
//! values in their order, on both legs, so the peer's in-dialog requests keep crossing the
//! proxies that asked to stay in the path (a hosted PBX's proxy answers 404 to a BYE that
//! skips it; Teams' proxies record-route too). Our own in-dialog requests go to the first
//! Route, else the remote target (§12.2.1.1), never just back the way the INVITE came:
//! Teams closes that connection after each transaction (teams-direct-routing.md §1.5).

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
        "Record-Route: <sip:192.0.2.10:5060;lr>\r\n",
        rr,
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

/// The Route lines of a request we sent, in order.
fn routes(sent: &Sent) -> Vec<String> {
    sent.msg
        .headers()
        .filter(|h| h.raw_name.eq_ignore_ascii_case(b"Route"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .collect()
}

fn request_uri(sent: &Sent) -> String {
    String::from_utf8_lossy(sent.msg.request_uri_raw().unwrap_or_default()).into_owned()
}

#[test]
fn our_bye_to_teams_goes_to_its_contact_host_not_the_inbound_connection_rfc3261_12_2_1_1() {
    let mut w = World::new();
    let (_, pbx_ack) = answered(&mut w);
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert_eq!(
        bye.hop.as_deref(),
        Some("api-du-b-euwe.pstnhub.microsoft.com:443"),
        "the BYE goes to the Contact's host and port (§1.5), for the driver to dial with SNI"
    );
    assert!(request_uri(&bye).starts_with("sip:api-du-b-euwe.pstnhub.microsoft.com:443"));
    assert!(routes(&bye).is_empty());
    w.assert_clean();
}

#[test]
fn our_bye_to_teams_falls_back_to_the_last_connection_when_the_contact_host_is_unknown() {
    let mut w = World::new();
    w.names.clear();
    let (_, pbx_ack) = answered(&mut w);
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    // The world resolves nothing: the hop's fallback is the connection Teams used.
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert_eq!(bye.hop, None);
    w.assert_clean();
}

/// Issue 31's rule for what this change added: a stranger on the PBX listener who forged the
/// Teams dialog's ids does not become the fallback of our BYE to Teams.
#[test]
fn a_stranger_on_the_pbx_listener_is_never_the_teams_fallback() {
    let mut w = World::new();
    w.names.clear();
    let (ok, pbx_ack) = answered(&mut w);
    w.pbx_sends_from("192.0.2.66:5060", in_dialog("OPTIONS", &ok, true, 5, None));
    w.expect("192.0.2.66:5060", "403");
    w.sent.clear();
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    // The hop's name does not resolve: the fallback is Teams' own connection.
    w.expect(TEAMS_PEER, "BYE");
    assert!(w.nothing_to("192.0.2.66:5060", "BYE"));
}

#[test]
fn a_teams_route_set_is_followed_first_route_is_the_next_hop_rfc3261_12_2_1_1() {
    let mut w = World::new();
    w.names
        .insert("rr1.pstnhub.microsoft.com".into(), addr(TEAMS_PEER));
    let invite = teams_invite("rr3", "+4930111", "+4930222", TENANT, TEAMS_SDP).replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{TEAMS_RR}"),
        1,
    );
    w.teams_sends(invite);
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    w.pbx_sends(reply(&to_pbx, 200, "OK", "k1", "", Some(PBX_SDP)));
    let ack = w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    w.pbx_sends(in_dialog("BYE", &ack, false, 11, None));
    let bye = w.expect(TEAMS_PEER, "BYE");
    assert_eq!(bye.hop.as_deref(), Some("rr1.pstnhub.microsoft.com:5061"));
    assert_eq!(
        routes(&bye),
        [
            "<sip:rr1.pstnhub.microsoft.com:5061;transport=tls;lr>",
            "<sip:rr2.example.net;lr>",
            "<sip:rr3.example.net;lr>"
        ],
        "the UAS keeps the Record-Route order"
    );
    assert!(request_uri(&bye).starts_with("sip:api-du-b-euwe.pstnhub.microsoft.com:443"));
}

#[test]
fn our_bye_to_the_pbx_crosses_its_record_routing_proxy_not_the_phone_rfc3261_12_2_1_1() {
    let mut w = World::new();
    let (ok, _) = answered(&mut w);
    // The PBX answered from 192.0.2.10 with Contact 192.0.2.10 (the world's reply): now a
    // PBX call whose phone is elsewhere and whose proxy record-routes.
    drop(ok);
    w.teams_sends(teams_invite(
        "rr4", "+4930111", "+4930222", TENANT, TEAMS_SDP,
    ));
    let to_pbx = w.expect(PBX_ADDR, "INVITE");
    let answer = reply(
        &to_pbx,
        200,
        "OK",
        "k4",
        "Record-Route: <sip:192.0.2.10:5070;lr>",
        Some(PBX_SDP),
    )
    .replacen(
        "Contact: <sip:peer-k4@192.0.2.10:5060>",
        "Contact: <sip:1000@192.0.2.40:5080>",
        1,
    );
    w.pbx_sends(answer);
    let ack = w.expect("192.0.2.10:5070", "ACK");
    assert_eq!(
        routes(&ack),
        ["<sip:192.0.2.10:5070;lr>"],
        "the ACK for 2xx follows the route set (§13.2.2.4)"
    );
    assert_eq!(request_uri(&ack), "sip:1000@192.0.2.40:5080");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("BYE", &ok, true, 2, None));
    let bye = w.expect("192.0.2.10:5070", "BYE");
    assert_eq!(routes(&bye), ["<sip:192.0.2.10:5070;lr>"]);
    assert_eq!(request_uri(&bye), "sip:1000@192.0.2.40:5080");
}

#[test]
fn without_a_route_set_our_bye_goes_to_the_phones_contact_rfc3261_12_2_1_1() {
    let mut w = World::new();
    let invite = pbx_invite("rr5", "tok1", "0301234567", Some(PBX_SDP)).replacen(
        "Record-Route: <sip:192.0.2.10:5060;lr>\r\n",
        "",
        1,
    );
    w.pbx_sends(invite);
    let to_teams = w.expect(PROXY1, "INVITE");
    w.proxy_sends(
        PROXY1,
        reply(&to_teams, 200, "OK", "t5", "", Some(TEAMS_ANSWER)),
    );
    w.expect(PROXY1, "ACK");
    let ok = w.expect(PBX_ADDR, "200");
    w.pbx_sends(in_dialog("ACK", &ok, true, 10, None));
    w.proxy_sends(
        PROXY1,
        in_dialog("BYE", &to_teams_ack_tags(&to_teams, "t5"), false, 2, None),
    );
    w.expect(PROXY1, "200");
    let bye = w.expect("192.0.2.30:5062", "BYE");
    assert!(routes(&bye).is_empty());
    w.assert_clean();
}

/// Our INVITE to Teams as the dialog it became with Teams' To tag `tag` (for Teams'
/// in-dialog requests: From is Teams, To is us).
fn to_teams_ack_tags(invite: &Sent, tag: &str) -> Sent {
    let text = invite.text().replacen(
        &format!("To: {}", invite.header("To").unwrap()),
        &format!("To: {};tag={tag}", invite.header("To").unwrap()),
        1,
    );
    Sent {
        to: invite.to,
        msg: teamsgw_sip::Message::parse(bytes::Bytes::from(text)).unwrap(),
        hop: None,
    }
}

/// The BYEs of ended calls, as (call id, side) of each that got no answer.
fn lost_byes(w: &World) -> Vec<(String, &'static str)> {
    w.events
        .iter()
        .filter_map(|e| match e {
            crate::call::CallEvent::ByeLost { call_id, side } => {
                Some((call_id.clone(), side.as_str()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_bye_nobody_answers_by_timer_f_is_reported_lost_after_the_call_ended_rfc3261_17_1_2_2() {
    let mut w = World::new();
    let (_, pbx_ack) = answered(&mut w);
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    w.expect(PBX_ADDR, "200");
    w.expect(TEAMS_PEER, "BYE");
    w.assert_clean();
    w.advance(std::time::Duration::from_secs(31));
    assert!(lost_byes(&w).is_empty(), "not before Timer F");
    w.advance(std::time::Duration::from_secs(2));
    assert_eq!(lost_byes(&w), [("x1".to_owned(), "teams")]);

    // An answered BYE is not lost.
    let mut w = World::new();
    let (_, pbx_ack) = answered(&mut w);
    w.pbx_sends(in_dialog("BYE", &pbx_ack, false, 11, None));
    let bye_now = w.expect(TEAMS_PEER, "BYE");
    w.teams_sends(reply(&bye_now, 200, "OK", "unused", "", None));
    w.advance(std::time::Duration::from_secs(40));
    assert!(lost_byes(&w).is_empty());
}
