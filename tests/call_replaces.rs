//! INVITE with Replaces from Teams (RFC 3891; teams-direct-routing.md §3.7: "the SBC must
//! support incoming INVITE with Replaces") through the real daemon: a Teams user parks a
//! call with a baresip phone behind Kamailio, another Teams connection picks it up, and the
//! phone's tone reaches the picking-up client's SRTP media, whose own tone reaches the phone;
//! and a call from the phone still ringing in Teams is picked up the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use teamsgw_tests::baresip::{assert_tone, tone_of, tone_of_samples};
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TEAMS_NUMBER, TENANT};
use teamsgw_tests::free_port;
use teamsgw_tests::teams_media::{TEAMS_MEDIA_TONE, TeamsMedia};
use teamsgw_tests::teams_proxy::{Step, reply};
use teamsgw_tests::teams_uac::{NO_BODY, OFFER, TeamsUac, header, in_dialog, sdp};

const PHONE_TONE: u32 = 440;
/// The phone's number as Teams dials it (extension 2001 at the PBX).
const PHONE_NUMBER: &str = "+49302222001";

fn tag(value: Option<&str>) -> String {
    value
        .and_then(|v| v.split(";tag=").nth(1))
        .unwrap_or_default()
        .to_owned()
}

/// Teams' INVITE `call_id` carrying `Replaces: replaces`.
fn replacing(call_id: &str, replaces: &str, offer: &str) -> String {
    TeamsUac::invite(call_id, TEAMS_NUMBER, PHONE_NUMBER, TENANT, offer).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nReplaces: {replaces}\r\n"),
    )
}

/// Acceptance "INVITE with Replaces": the parked leg is replaced by the new dialog (the old
/// one gets BYE, the phone is resumed, and its tone crosses to the new leg's SRTP and back); an
/// unknown dialog gets 481 and starts nothing.
#[test]
fn a_parked_call_is_picked_up_with_replaces_and_the_phone_hears_the_new_leg() {
    let lab = CallLab::start("", &[], 5061, None);
    let phone = lab.phone("2001", PHONE_TONE);
    let mut parker = lab.teams_uac();
    let ok = parker.call("park-1", TEAMS_NUMBER, PHONE_NUMBER, TENANT);
    phone.wait_log("Call established", Duration::from_secs(10));
    // Park: Teams holds the call.
    let held = OFFER
        .replace("o=- 1 0 ", "o=- 1 1 ")
        .replace("a=sendrecv", "a=inactive");
    parker.send(&in_dialog("INVITE", "park-1", 2, &ok, "", sdp(&held)));
    parker.expect(200);
    parker.send(&in_dialog("ACK", "park-1", 2, &ok, "", NO_BODY));

    let mut picker = lab.teams_uac();
    // RFC 3891 §3: a dialog we do not hold gets 481, and no call starts.
    let ours = tag(header(&ok, "To"));
    picker.send(&replacing(
        "pick-0",
        &format!("nosuch@x;to-tag={ours};from-tag=t-park-1"),
        OFFER,
    ));
    let r = picker.expect(481);
    assert!(header(&r, "Warning").is_some(), "{r}");

    let events = Arc::new(Mutex::new(Vec::new()));
    let media = TeamsMedia::bind(events).unwrap();
    let heard = media.heard();
    let offer = media.sdp("0 8", 1, 7, 1);
    picker.send(&replacing(
        "pick-1",
        &format!("park-1;to-tag={ours};from-tag=t-park-1"),
        &offer,
    ));
    let answer = picker.expect(200);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    media
        .answered(body.as_bytes())
        .unwrap_or_else(|| panic!("no usable SDES answer: {answer}"));
    picker.send(&in_dialog("ACK", "pick-1", 1, &answer, "", NO_BODY));
    // The parked dialog ends (§3).
    let bye = parker.expect_request("BYE");
    assert_eq!(header(&bye, "Call-ID"), Some("park-1"), "{bye}");
    parker.reply(&bye, 200, "OK");

    // baresip's recording does not survive the hold and resume re-INVITEs, so the tone is
    // checked where the new leg hears it, and the way back by the relay's packet counters.
    std::thread::sleep(Duration::from_secs(1));
    let to_phone = lab.packet_rate("pbx", "out", Duration::from_secs(3));
    let from_new_leg = lab.packet_rate("teams", "in", Duration::from_secs(1));
    assert!(
        to_phone > 30.0 && from_new_leg > 30.0,
        "after the pickup: {to_phone} packets/s to the phone, {from_new_leg} from the new leg, \
         {} SRTP auth failures\n{}",
        lab.metric("teamsgw_media_srtp_auth_failures_total"),
        lab.logs()
    );
    assert_tone(
        "the new leg",
        tone_of_samples(8000, &heard.lock().unwrap()),
        PHONE_TONE,
        &format!("{}\n{}", phone.log(), lab.logs()),
    );
    lab.assert_active("from_teams", 1);
    phone.hangup();
    let bye = picker.expect_request("BYE");
    assert_eq!(header(&bye, "Call-ID"), Some("pick-1"), "{bye}");
    picker.reply(&bye, 200, "OK");
    lab.wait_calls_ended(&[&phone]);
    let cdrs = lab.cdrs(1);
    assert_eq!(
        cdrs.len(),
        1,
        "one call, whatever replaced its leg: {cdrs:?}"
    );
    assert_eq!(cdrs[0]["call_id"], "park-1", "{}", cdrs[0]);
    assert_eq!(cdrs[0]["hung_up_by"], "pbx", "{}", cdrs[0]);
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
}

/// Acceptance "INVITE with Replaces", the call pickup shape (RFC 3891 §7.1: replacing an
/// early dialog at its originator): the phone calls the Teams user, the Teams proxy only
/// rings, and another Teams connection sends INVITE with Replaces naming that ringing
/// dialog. teamsgw answers it, CANCELs the ringing INVITE with "call completed elsewhere"
/// (RFC 3326), answers the phone, and the tone crosses both ways through the picker's SRTP.
#[test]
fn a_call_ringing_in_teams_is_picked_up_with_replaces_and_the_phone_hears_the_picker() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![
        reply(180, "ring", false),
        Step::Wait(Duration::from_secs(60)),
    ]);
    let phone = lab.phone("2001", PHONE_TONE);
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("180 Ringing", Duration::from_secs(10));
    let invite = proxy
        .received()
        .into_iter()
        .map(|(_, text, _)| text)
        .find(|text| text.starts_with("INVITE "))
        .expect("the INVITE to Teams");
    let ringing = header(&invite, "Call-ID").unwrap().to_owned();
    let ours = tag(header(&invite, "From"));

    let events = Arc::new(Mutex::new(Vec::new()));
    let media = TeamsMedia::bind(events).unwrap();
    let heard = media.heard();
    let offer = media.sdp("0 8", 1, 7, 1);
    let mut picker = lab.teams_uac();
    picker.send(&replacing(
        "pickup-1",
        &format!("{ringing};to-tag={ours};from-tag=ring"),
        &offer,
    ));
    let answer = picker.expect(200);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    media
        .answered(body.as_bytes())
        .unwrap_or_else(|| panic!("no usable SDES answer: {answer}"));
    picker.send(&in_dialog("ACK", "pickup-1", 1, &answer, "", NO_BODY));
    phone.wait_log("Call established", Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    let cancel = loop {
        let cancel = proxy
            .received()
            .into_iter()
            .map(|(_, text, _)| text)
            .find(|text| text.starts_with("CANCEL "));
        if cancel.is_some() || Instant::now() > deadline {
            break cancel.expect("the ringing INVITE is CANCELled");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        header(&cancel, "Call-ID"),
        Some(ringing.as_str()),
        "{cancel}"
    );
    assert_eq!(
        header(&cancel, "Reason"),
        Some(r#"SIP;cause=200;text="Call completed elsewhere""#),
        "{cancel}"
    );

    std::thread::sleep(Duration::from_secs(2));
    assert_tone(
        "the picker",
        tone_of_samples(8000, &heard.lock().unwrap()),
        PHONE_TONE,
        &format!("{}\n{}", phone.log(), lab.logs()),
    );
    lab.assert_active("to_teams", 1);
    phone.hangup();
    let bye = picker.expect_request("BYE");
    assert_eq!(header(&bye, "Call-ID"), Some("pickup-1"), "{bye}");
    picker.reply(&bye, 200, "OK");
    lab.wait_calls_ended(&[&phone]);
    // The picker's media answered with its own tone: the phone heard it through the new leg.
    assert_tone(
        "the phone",
        tone_of(&phone.heard()[0]),
        TEAMS_MEDIA_TONE,
        &lab.logs(),
    );
    let cdrs = lab.cdrs(1);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0]["hung_up_by"], "pbx", "{}", cdrs[0]);
    assert_eq!(
        lab.metric("teamsgw_call_transfers_total{kind=\"replaces\",result=\"completed\"}"),
        1.0
    );
    assert_eq!(lab.metric("teamsgw_media_sessions_active"), 0.0);
}
