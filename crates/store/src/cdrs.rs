//! Call detail records: written once per finished call, listed by enterprise and date for
//! billing and troubleshooting. The gateway produces them; the store only keeps them.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::provision::{ProvisionError, invalid};

/// One leg's media counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CdrLeg {
    pub packets_in: i64,
    pub packets_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub lost: i64,
    /// RFC 3550 interarrival jitter in timestamp units (1/8000 s for G.711).
    pub jitter: i64,
    pub srtp_auth_failures: i64,
}

/// A stored call record. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cdr {
    pub call_id: String,
    pub direction: String,
    pub enterprise: String,
    pub direct_route: String,
    pub user: String,
    pub caller: String,
    pub callee: String,
    pub teams_proxy: Option<String>,
    /// Proxies left before `teams_proxy`, as `proxy:cause`, in order.
    pub failovers: Vec<String>,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: String,
    pub status: i64,
    pub result: String,
    pub reason: String,
    pub hung_up_by: Option<String>,
    pub codec: Option<String>,
    /// A call from Teams to one of `calls.emergency_numbers`.
    pub emergency: bool,
    /// `direct-routing` or `operator-connect`: how the enterprise reaches Teams.
    pub service: String,
    /// `teams` or `pbx`: the side whose BYE went unanswered after the call ended (set
    /// later, by [`Store::mark_bye_lost`]).
    pub bye_lost: Option<String>,
    pub teams: CdrLeg,
    pub pbx: CdrLeg,
}

/// `cdr list` filters: an enterprise, and days `from`..=`to` (`YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, Default)]
pub struct CdrFilter {
    pub enterprise: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl CdrLeg {
    /// The counters in column order (`packets_in` ... `srtp_auth_failures`).
    pub fn values(&self) -> [i64; 7] {
        [
            self.packets_in,
            self.packets_out,
            self.bytes_in,
            self.bytes_out,
            self.lost,
            self.jitter,
            self.srtp_auth_failures,
        ]
    }
}

fn leg(row: &AnyRow, prefix: &str) -> Result<CdrLeg, sqlx::Error> {
    let get = |c: &str| row.try_get::<i64, _>(format!("{prefix}_{c}").as_str());
    Ok(CdrLeg {
        packets_in: get("packets_in")?,
        packets_out: get("packets_out")?,
        bytes_in: get("bytes_in")?,
        bytes_out: get("bytes_out")?,
        lost: get("lost")?,
        jitter: get("jitter")?,
        srtp_auth_failures: get("auth_failures")?,
    })
}

fn is_day(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl Store {
    /// Writes one call record (a record written twice is kept once).
    pub async fn insert_cdr(&self, cdr: &Cdr) -> Result<(), ProvisionError> {
        self.insert_cdrs(std::slice::from_ref(cdr)).await
    }

    /// Writes call records in one transaction: one commit (one fsync on SQLite) for a burst
    /// of calls, all or none.
    pub async fn insert_cdrs(&self, cdrs: &[Cdr]) -> Result<(), ProvisionError> {
        let mut tx = self.pool.begin().await?;
        for cdr in cdrs {
            Self::insert_one(&mut tx, cdr).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_one(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        cdr: &Cdr,
    ) -> Result<(), ProvisionError> {
        const INSERT: &str = "INSERT INTO cdrs (\
             call_id, started_at, answered_at, ended_at, direction, enterprise, \
             direct_route, user_upn, caller, callee, teams_proxy, failovers, status, result, \
             reason, hung_up_by, codec, teams_packets_in, teams_packets_out, teams_bytes_in, \
             teams_bytes_out, teams_lost, teams_jitter, teams_auth_failures, pbx_packets_in, \
             pbx_packets_out, pbx_bytes_in, pbx_bytes_out, pbx_lost, pbx_jitter, \
             pbx_auth_failures, emergency, service \
             ) VALUES (\
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33 \
             ) ON CONFLICT (call_id, started_at) DO NOTHING";
        let mut q = sqlx::query(INSERT)
            .bind(&cdr.call_id)
            .bind(&cdr.started_at)
            .bind(cdr.answered_at.clone())
            .bind(&cdr.ended_at)
            .bind(&cdr.direction)
            .bind(&cdr.enterprise)
            .bind(&cdr.direct_route)
            .bind(&cdr.user)
            .bind(&cdr.caller)
            .bind(&cdr.callee)
            .bind(cdr.teams_proxy.clone())
            .bind(cdr.failovers.join(","))
            .bind(cdr.status)
            .bind(&cdr.result)
            .bind(&cdr.reason)
            .bind(cdr.hung_up_by.clone())
            .bind(cdr.codec.clone());
        for v in cdr.teams.values().into_iter().chain(cdr.pbx.values()) {
            q = q.bind(v);
        }
        q = q.bind(i64::from(cdr.emergency)).bind(&cdr.service);
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Marks the record of `call_id` (its latest) as having lost its BYE to `side`; false
    /// when no record has that id.
    pub async fn mark_bye_lost(&self, call_id: &str, side: &str) -> Result<bool, ProvisionError> {
        let done = sqlx::query("UPDATE cdrs SET bye_lost = $1 WHERE call_id = $2")
            .bind(side)
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the records of calls that started before `cutoff` (RFC 3339, as `started_at`
    /// is stored): `cdr.retention_days`. Returns how many went.
    pub async fn purge_cdrs_before(&self, cutoff: &str) -> Result<u64, ProvisionError> {
        let done = sqlx::query("DELETE FROM cdrs WHERE started_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records matching `filter`, oldest first.
    pub async fn list_cdrs(&self, filter: &CdrFilter) -> Result<Vec<Cdr>, ProvisionError> {
        for (field, day) in [("from", &filter.from), ("to", &filter.to)] {
            if let Some(d) = day
                && !is_day(d)
            {
                return Err(invalid(field, "must be a date YYYY-MM-DD"));
            }
        }
        if let (Some(f), Some(t)) = (&filter.from, &filter.to)
            && f > t
        {
            return Err(invalid("to", "must not be before --from"));
        }
        // `to` is a whole day: every time on it sorts below `<day>T~`.
        let from = filter.from.clone().unwrap_or_default();
        let to = filter
            .to
            .as_ref()
            .map_or_else(|| "~".to_owned(), |t| format!("{t}T~"));
        let rows = match &filter.enterprise {
            Some(e) => {
                sqlx::query(
                    "SELECT * FROM cdrs WHERE enterprise = $1 AND started_at >= $2 \
                     AND started_at < $3 ORDER BY started_at, call_id",
                )
                .bind(e)
                .bind(&from)
                .bind(&to)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT * FROM cdrs WHERE started_at >= $1 AND started_at < $2 \
                     ORDER BY started_at, call_id",
                )
                .bind(&from)
                .bind(&to)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let failovers: String = row.try_get("failovers")?;
                Ok(Cdr {
                    call_id: row.try_get("call_id")?,
                    direction: row.try_get("direction")?,
                    enterprise: row.try_get("enterprise")?,
                    direct_route: row.try_get("direct_route")?,
                    user: row.try_get("user_upn")?,
                    caller: row.try_get("caller")?,
                    callee: row.try_get("callee")?,
                    teams_proxy: row.try_get("teams_proxy")?,
                    failovers: failovers
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    started_at: row.try_get("started_at")?,
                    answered_at: row.try_get("answered_at")?,
                    ended_at: row.try_get("ended_at")?,
                    status: row.try_get("status")?,
                    result: row.try_get("result")?,
                    reason: row.try_get("reason")?,
                    hung_up_by: row.try_get("hung_up_by")?,
                    codec: row.try_get("codec")?,
                    emergency: row.try_get::<i64, _>("emergency")? != 0,
                    service: row.try_get("service")?,
                    bye_lost: row.try_get("bye_lost")?,
                    teams: leg(row, "teams")?,
                    pbx: leg(row, "pbx")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
