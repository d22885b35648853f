//! A Teams SIP proxy for tests: a mutual-TLS SIP listener on loopback (our SIP transport
//! with a certificate for `localhost` from a test CA) that records every request and answers
//! OPTIONS with 200, or 503 with Retry-After, as the test says. It runs on its own runtime so
//! `stop` really closes its sockets, as a proxy that went away.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use teamsgw_sip::acl::AllowList;
use teamsgw_sip::message::MessageBuilder;
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::test_pki::{LeafFiles, TestCa};
use teamsgw_sip::tls::{TlsMaterial, TlsPaths, TlsStore};
use teamsgw_sip::transport::{ListenerSpec, SipTransport, Transport, TransportSettings};
use tokio::sync::mpsc;

/// How the proxy answers OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// 503 with `Retry-After: seconds`.
    Unavailable(u32),
}

pub struct TeamsProxy {
    runtime: Option<tokio::runtime::Runtime>,
    answer: Arc<Mutex<Answer>>,
    received: Arc<Mutex<Vec<(Instant, String, Answer)>>>,
    pub addr: SocketAddr,
}

impl TeamsProxy {
    pub fn start(addr: SocketAddr, ca: &TestCa, leaf: &LeafFiles) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answer = Arc::new(Mutex::new(Answer::Ok));
        let received = Arc::new(Mutex::new(Vec::new()));
        let tls = Arc::new(TlsStore::new(
            TlsMaterial::load(&TlsPaths {
                certificate: leaf.cert.clone(),
                key: leaf.key.clone(),
                trust_anchors: ca.ca_path(),
            })
            .unwrap(),
        ));
        let (tx, mut inbound) = mpsc::channel(1024);
        let sip = runtime.block_on(async {
            let spec = ListenerSpec {
                name: "teams-proxy",
                transport: Transport::Tls,
                addr,
                allow: AllowList::any(),
                peer_names: vec![],
            };
            let (sip, _tasks) = SipTransport::bind(
                vec![spec],
                TransportSettings::default(),
                tls,
                SipMetrics::new().unwrap(),
                tx,
            )
            .await
            .unwrap();
            sip
        });
        let (a, r) = (Arc::clone(&answer), Arc::clone(&received));
        runtime.spawn(async move {
            while let Some(inc) = inbound.recv().await {
                let text = String::from_utf8_lossy(inc.message.as_bytes()).into_owned();
                let mode = *a.lock().unwrap();
                r.lock().unwrap().push((Instant::now(), text, mode));
                if !inc.message.is_request() {
                    continue;
                }
                let b = match mode {
                    Answer::Ok => {
                        MessageBuilder::response_to(&inc.message, 200, "OK", Some("p"), None)
                            .header("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY")
                            .header("Server", "Microsoft.PSTNHub.SIPProxy test")
                    }
                    Answer::Unavailable(s) => MessageBuilder::response_to(
                        &inc.message,
                        503,
                        "Service Unavailable",
                        Some("p"),
                        None,
                    )
                    .header("Retry-After", s.to_string()),
                };
                let _ = sip.respond(&inc.source, b.finish()).await;
            }
        });
        Self {
            runtime: Some(runtime),
            answer,
            received,
            addr,
        }
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Every message received, with its arrival time and how it was answered.
    pub fn received(&self) -> Vec<(Instant, String, Answer)> {
        self.received.lock().unwrap().clone()
    }

    /// Closes the listener and every connection.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for TeamsProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
