//! `teamsgw run`: start, serve, reload on SIGHUP, drain on SIGTERM/SIGINT.
//!
//! Start-up order is chosen so that a broken config or certificate fails fast (exit 1, the
//! problem named) and a missing database does not: the daemon serves `/healthz` and answers
//! `/readyz` with 503 and the reason until its first routing snapshot loads.
//!
//! SIGHUP re-reads the whole config and applies it only if all of it is valid: log level and
//! TLS material change live, listener addresses and the database URL need a restart (a warning
//! names them), and the routing snapshot is reloaded. A rejected reload changes nothing.

pub mod call_routes;
pub mod cdr;
pub mod cdr_retention;
pub mod devcert;
pub mod drain;
pub mod file_limit;
pub mod gateway_settings;
pub mod license_monitor;
pub mod logging;
pub mod notify;
pub mod provisioning;
pub mod readiness;
pub mod registrations;
pub mod sip_service;
pub mod tls_watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use teamsgw_gateway::call::SessionCounts;
use teamsgw_gateway::call_driver::{self, CallLayer, CallMetrics, CallsHandle};
use teamsgw_media::{MediaMetrics, Relay, RelayConfig};
use teamsgw_sip::hep::{HepCapture, HepConfig};
use teamsgw_sip::metrics::SipMetrics;
use teamsgw_sip::tls::{TlsError, TlsMaterial, TlsPaths, TlsStore};
use teamsgw_sip::transport::SipTransport;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use arc_swap::ArcSwap;

use crate::admin::api::{self, ApiState};
use crate::admin::console::session::Sessions;
use crate::admin::console::{self, ConsoleState};
use crate::admin::metrics::Metrics;
use crate::admin::{self, AdminState};
use crate::build_info::{GIT_SHA, VERSION};
use crate::config::{Problem, Problems, Settings};
use crate::daemon::drain::Drain;
use crate::daemon::license_monitor::LicenseMonitor;
use crate::daemon::notify::Notifier;
use crate::daemon::provisioning::Provisioning;
use crate::daemon::readiness::Readiness;
use crate::operations;
use logging::LogHandle;
use teamsgw_gateway::client::{self, ClientHandle, ClientMetrics};
use teamsgw_gateway::dns::{DnsMetrics, Resolver};

pub async fn run(config_path: PathBuf) -> ExitCode {
    let settings = match Settings::load(&config_path) {
        Ok(s) => s,
        Err(problems) => {
            report_problems(&config_path, &problems);
            return ExitCode::FAILURE;
        }
    };
    let log = logging::init(&settings.log);
    match Daemon::start(config_path, settings, log).await {
        Ok(daemon) => daemon.serve().await,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("teamsgw: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn report_problems(path: &Path, problems: &Problems) {
    eprintln!("{}: {} problem(s):", path.display(), problems.0.len());
    for p in &problems.0 {
        eprintln!("  {}: {}", p.key, p.message);
    }
}

struct Daemon {
    config_path: PathBuf,
    settings: Settings,
    /// The same settings for the API and background tasks; replaced on a good SIGHUP.
    shared_settings: Arc<ArcSwap<Settings>>,
    log: LogHandle,
    notifier: Notifier,
    tls: Arc<TlsStore>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    provisioning: Arc<Provisioning>,
    drain: Arc<Drain>,
    /// The registration agent and Teams trunk health.
    client: ClientHandle,
    stop_admin: watch::Sender<bool>,
    admin_task: tokio::task::JoinHandle<()>,
    /// The call shards (each holds the media relay).
    calls: CallsHandle,
}

/// Finished calls waiting for the database (a 30 s outage at 300 calls/s fits).
const CDR_QUEUE: usize = 10_000;

/// Trunk health's view of the Teams proxies, passed to the call shards the moment it changes
/// (a poll would leave calls trying a proxy by an older verdict than the metrics show).
async fn follow_trunk(client: ClientHandle, calls: CallsHandle) {
    let mut known: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut changes = client.proxies_up();
    loop {
        let now: Vec<(String, bool)> = changes.borrow_and_update().clone();
        for (proxy, up) in now {
            if known.insert(proxy.clone(), up) != Some(up) {
                calls.proxy_state(&proxy, up).await;
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// A call's 503 with Retry-After marks the proxy down in trunk health, as an OPTIONS would.
async fn forward_proxy_holds(
    mut holds: tokio::sync::mpsc::Receiver<(String, Duration)>,
    client: ClientHandle,
) {
    while let Some((proxy, hold)) = holds.recv().await {
        client.hold_proxy(proxy, hold).await;
    }
}

impl Daemon {
    async fn start(
        config_path: PathBuf,
        settings: Settings,
        log: LogHandle,
    ) -> Result<Self, String> {
        tracing::info!(version = VERSION, git_sha = GIT_SHA, config = %config_path.display(), "starting teamsgw");
        let material = load_tls(&settings).map_err(|p| p.to_string())?;
        let tls = Arc::new(TlsStore::new(material));
        let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
        tls_watch::observe(&tls.current(), &metrics.tls_certificate_expiry);
        let readiness = Arc::new(Readiness::default());
        let shared_settings = Arc::new(ArcSwap::from_pointee(settings.clone()));
        let provisioning = Arc::new(Provisioning::new(
            settings.database.url.clone(),
            Arc::clone(&shared_settings),
            Arc::clone(&metrics),
            Arc::clone(&readiness),
        ));

        let sip_metrics = SipMetrics::new().map_err(|e| format!("metrics: {e}"))?;
        sip_metrics
            .register(metrics.registry())
            .map_err(|e| format!("metrics: {e}"))?;
        let (trusted_tx, trusted_rx) = mpsc::channel(4096);
        let (untrusted_tx, untrusted_rx) = mpsc::channel(4096);
        let (transport, _listener_tasks) = SipTransport::bind(
            sip_service::listener_specs(&settings),
            sip_service::transport_settings(&settings),
            Arc::clone(&tls),
            sip_metrics.clone(),
            teamsgw_sip::transport::Inbound {
                trusted: trusted_tx,
                untrusted: untrusted_tx,
            },
        )
        .await
        .map_err(|e| format!("{}: {e}", sip_service::listener_key(e.name, e.transport)))?;
        if let Some(collector) = &settings.hep.collector {
            let addr = tokio::net::lookup_host(collector.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("hep.collector: cannot resolve {collector}"))?;
            let config = HepConfig {
                collector: addr,
                capture_id: settings.hep.capture_id,
                auth_key: settings.hep.auth_key.clone(),
            };
            let capture = HepCapture::start(config, metrics.registry())
                .await
                .map_err(|e| format!("hep.collector: {e}"))?;
            tracing::info!(%addr, "SIP capture to HEP collector");
            transport.set_capture(Some(capture));
        }
        let open_files = file_limit::raise();
        match file_limit::media_calls(settings.media.port_min, settings.media.port_max, open_files)
        {
            (by_ports, Some(by_files)) => tracing::warn!(
                open_files = open_files.unwrap_or(0),
                "the open-file limit allows media for {by_files} calls, the media port range for \
                 {by_ports}; raise LimitNOFILE (systemd) or ulimit -n"
            ),
            (by_ports, None) => tracing::info!(
                open_files = open_files.map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
                "media for up to {by_ports} calls"
            ),
        }
        let media_metrics = MediaMetrics::new().map_err(|e| format!("metrics: {e}"))?;
        media_metrics
            .register(metrics.registry())
            .map_err(|e| format!("metrics: {e}"))?;
        let media = Relay::new(
            RelayConfig {
                bind: settings.media.bind_address,
                port_min: settings.media.port_min,
                port_max: settings.media.port_max,
                timeout: Duration::from_secs(settings.media.timeout_seconds),
                batch_window: Duration::from_micros(settings.media.batch_window_microseconds),
                raw_socket: settings.media.raw_socket,
                pbx_media_source: settings.pbx.media_source.into(),
            },
            media_metrics,
        )
        .map_err(|e| format!("media: {e}"))?;
        if media.0.sends_raw() {
            tracing::info!("media: sending through a raw socket, one syscall per batch");
        } else if settings.media.raw_socket {
            tracing::warn!(
                "media: no raw socket (it needs CAP_NET_RAW and an IPv4 media.bind_address); \
                 sending from each call's sockets, which costs more CPU per packet; grant \
                 CAP_NET_RAW (deploy/systemd) or set media.raw_socket = false"
            );
        }

        let resolver = Resolver::new(
            &settings.dns.servers,
            DnsMetrics::new(metrics.registry()).map_err(|e| format!("metrics: {e}"))?,
        )?;
        let (relay, media_events) = media;
        let relay = Arc::new(relay);
        let call_metrics =
            CallMetrics::new(metrics.registry()).map_err(|e| format!("metrics: {e}"))?;
        call_metrics.expect_proxies(&settings.teams.proxies);
        let (cdr_tx, cdr_rx) = mpsc::channel(CDR_QUEUE);
        let shards = std::thread::available_parallelism()
            .map(|n| n.get().min(8) as u16)
            .unwrap_or(1);
        let (holds_tx, holds_rx) = tokio::sync::mpsc::channel(64);
        let calls = call_driver::spawn(CallLayer {
            sip: transport.clone(),
            relay: Arc::clone(&relay),
            media_events,
            settings: gateway_settings::calls(&settings, Arc::new(SessionCounts::default())),
            shards,
            metrics: call_metrics,
            records: cdr_tx,
            proxy_holds: holds_tx,
            resolver: resolver.clone(),
        });
        let cdr_metrics =
            cdr::CdrMetrics::new(metrics.registry()).map_err(|e| format!("metrics: {e}"))?;
        tokio::spawn(cdr::run(
            cdr_rx,
            Arc::clone(&provisioning),
            cdr_metrics,
            calls.supervision(),
        ));
        let purged = cdr_retention::purged_counter(metrics.registry())
            .map_err(|e| format!("metrics: {e}"))?;
        tokio::spawn(cdr_retention::run(
            Arc::clone(&provisioning),
            Arc::clone(&shared_settings),
            purged,
        ));
        let drain = Arc::new(Drain::default());
        let (responses_tx, responses_rx) = mpsc::channel(8192);
        sip_service::spawn(
            sip_service::Service {
                transport: transport.clone(),
                responses: responses_tx,
                calls: calls.clone(),
                metrics: sip_metrics,
                drain: Arc::clone(&drain),
                teams_contact: sip_service::teams_contact(&settings),
                pbx_rate: settings.pbx.max_requests_per_second_per_source,
            },
            trusted_rx,
            untrusted_rx,
        );
        let client_metrics =
            ClientMetrics::new(metrics.registry()).map_err(|e| format!("metrics: {e}"))?;
        let client = client::spawn(
            transport,
            responses_rx,
            gateway_settings::agent(&settings),
            gateway_settings::trunk(&settings),
            client_metrics,
            resolver.clone(),
            calls.supervision(),
        );

        let listener = tokio::net::TcpListener::bind(settings.admin.listen)
            .await
            .map_err(|e| format!("admin.listen {}: cannot bind: {e}", settings.admin.listen))?;
        let (stop_admin, stopped) = watch::channel(false);
        let api_state = ApiState {
            provisioning: Arc::clone(&provisioning),
            settings: Arc::clone(&shared_settings),
            client: client.clone(),
            calls: calls.clone(),
            throttle: Arc::new(
                admin::throttle::Throttle::new(metrics.registry())
                    .map_err(|e| format!("admin metrics: {e}"))?,
            ),
        };
        let console_sessions = Arc::new(
            Sessions::new(metrics.registry()).map_err(|e| format!("console metrics: {e}"))?,
        );
        let app = admin::router(AdminState {
            metrics: Arc::clone(&metrics),
            readiness: Arc::clone(&readiness),
            client: client.clone(),
            settings: Arc::clone(&shared_settings),
            calls: calls.clone(),
        })
        .nest("/api/v1", api::router(api_state.clone()))
        .merge(console::router(ConsoleState {
            api: api_state,
            sessions: Arc::clone(&console_sessions),
        }));
        let registry = metrics.registry().clone();
        let admin_task = tokio::spawn(async move {
            if let Err(e) = admin::serve::serve(listener, app, stopped, &registry).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        readiness.set_listeners_up();
        tracing::info!(
            admin = %settings.admin.listen,
            teams_tls = %settings.teams.listen,
            pbx_udp = %settings.pbx.listen_udp,
            pbx_tcp = %settings.pbx.listen_tcp,
            "listening"
        );

        // Routing needs a snapshot; keep trying in the background if the database is not there.
        if provisioning.reload().await.is_err() {
            tokio::spawn(Arc::clone(&provisioning).load_until_ready());
        }
        tokio::spawn(Arc::clone(&provisioning).follow_changes());
        tokio::spawn(Arc::clone(&provisioning).follow_reloads());
        let key = match operations::password_key(&settings.database.password_key) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!(error = %e, "no password key: users cannot be registered at their PBX");
                None
            }
        };
        tokio::spawn(call_routes::follow(
            provisioning.subscribe(),
            calls.clone(),
            match &settings.database.password_key {
                k if key.is_some() => operations::password_key(k).ok(),
                _ => None,
            },
            call_routes::TeamsSide {
                proxies: settings.teams.proxies.clone(),
                proxy_port: settings.teams.proxy_port,
                base_fqdn: settings.teams.base_fqdn.clone(),
                listen_port: settings.teams.listen.port(),
            },
            resolver,
        ));
        tokio::spawn(follow_trunk(client.clone(), calls.clone()));
        tokio::spawn(forward_proxy_holds(holds_rx, client.clone()));
        if settings.pbx.register_users {
            tokio::spawn(registrations::follow(
                provisioning.subscribe(),
                client.clone(),
                key,
            ));
        } else {
            tracing::info!(
                "pbx.register_users = false: no user is registered at its PBX (standby)"
            );
        }
        let licenses =
            Arc::new(LicenseMonitor::new(metrics.registry()).map_err(|e| format!("metrics: {e}"))?);
        tokio::spawn(licenses.run(Arc::clone(&provisioning), Arc::clone(&shared_settings)));
        Ok(Self {
            config_path,
            settings,
            shared_settings,
            log,
            notifier: Notifier::from_env(),
            tls,
            metrics,
            readiness,
            provisioning,
            drain,
            client,
            stop_admin,
            admin_task,
            calls,
        })
    }

    async fn serve(mut self) -> ExitCode {
        let (mut hup, mut term, mut int) = match (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(h), Ok(t), Ok(i)) => (h, t, i),
            _ => {
                tracing::error!("cannot install signal handlers");
                return ExitCode::FAILURE;
            }
        };
        self.notifier.notify("READY=1");
        tracing::info!("teamsgw ready");
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break }
                _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break }
            }
        }
        self.notifier.notify("STOPPING=1");
        self.readiness.set_draining();
        let limit = Duration::from_secs(self.settings.daemon.drain_seconds);
        // New INVITEs get 503; calls still up at the limit get BYE on both legs.
        self.calls.drain(std::time::Instant::now() + limit).await;
        let calls = self.calls.clone();
        let wait = async {
            let left = self.drain.drain(limit).await;
            calls.wait_idle(limit + Duration::from_secs(2)).await;
            left + calls.active()
        };
        let left = tokio::select! {
            left = wait => left,
            _ = term.recv() => { tracing::warn!("second signal: not waiting for the drain"); self.drain.active() }
            _ = int.recv() => { tracing::warn!("second signal: not waiting for the drain"); self.drain.active() }
        };
        if left > 0 {
            tracing::warn!(
                abandoned = left,
                "drain limit reached; work still in flight is abandoned"
            );
        }
        // Bindings go before the admin endpoint, so their progress stays observable.
        let unregister_limit = Duration::from_secs(self.settings.daemon.drain_seconds.clamp(1, 10));
        self.client
            .shutdown(self.settings.pbx.unregister_on_shutdown, unregister_limit)
            .await;
        let _ = self.stop_admin.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.admin_task).await;
        // A pool close waits for pending acquires; with the database down each takes the pool
        // timeout, and exit must not wait on them.
        if tokio::time::timeout(Duration::from_secs(2), self.provisioning.close())
            .await
            .is_err()
        {
            tracing::warn!("the provisioning database did not close within 2 s; exiting anyway");
        }
        tracing::info!("teamsgw stopped");
        ExitCode::SUCCESS
    }

    async fn reload(&mut self) {
        self.notifier.notify("RELOADING=1");
        tracing::info!(config = %self.config_path.display(), "SIGHUP: reloading configuration");
        match self.apply_new_config() {
            Ok(()) => {
                tracing::info!(
                    log_level = self.settings.log.level.as_str(),
                    "configuration reloaded"
                );
                tracing::debug!("debug logging is on");
                // Counted after the log lines: a reload is counted once everything about it shows.
                self.metrics.config_reloads.with_label_values(&["ok"]).inc();
            }
            Err(problems) => {
                for p in &problems.0 {
                    tracing::error!(key = %p.key, problem = %p.message, "configuration reload rejected; the running configuration stays");
                }
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
        // The provisioning reload hook: a new snapshot on every SIGHUP, counted on its own.
        let _ = self.provisioning.reload().await;
        self.notifier.notify("READY=1");
    }

    /// Validates everything first, then applies; nothing is applied if anything is wrong.
    fn apply_new_config(&mut self) -> Result<(), Problems> {
        let new = Settings::load(&self.config_path)?;
        let mut resolved = new.clone();
        // The state directory only changes on restart; generate a dev cert where we run now.
        resolved.daemon.state_dir = self.settings.daemon.state_dir.clone();
        let material = load_tls(&resolved)?;
        self.log.set_level(&new.log).map_err(|e| {
            Problems(vec![Problem {
                key: "log.level".into(),
                message: e,
            }])
        })?;
        self.tls.replace(material);
        tls_watch::observe(&self.tls.current(), &self.metrics.tls_certificate_expiry);
        for key in self.settings.restart_only_changes(&new) {
            tracing::warn!(key, "changed in the file; takes effect after a restart");
        }
        self.shared_settings.store(Arc::new(new.clone()));
        self.settings = new;
        Ok(())
    }
}

/// Loads the configured certificate, or the development certificate when none is configured.
pub fn load_tls(settings: &Settings) -> Result<TlsMaterial, Problems> {
    let (certificate, key) = match (&settings.tls.certificate, &settings.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => devcert::ensure(&settings.daemon.state_dir).map_err(|e| {
            Problems(vec![Problem {
                key: "tls.certificate".into(),
                message: e,
            }])
        })?,
    };
    let paths = TlsPaths {
        certificate,
        key,
        trust_anchors: settings.tls.trust_anchors.clone(),
    };
    TlsMaterial::load(&paths).map_err(|e| Problems(vec![tls_problem(&paths, e)]))
}

/// Names the config key whose file is wrong.
fn tls_problem(paths: &TlsPaths, e: TlsError) -> Problem {
    let key = if e.path == paths.trust_anchors {
        "tls.trust_anchors"
    } else if e.path == paths.key {
        "tls.key"
    } else {
        "tls.certificate"
    };
    Problem {
        key: key.to_owned(),
        message: e.to_string(),
    }
}
