//! `enterprise` (and its `sku` subcommands): customers, their Microsoft tenant, acquired
//! licenses, license-factor switches and the SKUs they bought.

use clap::Subcommand;
use teamsgw_store::ProvisionError;

use super::{Output, print_record, print_rows};
use crate::operations::{EnterpriseAdd, EnterpriseSet, Provisioner, SkuAdd};

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
        /// How the customer reaches Teams: direct-routing (its own derived trunk) or
        /// operator-connect (the carrier trunk, with OC numbers).
        #[arg(long, value_name = "direct-routing|operator-connect")]
        service: Option<String>,
    },
    /// Change acquired licenses, switch optional license factors, or set the enterprise's
    /// own emergency numbers.
    Set {
        name: String,
        #[arg(long, value_name = "N")]
        acquired_licenses: Option<u64>,
        /// lcm|ui|service-numbers=on|off|default (repeatable; default follows [license]).
        #[arg(long = "license-factor", value_name = "FACTOR=on|off")]
        license_factors: Vec<String>,
        /// Calls from Teams to these are emergency calls (never refused by max_sessions,
        /// dialled as is); `default` follows calls.emergency_numbers.
        #[arg(long, value_name = "N,N,...|default")]
        emergency_numbers: Option<String>,
        /// direct-routing|operator-connect; only while the enterprise has no users, direct
        /// routes or OC numbers.
        #[arg(long, value_name = "direct-routing|operator-connect")]
        service: Option<String>,
    },
    /// Microsoft SKUs the enterprise bought.
    #[command(subcommand)]
    Sku(SkuCommand),
    /// List enterprises.
    List(Output),
    /// One enterprise with its SKUs, direct routes and how much lives under it.
    Show {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete an enterprise; refused while it has children unless --cascade.
    Delete {
        name: String,
        /// Also delete its direct routes, PBXs, users, service numbers and templates; its OC
        /// numbers move to the released list.
        #[arg(long)]
        cascade: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SkuCommand {
    /// Record units of a SKU (again for the same SKU: replace its units and date).
    Add {
        name: String,
        /// Microsoft part number (e.g. SPE_E5, MCOEV).
        #[arg(long, value_name = "PART_NUMBER")]
        sku: String,
        #[arg(long, value_name = "N")]
        units: u64,
        /// Purchase date: Business suites bought on or after 2024-04-01 carry no Teams.
        #[arg(long, value_name = "YYYY-MM-DD")]
        acquired_on: Option<String>,
    },
}

pub(super) async fn run(ops: &Provisioner<'_>, c: EnterpriseCommand) -> Result<(), ProvisionError> {
    let store = ops.store;
    match c {
        EnterpriseCommand::Add {
            name,
            tenant_id,
            acquired_licenses,
            service,
        } => {
            let e = ops
                .add_enterprise(&EnterpriseAdd {
                    name,
                    tenant_id,
                    acquired_licenses,
                    service,
                })
                .await?;
            println!(
                "enterprise {:?} added (tenant {}, {})",
                e.name,
                e.tenant_id,
                e.service.as_str()
            );
        }
        EnterpriseCommand::Set {
            name,
            acquired_licenses,
            license_factors,
            emergency_numbers,
            service,
        } => {
            let req = EnterpriseSet {
                acquired_licenses,
                license_factors,
                emergency_numbers,
                service,
            };
            let e = ops.set_enterprise(&name, &req).await?;
            println!("enterprise {:?} updated", e.name);
        }
        EnterpriseCommand::Sku(SkuCommand::Add {
            name,
            sku,
            units,
            acquired_on,
        }) => {
            let req = SkuAdd {
                sku,
                units,
                acquired_on,
            };
            let held = ops.add_enterprise_sku(&name, &req).await?;
            println!("{name:?} holds {} x {}", held.units, held.part_number);
        }
        EnterpriseCommand::List(output) => {
            let list = store.list_enterprises().await?;
            print_rows(
                output.json,
                &list,
                &["NAME", "TENANT ID", "SERVICE", "ACQUIRED"],
                |e| {
                    vec![
                        e.name.clone(),
                        e.tenant_id.clone(),
                        e.service.as_str().to_owned(),
                        e.acquired_licenses.to_string(),
                    ]
                },
            );
        }
        EnterpriseCommand::Show { name, output } => {
            let d = ops.show_enterprise(&name).await?;
            let factor = |v: Option<bool>| match v {
                Some(true) => "on".to_owned(),
                Some(false) => "off".to_owned(),
                None => "default".to_owned(),
            };
            print_record(
                output.json,
                &d,
                &[
                    ("name", d.enterprise.name.clone()),
                    ("tenant id", d.enterprise.tenant_id.clone()),
                    ("service", d.enterprise.service.as_str().to_owned()),
                    (
                        "acquired licenses",
                        d.enterprise.acquired_licenses.to_string(),
                    ),
                    ("lcm factor", factor(d.enterprise.lcm_factor)),
                    ("ui factor", factor(d.enterprise.ui_factor)),
                    (
                        "service-numbers factor",
                        factor(d.enterprise.service_numbers_factor),
                    ),
                    (
                        "emergency numbers",
                        match &d.enterprise.emergency_numbers {
                            Some(n) => n.join(","),
                            None => "default (calls.emergency_numbers)".to_owned(),
                        },
                    ),
                    (
                        "skus",
                        d.skus
                            .iter()
                            .map(|s| format!("{} x {}", s.units, s.part_number))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    (
                        "direct routes",
                        d.direct_routes
                            .iter()
                            .map(|r| r.fqdn.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    ("pbxs", d.pbxs.to_string()),
                    ("users", d.users.to_string()),
                    ("service numbers", d.service_numbers.to_string()),
                    ("lcm templates", d.lcm_templates.to_string()),
                    ("oc numbers", d.oc_numbers.to_string()),
                ],
            );
        }
        EnterpriseCommand::Delete { name, cascade } => {
            store.delete_enterprise(&name, cascade).await?;
            println!("enterprise {name:?} deleted");
        }
    }
    Ok(())
}
