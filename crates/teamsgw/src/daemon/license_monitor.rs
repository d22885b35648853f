//! License usage as metrics and the daily audit: every `license.refresh_seconds` the daemon
//! counts each enterprise (the same count as `teamsgw license report`), exports
//! `teamsgw_license_used{enterprise,factor}`, `teamsgw_license_acquired{enterprise}` and
//! `teamsgw_license_warning{enterprise}`, and writes today's audit row (`license history`).
//!
//! Counting runs on the admin's schedule, not per call: it reads every user of every
//! enterprise, which is fine every few minutes and wasteful any more often.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{IntGaugeVec, Opts, Registry};
use teamsgw_gateway::gauge_series::GaugeSeries;

use crate::config::Settings;
use crate::daemon::provisioning::Provisioning;
use crate::operations::license_report::{self, EnterpriseReport};

pub struct LicenseMonitor {
    used: IntGaugeVec,
    acquired: IntGaugeVec,
    warning: IntGaugeVec,
    state: Mutex<Published>,
}

/// What the last count published.
#[derive(Default)]
struct Published {
    used: GaugeSeries,
    acquired: GaugeSeries,
    warning: GaugeSeries,
    /// Enterprises above the warning percentage (to log only on crossing).
    above: HashSet<String>,
}

impl LicenseMonitor {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let used = IntGaugeVec::new(
            Opts::new(
                "teamsgw_license_used",
                "Licenses counted per enterprise and factor (after priority de-duplication).",
            ),
            &["enterprise", "factor"],
        )?;
        let acquired = IntGaugeVec::new(
            Opts::new(
                "teamsgw_license_acquired",
                "Licenses an enterprise acquired.",
            ),
            &["enterprise"],
        )?;
        let warning = IntGaugeVec::new(
            Opts::new(
                "teamsgw_license_warning",
                "1 when an enterprise's licensed users pass license.warning_percent of acquired.",
            ),
            &["enterprise"],
        )?;
        registry.register(Box::new(used.clone()))?;
        registry.register(Box::new(acquired.clone()))?;
        registry.register(Box::new(warning.clone()))?;
        Ok(Self {
            used,
            acquired,
            warning,
            state: Mutex::new(Published::default()),
        })
    }

    /// Sets the gauges from a fresh count; enterprises that disappeared lose their series.
    ///
    /// Series are overwritten in place, never reset first, so a scrape during a refresh sees
    /// the old or the new value, never a gap. The warning log lines, the warnings and the
    /// acquired counts are set before the usage, so whoever sees the new usage sees them too.
    pub fn publish(&self, reports: &[EnterpriseReport], warning_percent: u8) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let warn = |r: &EnterpriseReport| {
            over_threshold(r.currently_licensed, r.acquired, warning_percent)
        };
        let mut above = HashSet::new();
        for r in reports.iter().filter(|r| warn(r)) {
            if !state.above.contains(&r.enterprise) {
                tracing::warn!(
                    enterprise = r.enterprise,
                    licensed = r.currently_licensed,
                    acquired = r.acquired,
                    warning_percent,
                    "license usage passed the warning limit"
                );
            }
            above.insert(r.enterprise.clone());
        }
        state.above = above;
        state.warning.publish(
            &self.warning,
            reports
                .iter()
                .map(|r| (vec![r.enterprise.as_str()], i64::from(warn(r)))),
        );
        state.acquired.publish(
            &self.acquired,
            reports
                .iter()
                .map(|r| (vec![r.enterprise.as_str()], i64::from(r.acquired))),
        );
        state.used.publish(
            &self.used,
            reports.iter().flat_map(|r| {
                let f = &r.factors;
                [
                    ("direct_routing", &f.direct_routing),
                    ("operator_connect", &f.operator_connect),
                    ("lcm", &f.lcm),
                    ("ui", &f.ui),
                    ("service_numbers", &f.service_numbers),
                ]
                .map(|(factor, f)| (vec![r.enterprise.as_str(), factor], i64::from(f.counted)))
            }),
        );
    }

    /// Counts, publishes and audits every `license.refresh_seconds` (first run at once).
    pub async fn run(
        self: Arc<Self>,
        provisioning: Arc<Provisioning>,
        settings: Arc<ArcSwap<Settings>>,
    ) {
        loop {
            let current = settings.load_full();
            match provisioning.store().await {
                Ok(store) => {
                    match license_report::record_audit(&store, &current.license, None).await {
                        Ok(reports) => self.publish(&reports, current.license.warning_percent),
                        Err(e) => tracing::warn!(error = %e, "license count failed"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "license count skipped"),
            }
            tokio::time::sleep(Duration::from_secs(current.license.refresh_seconds.max(1))).await;
        }
    }
}

/// `licensed > percent% of acquired` (0 acquired: any use is over; 0 percent: never warn).
pub fn over_threshold(licensed: u32, acquired: u32, percent: u8) -> bool {
    percent > 0 && u64::from(licensed) * 100 > u64::from(acquired) * u64::from(percent)
}

#[cfg(test)]
mod tests {
    use super::{LicenseMonitor, over_threshold};
    use crate::operations::license_report::{EnterpriseReport, FactorJson, Factors};
    use prometheus::{Encoder, Registry, TextEncoder};

    fn report(enterprise: &str, acquired: u32, ui: u32) -> EnterpriseReport {
        let factor = |counted| FactorJson {
            counted,
            configured: counted,
            enabled: true,
        };
        EnterpriseReport {
            enterprise: enterprise.into(),
            acquired,
            currently_licensed: ui,
            available: i64::from(acquired) - i64::from(ui),
            monitored_users: ui,
            factors: Factors {
                direct_routing: factor(0),
                operator_connect: factor(0),
                lcm: factor(0),
                ui: factor(ui),
                service_numbers: factor(0),
            },
            calculated_at: None,
        }
    }

    fn scrape(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A refresh overwrites each series in place and drops only the enterprises that are gone.
    #[test]
    fn publish_overwrites_and_drops_vanished_enterprises() {
        let registry = Registry::new();
        let Ok(monitor) = LicenseMonitor::new(&registry) else {
            panic!("metrics register");
        };
        monitor.publish(&[report("Acme", 10, 2), report("Gone", 5, 5)], 90);
        let text = scrape(&registry);
        assert!(text.contains("teamsgw_license_used{enterprise=\"Acme\",factor=\"ui\"} 2"));
        assert!(text.contains("teamsgw_license_warning{enterprise=\"Gone\"} 1"));

        monitor.publish(&[report("Acme", 10, 3)], 90);
        let text = scrape(&registry);
        assert!(text.contains("teamsgw_license_used{enterprise=\"Acme\",factor=\"ui\"} 3"));
        assert!(text.contains("teamsgw_license_acquired{enterprise=\"Acme\"} 10"));
        assert!(!text.contains("Gone"), "{text}");
    }

    /// licensing.md §1.7: the warning limit is a percentage of acquired (90 % of 10,000 = 9,000).
    #[test]
    fn warning_limit_is_a_percentage_of_acquired() {
        assert!(!over_threshold(9_000, 10_000, 90));
        assert!(over_threshold(9_001, 10_000, 90));
        assert!(over_threshold(1, 0, 90));
        assert!(!over_threshold(0, 0, 90));
        assert!(!over_threshold(50, 10, 0));
    }
}
