//! `cdr.retention_days`: call records are personal data (who called whom, when), and a
//! carrier keeps them as long as billing and the law require, not forever. Once at start and
//! then daily, records of calls that started more than that many days ago are deleted; 0
//! keeps them all. Changes to the setting apply at the next purge.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::{IntCounter, Registry};

use crate::config::Settings;
use crate::daemon::provisioning::Provisioning;

const EVERY: Duration = Duration::from_secs(24 * 3600);

pub fn purged_counter(registry: &Registry) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(
        "teamsgw_cdr_purged_total",
        "Call records deleted for being older than cdr.retention_days.",
    )?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// The `started_at` before which records go, `days` before `now_ms`.
pub fn cutoff(now_ms: u64, days: u32) -> String {
    super::cdr::rfc3339(now_ms.saturating_sub(u64::from(days) * 86_400_000))
}

pub async fn run(
    provisioning: Arc<Provisioning>,
    settings: Arc<ArcSwap<Settings>>,
    purged: IntCounter,
) {
    loop {
        let days = settings.load().cdr.retention_days;
        if days > 0 {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let before = cutoff(now_ms, days);
            let result = match provisioning.store().await {
                Ok(store) => store
                    .purge_cdrs_before(&before)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match result {
                Ok(0) => {}
                Ok(n) => {
                    purged.inc_by(n);
                    tracing::info!(records = n, before = %before, days, "old call records deleted (cdr.retention_days)");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete old call records; tried again tomorrow")
                }
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_days_back_in_the_stored_format() {
        // 2026-12-07T12:00:00Z
        let now = 1_796_644_800_000;
        assert_eq!(cutoff(now, 400), "2025-11-02T12:00:00.000Z");
        assert_eq!(cutoff(now, 1), "2026-12-06T12:00:00.000Z");
    }
}
