//! Issue 37 acceptance (PBX phones as they are), against the daemon with Kamailio as the PBX:
//! a video phone (sipp, since Debian's baresip offers no video) calls a Teams user (baresip
//! over TLS with SRTP) through Kamailio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of_tail};
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION};
use teamsgw_tests::{free_port, sipp};

const TEAMS_TONE: u32 = 1000;

/// RFC 3264 §6: the phone's audio+video offer gets a 200 with both m-lines, video at port 0;
/// video offered again mid-call gets port 0 again; a switch to T.38 gets 488 ("T.38 not
/// supported towards Teams"). sipp checks each answer (`tests/sipp/uac_video_phone.xml`) and
/// echoes the audio: Teams hears its own tone come back through the relay until the end, so
/// audio went both ways through every refused stream. Teams is only ever offered audio.
#[test]
fn a_video_phone_gets_every_m_line_answered_and_t38_refused_while_audio_goes_on() {
    let teams_sip = free_port();
    // baresip serves TLS on its SIP port + 1.
    let mut lab = CallLab::start("", &["127.0.0.3"], teams_sip + 1, None);
    lab.sip_trace = true;
    let teams = lab.teams_endpoint(([127, 0, 0, 3], teams_sip).into(), TEAMS_TONE);
    let media_port = (free_port() & !1).to_string();
    let (code, out) = sipp(
        "uac_video_phone.xml",
        lab.kamailio.addr,
        "u1",
        1,
        &[
            "-s",
            TEAMS_EXTENSION,
            "-au",
            "2002",
            "-ap",
            "pw-2002",
            "-mi",
            "127.0.0.1",
            "-mp",
            &media_port,
            "-rtp_echo",
        ],
    );
    assert_eq!(code, 0, "{out}\n{}", lab.logs());
    teams.wait_count("terminated", 1, Duration::from_secs(10));
    let logs = format!("{}\n--- teams endpoint\n{}", lab.logs(), teams.log());
    let sbc = std::net::SocketAddr::from(([127, 0, 0, 1], lab.ports.tls));
    let offers: Vec<String> = teams
        .received_from_host(sbc)
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect();
    assert_eq!(offers.len(), 1, "the re-offers never reach Teams\n{logs}");
    assert_eq!(offers[0].matches("\nm=").count(), 1, "{}", offers[0]);
    let heard = teams.heard();
    let wav = heard
        .last()
        .unwrap_or_else(|| panic!("Teams recorded nothing\n{logs}"));
    // The last 1.5 s are after the T.38 refusal.
    assert_tone(
        "Teams (its tone echoed by the phone)",
        tone_of_tail(wav, 1.5),
        TEAMS_TONE,
        &logs,
    );
}
