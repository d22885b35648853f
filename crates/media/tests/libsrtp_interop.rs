//! Interop with an SRTP implementation that is not ours: libsrtp (through Debian's
//! `python3-pylibsrtp`) plays Teams. Its SRTP crosses our relay and arrives as correct plain
//! RTP; our SRTP towards it is decrypted by libsrtp; both directions cross sequence 65535.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use teamsgw_media::relay::{PbxParams, TeamsParams};
use teamsgw_media::srtp::{MasterKey, Suite};
use teamsgw_media::{MediaMetrics, Relay, RelayConfig, SessionParams};
use tokio::net::UdpSocket;

const PACKETS: u32 = 1500; // from 65000: the rollover counter increments after 536
const CHUNK: u32 = 50;

fn rtp(n: u32, ssrc: u32) -> Vec<u8> {
    let seq = (65000 + n) as u16;
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(n.wrapping_mul(160)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| ((i ^ n) & 0xff) as u8));
    p
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libsrtp_packets_cross_the_relay_both_ways_with_rollover() {
    let python = "/usr/bin/python3";
    let probe = Command::new(python)
        .args(["-c", "import pylibsrtp"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "libsrtp interop needs Debian's python3-pylibsrtp: apt-get install python3-pylibsrtp (scripts/test.sh installs it)"
    );
    let teams_key: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(7)).collect();
    let our_key: Vec<u8> = (0..30u8)
        .map(|i| i.wrapping_mul(11).wrapping_add(3))
        .collect();
    let config = RelayConfig {
        bind: "127.0.0.1".parse().unwrap(),
        port_min: 43000,
        port_max: 43020,
        timeout: Duration::from_secs(30),
        batch_window: Duration::from_millis(1),
        raw_socket: true,
        pbx_media_source: Default::default(),
    };
    let (relay, _events) = Relay::new(config, MediaMetrics::new().unwrap()).unwrap();
    let session = relay.allocate().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/libsrtp_peer.py");
    let mut peer = Command::new(python)
        .args([
            script,
            &session.teams_port().to_string(),
            &hex(&teams_key),
            &hex(&our_key),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = peer.stdin.take().unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let peer_port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(lines));
    let next_line = || {
        let lines = std::sync::Arc::clone(&lines);
        async move {
            tokio::task::spawn_blocking(move || lines.lock().unwrap().next().unwrap().unwrap())
                .await
                .unwrap()
        }
    };
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    session.apply(SessionParams {
        teams: TeamsParams {
            remote: Some(([127, 0, 0, 1], peer_port).into()),
            suite: Suite::AesCm128HmacSha1_80,
            remote_key: MasterKey::from_bytes(&teams_key).unwrap(),
            local_key: MasterKey::from_bytes(&our_key).unwrap(),
            send: true,
        },
        pbx: PbxParams {
            remote_rtp: Some(pbx.local_addr().unwrap()),
            remote_rtcp: None,
            rtcp_mux: false,
            send: true,
        },
        payload_map: Default::default(),
        teams_cn: None,
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Chunk by chunk, each acknowledged before the next, so a starved process on a busy
    // machine cannot overflow a socket buffer and lose packets.
    let relay_pbx: std::net::SocketAddr = ([127, 0, 0, 1], session.pbx_port()).into();
    let mut buf = [0u8; 2048];
    for first in (0..PACKETS).step_by(CHUNK as usize) {
        let end = (first + CHUNK).min(PACKETS);

        // libsrtp -> relay -> plain RTP at the PBX.
        writeln!(stdin, "send {first} {end}").unwrap();
        for n in first..end {
            let (len, _) = tokio::time::timeout(Duration::from_secs(5), pbx.recv_from(&mut buf))
                .await
                .expect("packet from the relay")
                .unwrap();
            assert_eq!(
                &buf[..len],
                &rtp(n, 0xaaaa)[..],
                "libsrtp packet {n} arrived changed"
            );
        }
        assert_eq!(next_line().await, "sent");

        // PBX plain RTP -> relay -> libsrtp decrypts.
        writeln!(stdin, "recv {first} {end}").unwrap();
        for n in first..end {
            pbx.send_to(&rtp(n, 0xbbbb), relay_pbx).await.unwrap();
        }
        assert_eq!(next_line().await, format!("ok {end}"));
    }
    drop(stdin);
    let _ = peer.wait();
}
