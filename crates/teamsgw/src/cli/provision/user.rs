//! `user`: the Teams users bridged to a PBX extension (add, set, delete, list, show, import
//! from CSV), with their PBX credentials read from a file or the environment, never argv.

use std::io::IsTerminal;
use std::path::Path;

use clap::{Args, Subcommand};
use teamsgw_store::ProvisionError;

use super::{Output, print_record, print_rows, yes_no};
use crate::operations::{Provisioner, UserAdd, UserSet, invalid, user_import};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a Teams user bridged to an extension on a PBX of its enterprise.
    Add(Box<UserArgs>),
    /// Change a user (it then counts as managed by UI).
    Set(Box<UserSetArgs>),
    /// Registration state at the PBX, from the running daemon (needs admin.token).
    Status {
        #[arg(long, value_name = "NAME")]
        enterprise: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// One user (never its password).
    Show {
        upn: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a user.
    Delete { upn: String },
    /// Import users from a CSV or JSON export shaped like Get-CsOnlineUser.
    Import {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        /// PBX for rows without a Pbx column.
        #[arg(long, value_name = "PBX")]
        pbx: String,
        file: std::path::PathBuf,
        /// Validate and report only; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write nothing unless every row is valid.
        #[arg(long)]
        strict: bool,
    },
    /// List the users of an enterprise (passwords are never shown).
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("password").required(true).args(["password_file", "password_env"])))]
pub struct UserArgs {
    #[arg(long, value_name = "NAME")]
    enterprise: String,
    #[arg(long, value_name = "PBX")]
    pbx: String,
    /// Teams user principal name (local@domain).
    #[arg(long, value_name = "UPN")]
    upn: String,
    /// The user's E.164 number (+...).
    #[arg(long, value_name = "E164")]
    number: String,
    /// The user's extension at the PBX.
    #[arg(long, value_name = "EXT")]
    extension: String,
    /// Digest user name at the PBX (default: the extension).
    #[arg(long, value_name = "U")]
    auth_user: Option<String>,
    /// File holding the SIP password (first line); keeps it out of the process list.
    #[arg(long, value_name = "F")]
    password_file: Option<std::path::PathBuf>,
    /// Environment variable holding the SIP password.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Microsoft SKU part number assigned to the user (repeatable).
    #[arg(long = "sku", value_name = "PART")]
    skus: Vec<String>,
    /// Enterprise Voice enabled in Teams.
    #[arg(long)]
    ev_enabled: bool,
    #[arg(long, value_name = "P")]
    voice_routing_policy: Option<String>,
    #[arg(long, value_name = "FQDN")]
    pstn_gateway: Option<String>,
    /// Security group the user is a member of (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("password").args(["password_file", "password_env"])))]
pub struct UserSetArgs {
    upn: String,
    #[arg(long, value_name = "PBX")]
    pbx: Option<String>,
    #[arg(long, value_name = "E164")]
    number: Option<String>,
    #[arg(long, value_name = "EXT")]
    extension: Option<String>,
    #[arg(long, value_name = "U")]
    auth_user: Option<String>,
    #[arg(long, value_name = "F")]
    password_file: Option<std::path::PathBuf>,
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Replaces the user's SKUs (repeatable); a license change, subject to the cooldown.
    #[arg(long = "sku", value_name = "PART")]
    skus: Vec<String>,
    #[arg(long, conflicts_with = "ev_disabled")]
    ev_enabled: bool,
    #[arg(long)]
    ev_disabled: bool,
    /// "" clears it.
    #[arg(long, value_name = "P")]
    voice_routing_policy: Option<String>,
    /// "" clears it.
    #[arg(long, value_name = "FQDN")]
    pstn_gateway: Option<String>,
    /// Replaces the user's groups (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Unregister the user from its PBX (it stays provisioned); --enable resumes.
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    #[arg(long)]
    enable: bool,
    /// Change licenses even within license.change_cooldown_hours of the last change.
    #[arg(long)]
    force: bool,
}

pub(super) async fn run(ops: &Provisioner<'_>, c: UserCommand) -> Result<(), ProvisionError> {
    match c {
        UserCommand::Add(args) => {
            let args = *args;
            let password =
                read_password(args.password_file.as_deref(), args.password_env.as_deref())?
                    .ok_or_else(|| {
                        invalid(
                            "password-file",
                            "--password-file or --password-env is required",
                        )
                    })?;
            let req = UserAdd {
                enterprise: args.enterprise,
                pbx: args.pbx,
                upn: args.upn,
                number: args.number,
                extension: args.extension,
                auth_user: args.auth_user,
                password,
                skus: args.skus,
                ev_enabled: args.ev_enabled,
                voice_routing_policy: args.voice_routing_policy,
                pstn_gateway: args.pstn_gateway,
                groups: args.groups,
            };
            let (user, warnings) = ops.add_user(&req).await?;
            for w in warnings {
                eprintln!("warning: {}: {w}", user.upn);
            }
            println!(
                "user {} added ({} -> extension {})",
                user.upn, user.number, user.extension
            );
        }
        UserCommand::Set(args) => {
            let args = *args;
            let req = UserSet {
                pbx: args.pbx,
                number: args.number,
                extension: args.extension,
                auth_user: args.auth_user,
                password: read_password(
                    args.password_file.as_deref(),
                    args.password_env.as_deref(),
                )?,
                skus: (!args.skus.is_empty()).then_some(args.skus),
                ev_enabled: match (args.ev_enabled, args.ev_disabled) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                voice_routing_policy: args.voice_routing_policy,
                pstn_gateway: args.pstn_gateway,
                groups: (!args.groups.is_empty()).then_some(args.groups),
                enabled: match (args.enable, args.disable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                force: args.force,
            };
            let (user, warnings) = ops.set_user(&args.upn, &req).await?;
            for w in warnings {
                eprintln!("warning: {}: {w}", user.upn);
            }
            println!("user {} updated", user.upn);
        }
        UserCommand::Status { .. } => {
            return Err(invalid(
                "status",
                "answered by the daemon, not the database",
            ));
        }
        UserCommand::Show { upn, output } => {
            let u = ops.store.user(&upn).await?;
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
            print_record(
                output.json,
                &u,
                &[
                    ("upn", u.upn.clone()),
                    ("enterprise", u.enterprise.clone()),
                    ("pbx", u.pbx.clone()),
                    ("number", u.number.clone()),
                    ("extension", u.extension.clone()),
                    ("auth user", u.auth_user.clone()),
                    ("skus", u.skus.join(", ")),
                    ("enterprise voice", yes_no(u.ev_enabled)),
                    ("voice routing policy", opt(&u.voice_routing_policy)),
                    ("pstn gateway", opt(&u.pstn_gateway)),
                    ("groups", u.groups.join(", ")),
                    ("managed by ui", yes_no(u.managed_by_ui)),
                    ("enabled", yes_no(u.enabled)),
                    (
                        "last license change",
                        u.last_license_change
                            .map_or_else(|| "-".to_owned(), |t| format!("unix {t}")),
                    ),
                ],
            );
        }
        UserCommand::Import {
            enterprise,
            pbx,
            file,
            dry_run,
            strict,
        } => {
            import_users(ops, &enterprise, &pbx, &file, dry_run, strict).await?;
        }
        UserCommand::Delete { upn } => {
            ops.store.delete_user(&upn).await?;
            println!("user {upn} deleted");
        }
        UserCommand::List { enterprise, output } => {
            let list = ops.store.list_users(&enterprise).await?;
            print_rows(
                output.json,
                &list,
                &["UPN", "NUMBER", "PBX", "EXTENSION", "EV", "SKUS", "GROUPS"],
                |u| {
                    vec![
                        u.upn.clone(),
                        u.number.clone(),
                        u.pbx.clone(),
                        u.extension.clone(),
                        yes_no(u.ev_enabled),
                        u.skus.join(","),
                        u.groups.join(","),
                    ]
                },
            );
        }
    }
    Ok(())
}

/// The password from `--password-file` (first line) or `--password-env`, if either is given.
fn read_password(file: Option<&Path>, env: Option<&str>) -> Result<Option<String>, ProvisionError> {
    match (file, env) {
        (Some(path), _) => Ok(Some(
            std::fs::read_to_string(path)
                .map_err(|e| invalid("password-file", format!("{}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )),
        (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| {
            invalid(
                "password-env",
                format!("environment variable {var} is not set"),
            )
        }),
        (None, None) => Ok(None),
    }
}

async fn import_users(
    ops: &Provisioner<'_>,
    enterprise: &str,
    pbx: &str,
    file: &Path,
    dry_run: bool,
    strict: bool,
) -> Result<(), ProvisionError> {
    let store = ops.store;
    let rows = user_import::read(file)?;
    let users = store.list_users(enterprise).await?;
    let existing = user_import::Existing {
        numbers: users.iter().map(|u| u.number.clone()).collect(),
        users: users
            .into_iter()
            .map(|u| (u.upn, (u.number, u.pbx)))
            .collect(),
        pbxs: store
            .list_pbxs(enterprise)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect(),
    };
    let dates = user_import::sku_dates(&store.list_enterprise_skus(enterprise).await?);
    let plan = user_import::plan(&rows, enterprise, pbx, &existing, &dates);
    for (line, reason) in &plan.refused {
        eprintln!("{}:{line}: {reason}", file.display());
    }
    let blocked = dry_run || (strict && !plan.refused.is_empty());
    if !blocked && !plan.add.is_empty() {
        let key = ops.password_key()?;
        let total = plan.add.len();
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| ProgressBar::new(total));
        store
            .add_users_reporting(&plan.add, &key, |done| {
                if let Some(bar) = &bar {
                    bar.show(done);
                }
            })
            .await
            .map_err(|(i, e)| {
                invalid(
                    "file",
                    format!(
                        "{} (row {} of the valid ones); nothing was imported",
                        e,
                        i + 1
                    ),
                )
            })?;
    }
    let verb = if blocked { "would add" } else { "added" };
    println!(
        "{} rows: {verb} {}, unchanged {}, refused {}{}",
        rows.len(),
        plan.add.len(),
        plan.unchanged,
        plan.refused.len(),
        if dry_run {
            " (dry run: nothing written)"
        } else if strict && !plan.refused.is_empty() {
            " (--strict: nothing written)"
        } else {
            ""
        }
    );
    if plan.refused.is_empty() {
        Ok(())
    } else {
        Err(invalid(
            "file",
            format!("{} rows refused", plan.refused.len()),
        ))
    }
}

/// A one-line progress bar on stderr, only drawn on a terminal.
struct ProgressBar {
    total: usize,
}

impl ProgressBar {
    fn new(total: usize) -> Self {
        Self { total }
    }

    fn show(&self, done: usize) {
        const WIDTH: usize = 40;
        let filled = (done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        let end = if done >= self.total { "\n" } else { "" };
        eprint!(
            "\rimporting [{}{}] {done}/{}{end}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled.min(WIDTH)),
            self.total
        );
    }
}
