//! `oc-number`: the Operator Connect number inventory of an OC enterprise (issue 32): add
//! numbers and ranges, assign them to users, release them, list, and import or export
//! Microsoft's `Get-CsPhoneNumberAssignment` shape.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use teamsgw_store::{NumberSource, OcNumber, ProvisionError};

use super::{Output, print_record, print_rows};
use crate::operations::oc_numbers::{self, OcNumberAdd, OcNumberAssign};
use crate::operations::{Provisioner, invalid, user_import};

#[derive(Debug, Args)]
pub struct OcNumberArgs {
    /// The Operator Connect enterprise.
    #[arg(long)]
    enterprise: String,
    /// E.164 number, or FIRST-LAST for a range.
    #[arg(long, value_name = "E164[-E164]")]
    number: String,
    /// Unassigned, UserAssigned, ConferenceAssigned or VoiceApplicationAssigned (default:
    /// UserAssigned with --user, else Unassigned).
    #[arg(long, value_name = "STATUS")]
    assignment: Option<String>,
    /// The user's UPN, for a UserAssigned number (it becomes the user's number).
    #[arg(long, value_name = "UPN")]
    user: Option<String>,
    /// Activated (default), AssignmentPending, AssignmentFailed, UpdatePending, UpdateFailed.
    #[arg(long, value_name = "STATE")]
    activation: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long, value_name = "CC")]
    country: Option<String>,
    #[arg(long)]
    city: Option<String>,
    /// The operator's calling profile id.
    #[arg(long, value_name = "ID")]
    calling_profile: Option<String>,
    #[arg(long, value_name = "TEXT")]
    emergency_address: Option<String>,
    /// When the operator acquired the number (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    acquired_on: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OcNumberCommand {
    /// Add a number or range to an Operator Connect enterprise.
    Add(OcNumberArgs),
    /// Assign a number: to a user (UserAssigned, and the user's number becomes it), or
    /// another status; or change its activation state.
    Assign {
        #[arg(long, value_name = "E164")]
        number: String,
        #[arg(long, value_name = "UPN")]
        user: Option<String>,
        #[arg(long, value_name = "STATUS")]
        assignment: Option<String>,
        #[arg(long, value_name = "STATE")]
        activation: Option<String>,
    },
    /// Make a number Unassigned.
    Unassign {
        #[arg(long, value_name = "E164")]
        number: String,
    },
    /// Release a number or range (by its first number): it moves to the released list.
    Release {
        #[arg(long, value_name = "E164")]
        number: String,
    },
    /// List an enterprise's numbers (or, with --released, the numbers it released).
    List {
        #[arg(long)]
        enterprise: String,
        #[arg(long)]
        released: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Import `Get-CsPhoneNumberAssignment` output (CSV or JSON): only OperatorConnect rows;
    /// others and refused rows are reported as FILE:LINE: reason. Re-importing changes nothing.
    Import {
        #[arg(long)]
        enterprise: String,
        file: PathBuf,
        /// Report what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export an enterprise's numbers in the `Get-CsPhoneNumberAssignment` shape (JSON, or
    /// CSV with --csv), which `import` reads back.
    Export {
        #[arg(long)]
        enterprise: String,
        #[arg(long)]
        csv: bool,
    },
}

impl OcNumberCommand {
    pub(super) fn writes(&self) -> bool {
        match self {
            Self::Import { dry_run, .. } => !dry_run,
            Self::List { .. } | Self::Export { .. } => false,
            _ => true,
        }
    }
}

fn range(n: &OcNumber) -> String {
    if n.first == n.last {
        n.first.clone()
    } else {
        format!("{}-{}", n.first, n.last)
    }
}

fn show(n: &OcNumber) {
    print_record(
        false,
        n,
        &[
            ("number", range(n)),
            ("enterprise", n.enterprise.clone()),
            ("assignment", n.assignment.as_str().to_owned()),
            ("user", n.user.clone().unwrap_or_default()),
            ("activation", n.activation.as_str().to_owned()),
        ],
    );
}

pub(super) async fn run(ops: &Provisioner<'_>, c: OcNumberCommand) -> Result<(), ProvisionError> {
    match c {
        OcNumberCommand::Add(a) => {
            let req = OcNumberAdd {
                enterprise: a.enterprise,
                number: a.number,
                assignment: a.assignment,
                user: a.user,
                activation: a.activation,
                country: a.country,
                city: a.city,
                calling_profile: a.calling_profile,
                emergency_address: a.emergency_address,
                acquired_on: a.acquired_on,
            };
            let n = ops.add_oc_numbers(&req, NumberSource::Cli).await?;
            println!("OC number {} added to {:?}", range(&n), n.enterprise);
            show(&n);
        }
        OcNumberCommand::Assign {
            number,
            user,
            assignment,
            activation,
        } => {
            let req = OcNumberAssign {
                assignment,
                user,
                activation,
            };
            show(&ops.assign_oc_number(&number, &req).await?);
        }
        OcNumberCommand::Unassign { number } => show(&ops.unassign_oc_number(&number).await?),
        OcNumberCommand::Release { number } => {
            let r = ops.release_oc_numbers(&number).await?;
            println!(
                "OC number {number} released from {:?} on {}",
                r.enterprise, r.released_on
            );
        }
        OcNumberCommand::List {
            enterprise,
            released: false,
            output,
        } => {
            let list = ops.store.list_oc_numbers(&enterprise).await?;
            print_rows(
                output.json,
                &list,
                &[
                    "NUMBER",
                    "ASSIGNMENT",
                    "USER",
                    "ACTIVATION",
                    "COUNTRY",
                    "ACQUIRED",
                    "SOURCE",
                ],
                |n| {
                    vec![
                        range(n),
                        n.assignment.as_str().to_owned(),
                        n.user.clone().unwrap_or_default(),
                        n.activation.as_str().to_owned(),
                        n.country.clone().unwrap_or_default(),
                        n.acquired_on.clone(),
                        n.source.as_str().to_owned(),
                    ]
                },
            );
        }
        OcNumberCommand::List {
            enterprise,
            released: true,
            output,
        } => {
            let list = ops.store.list_released_oc_numbers(&enterprise).await?;
            print_rows(
                output.json,
                &list,
                &["NUMBER", "ASSIGNMENT", "USER", "ACQUIRED", "RELEASED"],
                |n| {
                    vec![
                        if n.first == n.last {
                            n.first.clone()
                        } else {
                            format!("{}-{}", n.first, n.last)
                        },
                        n.assignment.as_str().to_owned(),
                        n.user.clone().unwrap_or_default(),
                        n.acquired_on.clone(),
                        n.released_on.clone(),
                    ]
                },
            );
        }
        OcNumberCommand::Import {
            enterprise,
            file,
            dry_run,
        } => {
            let rows = user_import::read(&file)?;
            let s = ops.import_oc_numbers(&enterprise, &rows, dry_run).await?;
            for r in &s.refused {
                eprintln!("{}:{}: {}", file.display(), r.line, r.reason);
            }
            let verb = if dry_run { "would add" } else { "added" };
            println!(
                "{} rows: {verb} {}, updated {}, unchanged {}, refused {}{}",
                s.rows,
                s.added,
                s.updated,
                s.unchanged,
                s.refused.len(),
                if dry_run {
                    " (dry run: nothing written)"
                } else {
                    ""
                }
            );
            if !s.refused.is_empty() {
                return Err(invalid(
                    "file",
                    format!("{} rows refused (see above)", s.refused.len()),
                ));
            }
        }
        OcNumberCommand::Export { enterprise, csv } => {
            let list = ops.store.list_oc_numbers(&enterprise).await?;
            let text = if csv {
                oc_numbers::export_csv(&list)?
            } else {
                oc_numbers::export_json(&list)?
            };
            print!("{text}");
        }
    }
    Ok(())
}
