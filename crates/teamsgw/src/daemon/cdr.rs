//! Call detail records: finished calls from the call shards, written to the provisioning
//! database off the call path. The queue is bounded (`CDR_QUEUE` in the daemon) and a full
//! queue is counted and logged by the shards, never silent. While the database is down a
//! record waits here and is retried, so an outage shorter than the queue loses none.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use teamsgw_gateway::call::Side;
use teamsgw_gateway::call::media::LegCounters;
use teamsgw_gateway::call_driver::{FinishedCall, RecordUpdate};
use teamsgw_gateway::supervision::{Supervision, restart_on_panic};
use teamsgw_store::{Cdr, CdrLeg};
use tokio::sync::mpsc;

use crate::daemon::provisioning::Provisioning;

/// `teamsgw_cdr_writes_total{result}`: records written (`ok`), and failed attempts tried
/// again (`retried`).
#[derive(Clone)]
pub struct CdrMetrics(IntCounterVec);

impl CdrMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let c = IntCounterVec::new(
            Opts::new(
                "teamsgw_cdr_writes_total",
                "Call detail record writes: ok, or retried after a database error.",
            ),
            &["result"],
        )?;
        for r in ["ok", "retried"] {
            c.with_label_values(&[r]);
        }
        registry.register(Box::new(c.clone()))?;
        Ok(Self(c))
    }
}

/// `2026-12-02T07:59:29.180Z` from unix milliseconds.
pub use crate::operations::license_report::rfc3339;

fn leg(c: &LegCounters) -> CdrLeg {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    CdrLeg {
        packets_in: i(c.packets_in),
        packets_out: i(c.packets_out),
        bytes_in: i(c.bytes_in),
        bytes_out: i(c.bytes_out),
        lost: i(c.lost),
        jitter: i(c.jitter),
        srtp_auth_failures: i(c.srtp_auth_failures),
    }
}

pub fn to_cdr(f: &FinishedCall) -> Cdr {
    let r = &f.record;
    Cdr {
        call_id: r.call_id.clone(),
        direction: r.direction.as_str().to_owned(),
        enterprise: r.enterprise.clone(),
        direct_route: r.direct_route.clone(),
        user: r.user.clone(),
        caller: r.caller.clone(),
        callee: r.callee.clone(),
        teams_proxy: r.teams_proxy.clone(),
        failovers: r
            .failovers
            .iter()
            .map(|(p, c)| format!("{p}:{c}"))
            .collect(),
        started_at: rfc3339(f.started_ms),
        answered_at: f.answered_ms.map(rfc3339),
        ended_at: rfc3339(f.ended_ms),
        status: i64::from(r.status),
        result: r.result.to_owned(),
        reason: r.reason.clone(),
        hung_up_by: r.hung_up_by.map(|s| s.as_str().to_owned()),
        codec: r.codec.clone(),
        emergency: r.emergency,
        service: if r.operator_connect {
            "operator-connect"
        } else {
            "direct-routing"
        }
        .to_owned(),
        bye_lost: None,
        teams: leg(&r.media.teams),
        pbx: leg(&r.media.pbx),
    }
}

/// Records written per transaction at most.
const BATCH: usize = 500;

/// How long the first record of a batch waits for more. A commit costs about as much as a
/// call (SQLite syncs its journal): the call_rate bench measured 720 µs of SQLite worker CPU
/// per call at 100 calls/s with one commit per call.
const LINGER: Duration = Duration::from_millis(200);

/// Writes records until the shards stop, supervised: after a panic (the batch at hand is
/// lost, and counted in `teamsgw_internal_errors_total{task="cdr_writer"}`) the writer starts
/// again on the same queue.
pub async fn run(
    records: mpsc::Receiver<RecordUpdate>,
    provisioning: Arc<Provisioning>,
    metrics: CdrMetrics,
    supervision: Supervision,
) {
    let records = Arc::new(tokio::sync::Mutex::new(records));
    restart_on_panic(supervision, "cdr_writer", "the call record writer", |_| {
        tokio::spawn(write(
            Arc::clone(&records),
            Arc::clone(&provisioning),
            metrics.clone(),
        ))
    })
    .await;
}

/// The records of up to [`LINGER`] in one transaction (one commit per batch, not per call); a
/// batch the database refuses is retried every second until it is written.
async fn write(
    records: Arc<tokio::sync::Mutex<mpsc::Receiver<RecordUpdate>>>,
    provisioning: Arc<Provisioning>,
    metrics: CdrMetrics,
) {
    let mut records = records.lock_owned().await;
    let mut batch = Vec::with_capacity(BATCH);
    let mut marks = Vec::new();
    let take = |u: RecordUpdate, batch: &mut Vec<Cdr>, marks: &mut Vec<(String, Side)>| match u {
        RecordUpdate::Finished(f) => batch.push(to_cdr(&f)),
        RecordUpdate::ByeLost { call_id, side } => marks.push((call_id, side)),
    };
    while let Some(first) = records.recv().await {
        take(first, &mut batch, &mut marks);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, records.recv()).await {
                Ok(Some(u)) => take(u, &mut batch, &mut marks),
                // Closed (write what we have; the outer loop then ends) or lingered enough.
                Ok(None) | Err(_) => break,
            }
        }
        mark_bye_lost(&provisioning, std::mem::take(&mut marks)).await;
        if batch.is_empty() {
            continue;
        }
        for cdr in &batch {
            tracing::info!(
                call_id = %cdr.call_id,
                direction = %cdr.direction,
                enterprise = %cdr.enterprise,
                user = %cdr.user,
                caller = %cdr.caller,
                callee = %cdr.callee,
                status = cdr.status,
                result = %cdr.result,
                reason = %cdr.reason,
                teams_proxy = cdr.teams_proxy.as_deref().unwrap_or(""),
                failovers = %cdr.failovers.join(","),
                "call record"
            );
        }
        let mut logged = false;
        loop {
            let written = match provisioning.store().await {
                Ok(store) => store.insert_cdrs(&batch).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    metrics
                        .0
                        .with_label_values(&["ok"])
                        .inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    metrics.0.with_label_values(&["retried"]).inc();
                    if !logged {
                        tracing::warn!(records = batch.len(), error = %e, "cannot write call records; retrying every second");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        batch.clear();
    }
}

/// Marks the records whose BYE was lost (their calls ended at least Timer F ago, so the
/// records are written). A database error loses the marks, with a warning; the counter
/// `teamsgw_call_bye_lost_total` has them anyway.
async fn mark_bye_lost(provisioning: &Provisioning, marks: Vec<(String, Side)>) {
    if marks.is_empty() {
        return;
    }
    let store = match provisioning.store().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(records = marks.len(), error = %e, "cannot mark call records whose BYE was lost");
            return;
        }
    };
    for (call_id, side) in marks {
        match store.mark_bye_lost(&call_id, side.as_str()).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(%call_id, "no call record to mark its lost BYE on"),
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "cannot mark the call record's lost BYE")
            }
        }
    }
}

/// Answered time in whole seconds (`-` for an unanswered call), from the RFC 3339 times.
pub fn seconds(r: &Cdr) -> String {
    fn ms(t: &str) -> Option<i64> {
        let (date, time) = t.split_once('T')?;
        let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let mut tp = time
            .trim_end_matches('Z')
            .split([':', '.'])
            .map(|p| p.parse::<i64>().ok());
        let (h, mi, s, frac) = (tp.next()??, tp.next()??, tp.next()??, tp.next()??);
        // Days from civil (H. Hinnant's algorithm, the inverse of civil_date).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + frac)
    }
    match r.answered_at.as_deref().and_then(ms).zip(ms(&r.ended_at)) {
        Some((a, e)) => ((e - a).max(0) / 1000).to_string(),
        None => "-".to_owned(),
    }
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or
/// a carriage return: a caller's display name or number comes from the network) gets a
/// leading `'`, which shows it as text (OWASP "CSV injection"). Plain numbers, E.164 and
/// negative figures included, are left as they are: a spreadsheet reads them as numbers.
fn neutralised(v: &str) -> std::borrow::Cow<'_, str> {
    let risky = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    let number = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if risky && !number {
        std::borrow::Cow::Owned(format!("'{v}"))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// RFC 4180 CSV of `rows`, one column per field (legs flattened as `teams_packets_in`...).
pub fn csv(rows: &[Cdr]) -> String {
    fn field(v: &str) -> String {
        let v = neutralised(v);
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.into_owned()
        }
    }
    let legs = ["teams", "pbx"];
    let counters = [
        "packets_in",
        "packets_out",
        "bytes_in",
        "bytes_out",
        "lost",
        "jitter",
        "srtp_auth_failures",
    ];
    let mut header: Vec<String> = [
        "call_id",
        "direction",
        "enterprise",
        "direct_route",
        "user",
        "caller",
        "callee",
        "teams_proxy",
        "failovers",
        "started_at",
        "answered_at",
        "ended_at",
        "status",
        "result",
        "reason",
        "hung_up_by",
        "codec",
        "emergency",
        "service",
        "bye_lost",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for l in legs {
        for c in counters {
            header.push(format!("{l}_{c}"));
        }
    }
    let mut out = header.join(",");
    out.push_str("\r\n");
    for r in rows {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut cells = vec![
            r.call_id.clone(),
            r.direction.clone(),
            r.enterprise.clone(),
            r.direct_route.clone(),
            r.user.clone(),
            r.caller.clone(),
            r.callee.clone(),
            opt(&r.teams_proxy),
            r.failovers.join(";"),
            r.started_at.clone(),
            opt(&r.answered_at),
            r.ended_at.clone(),
            r.status.to_string(),
            r.result.clone(),
            r.reason.clone(),
            opt(&r.hung_up_by),
            opt(&r.codec),
            r.emergency.to_string(),
            r.service.clone(),
            opt(&r.bye_lost),
        ];
        for l in [&r.teams, &r.pbx] {
            cells.extend(l.values().iter().map(i64::to_string));
        }
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use teamsgw_store::{Cdr, CdrLeg};

    fn record() -> Cdr {
        Cdr {
            call_id: "a,b".into(),
            direction: "from_teams".into(),
            enterprise: "Contoso \"HQ\"".into(),
            direct_route: "cust1.sbc.example".into(),
            user: "alice@contoso.com".into(),
            caller: "+4930111".into(),
            callee: "+4930222".into(),
            teams_proxy: None,
            failovers: vec!["sip:timeout".into(), "sip2:503".into()],
            started_at: "2026-12-01T23:59:50.000Z".into(),
            answered_at: Some("2026-12-01T23:59:58.500Z".into()),
            ended_at: "2026-12-02T00:01:03.499Z".into(),
            status: 200,
            result: "answered".into(),
            reason: "teams hung up".into(),
            hung_up_by: Some("teams".into()),
            codec: Some("PCMA".into()),
            emergency: false,
            service: "direct-routing".into(),
            bye_lost: None,
            teams: CdrLeg::default(),
            pbx: CdrLeg {
                lost: 3,
                ..CdrLeg::default()
            },
        }
    }

    /// Answered to ended across midnight: 64.999 s, shown as whole seconds.
    #[test]
    fn talk_time_counts_from_the_answer() {
        assert_eq!(super::seconds(&record()), "64");
        let unanswered = Cdr {
            answered_at: None,
            ..record()
        };
        assert_eq!(super::seconds(&unanswered), "-");
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_are_neutralised() {
        // Issue 31 §8: a caller named "=HYPERLINK(...)" must not become a live formula.
        for (cell, shown) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("+4930123456", "+4930123456"),
            ("-2", "-2"),
            ("alice", "alice"),
            ("", ""),
        ] {
            assert_eq!(super::neutralised(cell), shown, "{cell:?}");
        }
    }

    /// RFC 4180: fields with commas or quotes are quoted, quotes doubled; one row per call.
    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = super::csv(&[record()]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("call_id,direction,enterprise,"));
        assert!(
            lines[1].starts_with("\"a,b\",from_teams,\"Contoso \"\"HQ\"\"\","),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(",sip:timeout;sip2:503,"));
        assert!(
            lines[0].contains(",codec,emergency,service,bye_lost,"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(",PCMA,false,direct-routing,,"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[0].split(',').count(), 34);
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_662_369_180), "2025-12-02T07:59:29.180Z");
    }
}
