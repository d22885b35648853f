//! `cdr list`: finished calls' records, as a table, JSON or CSV.

use clap::Subcommand;
use teamsgw_store::ProvisionError;

use super::{Output, print_rows};
use crate::operations::Provisioner;

#[derive(Debug, Subcommand)]
pub enum CdrCommand {
    /// Call detail records, oldest first (times are UTC).
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: Option<String>,
        /// First day, inclusive.
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<String>,
        /// Last day, inclusive.
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<String>,
        #[command(flatten)]
        output: Output,
        /// Print CSV (a header row, then one row per call) instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

const CDR_HEADER: [&str; 12] = [
    "STARTED",
    "DIRECTION",
    "ENTERPRISE",
    "USER",
    "CALLER",
    "CALLEE",
    "RESULT",
    "STATUS",
    "SECONDS",
    "HUNG UP BY",
    "TEAMS PROXY",
    "REASON",
];

pub(super) async fn run(ops: &Provisioner<'_>, c: CdrCommand) -> Result<(), ProvisionError> {
    let CdrCommand::List {
        enterprise,
        from,
        to,
        output,
        csv,
    } = c;
    let filter = teamsgw_store::CdrFilter {
        enterprise,
        from,
        to,
    };
    let rows = ops.store.list_cdrs(&filter).await?;
    if csv {
        print!("{}", crate::daemon::cdr::csv(&rows));
        return Ok(());
    }
    print_rows(output.json, &rows, &CDR_HEADER, |r| {
        vec![
            r.started_at.clone(),
            r.direction.clone(),
            r.enterprise.clone(),
            r.user.clone(),
            r.caller.clone(),
            r.callee.clone(),
            r.result.clone(),
            r.status.to_string(),
            crate::daemon::cdr::seconds(r),
            r.hung_up_by.clone().unwrap_or_default(),
            r.teams_proxy.clone().unwrap_or_default(),
            r.reason.clone(),
        ]
    });
    Ok(())
}
