//! The daemon's Prometheus registry: build info, uptime, reload counters and process metrics.
//!
//! Components register their own metrics in the same [`prometheus::Registry`]; `/metrics`
//! renders it in the text exposition format. Names follow Prometheus conventions: `teamsgw_`
//! prefix, base units, `_total` for counters.

use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::build_info::{GIT_SHA, VERSION};

pub struct Metrics {
    registry: Registry,
    started: Instant,
    uptime: Gauge,
    pub config_reloads: IntCounterVec,
    pub snapshot_reloads: IntCounterVec,
    pub snapshot_direct_routes: IntGauge,
    pub license_snapshot_loads: IntCounterVec,
    pub tls_certificate_expiry: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGauge::with_opts(
            Opts::new(
                "teamsgw_build_info",
                "Always 1; the labels say which build is running.",
            )
            .const_label("version", VERSION)
            .const_label("git_sha", GIT_SHA),
        )?;
        build_info.set(1);
        let uptime = Gauge::new(
            "teamsgw_uptime_seconds",
            "Seconds since the daemon started.",
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "teamsgw_config_reloads_total",
                "Configuration reloads (SIGHUP) by result.",
            ),
            &["result"],
        )?;
        let snapshot_reloads = IntCounterVec::new(
            Opts::new(
                "teamsgw_snapshot_reloads_total",
                "Routing snapshot loads from the provisioning database by result.",
            ),
            &["result"],
        )?;
        let license_snapshot_loads = IntCounterVec::new(
            Opts::new(
                "teamsgw_license_snapshot_loads_total",
                "License snapshot loads and counts (after each routing snapshot reload) by result.",
            ),
            &["result"],
        )?;
        let tls_certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "teamsgw_tls_certificate_expiry_timestamp_seconds",
                "When each certificate of our TLS chain expires (notAfter, Unix seconds): sbc is ours, sbc-chain-N its intermediates.",
            ),
            &["certificate"],
        )?;
        let snapshot_direct_routes = IntGauge::new(
            "teamsgw_snapshot_direct_routes",
            "Direct routes in the routing snapshot in use.",
        )?;
        // Both results exist from the start so alerts on rate() see a zero, not a gap.
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
            snapshot_reloads.with_label_values(&[result]);
            license_snapshot_loads.with_label_values(&[result]);
        }
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(uptime.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(snapshot_reloads.clone()))?;
        registry.register(Box::new(snapshot_direct_routes.clone()))?;
        registry.register(Box::new(license_snapshot_loads.clone()))?;
        registry.register(Box::new(tls_certificate_expiry.clone()))?;
        registry.register(Box::new(ProcessCollector::new()?))?;
        Ok(Self {
            registry,
            started: Instant::now(),
            uptime,
            config_reloads,
            snapshot_reloads,
            snapshot_direct_routes,
            license_snapshot_loads,
            tls_certificate_expiry,
        })
    }

    /// For components that bring their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition of everything registered.
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut out = Vec::with_capacity(8192);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time.
///
/// Written here instead of enabling prometheus' `process` feature, which pulls in `procfs` and
/// its dependency tree for seven numbers.
struct ProcessCollector {
    descs: Vec<Desc>,
}

const CLOCK_TICKS_PER_SECOND: f64 = 100.0; // USER_HZ; fixed at 100 on Linux for all ABIs we ship.

impl ProcessCollector {
    fn new() -> Result<Self, prometheus::Error> {
        let descs = PROCESS_METRICS
            .iter()
            .map(|(name, help)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    vec![],
                    Default::default(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { descs })
    }
}

const PROCESS_METRICS: [(&str, &str); 7] = [
    (
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
    ),
    (
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
    ),
    (
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
    ),
    ("process_open_fds", "Number of open file descriptors."),
    (
        "process_max_fds",
        "Maximum number of open file descriptors.",
    ),
    (
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
    ),
    ("process_threads", "Number of OS threads in the process."),
];

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(sample) = ProcessSample::read() else {
            return Vec::new();
        };
        let values = [
            Some(sample.cpu_seconds),
            Some(sample.resident_bytes),
            Some(sample.virtual_bytes),
            sample.open_fds,
            sample.max_fds,
            sample.start_time_seconds,
            Some(sample.threads),
        ];
        let mut out = Vec::new();
        for ((name, help), value) in PROCESS_METRICS.iter().zip(values) {
            let Some(value) = value else { continue };
            let family = if name.ends_with("_total") {
                prometheus::Counter::new(*name, *help).map(|c| {
                    c.inc_by(value);
                    c.collect()
                })
            } else {
                Gauge::new(*name, *help).map(|g| {
                    g.set(value);
                    g.collect()
                })
            };
            if let Ok(family) = family {
                out.extend(family);
            }
        }
        out
    }
}

struct ProcessSample {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    threads: f64,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    start_time_seconds: Option<f64>,
}

impl ProcessSample {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may contain spaces and parentheses; fields resume after the last ')'.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // Indices are the stat(5) field numbers minus 3 (pid and comm are cut off).
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v * 1024.0)
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<f64>().ok())
            });
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / CLOCK_TICKS_PER_SECOND,
            virtual_bytes: field(23)?,
            threads: field(20)?,
            resident_bytes: kib("VmRSS:").unwrap_or(0.0),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as f64),
            max_fds,
            start_time_seconds: boot_time
                .zip(field(22))
                .map(|(boot, ticks)| boot + ticks / CLOCK_TICKS_PER_SECOND),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_build_info_reloads_uptime_and_process_metrics() {
        let metrics = Metrics::new().unwrap();
        metrics.config_reloads.with_label_values(&["error"]).inc();
        let text = metrics.render();
        let build = format!("teamsgw_build_info{{git_sha=\"{GIT_SHA}\",version=\"{VERSION}\"}} 1");
        assert!(text.contains(&build), "{text}");
        assert!(text.contains("teamsgw_config_reloads_total{result=\"error\"} 1"));
        assert!(text.contains("teamsgw_config_reloads_total{result=\"ok\"} 0"));
        assert!(text.contains("teamsgw_uptime_seconds "));
        for (name, _) in PROCESS_METRICS {
            assert!(text.contains(&format!("\n{name} ")), "{name} missing");
        }
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }

    #[test]
    fn process_sample_is_plausible() {
        let s = ProcessSample::read().unwrap();
        assert!(s.resident_bytes > 1e6, "rss {}", s.resident_bytes);
        assert!(s.threads >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86400.0 * 365.0,
            "{start}"
        );
    }
}
