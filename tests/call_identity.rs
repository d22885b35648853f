//! Identity and call history through the real daemon, asserted on what each end captured:
//! the in-house Teams proxy records our INVITE, Kamailio (as the PBX) logs the caller as it
//! sees it (RFC 3323, RFC 3325, RFC 7544; teams-direct-routing.md §3.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::teams_proxy::reply;
use teamsgw_tests::teams_uac::{OFFER, TeamsUac, header};
use teamsgw_tests::{free_port, sipp};

fn wait_log(lab: &CallLab, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = lab.kamailio.log();
        if let Some(line) = log.lines().find(|l| l.contains(what)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "Kamailio never logged {what:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An anonymous, twice-forwarded call from the PBX (sipp as the PBX) reaches Teams as
/// `anonymous` with the number in P-Asserted-Identity, `Privacy: id`, and the Diversions as
/// History-Info.
#[test]
fn an_anonymous_forwarded_pbx_call_reaches_teams_with_pai_privacy_and_history_info() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "p", true)]);
    let token = lab.contact_token();
    let (code, out) = sipp(
        "uac_call_identity.xml",
        lab.ports.sip_addr(),
        "u1",
        1,
        &["-s", &token],
    );
    assert_eq!(code, 0, "{out}\n{}", lab.logs());
    let received = proxy.received();
    let invite = received
        .iter()
        .map(|(_, m, _)| m)
        .find(|m| m.starts_with("INVITE "))
        .expect("no INVITE reached Teams");
    assert!(
        header(invite, "From")
            .unwrap()
            .starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "{invite}"
    );
    assert_eq!(
        header(invite, "P-Asserted-Identity").unwrap(),
        format!("<sip:+4930555000@{TENANT};user=phone>")
    );
    assert_eq!(header(invite, "Privacy").unwrap(), "id");
    assert!(!header(invite, "Contact").unwrap().contains("4930555000"));
    assert_eq!(
        header(invite, "History-Info").unwrap(),
        format!(
            "<sip:+4930777000@{TENANT};user=phone?Reason=SIP%3Bcause%3D486>;index=1, \
             <sip:2002@{TENANT};user=phone;cause=486?Reason=SIP%3Bcause%3D408>;index=1.1, \
             <sip:{TEAMS_NUMBER}@{TENANT};user=phone;cause=408>;index=1.1.1"
        )
    );
    assert!(header(invite, "Diversion").is_none(), "{invite}");
}

/// An anonymous Teams caller forwarded by Teams reaches the PBX anonymous, yet as the user
/// the PBX authenticates (Kamailio lets a device call only as itself), with Teams'
/// History-Info as Diversion; the CANCEL's Reason reaches the PBX too.
#[test]
fn an_anonymous_forwarded_teams_call_reaches_the_pbx_with_privacy_and_diversion() {
    let lab = CallLab::start("", &[], 5061, None);
    lab.cli(&[
        "pbx",
        "set",
        "--enterprise",
        "Contoso",
        "--name",
        "main",
        "--diversion",
        "on",
    ]);
    lab.daemon.reload();
    let phone = lab.phone_answering("2001", 440, false);
    let mut teams = lab.teams_uac();
    let history = "History-Info: <sip:+49301009999@sip.pstnhub.microsoft.com:5061;user=phone?Reason=SIP%3Bcause%3D302%3Btext%3D%22Moved%20temporarily%22>;index=1,<sip:+49302222001@sip.pstnhub.microsoft.com:5061;user=phone>;index=1.1\r\n";
    let invite = TeamsUac::invite("id1", TEAMS_NUMBER, "+49302222001", TENANT, OFFER)
        .replace(
            &format!("From: <sip:{TEAMS_NUMBER}@sip.pstnhub.microsoft.com:5061;user=phone>"),
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        )
        .replace(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\nPrivacy: id\r\n{history}"),
        );
    teams.send(&invite);
    teams.expect(180);
    phone.wait_log("Incoming call", Duration::from_secs(5));
    let seen = wait_log(&lab, "INVITE identity");
    assert!(
        seen.contains("from=<\"Anonymous\" sip:1001@127.0.0.1>"),
        "{seen}"
    );
    assert!(seen.contains("privacy=<id>"), "{seen}");
    assert!(seen.contains("pai=<<null>>"), "PAI reached the PBX: {seen}");
    assert!(
        seen.contains(
            "diversion=<<sip:+49301009999@127.0.0.1>;reason=unconditional;counter=1;privacy=off>"
        ),
        "{seen}"
    );
    let cancel = TeamsUac::cancel("id1", TEAMS_NUMBER, "+49302222001", TENANT)
        .replace(
            &format!("From: <sip:{TEAMS_NUMBER}@sip.pstnhub.microsoft.com:5061;user=phone>"),
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        )
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n",
        );
    teams.send(&cancel);
    teams.expect(200);
    teams.expect(487);
    let seen = wait_log(&lab, "CANCEL reason");
    assert!(
        seen.contains("reason=<SIP;cause=200;text=\"Call completed elsewhere\">"),
        "{seen}"
    );
}
