//! Calls of an Operator Connect enterprise on the carrier trunk (issue 32): from Teams the
//! Request-URI host is `teams.base_fqdn`, and the caller's activated UserAssigned OC number
//! names the enterprise (screened like a Direct Routing caller, `X-MS-TenantId` checked);
//! towards Teams the call is built as for Direct Routing (§3.2) with `teams.base_fqdn` in
//! From and Contact.

use super::world::*;

const CALLEE: &str = "+4930222";

fn refused_with(w: &mut World, invite: String, warning: &str) {
    w.teams_sends(invite);
    let answer = w.expect(TEAMS_PEER, "403");
    let text = answer.header("Warning").unwrap_or_default();
    assert!(text.contains(warning), "{}", answer.text());
    assert!(
        w.sent.iter().all(|s| s.to.to_string() != PBX_ADDR),
        "nothing reaches the PBX"
    );
}

#[test]
fn a_teams_call_from_an_oc_number_on_the_carrier_trunk_reaches_the_users_pbx() {
    let mut w = World::with(view_with_operator_connect(), 100);
    w.teams_sends(teams_invite("oc1", "+4930555", CALLEE, CARRIER, TEAMS_SDP));
    w.expect(TEAMS_PEER, "100");
    let out = w.expect(PBX_ADDR, "INVITE");
    assert!(
        out.text()
            .starts_with("INVITE sip:+4930222@pbx.example.com SIP/2.0\r\n"),
        "{}",
        out.text()
    );
    assert!(
        out.header("From")
            .unwrap()
            .contains("<sip:1003@pbx.example.com>"),
        "carol's extension: {}",
        out.text()
    );
    w.pbx_sends(reply(&out, 180, "Ringing", "k1", "", None));
    let ringing = w.expect(TEAMS_PEER, "180");
    assert_eq!(
        ringing.header("Contact").unwrap(),
        format!("<sip:{CARRIER}:5061;transport=tls>"),
        "our Contact is the carrier trunk"
    );
}

/// Caller screening as for Direct Routing (§3.1): a number that is no activated
/// UserAssigned OC number, a Direct Routing user's number, or a tenant that is not the
/// number's, gets 403 with a Warning and never reaches a PBX.
#[test]
fn the_carrier_trunk_refuses_unassigned_numbers_direct_routing_users_and_other_tenants() {
    let mut w = World::with(view_with_operator_connect(), 100);
    refused_with(
        &mut w,
        teams_invite("oc2", "+4930556", CALLEE, CARRIER, TEAMS_SDP),
        "not an assigned Operator Connect number",
    );
    refused_with(
        &mut w,
        teams_invite("oc3", "+4930111", CALLEE, CARRIER, TEAMS_SDP),
        "not an assigned Operator Connect number",
    );
    let other = teams_invite("oc4", "+4930555", CALLEE, CARRIER, TEAMS_SDP).replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nX-MS-TenantId: 00000000-0000-4000-8000-000000000001\r\n",
        1,
    );
    refused_with(&mut w, other, "X-MS-TenantId");
    // The right tenant, in another case, passes.
    let right = teams_invite("oc5", "+4930555", CALLEE, CARRIER, TEAMS_SDP).replacen(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nX-MS-TenantId: {}\r\n",
            OC_TENANT_ID.to_ascii_uppercase()
        ),
        1,
    );
    w.teams_sends(right);
    w.expect(TEAMS_PEER, "100");
    w.expect(PBX_ADDR, "INVITE");
}

/// A Direct Routing tenant is unchanged next to the carrier trunk, and an OC caller cannot
/// borrow a Direct Routing tenant's FQDN.
#[test]
fn direct_routing_and_operator_connect_run_side_by_side() {
    let mut w = World::with(view_with_operator_connect(), 100);
    w.teams_sends(teams_invite("dr1", "+4930111", CALLEE, TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "100");
    w.expect(PBX_ADDR, "INVITE");
    w.teams_sends(teams_invite("dr2", "+4930555", CALLEE, TENANT, TEAMS_SDP));
    w.expect(TEAMS_PEER, "403");
}

#[test]
fn a_pbx_call_to_an_oc_user_goes_to_teams_from_the_carrier_trunk() {
    let mut w = World::with(view_with_operator_connect(), 100);
    w.pbx_sends(pbx_invite("p-oc", "tok3", "0301234567", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "100");
    let inv = w.expect(PROXY1, "INVITE");
    assert_eq!(
        inv.header("To").unwrap(),
        format!("<sip:+4930555@{CARRIER};user=phone>")
    );
    assert!(
        inv.header("From")
            .unwrap()
            .contains(&format!("<sip:+49301234567@{CARRIER};user=phone>")),
        "{}",
        inv.text()
    );
    assert_eq!(
        inv.header("Contact").unwrap(),
        format!("<sip:+49301234567@{CARRIER}:5061;transport=tls>")
    );
}
