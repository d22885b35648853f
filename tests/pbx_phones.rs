//! Issue 37 acceptance (PBX phones as they are), against the daemon with Kamailio as the PBX:
//! a video phone (sipp, which lets the test check every answer and switch to T.38; baresip's
//! fakevideo could offer video but not fax) calls a Teams user (baresip
//! over TLS with SRTP) through Kamailio, and G.722 phones and Teams endpoints (baresip) call
//! each other both ways. A fax machine (sipp) behind the PBX answers a Teams call to a Fax
//! service number and is refused T.38, and a phone with silence suppression (sipp) has
//! comfort noise sent on its behalf to the in-house Teams proxy, which decrypts every packet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use teamsgw_tests::baresip::{assert_tone, tone_of_tail};
use teamsgw_tests::call_lab::{CallLab, TEAMS_EXTENSION, TENANT};
use teamsgw_tests::teams_proxy::reply;
use teamsgw_tests::{free_port, pcap_prefix, sipp, sipp_in};

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
    lab.heard_both((&phone, 5000), (&teams, 6000), 1);
    teams.dial(&format!("sip:+49302222001@{TENANT};transport=tls"));
    lab.heard_both((&teams, 6000), (&phone, 5000), 2);
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

/// Issue 37 §3: the seeds' Fax service numbers (licensing.md §1.2 factor 4: numbers loaded to
/// the tenant, not to a user) reach the PBX's fax machine. A Teams user calls one; the fax
/// machine (sipp, registered at Kamailio as extension 2329) answers on G.711, then switches to
/// T.38, which teamsgw refuses with 488 and the Warning "T.38 not supported towards Teams"
/// (sipp checks it), so the machine stays on G.711 pass-through: Teams hears its own tone
/// echoed by the machine after the refusal, and Teams is never offered the T.38 stream.
#[test]
fn a_fax_service_number_reaches_the_pbx_and_its_t38_switch_falls_back_to_g711() {
    const FAX: &str = "+49302222329";
    let teams_sip = free_port();
    let mut lab = CallLab::start("", &["127.0.0.3"], teams_sip + 1, None);
    lab.sip_trace = true;
    lab.cli(&[
        "service-number",
        "add",
        "--enterprise",
        "Contoso",
        "--number",
        FAX,
        "--tag",
        "FAX",
    ]);
    let fax_port = free_port();
    let contact_port = fax_port.to_string();
    let (code, out) = sipp(
        "uac_register.xml",
        lab.kamailio.addr,
        "u1",
        1,
        &[
            "-s",
            "2329",
            "-au",
            "2329",
            "-ap",
            "pw-2329",
            "-key",
            "contact_port",
            &contact_port,
        ],
    );
    assert_eq!(
        code,
        0,
        "the fax machine's registration\n{out}\n{}",
        lab.logs()
    );
    let teams = lab.teams_endpoint(([127, 0, 0, 3], teams_sip).into(), TEAMS_TONE);
    let kamailio = lab.kamailio.addr;
    let fax = std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let media_port = (free_port() & !1).to_string();
        sipp_in(
            dir.path(),
            fax_port,
            "uas_fax_machine.xml",
            kamailio,
            "u1",
            1,
            &[
                "-s",
                "2329",
                "-mi",
                "127.0.0.1",
                "-mp",
                &media_port,
                "-rtp_echo",
            ],
        )
    });
    // sipp listens within a few hundred milliseconds of starting.
    std::thread::sleep(Duration::from_millis(500));
    teams.dial(&format!("sip:{FAX}@{TENANT};transport=tls"));
    let (code, out) = fax.join().unwrap();
    let logs = format!("{}\n--- teams endpoint\n{}", lab.logs(), teams.log());
    assert_eq!(code, 0, "the fax machine\n{out}\n{logs}");
    teams.wait_count("terminated", 1, Duration::from_secs(10));
    let sbc = SocketAddr::from(([127, 0, 0, 1], lab.ports.tls));
    let from_sbc: Vec<String> = teams.received_from_host(sbc);
    assert!(
        !from_sbc.iter().any(|m| m.starts_with("INVITE ")),
        "the T.38 re-offer reached Teams\n{logs}"
    );
    let heard = teams.heard();
    let wav = heard
        .last()
        .unwrap_or_else(|| panic!("Teams recorded nothing\n{logs}"));
    // The last 1.5 s are after the T.38 refusal.
    assert_tone(
        "Teams (its tone echoed by the fax machine)",
        tone_of_tail(wav, 1.5),
        TEAMS_TONE,
        &logs,
    );
    let cdr = lab.cdrs(1).pop().unwrap();
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "pbx", "{cdr}");
    assert_eq!(cdr["codec"], "PCMA", "{cdr}");
}

/// Issue 37 §4 (teams-direct-routing.md §4.4 comfort noise, §4.6 silence taken for a dead
/// call; RFC 3389): a phone with voice activity detection speaks for a second, then sends
/// nothing for 2.5 s before hanging up. Teams (the in-house proxy, which decrypts every SRTP
/// packet) gets CN packets through the silence, in the phone's stream and numbered on from its
/// audio with neither gap nor repeat (RFC 3550 §5.1); it never goes a second without a packet,
/// and the call lasts until the phone hangs up.
#[test]
fn a_silent_pbx_leg_sends_teams_comfort_noise_and_the_call_stays_up() {
    let port = free_port();
    let lab = CallLab::start("", &["127.0.0.2"], port, None);
    let proxy = lab.teams_proxy(SocketAddr::from(([127, 0, 0, 2], port)));
    proxy.set_script(vec![reply(200, "q", true)]);
    let dir = tempfile::tempdir().unwrap();
    let speech = std::fs::read("/usr/share/sip-tester/g711a.pcap")
        .expect("g711a.pcap: install the Debian package sip-tester");
    std::fs::write(dir.path().join("speech.pcap"), pcap_prefix(&speech, 1.0)).unwrap();
    let media_port = (free_port() & !1).to_string();
    let (code, out) = sipp_in(
        dir.path(),
        free_port(),
        "uac_silent_phone.xml",
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
        ],
    );
    assert_eq!(code, 0, "{out}\n{}", lab.logs());
    lab.wait_calls_ended(&[]);
    let arrivals = proxy.srtp_arrivals();
    let report = arrivals
        .iter()
        .map(|a| format!("{:?} pt {} seq {}", a.at, a.payload_type, a.seq))
        .collect::<Vec<_>>()
        .join("\n");
    let logs = format!("{}\n--- what Teams decrypted\n{report}", lab.logs());
    let last_speech = arrivals.iter().rposition(|a| a.payload_type == 8);
    let last_speech = last_speech.unwrap_or_else(|| panic!("no speech reached Teams\n{logs}"));
    assert!(last_speech >= 30, "one second of 30 ms packets\n{logs}");
    let noise = &arrivals[last_speech + 1..];
    assert!(
        noise.len() >= 8 && noise.iter().all(|a| a.payload_type == 13),
        "2.5 s of silence: a CN packet every 200 ms, and nothing else\n{logs}"
    );
    for pair in arrivals.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(b.ssrc, a.ssrc, "one stream\n{logs}");
        assert_eq!(b.seq, a.seq.wrapping_add(1), "no gap, no repeat\n{logs}");
        assert!(
            b.at - a.at < Duration::from_secs(1),
            "Teams went a second without a packet\n{logs}"
        );
    }
    let cdr = lab.cdrs(1).pop().unwrap();
    assert_eq!(cdr["result"], "answered", "{cdr}");
    assert_eq!(cdr["hung_up_by"], "pbx", "{cdr}");
    assert!(
        lab.metric("teamsgw_media_cn_generated_total") >= noise.len() as f64,
        "{logs}"
    );
}
