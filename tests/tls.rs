//! The Teams listener through the real daemon: mutual TLS, refusals counted by reason, and a
//! certificate swapped on disk + SIGHUP served on the next handshake while an established
//! connection keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConnection, StreamOwned};
use teamsgw_sip::test_pki::{LeafFiles, TestCa};
use teamsgw_tests::{Daemon, Ports, test_config};

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(
    port: u16,
    ca: &TestCa,
    client: Option<&LeafFiles>,
) -> std::io::Result<(Tls, CertificateDer<'static>)> {
    let config = ca.client_config(client);
    let conn =
        ClientConnection::new(config, ServerName::try_from("sbc.example.test").unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    // A full OPTIONS round trip: with TLS 1.3 a refused client certificate only shows here.
    let status = options(&mut tls, "handshake")?;
    if status != 200 {
        return Err(std::io::Error::other(format!("status {status}")));
    }
    let served = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .ok_or_else(|| std::io::Error::other("no server certificate"))?;
    Ok((tls, served))
}

/// The certificate in a PEM file, as a TLS peer sees it (DER), read by rustls' PEM reader.
fn certificate(path: &std::path::Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

/// Sends OPTIONS and returns the response status.
fn options(tls: &mut Tls, call_id: &str) -> std::io::Result<u16> {
    let msg = format!(
        "OPTIONS sip:sbc.example.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK{call_id}\r\n\
         From: <sip:ping@pstnhub.microsoft.com>;tag=1\r\nTo: <sip:sbc.example.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(msg.as_bytes())?;
    let mut response = Vec::new();
    let mut buf = [0u8; 2048];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::ConnectionAborted.into());
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    // teams-direct-routing.md §2.2: 200 with our Contact (base FQDN, TLS port) and Allow.
    if text.starts_with("SIP/2.0 200") {
        let port = tls.sock.peer_addr()?.port();
        let contact = format!("\r\nContact: <sip:sbc.example.invalid:{port};transport=tls>\r\n");
        assert!(text.contains(&contact), "{text}");
        assert!(
            text.contains("\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER\r\n"),
            "{text}"
        );
    }
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {text:?}")))
}

#[test]
fn teams_listener_mutual_tls_refusals_and_certificate_reload() {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "trusted");
    let rogue = TestCa::new(pki.path(), "rogue");
    let sbc = ca.leaf("sbc", &["sbc.example.test"]);
    // Microsoft's proxies since 2026 (teams-direct-routing.md §1.3): serverAuth only, under
    // an intermediate CA.
    let teams = ca.microsoft_leaf("teams", &["sip.pstnhub.microsoft.com"]);
    let teams_both = ca.leaf("teams-both", &["sip.pstnhub.microsoft.com"]);
    let outsider = ca.leaf("outsider", &["evil.example.com"]);
    let rogue_teams = rogue.leaf("rogue-teams", &["sip.pstnhub.microsoft.com"]);
    let tls_section = sbc.tls_section(&ca);
    let ports = Ports::new();
    let mut daemon = Daemon::start(&test_config(&ports, &tls_section), &ports);
    daemon.wait_ready(Duration::from_secs(20));

    // Mutual handshake with a Teams-named certificate from a trusted CA; rustls checked the
    // served certificate against the CA and the name, and it is the configured file's.
    let configured = certificate(&sbc.cert);
    let (mut established, served) = connect(ports.tls, &ca, Some(&teams)).unwrap();
    assert!(served == configured, "the configured certificate is served");
    // A certificate with both purposes (the SBC's own kind) is accepted as well.
    connect(ports.tls, &ca, Some(&teams_both)).unwrap();

    // Refused and counted: no certificate, untrusted CA, name outside *.pstnhub.microsoft.com.
    assert!(connect(ports.tls, &ca, None).is_err());
    assert!(connect(ports.tls, &ca, Some(&rogue_teams)).is_err());
    assert!(connect(ports.tls, &ca, Some(&outsider)).is_err());
    let failures = |reason: &str| {
        daemon.metric_if_exposed(&format!(
            "teamsgw_sip_tls_handshake_failures_total{{listener=\"teams\",reason=\"{reason}\"}}"
        ))
    };
    daemon.wait_for(Duration::from_secs(5), "refusals counted", || {
        failures("no_certificate") == Some(1.0)
            && failures("untrusted_certificate") == Some(1.0)
            && failures("peer_name_not_allowed") == Some(1.0)
    });

    // Replace the certificate files and SIGHUP: the next handshake gets the new certificate.
    let sbc2 = ca.leaf("sbc2", &["sbc.example.test", "sbc2.example.test"]);
    std::fs::copy(&sbc2.cert, &sbc.cert).unwrap();
    std::fs::copy(&sbc2.key, &sbc.key).unwrap();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(10), "reload ok", || {
        daemon.metric_if_exposed("teamsgw_config_reloads_total{result=\"ok\"}") == Some(1.0)
    });
    let replaced = certificate(&sbc2.cert);
    assert!(replaced != configured);
    let (_, served) = connect(ports.tls, &ca, Some(&teams)).unwrap();
    assert!(
        served == replaced,
        "the new certificate is served after SIGHUP"
    );

    // The connection from before the reload still works.
    assert_eq!(options(&mut established, "still-there").unwrap(), 200);

    // A broken certificate file on SIGHUP keeps the current one and counts an error.
    std::fs::write(&sbc.cert, "not a certificate").unwrap();
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(10), "reload error", || {
        daemon.metric_if_exposed("teamsgw_config_reloads_total{result=\"error\"}") == Some(1.0)
    });
    assert!(
        daemon.log().contains("tls.certificate"),
        "the key is named in the log"
    );
    let (_, served) = connect(ports.tls, &ca, Some(&teams)).unwrap();
    assert!(
        served == replaced,
        "a broken file keeps the current certificate"
    );
}

#[test]
fn teams_listener_refuses_sources_outside_the_allow_list() {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "trusted");
    let sbc = ca.leaf("sbc", &["sbc.example.test"]);
    let teams = ca.leaf("teams", &["sip.pstnhub.microsoft.com"]);
    let tls_section = sbc.tls_section(&ca);
    let ports = Ports::new();
    // Only Microsoft's ranges: loopback is outside.
    let config = test_config(&ports, &tls_section).replace(
        "allowed_sources = [\"127.0.0.0/8\"]",
        "allowed_sources = [\"52.112.0.0/14\", \"52.120.0.0/14\"]",
    );
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(20));
    assert!(connect(ports.tls, &ca, Some(&teams)).is_err());
    daemon.wait_for(Duration::from_secs(5), "refusal counted", || {
        daemon.metric_if_exposed(
            "teamsgw_sip_connections_refused_total{listener=\"teams\",reason=\"source_not_allowed\"}",
        ) == Some(1.0)
    });
}
