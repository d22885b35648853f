//! Transfers from Teams (teams-direct-routing.md §3.7) through the real daemon: the in-house
//! Teams client is the transferor on its TLS connection, the in-house Teams proxy is the
//! transfer target (its SRTP media answers with a tone of its own), and Kamailio is the PBX with
//! a baresip phone as the transferred party.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of};
use teamsgw_tests::call_lab::{CallLab, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_media::TEAMS_MEDIA_TONE;
use teamsgw_tests::teams_proxy::{Step, TeamsProxy, reply};
use teamsgw_tests::teams_uac::{NO_BODY, TeamsUac, header, in_dialog};

const PHONE_TONE: u32 = 440;
/// The phone's number as Teams dials it (extension 2001 at the PBX).
const PHONE_NUMBER: &str = "+49302222001";
/// A Teams-user target: the proxy's host, no user part, `x-m` and `x-t` (§3.7).
const TARGET: &str = "sip:sip.pstnhub.microsoft.com:5061;transport=tls;\
                      x-m=8:orgid:fce2158f-0e99-4ff7-a0b3-5b6b87d16689;\
                      x-t=2d88cb42-5c1c-4f1e-9d0a-6f2a3b4c5d6e";

/// Referred-By as Teams sends it: the transferor's MRI with `x-m`, `x-t`, `x-ti` and a long
/// `x-tt`, about 400 characters in all (§3.7: "Refer messages with size up to 400 symbols").
fn referred_by() -> String {
    let tt = "aHR0cHM6Ly9hcGkuZmxpZ2h0cHJveHkuc2t5cGUuY29tL2FwaS92Mi9lcC9jb252LXVzd2UtMDEuY29udi5za3lwZS5jb20vY29udi9yZXBsYWNlP2k9MTAtNjAtMTQtMTc3JmU9NjM3NTgyMTk3NTk0MjAwMDAwJnQ9MmQ4OGNiNDItNWMxYy00ZjFlLTlkMGEtNmYyYTNiNGM1ZDZl";
    format!(
        "<sip:sip.pstnhub.microsoft.com:5061;x-m=8:orgid:bdc0511a-7d3e-4b8f-9c2a-1e5f6a7b8c9d;\
         x-t=2d88cb42-5c1c-4f1e-9d0a-6f2a3b4c5d6e;x-ti=9cfa2ad6-3b1e-4c7f-8a9d-0e1f2a3b4c5d;\
         x-tt={tt}>"
    )
}

/// A Teams user's call to the phone, answered and confirmed: the 200's text.
fn call_the_phone(teams: &mut TeamsUac, call_id: &str) -> String {
    teams.call(call_id, TEAMS_NUMBER, PHONE_NUMBER, TENANT)
}

/// Sends the REFER, checks the 202, and answers the first NOTIFY (100 Trying, RFC 3515
/// §2.4.4: the subscription is active); returns the final NOTIFY, answered.
fn refer(teams: &mut TeamsUac, call_id: &str, ok: &str) -> String {
    let headers = format!(
        "Refer-To: <{TARGET}>\r\nReferred-By: {}\r\nUser-Agent: Microsoft.PSTNHub.SIPProxy\r\n",
        referred_by()
    );
    teams.send(&in_dialog("REFER", call_id, 2, ok, &headers, NO_BODY));
    teams.expect(202);
    let trying = teams.expect_request("NOTIFY");
    teams.reply(&trying, 200, "OK");
    assert_eq!(header(&trying, "Event"), Some("refer"), "{trying}");
    assert_eq!(
        header(&trying, "Content-Type"),
        Some("message/sipfrag;version=2.0"),
        "{trying}"
    );
    assert!(
        header(&trying, "Subscription-State")
            .unwrap_or_default()
            .starts_with("active"),
        "{trying}"
    );
    assert!(
        trying.ends_with("\r\n\r\nSIP/2.0 100 Trying\r\n"),
        "{trying}"
    );
    let last = teams.expect_request("NOTIFY");
    teams.reply(&last, 200, "OK");
    assert!(
        header(&last, "Subscription-State")
            .unwrap_or_default()
            .starts_with("terminated"),
        "{last}"
    );
    last
}

/// The INVITEs the proxy received, as text.
fn invites_at(proxy: &TeamsProxy) -> Vec<String> {
    proxy
        .received()
        .into_iter()
        .map(|(_, text, _)| text)
        .filter(|t| t.starts_with("INVITE "))
        .collect()
}

/// Acceptance "REFER to a Teams user": the new INVITE is built as §3.7 says (Request-URI
/// and To the Refer-To URI, Referred-By copied byte for byte, From the transferred party @
/// tenant FQDN, Contact the tenant FQDN, no Replaces), the NOTIFYs report 100 then 200, the
/// old Teams leg gets BYE, and the phone hears the target's tone through the new leg's SRTP.
#[test]
fn a_refer_to_a_teams_user_moves_the_phone_to_the_target_with_audio() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![
        reply(180, "target", false),
        Step::Wait(Duration::from_millis(300)),
        reply(200, "target", true),
    ]);
    let phone = lab.phone("2001", PHONE_TONE);
    let mut teams = lab.teams_uac();
    let ok = call_the_phone(&mut teams, "xfer-ok");
    phone.wait_log("Call established", Duration::from_secs(10));
    let done = refer(&mut teams, "xfer-ok", &ok);
    assert!(done.ends_with("\r\n\r\nSIP/2.0 200 OK\r\n"), "{done}");
    let bye = teams.expect_request("BYE");
    teams.reply(&bye, 200, "OK");

    let invites = invites_at(&proxy);
    assert_eq!(invites.len(), 1, "{invites:?}");
    let invite = &invites[0];
    assert!(
        invite.starts_with(&format!("INVITE {TARGET} SIP/2.0\r\n")),
        "{invite}"
    );
    assert_eq!(
        header(invite, "To"),
        Some(format!("<{TARGET}>").as_str()),
        "{invite}"
    );
    let by = referred_by();
    assert_eq!(header(invite, "Referred-By"), Some(by.as_str()), "{invite}");
    assert!(
        header(invite, "From")
            .unwrap_or_default()
            .starts_with(&format!("<sip:{PHONE_NUMBER}@{TENANT};user=phone>;tag=")),
        "{invite}"
    );
    let contact = header(invite, "Contact").unwrap_or_default();
    assert!(
        contact.starts_with(&format!("<sip:{TENANT}:")) && !contact.contains('@'),
        "{invite}"
    );
    // §3.7: Direct Routing rejects requests with Replaces since April 2022.
    assert_eq!(header(invite, "Replaces"), None, "{invite}");
    assert!(
        !header(invite, "Require")
            .unwrap_or_default()
            .contains("replaces"),
        "{invite}"
    );

    // The target's tone reaches the phone for a few seconds.
    std::thread::sleep(Duration::from_secs(4));
    lab.assert_active("from_teams", 1);
    phone.hangup();
    lab.daemon.wait_for(
        Duration::from_secs(10),
        "our BYE at the new Teams leg",
        || {
            proxy
                .requests()
                .iter()
                .any(|(m, tag)| m == "BYE" && tag == "target")
        },
    );
    lab.wait_calls_ended(&[&phone]);
    phone.wait_count("terminated", 1, Duration::from_secs(5));
    assert_tone(
        "the phone, through the new leg,",
        tone_of(&phone.heard()[0]),
        TEAMS_MEDIA_TONE,
        &format!("{}\n{}", phone.log(), lab.logs()),
    );
    let cdr = &lab.cdrs(1)[0];
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "pbx", "{cdr}");
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
}

/// Acceptance "REFER to a Teams user", the refusing target: it answers 486, the final
/// NOTIFY says so (RFC 3515 §2.4.5), the transferor's leg gets no BYE and the call goes on
/// until Teams ends it.
#[test]
fn a_busy_transfer_target_leaves_the_call_as_it_was() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(486, "busy", false)]);
    let phone = lab.phone("2001", PHONE_TONE);
    let mut teams = lab.teams_uac();
    let ok = call_the_phone(&mut teams, "xfer-busy");
    phone.wait_log("Call established", Duration::from_secs(10));
    let done = refer(&mut teams, "xfer-busy", &ok);
    assert!(
        done.ends_with("\r\n\r\nSIP/2.0 486 Busy Here\r\n"),
        "{done}"
    );
    assert_eq!(invites_at(&proxy).len(), 1);
    // Nothing more reaches the transferor's leg: no BYE.
    if let Some(msg) = teams.next(Duration::from_secs(2)) {
        panic!("after a failed transfer teamsgw sent {msg}");
    }
    lab.assert_active("from_teams", 1);
    assert_eq!(phone.count_log("terminated"), 0, "{}", phone.log());
    teams.send(&in_dialog("BYE", "xfer-busy", 3, &ok, "", NO_BODY));
    teams.expect(200);
    lab.wait_calls_ended(&[&phone]);
    phone.wait_count("terminated", 1, Duration::from_secs(5));
    let cdr = &lab.cdrs(1)[0];
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "teams", "{cdr}");
}
