//! `service-number`, `lcm-template` and `license`: the inputs of the license count beyond
//! users (service number ranges, LCM templates) and the reports an admin bills from.

use clap::Subcommand;
use teamsgw_store::ProvisionError;

use super::{Output, print_rows};
use crate::operations::{Provisioner, license_report};

#[derive(Debug, Subcommand)]
pub enum ServiceNumberCommand {
    /// Add a service number or range (license factor 4 unless its tag matches the DR criteria).
    Add {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "E164[-E164]")]
        number: String,
        /// Dial-plan tag.
        #[arg(long, value_name = "TAG")]
        tag: String,
    },
    /// List the service numbers of an enterprise.
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a service number or the range that starts at it.
    Delete {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "E164")]
        number: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LcmTemplateCommand {
    /// Add a LifeCycle-Management template: members of GROUP count under license factor 2.
    Add {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "TEMPLATE")]
        name: String,
        /// Security group the template applies to.
        #[arg(long, value_name = "GROUP")]
        group: String,
    },
    /// List the LCM templates of an enterprise.
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete an LCM template.
    Delete {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "TEMPLATE")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// License usage per enterprise: each factor as counted (configured).
    Report {
        #[arg(long, value_name = "NAME")]
        enterprise: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// The daily audit rows the daemon wrote (license.refresh_seconds) for a date range.
    History {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
        #[command(flatten)]
        output: Output,
    },
}

pub(super) async fn service_number(
    ops: &Provisioner<'_>,
    c: ServiceNumberCommand,
) -> Result<(), ProvisionError> {
    match c {
        ServiceNumberCommand::Add {
            enterprise,
            number,
            tag,
        } => {
            let added = ops
                .store
                .add_service_numbers(&enterprise, &number, &tag)
                .await?;
            println!(
                "service numbers {}-{} ({}) added to {enterprise:?}",
                added.first, added.last, added.tag
            );
        }
        ServiceNumberCommand::List { enterprise, output } => {
            let list = ops.store.list_service_numbers(&enterprise).await?;
            print_rows(output.json, &list, &["FIRST", "LAST", "TAG"], |n| {
                vec![n.first.clone(), n.last.clone(), n.tag.clone()]
            });
        }
        ServiceNumberCommand::Delete { enterprise, number } => {
            ops.store
                .delete_service_numbers(&enterprise, &number)
                .await?;
            println!("service numbers starting at {number} deleted from {enterprise:?}");
        }
    }
    Ok(())
}

pub(super) async fn lcm_template(
    ops: &Provisioner<'_>,
    c: LcmTemplateCommand,
) -> Result<(), ProvisionError> {
    match c {
        LcmTemplateCommand::Add {
            enterprise,
            name,
            group,
        } => {
            ops.store
                .add_lcm_template(&enterprise, &name, &group)
                .await?;
            println!("LCM template {name:?} (group {group:?}) added to {enterprise:?}");
        }
        LcmTemplateCommand::List { enterprise, output } => {
            let list = ops.store.list_lcm_templates(&enterprise).await?;
            print_rows(output.json, &list, &["NAME", "GROUP"], |t| {
                vec![t.name.clone(), t.group.clone()]
            });
        }
        LcmTemplateCommand::Delete { enterprise, name } => {
            ops.store.delete_lcm_template(&enterprise, &name).await?;
            println!("LCM template {name:?} deleted from {enterprise:?}");
        }
    }
    Ok(())
}

const REPORT_HEADER: [&str; 9] = [
    "ACQUIRED",
    "LICENSED",
    "AVAILABLE",
    "MONITORED",
    "DR",
    "OC",
    "LCM",
    "UI",
    "SERVICE NUMBERS",
];

fn report_cells(r: &license_report::EnterpriseReport) -> Vec<String> {
    vec![
        r.acquired.to_string(),
        r.currently_licensed.to_string(),
        r.available.to_string(),
        r.monitored_users.to_string(),
        license_report::cell(&r.factors.direct_routing),
        license_report::cell(&r.factors.operator_connect),
        license_report::cell(&r.factors.lcm),
        license_report::cell(&r.factors.ui),
        license_report::cell(&r.factors.service_numbers),
    ]
}

pub(super) async fn license(
    ops: &Provisioner<'_>,
    c: LicenseCommand,
) -> Result<(), ProvisionError> {
    match c {
        LicenseCommand::Report { enterprise, output } => {
            let report =
                license_report::build(ops.store, enterprise.as_deref(), &ops.settings.license)
                    .await?;
            let header: Vec<&str> = std::iter::once("ENTERPRISE").chain(REPORT_HEADER).collect();
            print_rows(output.json, &report, &header, |r| {
                std::iter::once(r.enterprise.clone())
                    .chain(report_cells(r))
                    .collect()
            });
        }
        LicenseCommand::History {
            enterprise,
            from,
            to,
            output,
        } => {
            let days = license_report::history(ops.store, &enterprise, &from, &to).await?;
            let header: Vec<&str> = std::iter::once("DAY").chain(REPORT_HEADER).collect();
            print_rows(output.json, &days, &header, |d| {
                std::iter::once(d.day.clone())
                    .chain(report_cells(&d.report))
                    .collect()
            });
        }
    }
    Ok(())
}
