//! The admin listener's accept loop: axum's `serve` has no header-read timeout, no idle
//! timeout and no connection cap, so one slowloris client (or a few hundred idle ones) could
//! hold it. Here every connection:
//! - must send a request's headers within [`HEADER_TIMEOUT`] of connecting or of its last
//!   response (hyper starts the timer when it starts waiting for a request);
//! - lives at most [`CONNECTION_LIFETIME`];
//! - counts against [`MAX_CONNECTIONS`]: the next one is closed at once, and counted.
//!
//! Handlers see the peer as `ConnectInfo<SocketAddr>` (the sign-in throttle keys on it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounter, Registry};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
pub const MAX_CONNECTIONS: usize = 128;

/// Serves `app` on `listener` until `stop` turns true; open connections then finish their
/// request in progress.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    registry: &Registry,
) -> Result<(), prometheus::Error> {
    let refused = IntCounter::new(
        "teamsgw_admin_connections_refused_total",
        "Admin connections closed on accept because MAX_CONNECTIONS (128) were open.",
    )?;
    registry.register(Box::new(refused.clone()))?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: back off rather than spin.
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused.inc();
            drop(stream);
            continue;
        };
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let app = app.clone();
                    async move {
                        let response = match app.oneshot(request).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
            tokio::pin!(lifetime);
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = &mut lifetime => return,
                _ = stopping => {}
            }
            // Shutting down: the request in progress completes.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HEADER_TIMEOUT, connection).await;
        });
    }
}
