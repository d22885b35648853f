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

use crate::config::Settings;
use crate::license_report::{self, EnterpriseReport};
use crate::provisioning::Provisioning;

pub struct LicenseMonitor {
    used: IntGaugeVec,
    acquired: IntGaugeVec,
    warning: IntGaugeVec,
    /// Enterprises currently above the warning percentage (to log only on crossing).
    above: Mutex<HashSet<String>>,
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
            above: Mutex::new(HashSet::new()),
        })
    }

    /// Sets the gauges from a fresh count; enterprises that disappeared lose their series.
    pub fn publish(&self, reports: &[EnterpriseReport], warning_percent: u8) {
        self.used.reset();
        self.acquired.reset();
        self.warning.reset();
        let mut above = self.above.lock().unwrap_or_else(|e| e.into_inner());
        let mut now_above = HashSet::new();
        for r in reports {
            let e = r.enterprise.as_str();
            for (factor, f) in [
                ("direct_routing", &r.factors.direct_routing),
                ("lcm", &r.factors.lcm),
                ("ui", &r.factors.ui),
                ("service_numbers", &r.factors.service_numbers),
            ] {
                self.used
                    .with_label_values(&[e, factor])
                    .set(i64::from(f.counted));
            }
            self.acquired
                .with_label_values(&[e])
                .set(i64::from(r.acquired));
            let warn = over_threshold(r.currently_licensed, r.acquired, warning_percent);
            self.warning.with_label_values(&[e]).set(i64::from(warn));
            if warn {
                if !above.contains(e) {
                    tracing::warn!(
                        enterprise = e,
                        licensed = r.currently_licensed,
                        acquired = r.acquired,
                        warning_percent,
                        "license usage passed the warning limit"
                    );
                }
                now_above.insert(e.to_owned());
            }
        }
        *above = now_above;
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
                Ok(store) => match license_report::record_audit(&store, &current.license).await {
                    Ok(reports) => self.publish(&reports, current.license.warning_percent),
                    Err(e) => tracing::warn!(error = %e, "license count failed"),
                },
                Err(e) => tracing::warn!(error = %e, "license count skipped"),
            }
            tokio::time::sleep(Duration::from_secs(current.license.refresh_seconds.max(1))).await;
        }
    }
}

/// `licensed > percent% of acquired` (0 acquired: any use is over; 0 percent: never warn).
fn over_threshold(licensed: u32, acquired: u32, percent: u8) -> bool {
    percent > 0 && u64::from(licensed) * 100 > u64::from(acquired) * u64::from(percent)
}

#[cfg(test)]
mod tests {
    use super::over_threshold;

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
