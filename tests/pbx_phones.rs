//! Issue 37 acceptance (PBX phones as they are), against the daemon with Kamailio as the PBX:
//! a video phone (sipp, which lets the test check every answer and switch to T.38; baresip's
//! fakevideo could offer video but not fax) calls a Teams user (baresip
//! over TLS with SRTP) through Kamailio, and G.722 phones and Teams endpoints (baresip) call
//! each other both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use teamsgw_tests::baresip::{Baresip, assert_tone, tone_of, tone_of_tail};
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TENANT};
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

/// Sets the lab PBX's codecs and waits until the daemon routes with them.
fn pbx_codecs(lab: &CallLab, codecs: &str) {
    let reloads = "teamsgw_snapshot_reloads_total{result=\"ok\"}";
    let before = lab.daemon.metric_if_exposed(reloads).unwrap_or(0.0);
    lab.cli(&[
        "pbx",
        "set",
        "--enterprise",
        "Contoso",
        "--name",
        "main",
        "--codecs",
        codecs,
    ]);
    lab.daemon.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lab.daemon.metric_if_exposed(reloads).unwrap_or(0.0) <= before {
        assert!(std::time::Instant::now() < deadline, "{}", lab.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One call between `caller` and `callee` (already dialled): both ends heard each other's
/// tone, above 4 kHz, which G.711's 8 kHz sampling cannot carry (it would alias below 4 kHz).
fn heard_both(lab: &CallLab, (a, a_hz): (&Baresip, u32), (b, b_hz): (&Baresip, u32), n: usize) {
    a.wait_count("Call established", n, Duration::from_secs(20));
    b.wait_count("Call established", n, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(3));
    a.hangup();
    lab.wait_calls_ended(&[a, b]);
    a.wait_count("terminated", n, Duration::from_secs(5));
    b.wait_count("terminated", n, Duration::from_secs(5));
    let logs = format!("{}\n--- a\n{}\n--- b\n{}", lab.logs(), a.log(), b.log());
    for (who, end, hz) in [("a", a, b_hz), ("b", b, a_hz)] {
        let heard = end.heard();
        let wav = heard
            .last()
            .unwrap_or_else(|| panic!("{who} recorded nothing\n{logs}"));
        assert_tone(who, tone_of(wav), hz, &logs);
    }
}

/// Issue 37 §2: with `--codecs G722,PCMU`, a G.722-only phone and a Teams endpoint that also
/// speaks G.711 talk G.722 end to end both ways (tones at 5 and 6 kHz arrive), and the CDR says G722. With the
/// default codecs the same phone gets 488, and one that also offers G.711 falls back to it.
#[test]
fn g722_goes_end_to_end_both_ways_and_the_default_codecs_fall_back_or_refuse() {
    let teams_sip = free_port();
    let mut lab = CallLab::start("", &["127.0.0.3"], teams_sip + 1, None);
    lab.sip_trace = true;
    pbx_codecs(&lab, "G722,PCMU");
    // The Teams endpoint speaks G.711 and G.722 (G.711 first); the PBX's order puts G.722
    // first in both directions.
    let teams = lab.teams_endpoint(([127, 0, 0, 3], teams_sip).into(), 6000);
    let phone = lab.phone_with("2001", 5000, ";answermode=auto;audio_codecs=G722/16000/1");
    // The phone calls Teams, then Teams calls the phone.
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    heard_both(&lab, (&phone, 5000), (&teams, 6000), 1);
    teams.dial(&format!("sip:+49302222001@{TENANT};transport=tls"));
    heard_both(&lab, (&teams, 6000), (&phone, 5000), 2);
    let cdrs = lab.cdrs(2);
    for cdr in &cdrs {
        assert_eq!(cdr["codec"], "G722", "{cdr}");
    }

    // The default codecs: the G.722-only phone is refused (488), a phone with G.711 too
    // falls back to it.
    pbx_codecs(&lab, "PCMA,PCMU");
    phone.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    phone.wait_log("488", Duration::from_secs(10));
    let both = lab.phone_with(
        "2002",
        440,
        ";answermode=auto;audio_codecs=G722/16000/1,PCMU",
    );
    both.dial(&format!("sip:{TEAMS_EXTENSION}@127.0.0.1"));
    both.wait_log("Call established", Duration::from_secs(20));
    both.hangup();
    lab.wait_calls_ended(&[&both, &teams]);
    let last = lab.cdrs(3).pop().unwrap();
    assert_eq!(last["codec"], "PCMU", "{last}");
}
