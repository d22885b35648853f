//! `teamsgw check-tls`: the carrier's pre-flight report before Teams can call (and after every
//! certificate renewal). It reads the configured files only; `--connect` also handshakes with
//! each Teams proxy. Exits 1 on anything that blocks calls.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, RootCertStore, StreamOwned};
use teamsgw_sip::certnames;
use teamsgw_sip::tls::TlsMaterial;
use teamsgw_sip::tls_audit::{self, Finding};

use crate::config::Settings;
use crate::daemon;

/// Debian's bundle of public roots: our own certificate normally chains to one of them.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Collects findings and prints them as they come.
#[derive(Default)]
struct Report {
    blocking: usize,
}

impl Report {
    fn section(&self, title: &str) {
        println!("\n{title}");
    }

    fn add(&mut self, finding: &Finding) {
        let mark = match (finding.ok, finding.blocking) {
            (true, _) => "ok     ",
            (false, true) => "PROBLEM",
            (false, false) => "warning",
        };
        if finding.blocking {
            self.blocking += 1;
        }
        println!("  {mark}  {}", finding.text);
    }

    fn problem(&mut self, text: String) {
        self.add(&Finding {
            ok: false,
            blocking: true,
            text,
        });
    }
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO),
    )
}

fn pem_certificates(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .map(|certs| certs.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

pub fn check_tls(path: &Path, connect: bool) -> ExitCode {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(problems) => {
            daemon::report_problems(path, &problems);
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    println!("teamsgw check-tls: {}", path.display());

    report.section("Our certificate (tls.certificate)");
    let material = if settings.tls.certificate.is_none() {
        report.problem(
            "no [tls] certificate configured: the daemon would present a development certificate, which Microsoft refuses".to_owned(),
        );
        None
    } else {
        match daemon::load_tls(&settings) {
            Ok(material) => Some(material),
            Err(problems) => {
                for p in &problems.0 {
                    report.problem(format!("{}: {}", p.key, p.message));
                }
                None
            }
        }
    };
    if let Some(material) = &material {
        // Our chain may end at a public root that is not among the trust anchors (which hold
        // Microsoft's roots for verifying Teams): judge it against both.
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(pem_certificates(&settings.tls.trust_anchors));
        roots.add_parsable_certificates(pem_certificates(Path::new(SYSTEM_BUNDLE)));
        for finding in tls_audit::audit_own_certificate(
            &material.certified_key.cert,
            &roots,
            &settings.teams.base_fqdn,
            now(),
        ) {
            report.add(&finding);
        }
    }

    report.section(&format!(
        "Trust anchors (tls.trust_anchors = {}): Microsoft's roots (teams-direct-routing.md §1.3)",
        settings.tls.trust_anchors.display()
    ));
    let anchors = pem_certificates(&settings.tls.trust_anchors);
    for (root, held) in tls_audit::microsoft_roots(&anchors) {
        report.add(&Finding {
            ok: held,
            blocking: !held,
            text: format!(
                "{}: {} (SHA-256 {})",
                root.name,
                if held { "present" } else { "missing" },
                root.sha256
            ),
        });
    }

    if connect {
        report.section(&format!(
            "Teams proxies (teams.proxies, port {})",
            settings.teams.proxy_port
        ));
        match &material {
            Some(material) => {
                for proxy in &settings.teams.proxies {
                    handshake(&mut report, material, proxy, settings.teams.proxy_port);
                }
            }
            None => report.problem("no handshake without a usable certificate".to_owned()),
        }
    }

    println!();
    if report.blocking > 0 {
        println!("{} problem(s) block calls with Teams", report.blocking);
        ExitCode::FAILURE
    } else {
        println!("no problem that blocks calls with Teams");
        ExitCode::SUCCESS
    }
}

/// A live mutual-TLS handshake with `proxy` as the daemon makes it (SNI and the server's
/// certificate checked against the proxy's name, our certificate presented), and an OPTIONS
/// round trip: a refused client certificate only shows once data flows (TLS 1.3).
fn handshake(report: &mut Report, material: &TlsMaterial, proxy: &str, port: u16) {
    let result = (|| -> Result<Vec<CertificateDer<'static>>, String> {
        let addrs: Vec<_> = (proxy, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve: {e}"))?
            .collect();
        // IPv4 first, as the daemon dials.
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or("resolves to nothing")?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(proxy.to_owned()).map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(Arc::clone(&material.client_config), name)
            .map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        let options = format!(
            "OPTIONS sip:{proxy}:{port};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 0.0.0.0;branch=z9hG4bK-check-tls\r\n\
             From: <sip:check-tls@invalid>;tag=check\r\nTo: <sip:{proxy}>\r\nCall-ID: check-tls\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        tls.write_all(options.as_bytes())
            .map_err(|e| format!("handshake failed: {e}"))?;
        let mut first = [0u8; 16];
        tls.read(&mut first)
            .map_err(|e| format!("handshake failed: {e}"))?;
        Ok(tls
            .conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default())
    })();
    match result {
        Ok(chain) => {
            report.add(&Finding {
                ok: true,
                blocking: false,
                text: format!("{proxy}:{port}: handshake verified"),
            });
            for (i, cert) in chain.iter().enumerate() {
                println!(
                    "           peer certificate {i}: names {:?}, SHA-256 {}",
                    certnames::dns_names(cert),
                    tls_audit::fingerprint(cert)
                );
            }
        }
        Err(e) => report.problem(format!("{proxy}:{port}: {e}")),
    }
}
