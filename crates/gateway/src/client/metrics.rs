//! The registration agent's and trunk health's Prometheus metrics, registered once per
//! daemon and shared by every start of the client driver.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metrics of the registration agent and the trunk health.
#[derive(Clone)]
pub struct ClientMetrics {
    pub(super) registrations: IntGaugeVec,
    pub(super) register_requests: IntCounterVec,
    pub(super) register_latency: Histogram,
    pub(super) proxy_up: IntGaugeVec,
    pub(super) options: IntCounterVec,
}

impl ClientMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let registrations = IntGaugeVec::new(
            Opts::new(
                "teamsgw_registrations",
                "Users by enterprise and registration state at their PBX.",
            ),
            &["enterprise", "state"],
        )?;
        let register_requests = IntCounterVec::new(
            Opts::new(
                "teamsgw_register_requests_total",
                "REGISTER transactions by result (ok, challenged, auth_failed, timeout, ...).",
            ),
            &["result"],
        )?;
        let register_latency = Histogram::with_opts(
            HistogramOpts::new(
                "teamsgw_register_latency_seconds",
                "From the first REGISTER of an attempt to its 2xx, challenge included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let proxy_up = IntGaugeVec::new(
            Opts::new(
                "teamsgw_teams_proxy_up",
                "1 while the Teams SIP proxy answers our OPTIONS.",
            ),
            &["proxy"],
        )?;
        let options = IntCounterVec::new(
            Opts::new(
                "teamsgw_teams_options_total",
                "OPTIONS sent to Teams SIP proxies by result.",
            ),
            &["proxy", "result"],
        )?;
        // Every result exists from the start, so alerts on rate() see zeros, not gaps.
        for result in [
            "ok",
            "challenged",
            "auth_failed",
            "interval_too_brief",
            "rejected",
            "server_error",
            "timeout",
            "transport_error",
        ] {
            register_requests.with_label_values(&[result]);
        }
        registry.register(Box::new(registrations.clone()))?;
        registry.register(Box::new(register_requests.clone()))?;
        registry.register(Box::new(register_latency.clone()))?;
        registry.register(Box::new(proxy_up.clone()))?;
        registry.register(Box::new(options.clone()))?;
        Ok(Self {
            registrations,
            register_requests,
            register_latency,
            proxy_up,
            options,
        })
    }
}
