//! Interop with a real peer (sipp): sipp's built-in `uac` against our UA's UAS role, and our
//! UAC against sipp's built-in `uas`; 1,000 calls each over UDP and TCP with zero failures,
//! and over UDP with 5 % loss (sipp `-lost 5`), which only retransmissions can recover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teamsgw_sip::transport::Transport;
use teamsgw_tests::ua::Ua;
use teamsgw_tests::{free_tcp_udp_port, require_program};
use tokio::sync::Semaphore;

const CALLS: u32 = 1000;

fn sipp_transport(t: Transport) -> &'static str {
    if t == Transport::Udp { "u1" } else { "t1" }
}

/// sipp's built-in UAC places CALLS calls against our UAS.
async fn sipp_uac_against_our_uas(transport: Transport, lost: Option<&str>) {
    require_program("sipp", "sip-tester");
    let ua = Ua::start(free_tcp_udp_port(), transport, None).await;
    let target = ua.addr;
    let loss = lost.map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let local = free_tcp_udp_port().to_string();
        let calls = CALLS.to_string();
        let mut args = vec![
            "-sn",
            "uac",
            "-t",
            sipp_transport(transport),
            "-i",
            "127.0.0.1",
            "-p",
            &local,
            "-m",
            &calls,
            "-r",
            "100",
            "-l",
            "100",
            "-d",
            "0",
            "-timeout",
            "180s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ];
        if let Some(l) = loss.as_deref() {
            args.extend(["-lost", l]);
        }
        let target = target.to_string();
        args.push(&target);
        Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "sipp uac over {transport:?} lost={lost:?} failed:\n{}",
        tail(&text)
    );
    let (answered, completed, failed) = (
        ua.stats.answered.load(Ordering::Relaxed),
        ua.stats.completed.load(Ordering::Relaxed),
        ua.stats.failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        answered,
        u64::from(CALLS),
        "every INVITE answered once (retransmissions absorbed)"
    );
    // Without loss every BYE reaches us. With loss, sipp's built-in uac matches `200` without
    // looking at CSeq: when its ACK and its first BYE are both lost, our (RFC 3261 §13.3.1.4)
    // 2xx retransmission ends the call in sipp, which then never retransmits the BYE. sipp
    // still counts the call successful (exit 0 above); we see it as a BYE that never came.
    let missing_byes = u64::from(CALLS) - completed.min(u64::from(CALLS));
    let allowed = if lost.is_some() {
        u64::from(CALLS) / 100
    } else {
        0
    };
    assert!(
        missing_byes <= allowed,
        "answered {answered}, completed {completed}, failed {failed}, missing BYEs {missing_byes} > {allowed}"
    );
}

/// Our UAC places CALLS calls against sipp's built-in UAS.
async fn our_uac_against_sipp_uas(transport: Transport, lost: Option<&str>) {
    require_program("sipp", "sip-tester");
    let sipp_port = free_tcp_udp_port();
    let dir = tempfile::tempdir().unwrap().keep();
    let calls = CALLS.to_string();
    let port = sipp_port.to_string();
    // Under loss sipp's built-in uas aborts calls on our (correct) INVITE retransmissions;
    // the scenario file adds the RFC 3261 §13.3.1.4 behaviour it lacks.
    let scenario = teamsgw_tests::fixture("sipp/uas_retransmission_tolerant.xml");
    let scenario_args = match lost {
        Some(_) => ["-sf", scenario.to_str().unwrap()],
        None => ["-sn", "uas"],
    };
    let mut args = vec![
        scenario_args[0],
        scenario_args[1],
        "-t",
        sipp_transport(transport),
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-m",
        &calls,
        "-timeout",
        "180s",
        "-nostdin",
        "-trace_err",
    ];
    if std::env::var_os("SIPP_TRACE").is_some() {
        args.push("-trace_msg");
    }
    if let Some(l) = lost {
        args.extend(["-lost", l]);
    }
    let sipp = Command::new("sipp")
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // let sipp bind
    let peer: SocketAddr = ([127, 0, 0, 1], sipp_port).into();
    let ua = Arc::new(Ua::start(free_tcp_udp_port(), transport, Some(peer)).await);
    let limit = Arc::new(Semaphore::new(50));
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let (ua, limit) = (Arc::clone(&ua), Arc::clone(&limit));
        calls.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            ua.call().await
        }));
    }
    let mut failures = Vec::new();
    for c in calls {
        if let Err(e) = c.await.unwrap() {
            failures.push(e);
        }
    }
    let out = tokio::task::spawn_blocking(move || sipp.wait_with_output().unwrap())
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if lost.is_none() {
        assert!(
            failures.is_empty(),
            "{} calls failed over {transport:?}: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert_eq!(ua.stats.completed.load(Ordering::Relaxed), u64::from(CALLS));
        assert_eq!(
            out.status.code(),
            Some(0),
            "sipp uas over {transport:?} failed:\n{}",
            tail(&text)
        );
        return;
    }
    // With loss, sipp 3.6's scenario engine aborts a call when a legitimate retransmission of
    // ours (INVITE before any response arrived, RFC 3261 §17.1.1.2) races with its own state
    // ("Aborting call on unexpected message"). Every failed call must be one of those, and
    // they must stay rare; anything else is ours.
    let sipp_errors: String = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    for failure in &failures {
        let call_id = failure
            .rsplit_once('(')
            .map(|(_, c)| c.trim_end_matches(')'))
            .unwrap_or_default();
        assert!(
            sipp_errors.contains(&format!(
                "Aborting call on unexpected message for Call-Id '{call_id}'"
            )),
            "call {call_id} failed ({failure}) and sipp did not abort it (sipp logs in {}):\n{}",
            dir.display(),
            tail(&text)
        );
    }
    assert!(
        failures.len() <= CALLS as usize / 100,
        "{} calls failed",
        failures.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_our_uas_over_udp() {
    sipp_uac_against_our_uas(Transport::Udp, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_our_uas_over_tcp() {
    sipp_uac_against_our_uas(Transport::Tcp, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_calls_sipp_uas_over_udp() {
    our_uac_against_sipp_uas(Transport::Udp, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_calls_sipp_uas_over_tcp() {
    our_uac_against_sipp_uas(Transport::Tcp, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_with_5_percent_loss_completes_through_retransmissions() {
    sipp_uac_against_our_uas(Transport::Udp, Some("5")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_with_5_percent_loss_at_sipp_completes_through_retransmissions() {
    our_uac_against_sipp_uas(Transport::Udp, Some("5")).await;
}
