//! Identity and call history across the legs: Privacy and P-Asserted-Identity (RFC 3323,
//! RFC 3325), History-Info (RFC 7044) and Diversion (RFC 5806) mapped as RFC 7544 says
//! (teams-direct-routing.md §3.3).

use super::world::*;

/// Teams' INVITE with header lines `extra` added and `from` as its From URI.
fn teams_invite_with(id: &str, from: &str, extra: &str) -> String {
    teams_invite(id, "+4930111", "+4930222", TENANT, TEAMS_SDP)
        .replace(
            "From: <sip:+4930111@sip.pstnhub.microsoft.com:5061;user=phone>",
            &format!("From: {from}"),
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\n{extra}"),
        )
}

fn to_pbx(w: &mut World, invite: String) -> Sent {
    w.teams_sends(invite);
    w.expect(TEAMS_PEER, "100");
    w.expect(PBX_ADDR, "INVITE")
}

fn to_teams(w: &mut World, invite: String) -> Sent {
    w.pbx_sends(invite);
    w.expect(PBX_ADDR, "100");
    w.expect(PROXY1, "INVITE")
}

#[test]
fn an_anonymous_teams_caller_reaches_the_pbx_anonymous_as_the_user_rfc3323_4_2() {
    let mut w = World::new();
    // ForwardPai (§3.3): the user in PAI, an anonymous From and `Privacy: id`.
    let inv = to_pbx(
        &mut w,
        teams_invite_with(
            "anon1",
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=tf",
            "Privacy: id\r\n",
        ),
    );
    // The PBX still sees (and authenticates) its own user, and is asked to withhold it.
    assert!(
        inv.header("From")
            .unwrap()
            .starts_with("\"Anonymous\" <sip:1001@pbx.example.com>;tag="),
        "{}",
        inv.text()
    );
    assert_eq!(inv.header("Privacy").unwrap(), "id");
    // RFC 3325 §5: the PBX is outside our trust domain; no asserted identity reaches it.
    assert!(inv.header("P-Asserted-Identity").is_none());
    // A caller who hides nothing keeps their name and gets no Privacy.
    let inv = to_pbx(
        &mut w,
        teams_invite("plain1", "+4930111", "+4930222", TENANT, TEAMS_SDP),
    );
    assert!(
        inv.header("From")
            .unwrap()
            .starts_with("\"Alice\" <sip:1001@")
    );
    assert!(inv.header("Privacy").is_none());
    assert!(inv.header("P-Asserted-Identity").is_none());
}

#[test]
fn an_anonymous_pbx_caller_reaches_teams_as_anonymous_with_pai_kept_rfc3325_9_3() {
    let mut w = World::new();
    let invite = pbx_invite("anon2", "tok1", "0301234567", Some(PBX_SDP))
        .replace(
            "From: \"Carol\" <sip:0301234567@pbx.example.com>",
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        )
        .replace(
            "Max-Forwards: 69\r\n",
            "Max-Forwards: 69\r\nP-Asserted-Identity: <sip:0301234567@pbx.example.com>\r\nPrivacy: id\r\n",
        );
    let inv = to_teams(&mut w, invite);
    assert!(
        inv.header("From")
            .unwrap()
            .starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "{}",
        inv.text()
    );
    // Teams is trusted: it gets the real number in PAI, and Privacy hides it from the user.
    assert_eq!(
        inv.header("P-Asserted-Identity").unwrap(),
        format!("<sip:+49301234567@{TENANT};user=phone>")
    );
    assert_eq!(inv.header("Privacy").unwrap(), "id");
    // The number stays out of our Contact too (§3.2 allows the FQDN-only form).
    assert_eq!(
        inv.header("Contact").unwrap(),
        format!("<sip:{TENANT}:5061;transport=tls>")
    );
    // A caller with no number at all: anonymous, and no PAI to assert.
    let invite = pbx_invite("anon3", "tok1", "anonymous", Some(PBX_SDP));
    let inv = to_teams(&mut w, invite);
    assert!(inv.header("From").unwrap().contains("anonymous.invalid"));
    assert!(inv.header("P-Asserted-Identity").is_none());
    assert_eq!(inv.header("Privacy").unwrap(), "id");
}

#[test]
fn a_known_pbx_caller_is_asserted_towards_teams() {
    let mut w = World::new();
    let inv = to_teams(
        &mut w,
        pbx_invite("known1", "tok1", "0301234567", Some(PBX_SDP)),
    );
    assert_eq!(
        inv.header("P-Asserted-Identity").unwrap(),
        format!("<sip:+49301234567@{TENANT};user=phone>")
    );
    assert!(inv.header("Privacy").is_none());
}

/// Issue 31 §8: the PBX's From user and display name reach Teams' headers only as the URI
/// user and quoted-string grammars allow (RFC 3261 §25.1): no injected parameter, header or
/// URI, and a display name ending in a backslash does not break the quoting.
#[test]
fn a_pbx_callers_user_part_and_display_name_are_escaped_towards_teams_rfc3261_25_1() {
    let mut w = World::new();
    let hostile = pbx_invite("esc1", "tok1", "0301234567", Some(PBX_SDP)).replace(
        "From: \"Carol\" <sip:0301234567@pbx.example.com>;tag=pf",
        "From: \"Carol \\\\\" <sip:12%3E;x=1,%3Csip:evil@pbx.example.com>;tag=pf",
    );
    assert!(hostile.contains("Carol \\\\\""), "{hostile}");
    let inv = to_teams(&mut w, hostile);
    let from = inv.header("From").unwrap();
    let pai = inv.header("P-Asserted-Identity").unwrap();
    let contact = inv.header("Contact").unwrap();
    assert_eq!(from.matches('<').count(), 1, "{from}");
    // The backslash the PBX escaped is escaped again, once.
    assert!(from.starts_with("\"Carol \\\\\" <sip:12%3E"), "{from}");
    for h in [&from, &pai, &contact] {
        assert!(!h.contains(";x=1"), "an injected parameter: {h}");
        assert!(!h.contains("evil@"), "an injected URI: {h}");
    }
    // What we wrote parses back, with the caller's own characters intact.
    let parsed = teamsgw_sip::message::NameAddr::parse(from.as_bytes()).unwrap();
    let user = parsed.uri.user().unwrap();
    assert_eq!(&*teamsgw_sip::message::unescape(user), b"12>;x=1,<sip");
}

const TEAMS_HISTORY: &str = "History-Info: <sip:+4930111@sip.pstnhub.microsoft.com:5061;user=phone?Reason=SIP%3Bcause%3D302%3Btext%3D%22Moved%20temporarily%22>;index=1,<sip:+4930999@sip.pstnhub.microsoft.com:5061;user=phone?Reason=SIP%3Bcause%3D486%3Btext%3D%22User%20Busy%22>;index=1.1,<sip:+4930222@sip.pstnhub.microsoft.com:5061;user=phone>;index=1.1.1\r\n";

#[test]
fn teams_history_info_becomes_diversion_for_a_pbx_that_wants_it_rfc7544_4() {
    let v = view_with_pbx(None, |p| p.diversion = true);
    let mut w = World::with(v, 100);
    let inv = to_pbx(
        &mut w,
        teams_invite_with(
            "hist1",
            "<sip:+4930111@sip.pstnhub.microsoft.com:5061;user=phone>;tag=tf",
            TEAMS_HISTORY,
        ),
    );
    // The most recent diversion first (RFC 5806 §4); Alice is a user, so her extension; the
    // other number in the PBX's format; each entry's cause mapped by RFC 7544 Table 1.
    assert_eq!(
        inv.header("Diversion").unwrap(),
        "<sip:+4930999@pbx.example.com>;reason=user-busy;counter=1;privacy=off, \
         <sip:1001@pbx.example.com>;reason=unconditional;counter=1;privacy=off"
    );
    assert!(inv.header("History-Info").is_none(), "History-Info leaked");
    // Off (the default): no Diversion.
    let mut w = World::new();
    let inv = to_pbx(
        &mut w,
        teams_invite_with(
            "hist2",
            "<sip:+4930111@sip.pstnhub.microsoft.com:5061;user=phone>;tag=tf",
            TEAMS_HISTORY,
        ),
    );
    assert!(inv.header("Diversion").is_none());
}

#[test]
fn pbx_diversion_becomes_history_info_towards_teams_rfc7544_5() {
    let mut w = World::new();
    // Most recent first: 2002 forwarded on no answer after 0309876 forwarded unconditionally.
    let invite = pbx_invite("div1", "tok1", "0301234567", Some(PBX_SDP)).replace(
        "Max-Forwards: 69\r\n",
        "Max-Forwards: 69\r\nDiversion: <sip:2002@pbx.example.com>;reason=no-answer;counter=1\r\nDiversion: <sip:0309876@pbx.example.com>;reason=unconditional;counter=1;privacy=full\r\n",
    );
    let inv = to_teams(&mut w, invite);
    assert_eq!(
        inv.header("History-Info").unwrap(),
        format!(
            "<sip:+49309876@{TENANT};user=phone?Reason=SIP%3Bcause%3D302&Privacy=history>;index=1, \
             <sip:2002@{TENANT};user=phone;cause=302?Reason=SIP%3Bcause%3D408>;index=1.1, \
             <sip:+4930111@{TENANT};user=phone;cause=408>;index=1.1.1"
        )
    );
    assert!(
        inv.header("Diversion").is_none(),
        "Diversion leaked to Teams"
    );
}

#[test]
fn reason_on_cancel_and_bye_passes_to_the_other_leg_rfc3326_2() {
    // Simultaneous ring answered elsewhere: the PBX must not log a missed call.
    let mut w = World::new();
    let inv = to_pbx(
        &mut w,
        teams_invite("rc1", "+4930111", "+4930222", TENANT, TEAMS_SDP),
    );
    w.pbx_sends(reply(&inv, 180, "Ringing", "k", "", None));
    w.expect(TEAMS_PEER, "180");
    let elsewhere = "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n";
    let cancel = cancel_of(&teams_invite("rc1", "+4930111", "+4930222", TENANT, "")).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{elsewhere}"),
    );
    w.teams_sends(cancel);
    let c = w.expect(PBX_ADDR, "CANCEL");
    assert_eq!(
        c.header("Reason").unwrap(),
        "SIP;cause=200;text=\"Call completed elsewhere\""
    );
    w.pbx_sends(reply(&inv, 487, "Request Terminated", "k", "", None));
    w.sent.clear();
    // A BYE's Reason crosses too.
    let inv = to_pbx(
        &mut w,
        teams_invite("rc2", "+4930111", "+4930222", TENANT, TEAMS_SDP),
    );
    w.pbx_sends(reply(&inv, 200, "OK", "k", "", Some(PBX_SDP)));
    w.expect(PBX_ADDR, "ACK");
    let ok = w.expect(TEAMS_PEER, "200");
    w.teams_sends(in_dialog("ACK", &ok, true, 1, None));
    let bye = in_dialog("BYE", &ok, true, 2, None).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nReason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
    );
    w.teams_sends(bye);
    let b = w.expect(PBX_ADDR, "BYE");
    assert_eq!(
        b.header("Reason").unwrap(),
        "Q.850;cause=16;text=\"Normal call clearing\""
    );
}
