//! Issue 31 §3 acceptance, against the running daemon: Session-Expires and Min-SE of 2^64-1
//! on both legs, in INVITE, in 200 and in 422, get sane answers (RFC 4028 §9 lets the UAS
//! lower an interval; ours is at most a day), and afterwards calls succeed on every shard.
//! Teams' side is our scripted Teams client and proxy; the PBX is Kamailio with
//! `HUGE_TIMERS` (it writes the numbers into its phones' INVITEs and 200s, and answers 422
//! for extension 2422), its phones baresip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use teamsgw_tests::baresip::Baresip;
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_proxy::Step;
use teamsgw_tests::teams_uac::{NO_BODY, OFFER, TeamsUac, header, in_dialog};

const HUGE: &str = "18446744073709551615";

/// RFC 4028 §4: `Session-Expires: delta-seconds[;refresher=…]`; ours never exceeds a day.
fn interval(message: &str) -> u64 {
    let value = header(message, "Session-Expires").unwrap_or_else(|| panic!("{message}"));
    let seconds = value.split(';').next().unwrap().trim();
    seconds.parse().unwrap_or_else(|_| panic!("{value:?}"))
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The INVITEs the phone got through the PBX.
fn invites(phone: &Baresip, kamailio: SocketAddr) -> Vec<String> {
    phone
        .received_from_host(kamailio)
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect()
}

/// The shard (`-c<n>@teamsgw` in the Call-ID we create) of each INVITE the phone got after
/// the first `skip`.
fn shards(phone: &Baresip, kamailio: SocketAddr, skip: usize) -> BTreeSet<String> {
    invites(phone, kamailio)
        .iter()
        .skip(skip)
        .filter_map(|m| header(m, "Call-ID"))
        .filter_map(|id| {
            id.rsplit_once("-c")?
                .1
                .split_once('@')
                .map(|(n, _)| n.to_owned())
        })
        .collect()
}

#[test]
fn session_timer_numbers_of_2_64_on_both_legs_get_sane_answers_and_every_shard_takes_calls() {
    let port = free_port();
    let mut lab = CallLab::start_with_env("", &["127.0.0.2"], port, None, &[], &["HUGE_TIMERS"]);
    lab.sip_trace = true;
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    let callee = lab.phone("2003", 440);
    let caller = lab.phone("2002", 440);
    let mut uac = lab.teams_uac();

    // Teams → PBX: Teams' INVITE and the phone's 200 (Kamailio's HUGE_ANSWER) both say 2^64-1.
    // Our answer to Teams says a day at most, and the call is up. Until both shards have
    // taken one.
    let huge = format!(
        "Session-Expires: {HUGE};refresher=uac\r\nMin-SE: {HUGE}\r\nSupported: timer\r\n\
         Content-Type: application/sdp\r\n"
    );
    let mut n = 0;
    while shards(&callee, lab.kamailio.addr, 0).len() < 2 {
        assert!(n < 16, "16 calls all landed on one shard\n{}", lab.logs());
        let id = format!("huge-{n}");
        let invite = TeamsUac::invite(&id, TEAMS_NUMBER, "+49302222003", TENANT, OFFER).replacen(
            "Content-Type: application/sdp\r\n",
            &huge,
            1,
        );
        uac.send(&invite);
        let ok = uac.expect(200);
        let seconds = interval(&ok);
        assert!((90..=86_400).contains(&seconds), "{ok}");
        uac.send(&in_dialog("ACK", &id, 1, &ok, "", NO_BODY));
        uac.send(&in_dialog("BYE", &id, 2, &ok, "", NO_BODY));
        uac.expect(200);
        lab.wait_calls_ended(&[&callee]);
        n += 1;
    }
    assert_eq!(
        invites(&callee, lab.kamailio.addr).len(),
        n,
        "every call reached the phone"
    );

    // Teams → PBX: the PBX's 422 asks for 2^64-1 s. Not retried with it; Teams gets 500, not
    // a 422 (which would need a Min-SE Teams has already met, RFC 4028 §6).
    uac.send(&TeamsUac::invite(
        "huge-422",
        TEAMS_NUMBER,
        "+49302222422",
        TENANT,
        OFFER,
    ));
    let refused = loop {
        let m = uac.next(Duration::from_secs(10)).expect("a final answer");
        if !m.starts_with("SIP/2.0 1") {
            break m;
        }
    };
    assert!(refused.starts_with("SIP/2.0 500 "), "{refused}");
    uac.send(&in_dialog("ACK", "huge-422", 1, &refused, "", NO_BODY));

    // PBX → Teams: the phone's INVITE carries 2^64-1 in Session-Expires and Min-SE (added by
    // Kamailio). Teams' 422 asks for 2^64-1 s: the phone gets a final failure.
    proxy.set_script(vec![Step::Reply {
        status: 422,
        tag: "p",
        sdp: false,
        extra: vec![format!("Min-SE: {HUGE}")],
    }]);
    caller.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    caller.wait_log("session closed: 500", Duration::from_secs(10));
    // Teams' 200 says 2^64-1 s: the call is up, and our 200 to the PBX says a day at most.
    proxy.set_script(vec![Step::Reply {
        status: 200,
        tag: "p",
        sdp: true,
        extra: vec![
            format!("Session-Expires: {HUGE};refresher=uac"),
            "Require: timer".into(),
        ],
    }]);
    caller.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    caller.wait_log("Call established", Duration::from_secs(15));
    lab.kamailio
        .wait_log_count("teamsgw answered session-expires=<", 1);
    let log = lab.kamailio.log();
    let answered = log
        .lines()
        .find_map(|l| l.split_once("teamsgw answered session-expires=<"))
        .map(|(_, v)| v.split(['>', ';']).next().unwrap().to_owned())
        .unwrap();
    let seconds: u64 = answered.parse().unwrap_or_else(|_| panic!("{answered:?}"));
    assert!((90..=86_400).contains(&seconds), "{answered}");
    caller.hangup();
    wait("the PBX call to end", Duration::from_secs(10), || {
        lab.metric("teamsgw_calls_active{direction=\"to_teams\"}") == 0.0
    });

    // Nothing panicked, and ordinary calls still work.
    assert_eq!(
        lab.metric("teamsgw_internal_errors_total{task=\"call_shard\"}"),
        0.0,
        "{}",
        lab.logs()
    );
    let before = invites(&callee, lab.kamailio.addr).len();
    let mut i = 0;
    while shards(&callee, lab.kamailio.addr, before).len() < 2 {
        assert!(i < 16, "16 calls all landed on one shard\n{}", lab.logs());
        let id = format!("after-{i}");
        let ok = uac.call(&id, TEAMS_NUMBER, "+49302222003", TENANT);
        uac.send(&in_dialog("BYE", &id, 2, &ok, "", NO_BODY));
        uac.expect(200);
        lab.wait_calls_ended(&[&callee]);
        i += 1;
    }
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
}
