//! Provisioning commands (`enterprise`, `direct-route`, `pbx`, `user`, `service-number`,
//! `lcm-template`): they open the database named by
//! the config (or `TEAMSGW_DATABASE__URL`) directly, apply one change in one transaction, and
//! print a table, or JSON with `--json`. Errors name the field and the rule and exit 1.
//!
//! A running daemon picks changes up on its next snapshot reload (SIGHUP).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use teamsgw_license::catalogue as license;
use teamsgw_store::{
    EnterpriseSku, LicenseFactor, NewUser, PasswordKey, PasswordKeyError, Pbx, ProvisionError,
    Store, Transport,
};

use crate::config::Settings;
use crate::daemon;
use crate::license_report;
use crate::user_import;

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
    /// Change acquired licenses or switch optional license factors for this enterprise.
    Set {
        name: String,
        #[arg(long, value_name = "N")]
        acquired_licenses: Option<u64>,
        /// lcm|ui|service-numbers=on|off|default (repeatable; default follows [license]).
        #[arg(long = "license-factor", value_name = "FACTOR=on|off")]
        license_factors: Vec<String>,
    },
    /// Microsoft SKUs the enterprise bought.
    #[command(subcommand)]
    Sku(SkuCommand),
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
    /// List direct routes, of one enterprise or all.
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: Option<String>,
        #[command(flatten)]
        output: Output,
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

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a Teams user bridged to an extension on a PBX of its enterprise.
    Add(Box<UserArgs>),
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
    User(UserCommand),
    ServiceNumber(ServiceNumberCommand),
    LcmTemplate(LcmTemplateCommand),
    License(LicenseCommand),
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
            Self::Enterprise(EnterpriseCommand::Set {
                name,
                acquired_licenses,
                license_factors,
            }) => {
                let factors = license_factors
                    .iter()
                    .map(|s| LicenseFactor::parse_setting(s))
                    .collect::<Result<Vec<_>, _>>()?;
                if acquired_licenses.is_none() && factors.is_empty() {
                    return Err(invalid(
                        "acquired-licenses",
                        "nothing to change: give --acquired-licenses or --license-factor",
                    ));
                }
                let e = store
                    .set_enterprise(&name, acquired_licenses, &factors)
                    .await?;
                println!("enterprise {:?} updated", e.name);
            }
            Self::Enterprise(EnterpriseCommand::Sku(SkuCommand::Add {
                name,
                sku,
                units,
                acquired_on,
            })) => {
                let part = license::lookup(&sku)
                    .ok_or_else(|| invalid("sku", format!("unknown SKU part number {sku:?}")))?;
                if let Some(date) = &acquired_on
                    && license::Date::parse(date).is_none()
                {
                    return Err(invalid("acquired-on", "must be a date YYYY-MM-DD"));
                }
                let record = EnterpriseSku {
                    part_number: part.part_number.to_owned(),
                    units,
                    acquired_on,
                };
                store.set_enterprise_sku(&name, &record).await?;
                println!("{name:?} holds {units} x {}", part.part_number);
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
            Self::DirectRoute(DirectRouteCommand::List { enterprise, output }) => {
                let list = store.list_direct_routes(enterprise.as_deref()).await?;
                print_rows(
                    output.json,
                    &list,
                    &["FQDN", "ENTERPRISE", "PORT", "MAX SESSIONS"],
                    |d| {
                        vec![
                            d.fqdn.clone(),
                            d.enterprise.clone(),
                            d.port.to_string(),
                            d.max_sessions
                                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        ]
                    },
                );
            }
            Self::ServiceNumber(ServiceNumberCommand::Add {
                enterprise,
                number,
                tag,
            }) => {
                let added = store
                    .add_service_numbers(&enterprise, &number, &tag)
                    .await?;
                println!(
                    "service numbers {}-{} ({}) added to {enterprise:?}",
                    added.first, added.last, added.tag
                );
            }
            Self::ServiceNumber(ServiceNumberCommand::List { enterprise, output }) => {
                let list = store.list_service_numbers(&enterprise).await?;
                print_rows(output.json, &list, &["FIRST", "LAST", "TAG"], |n| {
                    vec![n.first.clone(), n.last.clone(), n.tag.clone()]
                });
            }
            Self::LcmTemplate(LcmTemplateCommand::Add {
                enterprise,
                name,
                group,
            }) => {
                store.add_lcm_template(&enterprise, &name, &group).await?;
                println!("LCM template {name:?} (group {group:?}) added to {enterprise:?}");
            }
            Self::LcmTemplate(LcmTemplateCommand::List { enterprise, output }) => {
                let list = store.list_lcm_templates(&enterprise).await?;
                print_rows(output.json, &list, &["NAME", "GROUP"], |t| {
                    vec![t.name.clone(), t.group.clone()]
                });
            }
            Self::License(LicenseCommand::Report { enterprise, output }) => {
                let report =
                    license_report::build(store, enterprise.as_deref(), &settings.license).await?;
                print_rows(
                    output.json,
                    &report,
                    &[
                        "ENTERPRISE",
                        "ACQUIRED",
                        "LICENSED",
                        "AVAILABLE",
                        "MONITORED",
                        "DR",
                        "LCM",
                        "UI",
                        "SERVICE NUMBERS",
                    ],
                    |r| {
                        vec![
                            r.enterprise.clone(),
                            r.acquired.to_string(),
                            r.currently_licensed.to_string(),
                            r.available.to_string(),
                            r.monitored_users.to_string(),
                            license_report::cell(&r.factors.direct_routing),
                            license_report::cell(&r.factors.lcm),
                            license_report::cell(&r.factors.ui),
                            license_report::cell(&r.factors.service_numbers),
                        ]
                    },
                );
            }
            Self::User(UserCommand::Import {
                enterprise,
                pbx,
                file,
                dry_run,
                strict,
            }) => {
                import_users(store, settings, &enterprise, &pbx, &file, dry_run, strict).await?;
            }
            Self::User(UserCommand::Delete { upn }) => {
                store.delete_user(&upn).await?;
                println!("user {upn} deleted");
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
            Self::User(UserCommand::Add(args)) => {
                let dates =
                    user_import::sku_dates(&store.list_enterprise_skus(&args.enterprise).await?);
                let user = new_user(*args, &dates)?;
                let key = password_key(&settings.database.password_key)?;
                let user = store.add_user(&user, &key).await?;
                println!(
                    "user {} added ({} -> extension {})",
                    user.upn, user.number, user.extension
                );
            }
            Self::User(UserCommand::List { enterprise, output }) => {
                let list = store.list_users(&enterprise).await?;
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
                            if u.ev_enabled { "yes" } else { "no" }.to_owned(),
                            u.skus.join(","),
                            u.groups.join(","),
                        ]
                    },
                );
            }
        }
        Ok(())
    }
}

async fn import_users(
    store: &Store,
    settings: &Settings,
    enterprise: &str,
    pbx: &str,
    file: &Path,
    dry_run: bool,
    strict: bool,
) -> Result<(), ProvisionError> {
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
        let key = password_key(&settings.database.password_key)?;
        store.add_users(&plan.add, &key).await.map_err(|(i, e)| {
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

fn invalid(field: &'static str, rule: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid {
        field,
        rule: rule.into(),
    }
}

/// Checks the user's licenses (a user needs Teams and Teams Phone; reference: licensing.md
/// §3) and reads the password, so nothing reaches the database unchecked.
fn new_user(args: UserArgs, dates: &user_import::SkuDates) -> Result<NewUser, ProvisionError> {
    let warnings =
        user_import::check_user_skus(&args.skus, dates).map_err(|e| invalid("sku", e))?;
    for w in warnings {
        eprintln!("warning: {}: {w}", args.upn);
    }
    let password = match (&args.password_file, &args.password_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| invalid("password-file", format!("{}: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            invalid(
                "password-env",
                format!("environment variable {var} is not set"),
            )
        })?,
        (None, None) => {
            return Err(invalid(
                "password-file",
                "--password-file or --password-env is required",
            ));
        }
    };
    Ok(NewUser {
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
        // Created through the CLI: license factor 3 (By User Interface).
        managed_by_ui: true,
    })
}

/// Loads the password key, creating the key file on first use.
fn password_key(source: &str) -> Result<PasswordKey, ProvisionError> {
    let key_error = |e: PasswordKeyError| invalid("database.password_key", e.to_string());
    if let Some(path) = source.strip_prefix("file:") {
        let path = Path::new(path);
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    invalid("database.password_key", format!("{}: {e}", dir.display()))
                })?;
            }
            PasswordKey::generate_file(path).map_err(key_error)?;
            eprintln!(
                "note: generated the password key {}; back it up with the database",
                path.display()
            );
        }
    }
    PasswordKey::load(source).map_err(key_error)
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
