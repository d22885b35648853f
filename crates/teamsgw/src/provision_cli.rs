//! Provisioning commands (`enterprise`, `direct-route`, `pbx`): they open the database named by
//! the config (or `TEAMSGW_DATABASE__URL`) directly, apply one change in one transaction, and
//! print a table, or JSON with `--json`. Errors name the field and the rule and exit 1.
//!
//! A running daemon picks changes up on its next snapshot reload (SIGHUP).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use teamsgw_store::{Pbx, ProvisionError, Store, Transport};

use crate::config::Settings;
use crate::daemon;

#[derive(Debug, Subcommand)]
pub enum EnterpriseCommand {
    /// Create a customer enterprise.
    Add {
        name: String,
        /// The customer's Microsoft tenant id (a GUID).
        #[arg(long, value_name = "UUID")]
        tenant_id: String,
        /// Licenses the customer bought from the carrier.
        #[arg(long, value_name = "N")]
        acquired_licenses: u64,
    },
    /// List enterprises.
    List(Output),
    /// Delete an enterprise; refused while it has children unless --cascade.
    Delete {
        name: String,
        /// Also delete its direct routes, PBXs, users, service numbers and templates.
        #[arg(long)]
        cascade: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectRouteCommand {
    /// Add the derived-trunk FQDN (one label under teams.base_fqdn) of an enterprise.
    Add {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "FQDN")]
        fqdn: String,
        #[arg(long, default_value_t = 5061)]
        port: u16,
        /// Concurrent call limit for this customer (unlimited when omitted).
        #[arg(long, value_name = "N")]
        max_sessions: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PbxCommand {
    /// Add a PBX to an enterprise that has a direct route.
    Add {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "PBX")]
        name: String,
        /// SIP domain of the users' AORs at the PBX.
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// Registrar/outbound proxy when it differs from the domain.
        #[arg(long, value_name = "HOST[:PORT]")]
        proxy: Option<String>,
        #[arg(long, default_value = "udp", value_name = "udp|tcp|tls")]
        transport: String,
        /// Registration expiry we request, in seconds.
        #[arg(long, default_value_t = 600, value_name = "S")]
        expires: u32,
    },
    /// List the PBXs of an enterprise.
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A provisioning command with everything it needs to run.
pub enum Provision {
    Enterprise(EnterpriseCommand),
    DirectRoute(DirectRouteCommand),
    Pbx(PbxCommand),
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
            let result = self.apply(&store, &settings).await;
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

    async fn apply(self, store: &Store, settings: &Settings) -> Result<(), ProvisionError> {
        match self {
            Self::Enterprise(EnterpriseCommand::Add {
                name,
                tenant_id,
                acquired_licenses,
            }) => {
                let e = store
                    .add_enterprise(&name, &tenant_id, acquired_licenses)
                    .await?;
                println!("enterprise {:?} added (tenant {})", e.name, e.tenant_id);
            }
            Self::Enterprise(EnterpriseCommand::List(output)) => {
                let list = store.list_enterprises().await?;
                print_rows(
                    output.json,
                    &list,
                    &["NAME", "TENANT ID", "ACQUIRED"],
                    |e| {
                        vec![
                            e.name.clone(),
                            e.tenant_id.clone(),
                            e.acquired_licenses.to_string(),
                        ]
                    },
                );
            }
            Self::Enterprise(EnterpriseCommand::Delete { name, cascade }) => {
                store.delete_enterprise(&name, cascade).await?;
                println!("enterprise {name:?} deleted");
            }
            Self::DirectRoute(DirectRouteCommand::Add {
                enterprise,
                fqdn,
                port,
                max_sessions,
            }) => {
                let route = store
                    .add_direct_route(
                        &enterprise,
                        &fqdn,
                        &settings.teams.base_fqdn,
                        port,
                        max_sessions,
                    )
                    .await?;
                println!(
                    "direct route {} added to {:?} (port {})",
                    route.fqdn, route.enterprise, route.port
                );
            }
            Self::Pbx(PbxCommand::Add {
                enterprise,
                name,
                domain,
                proxy,
                transport,
                expires,
            }) => {
                let pbx = Pbx {
                    enterprise,
                    name,
                    domain,
                    proxy,
                    transport: Transport::parse(&transport)?,
                    expires,
                };
                store.add_pbx(&pbx).await?;
                println!("PBX {:?} added to {:?}", pbx.name, pbx.enterprise);
            }
            Self::Pbx(PbxCommand::List { enterprise, output }) => {
                let list = store.list_pbxs(&enterprise).await?;
                print_rows(
                    output.json,
                    &list,
                    &["NAME", "DOMAIN", "PROXY", "TRANSPORT", "EXPIRES"],
                    |p| {
                        vec![
                            p.name.clone(),
                            p.domain.clone(),
                            p.proxy.clone().unwrap_or_else(|| "-".to_owned()),
                            format!("{:?}", p.transport).to_ascii_lowercase(),
                            p.expires.to_string(),
                        ]
                    },
                );
            }
        }
        Ok(())
    }
}

/// JSON array for machines, or an aligned table for people.
fn print_rows<T: serde::Serialize>(
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
