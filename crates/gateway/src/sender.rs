//! Ordered sends to the peers we dial: one sender task per TCP/TLS target, so an INVITE and
//! the CANCEL after it leave in that order, and a slow connect stalls only its own peer (a
//! task per message could let them overtake each other). UDP sends are one syscall and go
//! out at once. A failed send is reported with the token its sender gave.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use teamsgw_sip::transport::{SipTransport, Target, Transport};
use tokio::sync::mpsc;

/// Messages queued per peer before further ones are refused as failed sends.
const QUEUE: usize = 1024;
/// A peer's task ends after this long without a message (its connection stays open).
const IDLE: Duration = Duration::from_secs(60);

pub struct PeerSenders<T> {
    sip: SipTransport,
    peers: HashMap<(Transport, SocketAddr), mpsc::Sender<(Bytes, T)>>,
    failures: mpsc::Sender<(T, String)>,
}

impl<T: Send + 'static> PeerSenders<T> {
    pub fn new(sip: SipTransport, failures: mpsc::Sender<(T, String)>) -> Self {
        Self {
            sip,
            peers: HashMap::new(),
            failures,
        }
    }

    /// Queues `data` for `target`; a failure comes back on the failures channel with `token`.
    pub async fn send(&mut self, target: &Target, data: Bytes, token: T) {
        if target.transport == Transport::Udp {
            if let Err(e) = self.sip.send(target, data).await {
                let _ = self.failures.send((token, e.to_string())).await;
            }
            return;
        }
        let key = (target.transport, target.addr);
        let mut item = (data, token);
        // A sender whose task ended (idle) is replaced once.
        for _ in 0..2 {
            let tx = self
                .peers
                .entry(key)
                .or_insert_with(|| spawn(self.sip.clone(), target.clone(), self.failures.clone()));
            match tx.try_send(item) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.peers.remove(&key);
                    item = back;
                }
                Err(mpsc::error::TrySendError::Full((_, token))) => {
                    let why = format!("send queue to {} is full", target.addr);
                    let _ = self.failures.send((token, why)).await;
                    return;
                }
            }
        }
    }
}

fn spawn<T: Send + 'static>(
    sip: SipTransport,
    target: Target,
    failures: mpsc::Sender<(T, String)>,
) -> mpsc::Sender<(Bytes, T)> {
    let (tx, mut rx) = mpsc::channel::<(Bytes, T)>(QUEUE);
    tokio::spawn(async move {
        while let Ok(Some((data, token))) = tokio::time::timeout(IDLE, rx.recv()).await {
            if let Err(e) = sip.send(&target, data).await {
                tracing::debug!(peer = %target.addr, error = %e, "cannot send");
                let _ = failures.send((token, e.to_string())).await;
            }
        }
    });
    tx
}
