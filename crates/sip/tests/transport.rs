//! Transports over real loopback sockets: UDP, TCP framing and keep-alives, mutual TLS with
//! its refusals (counted by reason), certificate reload, allow-lists and idle timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use teamsgw_sip::acl::AllowList;
use teamsgw_sip::certnames;
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::test_pki::{LeafFiles, TestCa};
use teamsgw_sip::tls::{TlsMaterial, TlsPaths, TlsStore};
use teamsgw_sip::transport::{
    Inbound, Incoming, ListenerSpec, SipTransport, Target, Transport, TransportSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

fn options(branch: &str) -> Bytes {
    MessageBuilder::request("OPTIONS", "sip:sbc.example.test")
        .header(
            "Via",
            format!("SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK{branch}"),
        )
        .header("From", "<sip:probe@example.test>;tag=1")
        .header("To", "<sip:sbc.example.test>")
        .header("Call-ID", branch)
        .header("CSeq", "1 OPTIONS")
        .finish()
}

fn store(leaf: &LeafFiles, ca: &TestCa) -> Arc<TlsStore> {
    Arc::new(TlsStore::new(
        TlsMaterial::load(&TlsPaths {
            certificate: leaf.cert.clone(),
            key: leaf.key.clone(),
            trust_anchors: ca.ca_path(),
        })
        .unwrap(),
    ))
}

fn spec(name: &'static str, transport: Transport, peer_names: &[&str]) -> ListenerSpec {
    ListenerSpec {
        name,
        transport,
        addr: "127.0.0.1:0".parse().unwrap(),
        allow: AllowList::any(),
        peer_names: peer_names.iter().map(|s| s.to_string()).collect(),
        untrusted: name == "pbx",
    }
}

struct Node {
    transport: SipTransport,
    inbound: mpsc::Receiver<Incoming>,
    metrics: SipMetrics,
}

async fn node(specs: Vec<ListenerSpec>, tls: Arc<TlsStore>, settings: TransportSettings) -> Node {
    let (tx, inbound) = mpsc::channel(64);
    let metrics = SipMetrics::new().unwrap();
    let (transport, _tasks) =
        SipTransport::bind(specs, settings, tls, metrics.clone(), Inbound::single(tx))
            .await
            .unwrap();
    Node {
        transport,
        inbound,
        metrics,
    }
}

async fn next(node: &mut Node) -> Incoming {
    tokio::time::timeout(WAIT, node.inbound.recv())
        .await
        .unwrap()
        .unwrap()
}

/// A CA and the SBC's certificate store, for tests that only need a server.
fn sbc_store() -> Arc<TlsStore> {
    let ca = TestCa::new(&tempfile_dir(), "trusted");
    store(&ca.leaf("sbc", &["sbc.example.test"]), &ca)
}

/// A node with one listener of `transport` named `pbx`, and that listener's address.
async fn listening(transport: Transport, settings: TransportSettings) -> (Node, SocketAddr) {
    let node = node(vec![spec("pbx", transport, &[])], sbc_store(), settings).await;
    let addr = node.transport.listener_addr("pbx", transport).unwrap();
    (node, addr)
}

/// The peer closed the stream (EOF or reset) within the wait.
async fn assert_closed(tcp: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "stream still open: {closed:?}"
    );
}

/// A raw TLS client with an optional client certificate; returns the server's DNS names.
async fn raw_tls_client(
    addr: SocketAddr,
    trust: &TestCa,
    client: Option<&LeafFiles>,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<String>)> {
    let config = trust.client_config(client);
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("sbc.example.test").unwrap(), tcp)
        .await?;
    // TLS 1.3: the server rejects the client certificate after the client thinks it is done;
    // a round trip makes that rejection visible.
    tls.write_all(&options("probe")).await?;
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(500), tls.read(&mut buf)).await {
        Ok(Ok(0)) => return Err(std::io::ErrorKind::ConnectionAborted.into()),
        Ok(Err(e)) => return Err(e),
        _ => {}
    }
    let names = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| certnames::dns_names(&c[0]))
        .unwrap_or_default();
    Ok((tls, names))
}

fn failures(node: &Node, reason: &str) -> u64 {
    node.metrics
        .handshake_failures
        .with_label_values(&["teams", reason])
        .get()
}

#[tokio::test]
async fn mutual_tls_accepts_trusted_peers_and_refuses_others_by_reason() {
    let dir = tempfile_dir();
    let ca = TestCa::new(&dir, "trusted");
    let rogue = TestCa::new(&dir, "rogue");
    let sbc = ca.leaf("sbc", &["sbc.example.test"]);
    let teams = ca.leaf("teams", &["sip.pstnhub.microsoft.com"]);
    let outsider = ca.leaf("outsider", &["evil.example.com"]);
    let rogue_teams = rogue.leaf("rogue-teams", &["sip.pstnhub.microsoft.com"]);

    let mut server = node(
        vec![spec("teams", Transport::Tls, &["*.pstnhub.microsoft.com"])],
        store(&sbc, &ca),
        TransportSettings::default(),
    )
    .await;
    let addr = server
        .transport
        .listener_addr("teams", Transport::Tls)
        .unwrap();
    let mut client = node(vec![], store(&teams, &ca), TransportSettings::default()).await;

    // Our own dialling side presents its certificate and verifies the server (SNI name).
    let target = Target {
        transport: Transport::Tls,
        addr,
        server_name: Some("sbc.example.test".into()),
    };
    client.transport.send(&target, options("a1")).await.unwrap();
    let req = next(&mut server).await;
    assert_eq!(req.source.transport, Transport::Tls);
    assert_eq!(req.message.call_id(), Some(&b"a1"[..]));
    let ok = MessageBuilder::response_to(&req.message, 200, "OK", Some("x"), None).finish();
    server.transport.respond(&req.source, ok).await.unwrap();
    let resp = next(&mut client).await;
    assert_eq!(resp.message.status(), Some(200));

    // No client certificate, an untrusted CA, a name outside the allowed list: refused.
    assert!(raw_tls_client(addr, &ca, None).await.is_err());
    assert!(raw_tls_client(addr, &ca, Some(&rogue_teams)).await.is_err());
    assert!(raw_tls_client(addr, &ca, Some(&outsider)).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(failures(&server, "no_certificate"), 1);
    assert_eq!(failures(&server, "untrusted_certificate"), 1);
    assert_eq!(failures(&server, "peer_name_not_allowed"), 1);
    // The probes above never reached the transaction user.
    assert!(server.inbound.try_recv().is_err());
}

#[tokio::test]
async fn certificate_reload_serves_new_handshakes_and_keeps_established_connections() {
    let dir = tempfile_dir();
    let ca = TestCa::new(&dir, "trusted");
    let sbc = ca.leaf("sbc", &["sbc.example.test"]);
    let sbc2 = ca.leaf("sbc2", &["sbc.example.test", "sbc2.example.test"]);
    let teams = ca.leaf("teams", &["sip.pstnhub.microsoft.com"]);
    let tls = store(&sbc, &ca);
    let mut server = node(
        vec![spec("teams", Transport::Tls, &[])],
        Arc::clone(&tls),
        TransportSettings::default(),
    )
    .await;
    let addr = server
        .transport
        .listener_addr("teams", Transport::Tls)
        .unwrap();

    let (mut established, names) = raw_tls_client(addr, &ca, Some(&teams)).await.unwrap();
    assert_eq!(names, vec!["sbc.example.test"]);
    let _ = next(&mut server).await;

    tls.replace(
        TlsMaterial::load(&TlsPaths {
            certificate: sbc2.cert.clone(),
            key: sbc2.key.clone(),
            trust_anchors: ca.ca_path(),
        })
        .unwrap(),
    );
    let (_, names) = raw_tls_client(addr, &ca, Some(&teams)).await.unwrap();
    assert_eq!(names, vec!["sbc.example.test", "sbc2.example.test"]);
    let _ = next(&mut server).await;

    // The connection made before the reload still carries traffic both ways.
    established
        .write_all(&options("after-reload"))
        .await
        .unwrap();
    let req = next(&mut server).await;
    assert_eq!(req.message.call_id(), Some(&b"after-reload"[..]));
    let ok = MessageBuilder::response_to(&req.message, 200, "OK", Some("t"), None).finish();
    server.transport.respond(&req.source, ok).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = established.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
}

#[tokio::test]
async fn tcp_frames_several_messages_per_read_and_answers_keepalive_pings() {
    let (mut server, addr) = listening(Transport::Tcp, TransportSettings::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut two = options("one").to_vec();
    two.extend_from_slice(&options("two"));
    tcp.write_all(&two).await.unwrap();
    assert_eq!(next(&mut server).await.message.call_id(), Some(&b"one"[..]));
    assert_eq!(next(&mut server).await.message.call_id(), Some(&b"two"[..]));
    // RFC 5626 §3.5.1: CRLFCRLF ping, CRLF pong.
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    // Garbage without a header end beyond the size limit closes the stream.
    tcp.write_all(&vec![b'x'; 70 * 1024]).await.unwrap();
    assert_closed(&mut tcp).await;
    assert_eq!(
        server
            .metrics
            .dropped
            .with_label_values(&["tcp", "too_large"])
            .get(),
        1
    );
}

#[tokio::test]
async fn udp_delivers_datagrams_and_counts_garbage() {
    let (mut server, addr) = listening(Transport::Udp, TransportSettings::default()).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(b"\x00\x01 garbage", addr).await.unwrap();
    peer.send_to(&options("u1"), addr).await.unwrap();
    let req = next(&mut server).await;
    assert_eq!(req.message.call_id(), Some(&b"u1"[..]));
    let ok = MessageBuilder::response_to(&req.message, 200, "OK", Some("t"), Some(req.source.peer))
        .finish();
    server.transport.respond(&req.source, ok).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, addr);
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
    assert_eq!(
        server
            .metrics
            .dropped
            .with_label_values(&["udp", "bad_start_line"])
            .get(),
        1
    );
}

#[tokio::test]
async fn allow_list_refuses_connections_and_drops_datagrams_from_other_sources() {
    let only_microsoft = AllowList::new(vec!["52.112.0.0/14".parse().unwrap()]);
    let mut tcp_spec = spec("teams", Transport::Tcp, &[]);
    tcp_spec.allow = only_microsoft.clone();
    let mut udp_spec = spec("teams", Transport::Udp, &[]);
    udp_spec.allow = only_microsoft;
    let mut server = node(
        vec![tcp_spec, udp_spec],
        sbc_store(),
        TransportSettings::default(),
    )
    .await;
    let mut tcp = TcpStream::connect(
        server
            .transport
            .listener_addr("teams", Transport::Tcp)
            .unwrap(),
    )
    .await
    .unwrap();
    let _ = tcp.write_all(&options("x")).await;
    assert_closed(&mut tcp).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(
        &options("y"),
        server
            .transport
            .listener_addr("teams", Transport::Udp)
            .unwrap(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.inbound.try_recv().is_err());
    assert_eq!(
        server
            .metrics
            .refused
            .with_label_values(&["teams", "source_not_allowed"])
            .get(),
        1
    );
    assert_eq!(
        server
            .metrics
            .dropped
            .with_label_values(&["udp", "source_not_allowed"])
            .get(),
        1
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let settings = TransportSettings {
        idle_timeout: Duration::from_millis(300),
        ..TransportSettings::default()
    };
    let server = node(
        vec![spec("pbx", Transport::Tcp, &[])],
        sbc_store(),
        settings,
    )
    .await;
    let mut tcp = TcpStream::connect(
        server
            .transport
            .listener_addr("pbx", Transport::Tcp)
            .unwrap(),
    )
    .await
    .unwrap();
    assert_closed(&mut tcp).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.transport.open_connections(), 0);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "teamsgw-sip-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
