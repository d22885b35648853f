//! A media session on loopback: SRTP on the Teams side, plain RTP on the PBX side, both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teamsgw_media::relay::{PbxParams, TeamsParams};
use teamsgw_media::srtp::{Context, MasterKey, Suite};
use teamsgw_media::{MediaEvent, MediaMetrics, Relay, RelayConfig, Session, SessionParams};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

fn key(seed: u8) -> MasterKey {
    MasterKey::from_bytes(&(0..30).map(|i: u8| i ^ seed).collect::<Vec<_>>()).unwrap()
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

struct Call {
    relay: Relay,
    events: tokio::sync::mpsc::Receiver<MediaEvent>,
    session: Session,
    teams: UdpSocket,
    pbx: UdpSocket,
    /// Teams encrypts with this; we decrypt with it.
    teams_tx: Context,
    /// What we send to Teams decrypts with this.
    teams_rx: Context,
}

/// A relay that sends through its raw socket (`raw`) or from the calls' own sockets.
fn relay(config: RelayConfig) -> (Relay, tokio::sync::mpsc::Receiver<MediaEvent>) {
    let raw = config.raw_socket;
    let (relay, events) = Relay::new(config, MediaMetrics::new().unwrap()).unwrap();
    assert_eq!(
        relay.sends_raw(),
        raw,
        "the raw send path needs CAP_NET_RAW: run the tests as root"
    );
    (relay, events)
}

fn config(bind: &str, port_min: u16, port_max: u16, raw_socket: bool) -> RelayConfig {
    RelayConfig {
        bind: bind.parse().unwrap(),
        port_min,
        port_max,
        timeout: Duration::from_secs(30),
        batch_window: Duration::from_millis(1),
        raw_socket,
        pbx_media_source: Default::default(),
    }
}

async fn call(port_min: u16, timeout: Duration) -> Call {
    call_on("127.0.0.1", port_min, timeout, true).await
}

async fn call_on(bind: &str, port_min: u16, timeout: Duration, raw: bool) -> Call {
    let (relay, events) = relay(RelayConfig {
        timeout,
        ..config(bind, port_min, port_min + 20, raw)
    });
    let session = relay.allocate().unwrap();
    let teams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    session.apply(params(&teams, &pbx, true));
    Call {
        relay,
        events,
        session,
        teams,
        pbx,
        teams_tx: Context::new(Suite::AesCm128HmacSha1_80, &key(1), None),
        teams_rx: Context::new(Suite::AesCm128HmacSha1_80, &key(2), None),
    }
}

fn params(teams: &UdpSocket, pbx: &UdpSocket, teams_send: bool) -> SessionParams {
    SessionParams {
        teams: TeamsParams {
            remote: Some(teams.local_addr().unwrap()),
            suite: Suite::AesCm128HmacSha1_80,
            remote_key: key(1),
            local_key: key(2),
            send: teams_send,
        },
        pbx: PbxParams {
            remote_rtp: Some(pbx.local_addr().unwrap()),
            remote_rtcp: None,
            rtcp_mux: false,
            send: true,
        },
        payload_map: Default::default(),
        teams_cn: None,
    }
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    recv_from(socket).await.0
}

async fn recv_from(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("packet")
        .unwrap();
    (buf[..n].to_vec(), from)
}

async fn nothing(socket: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn srtp_to_rtp_and_back_byte_for_byte() {
    srtp_to_rtp_and_back(call(42000, Duration::from_secs(30)).await).await;
}

/// The fallback send path (no raw socket: one send per packet from the call's sockets).
#[tokio::test]
async fn srtp_to_rtp_and_back_byte_for_byte_from_the_calls_sockets() {
    let c = call_on("127.0.0.1", 47000, Duration::from_secs(30), false).await;
    srtp_to_rtp_and_back(c).await;
}

/// Bound to the wildcard, the raw socket leaves the source address to the kernel (and sends
/// no UDP checksum, RFC 768); packets still come from our ports on the peer's side.
#[tokio::test]
async fn srtp_to_rtp_and_back_byte_for_byte_on_the_wildcard_address() {
    let c = call_on("0.0.0.0", 47100, Duration::from_secs(30), true).await;
    srtp_to_rtp_and_back(c).await;
}

/// 1,000 packets each way across a sequence wrap; a packet whose UDP checksum the raw path
/// got wrong would be dropped by the receiving kernel and fail the comparison.
async fn srtp_to_rtp_and_back(mut c: Call) {
    let teams_port = addr(c.session.teams_port());
    let pbx_port = addr(c.session.pbx_port());
    for seq in 0..1000u16 {
        // Teams -> PBX: encrypted on the wire, plain at the PBX.
        let plain = rtp(seq.wrapping_add(65000), 0xaaaa);
        let mut buf = [0u8; 2048];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
        c.teams.send_to(&buf[..n], teams_port).await.unwrap();
        assert_eq!(recv(&c.pbx).await, plain, "Teams->PBX packet {seq}");
        // PBX -> Teams: plain from the PBX, SRTP at Teams.
        let plain = rtp(seq, 0xbbbb);
        c.pbx.send_to(&plain, pbx_port).await.unwrap();
        let mut got = recv(&c.teams).await;
        assert_ne!(
            got[12..].to_vec(),
            plain[12..].to_vec(),
            "encrypted towards Teams"
        );
        let n = got.len();
        let len = c.teams_rx.unprotect_rtp(&mut got, n).unwrap();
        assert_eq!(&got[..len], &plain[..], "PBX->Teams packet {seq}");
    }
    let s = c.session.stats();
    // A packet is counted out after its send returns, so the peer may see the last one first.
    let deadline = std::time::Instant::now() + WAIT;
    while s.teams.packets_out.load(Ordering::Relaxed) < 1000 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.teams.packets_in.load(Ordering::Relaxed), 1000);
    assert_eq!(s.pbx.packets_out.load(Ordering::Relaxed), 1000);
    assert_eq!(s.teams.packets_out.load(Ordering::Relaxed), 1000);
    assert_eq!(
        s.teams.lost.load(Ordering::Relaxed),
        0,
        "lost across the sequence wrap"
    );
    drop(c.relay);
}

/// A burst queued on the socket before the relay wakes is drained and relayed complete and
/// in order (one read per readiness normally; a socket ready at consecutive wake-ups is
/// drained).
#[tokio::test]
async fn bursts_are_relayed_complete_and_in_order() {
    let mut c = call(42500, Duration::from_secs(30)).await;
    let teams_port = addr(c.session.teams_port());
    // Latch both legs first.
    let mut buf = [0u8; 2048];
    let first = rtp(0, 0xaaaa);
    buf[..first.len()].copy_from_slice(&first);
    let n = c.teams_tx.protect_rtp(&mut buf, first.len()).unwrap();
    c.teams.send_to(&buf[..n], teams_port).await.unwrap();
    assert_eq!(recv(&c.pbx).await, first);
    let mut sent = Vec::new();
    for seq in 1..=100u16 {
        let plain = rtp(seq, 0xaaaa);
        buf[..plain.len()].copy_from_slice(&plain);
        let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
        c.teams.send_to(&buf[..n], teams_port).await.unwrap();
        sent.push(plain);
    }
    for (i, plain) in sent.iter().enumerate() {
        assert_eq!(&recv(&c.pbx).await, plain, "packet {} of the burst", i + 1);
    }
}

#[tokio::test]
async fn latching_follows_a_new_pbx_source_port_and_bad_tags_are_dropped_and_counted() {
    latching(call(42100, Duration::from_secs(30)).await).await;
}

#[tokio::test]
async fn latching_follows_a_new_pbx_source_port_from_the_calls_sockets() {
    latching(call_on("127.0.0.1", 47200, Duration::from_secs(30), false).await).await;
}

async fn latching(mut c: Call) {
    let (teams_port, pbx_port) = (addr(c.session.teams_port()), addr(c.session.pbx_port()));
    c.pbx.send_to(&rtp(1, 0xcccc), pbx_port).await.unwrap();
    assert_eq!(recv_from(&c.teams).await.1, teams_port);
    // The PBX's media now comes from another port (NAT rebinding), same SSRC: followed.
    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    moved.send_to(&rtp(2, 0xcccc), pbx_port).await.unwrap();
    assert_eq!(recv_from(&c.teams).await.1, teams_port);
    // Teams -> PBX now goes to the new port.
    let plain = rtp(10, 0xaaaa);
    let mut buf = [0u8; 2048];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
    c.teams.send_to(&buf[..n], teams_port).await.unwrap();
    // From our advertised port (symmetric RTP, RFC 4961), also after the move (the raw
    // socket writes our port; without it the connected twin socket follows the latch).
    assert_eq!(recv_from(&moved).await, (plain, pbx_port));
    assert!(nothing(&c.pbx).await, "the old port gets nothing");
    // A stranger with another SSRC is not followed.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(&rtp(3, 0xdddd), pbx_port).await.unwrap();
    assert!(nothing(&c.teams).await);
    assert_eq!(
        c.session
            .stats()
            .pbx
            .unexpected_source
            .load(Ordering::Relaxed),
        1
    );
    // A packet with a bad tag is dropped, counted, and does not move the Teams latch.
    let plain = rtp(11, 0xaaaa);
    buf[..plain.len()].copy_from_slice(&plain);
    let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf[n - 1] ^= 0x55;
    stranger.send_to(&buf[..n], teams_port).await.unwrap();
    assert!(nothing(&moved).await);
    assert_eq!(
        c.session
            .stats()
            .teams
            .auth_failures
            .load(Ordering::Relaxed),
        1
    );
    // Replays are dropped too.
    buf[n - 1] ^= 0x55;
    c.teams.send_to(&buf[..n], teams_port).await.unwrap();
    recv(&moved).await;
    c.teams.send_to(&buf[..n], teams_port).await.unwrap();
    assert!(nothing(&moved).await);
    assert_eq!(c.session.stats().teams.replays.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn hold_stops_forwarding_that_way_and_the_media_timeout_fires_only_off_hold() {
    let mut c = call(42200, Duration::from_millis(800)).await;
    let pbx_port = addr(c.session.pbx_port());
    c.session.apply(params(&c.teams, &c.pbx, false)); // Teams on hold: nothing goes to Teams
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.pbx.send_to(&rtp(1, 1), pbx_port).await.unwrap();
    assert!(nothing(&c.teams).await);
    // Silence on hold is not a timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(c.events.try_recv().is_err());
    // Off hold, silence is.
    c.session.apply(params(&c.teams, &c.pbx, true));
    let event = tokio::time::timeout(WAIT, c.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        MediaEvent::Timeout {
            session: c.session.id
        }
    );
}

#[tokio::test]
async fn port_exhaustion_is_an_error_and_ports_come_back() {
    let (relay, _events) = relay(config("127.0.0.1", 42300, 42304, true));
    let first = relay.allocate().unwrap();
    assert!(
        relay.allocate().is_err(),
        "two pairs per call, two pairs in the range"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(relay.allocate().is_ok());
}

/// More packets ready at one wake-up than the relay sends per batch (its outbox holds 64):
/// a long batch window lets 4 calls x 40 packets queue up while the loop sleeps. Every
/// packet arrives, in order, on its own call.
#[tokio::test]
async fn more_ready_packets_than_one_send_batch_all_arrive_in_order() {
    more_than_one_batch(43000, true).await;
}

#[tokio::test]
async fn more_ready_packets_than_one_send_batch_arrive_from_the_calls_sockets() {
    more_than_one_batch(48000, false).await;
}

async fn more_than_one_batch(port_min: u16, raw: bool) {
    let (relay, _events) = relay(RelayConfig {
        batch_window: Duration::from_millis(100),
        ..config("127.0.0.1", port_min, port_min + 100, raw)
    });
    let mut calls = Vec::new();
    for _ in 0..4 {
        let session = relay.allocate().unwrap();
        let teams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        session.apply(params(&teams, &pbx, true));
        calls.push((session, teams, pbx));
    }
    for seq in 0..40u16 {
        for (i, (session, _, pbx)) in calls.iter().enumerate() {
            pbx.send_to(&rtp(seq, 0x100 + i as u32), addr(session.pbx_port()))
                .await
                .unwrap();
        }
    }
    for (i, (_, teams, _)) in calls.iter().enumerate() {
        let mut teams_rx = Context::new(Suite::AesCm128HmacSha1_80, &key(2), None);
        for seq in 0..40u16 {
            let mut got = recv(teams).await;
            let n = got.len();
            let len = teams_rx.unprotect_rtp(&mut got, n).unwrap();
            assert_eq!(
                &got[..len],
                &rtp(seq, 0x100 + i as u32)[..],
                "call {i} packet {seq}"
            );
        }
    }
    drop(relay);
}

/// Issue "mid-call" §3: telephone-event numbered 101 by Teams and 96 by the PBX (RFC 3264
/// §6.1: each side sends with its peer's numbers) is renumbered in place both ways, the
/// marker bit kept, and the SRTP tag towards Teams is valid over the renumbered packet.
#[tokio::test]
async fn payload_types_are_renumbered_between_the_legs() {
    let mut c = call(43300, Duration::from_secs(30)).await;
    let mut p = params(&c.teams, &c.pbx, true);
    p.payload_map = teamsgw_media::payload_map::PayloadMap::new(&[(101, 96), (0, 0)]);
    c.session.apply(p);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let teams_port = addr(c.session.teams_port());
    let pbx_port = addr(c.session.pbx_port());
    for seq in 0..20u16 {
        // A DTMF event from Teams with the marker bit: PT 101 -> 96 at the PBX.
        let mut plain = rtp(seq, 0xaaaa);
        plain[1] = 0x80 | 101;
        let mut buf = [0u8; 2048];
        buf[..plain.len()].copy_from_slice(&plain);
        let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
        c.teams.send_to(&buf[..n], teams_port).await.unwrap();
        let got = recv(&c.pbx).await;
        assert_eq!(got[1], 0x80 | 96, "Teams->PBX packet {seq}");
        assert_eq!(got[2..], plain[2..]);
        // From the PBX: 96 -> 101 at Teams; PCMU (0) passes.
        for (k, (pt, want)) in [(96u8, 101u8), (0, 0)].into_iter().enumerate() {
            let mut plain = rtp(seq * 2 + k as u16, 0xbbbb);
            plain[1] = pt;
            c.pbx.send_to(&plain, pbx_port).await.unwrap();
            let mut got = recv(&c.teams).await;
            let n = got.len();
            let len = c
                .teams_rx
                .unprotect_rtp(&mut got, n)
                .expect("SRTP tag valid");
            assert_eq!(got[1], want, "PBX->Teams PT {pt}, packet {seq}");
            assert_eq!(got[2..len], plain[2..]);
        }
    }
}

/// Issue 31 §5, the RTP-bleed class (CVE-2017-14099): RTP sprayed at a call's PBX-leg port
/// from another address before the phone speaks draws no packets, reaches no one, and does
/// not keep a silent call alive; RTCP from a stranger is not forwarded to Teams.
#[tokio::test]
async fn a_stranger_spraying_the_pbx_port_draws_nothing_and_keeps_no_call_alive() {
    let mut c = call(43600, Duration::from_millis(1500)).await;
    let teams_port = addr(c.session.teams_port());
    let pbx_port = addr(c.session.pbx_port());
    let stranger = UdpSocket::bind("127.0.0.66:0").await.unwrap();
    for seq in 0..20 {
        stranger.send_to(&rtp(seq, 0x666), pbx_port).await.unwrap();
    }
    // RTCP sender reports, muxed and on the RTCP port.
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&0x666u32.to_be_bytes());
    sr.extend_from_slice(&[0; 20]);
    stranger.send_to(&sr, pbx_port).await.unwrap();
    stranger
        .send_to(&sr, addr(c.session.pbx_port() + 1))
        .await
        .unwrap();
    assert!(
        nothing(&c.teams).await,
        "a stranger's RTP or RTCP reached Teams"
    );
    // Teams speaks: its audio goes to the SDP's address, never to the stranger.
    let plain = rtp(1, 0xaaaa);
    let mut buf = [0u8; 2048];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = c.teams_tx.protect_rtp(&mut buf, plain.len()).unwrap();
    c.teams.send_to(&buf[..n], teams_port).await.unwrap();
    assert_eq!(recv(&c.pbx).await, plain);
    assert!(
        nothing(&stranger).await,
        "the stranger drew the call's audio"
    );
    // The phone's own packets still reach Teams.
    c.pbx.send_to(&rtp(1, 0xbbbb), pbx_port).await.unwrap();
    let mut got = recv(&c.teams).await;
    let n = got.len();
    c.teams_rx.unprotect_rtp(&mut got, n).unwrap();
    let s = c.session.stats();
    assert_eq!(s.pbx.unexpected_source.load(Ordering::Relaxed), 22);
    // Silence from both peers is a timeout, however much the stranger sends.
    let spray = tokio::spawn(async move {
        for seq in 100..250u16 {
            let _ = stranger.send_to(&rtp(seq, 0x666), pbx_port).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let event = tokio::time::timeout(WAIT, c.events.recv())
        .await
        .expect("the media timeout fired")
        .unwrap();
    assert_eq!(
        event,
        MediaEvent::Timeout {
            session: c.session.id
        }
    );
    spray.abort();
}

/// `pbx.media_source = "learn"` (a PBX behind NAT whose SDP names a private address): a
/// source that sends 4 RTP packets in sequence within 2 s of the SDP is locked onto and kept;
/// a stranger's packets, in sequence or not, change nothing afterwards.
#[tokio::test]
async fn learn_mode_locks_onto_four_packets_in_sequence_and_keeps_that_source() {
    let (relay, _events) = relay(RelayConfig {
        pbx_media_source: teamsgw_media::pbx_source::MediaSource::Learn,
        ..config("127.0.0.1", 43700, 43720, true)
    });
    let session = relay.allocate().unwrap();
    let teams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let behind_nat = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.66:0").await.unwrap();
    let mut p = params(&teams, &behind_nat, true);
    // The SDP names an address nothing sends from.
    p.pbx.remote_rtp = Some("127.0.0.77:30000".parse().unwrap());
    session.apply(p);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pbx_port = addr(session.pbx_port());
    for seq in 10..13 {
        behind_nat
            .send_to(&rtp(seq, 0xbbbb), pbx_port)
            .await
            .unwrap();
    }
    assert!(nothing(&teams).await, "three packets teach nothing");
    behind_nat
        .send_to(&rtp(13, 0xbbbb), pbx_port)
        .await
        .unwrap();
    recv(&teams).await;
    for seq in 0..10 {
        stranger.send_to(&rtp(seq, 0x666), pbx_port).await.unwrap();
    }
    assert!(nothing(&teams).await, "the learned source is kept");
    behind_nat
        .send_to(&rtp(14, 0xbbbb), pbx_port)
        .await
        .unwrap();
    recv(&teams).await;
}

/// Issue 37 §4 (RFC 3389): a PBX leg that goes quiet gets comfort noise towards Teams in its
/// own stream, after 200 ms and then every 200 ms, encrypted like the rest; when it speaks
/// again its packets follow the CN ones in sequence. Nothing on hold, nothing without CN
/// negotiated on the Teams leg.
#[tokio::test]
async fn a_silent_pbx_leg_gets_comfort_noise_towards_teams_in_its_own_stream() {
    let mut c = call(43900, Duration::from_secs(30)).await;
    let pbx_port = addr(c.session.pbx_port());
    let with_cn = |send: bool| SessionParams {
        teams_cn: Some(13),
        ..params(&c.teams, &c.pbx, send)
    };
    c.session.apply(with_cn(true));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seq_of = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    for seq in 10..13u16 {
        c.pbx.send_to(&rtp(seq, 0xcccc), pbx_port).await.unwrap();
        let mut got = recv(&c.teams).await;
        let n = got.len();
        let len = c.teams_rx.unprotect_rtp(&mut got, n).unwrap();
        assert_eq!(seq_of(&got[..len]), seq);
    }
    // Quiet: CN packets (payload type 13, one noise-level byte), next in the stream.
    let started = std::time::Instant::now();
    let mut expected = 13u16;
    for _ in 0..3 {
        let mut got = recv(&c.teams).await;
        let n = got.len();
        let len = c.teams_rx.unprotect_rtp(&mut got, n).unwrap();
        assert_eq!(len, 13, "a CN packet: header and noise level");
        assert_eq!(got[1] & 0x7f, 13);
        assert_eq!(seq_of(&got), expected);
        assert_eq!(&got[8..12], &0xccccu32.to_be_bytes());
        expected += 1;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_millis(1500),
        "three CN packets at 200, 400 and 600 ms took {took:?}"
    );
    // Speech again: the PBX's own next number comes after ours.
    c.pbx.send_to(&rtp(13, 0xcccc), pbx_port).await.unwrap();
    let mut got = recv(&c.teams).await;
    let n = got.len();
    let len = c.teams_rx.unprotect_rtp(&mut got, n).unwrap();
    assert_eq!(
        (len, seq_of(&got)),
        (172, expected),
        "renumbered after the CN"
    );
    // On hold (Teams' side), and without CN on the Teams leg: no comfort noise.
    c.session.apply(with_cn(false));
    assert!(nothing(&c.teams).await);
    c.session.apply(params(&c.teams, &c.pbx, true));
    assert!(nothing(&c.teams).await);
}
