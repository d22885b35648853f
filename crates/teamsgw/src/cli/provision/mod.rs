//! Provisioning commands (`enterprise`, `direct-route`, `pbx`, `user`, `service-number`,
//! `lcm-template`, `oc-number`, `license`, `cdr`): they open the database named by the config (or
//! `TEAMSGW_DATABASE__URL`) directly, apply one change in one transaction, and print a table,
//! or JSON with `--json`. Errors name the field and the rule and exit 1. One file per noun,
//! each with its clap arguments and what runs them; this one dispatches and prints.
//!
//! A running daemon picks changes up on its next snapshot reload (SIGHUP).

mod cdr;
mod enterprise;
mod licensing;
mod oc_number;
mod routes;
mod user;

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use teamsgw_store::{ProvisionError, Store};

use crate::config::Settings;
use crate::daemon;
use crate::operations::Provisioner;
pub use cdr::CdrCommand;
pub use enterprise::{EnterpriseCommand, SkuCommand};
pub use licensing::{LcmTemplateCommand, LicenseCommand, ServiceNumberCommand};
pub use oc_number::OcNumberCommand;
pub use routes::{DirectRouteCommand, PbxCommand};
pub use user::{UserArgs, UserCommand, UserSetArgs};

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A provisioning command with everything it needs to run.
pub enum Provision {
    Enterprise(EnterpriseCommand),
    DirectRoute(DirectRouteCommand),
    Pbx(PbxCommand),
    User(UserCommand),
    ServiceNumber(ServiceNumberCommand),
    LcmTemplate(LcmTemplateCommand),
    OcNumber(OcNumberCommand),
    License(LicenseCommand),
    Cdr(CdrCommand),
}

impl Provision {
    pub fn execute(self, config: &Path) -> ExitCode {
        let settings = match Settings::load(config) {
            Ok(s) => s,
            Err(problems) => {
                daemon::report_problems(config, &problems);
                return ExitCode::FAILURE;
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("teamsgw: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        runtime.block_on(async {
            let store = match Store::open(&settings.database.url).await {
                Ok(store) => store,
                Err(e) => {
                    eprintln!("teamsgw: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let ops = Provisioner {
                store: &store,
                settings: &settings,
            };
            let writes = self.writes();
            let result = self.apply(&ops).await;
            // Also after an error: an import that refused some rows applied the others.
            if writes {
                store.notify_changed().await;
            }
            store.close().await;
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("teamsgw: {e}");
                    ExitCode::FAILURE
                }
            }
        })
    }

    /// Whether the command changes the database (and running daemons must reload).
    fn writes(&self) -> bool {
        match self {
            Self::Enterprise(c) => !matches!(
                c,
                EnterpriseCommand::List(_) | EnterpriseCommand::Show { .. }
            ),
            Self::DirectRoute(c) => !matches!(c, DirectRouteCommand::List { .. }),
            Self::Pbx(c) => !matches!(c, PbxCommand::List { .. }),
            Self::User(c) => match c {
                UserCommand::Import { dry_run, .. } => !dry_run,
                UserCommand::List { .. }
                | UserCommand::Show { .. }
                | UserCommand::Status { .. } => false,
                _ => true,
            },
            Self::ServiceNumber(c) => !matches!(c, ServiceNumberCommand::List { .. }),
            Self::LcmTemplate(c) => !matches!(c, LcmTemplateCommand::List { .. }),
            Self::OcNumber(c) => c.writes(),
            Self::License(_) | Self::Cdr(_) => false,
        }
    }

    async fn apply(self, ops: &Provisioner<'_>) -> Result<(), ProvisionError> {
        match self {
            Self::Enterprise(c) => enterprise::run(ops, c).await,
            Self::DirectRoute(c) => routes::direct_route(ops, c).await,
            Self::Pbx(c) => routes::pbx(ops, c).await,
            Self::User(c) => user::run(ops, c).await,
            Self::ServiceNumber(c) => licensing::service_number(ops, c).await,
            Self::LcmTemplate(c) => licensing::lcm_template(ops, c).await,
            Self::OcNumber(c) => oc_number::run(ops, c).await,
            Self::License(c) => licensing::license(ops, c).await,
            Self::Cdr(c) => cdr::run(ops, c).await,
        }
    }
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?} is neither on nor off")),
    }
}

fn yes_no(v: bool) -> String {
    if v { "yes" } else { "no" }.to_owned()
}

/// A single record: a JSON object for machines, `key: value` lines for people.
fn print_record<T: serde::Serialize>(json: bool, item: &T, fields: &[(&str, String)]) {
    if json {
        match serde_json::to_string_pretty(item) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("teamsgw: cannot encode JSON: {e}"),
        }
        return;
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in fields {
        println!("{:<width$}  {v}", format!("{k}:"), width = width + 1);
    }
}

/// JSON array for machines, or an aligned table for people.
pub(crate) fn print_rows<T: serde::Serialize>(
    json: bool,
    items: &[T],
    header: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) {
    if json {
        match serde_json::to_string_pretty(items) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("teamsgw: cannot encode JSON: {e}"),
        }
        return;
    }
    let rows: Vec<Vec<String>> = items.iter().map(cells).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
