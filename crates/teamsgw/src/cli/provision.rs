//! Provisioning commands (`enterprise`, `direct-route`, `pbx`, `user`, `service-number`,
//! `lcm-template`): they open the database named by
//! the config (or `TEAMSGW_DATABASE__URL`) directly, apply one change in one transaction, and
//! print a table, or JSON with `--json`. Errors name the field and the rule and exit 1.
//!
//! A running daemon picks changes up on its next snapshot reload (SIGHUP).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use teamsgw_store::{ProvisionError, Store};

use crate::config::Settings;
use crate::daemon;
use crate::operations::license_report;
use crate::operations::user_import;
use crate::operations::{
    DirectRouteAdd, EnterpriseAdd, EnterpriseSet, PbxAdd, PbxSet, Provisioner, SkuAdd, UserAdd,
    UserSet, invalid,
};

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
    /// One enterprise with its SKUs, direct routes and how much lives under it.
    Show {
        name: String,
        #[command(flatten)]
        output: Output,
    },
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
        /// The Microsoft user anchoring the domain (default donotdelete@FQDN); it gets one
        /// Teams + Teams Phone (or inclusive) unit from the enterprise's SKUs.
        #[arg(long, value_name = "UPN")]
        ms_user: Option<String>,
    },
    /// Delete a direct route (its licenses return to the pool); the last route of an
    /// enterprise with PBXs only with --cascade (deletes those PBXs and their users).
    Delete {
        fqdn: String,
        #[arg(long)]
        cascade: bool,
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
        /// G.711 variants offered to the PBX, preferred first.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "PCMA,PCMU",
            value_name = "PCMA,PCMU"
        )]
        codecs: Vec<String>,
        /// How the called number of a Teams call is sent: e164 keeps the +, digits drops it.
        #[arg(long, default_value = "e164", value_name = "e164|digits")]
        number_format: String,
        /// Country calling code that turns the PBX's national caller numbers into E.164.
        #[arg(long, value_name = "CC")]
        country_code: Option<String>,
        /// Send Teams' call history (History-Info) to the PBX as a Diversion header.
        #[arg(long)]
        diversion: bool,
    },
    /// List the PBXs of an enterprise.
    List {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[command(flatten)]
        output: Output,
    },
    /// Change a PBX (its users re-register on the next snapshot reload).
    Set {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "PBX")]
        name: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// HOST[:PORT], or "" to send to the domain.
        #[arg(long, value_name = "HOST[:PORT]")]
        proxy: Option<String>,
        #[arg(long, value_name = "udp|tcp|tls")]
        transport: Option<String>,
        #[arg(long, value_name = "S")]
        expires: Option<u32>,
        #[arg(long, value_delimiter = ',', value_name = "PCMA,PCMU")]
        codecs: Option<Vec<String>>,
        #[arg(long, value_name = "e164|digits")]
        number_format: Option<String>,
        /// CC, or "" to pass national caller numbers as the PBX sends them.
        #[arg(long, value_name = "CC")]
        country_code: Option<String>,
        /// Diversion header from Teams' History-Info: on or off.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        diversion: Option<bool>,
    },
    /// Delete a PBX; refused while it has users unless --cascade.
    Delete {
        #[arg(long, value_name = "NAME")]
        enterprise: String,
        #[arg(long, value_name = "PBX")]
        name: String,
        #[arg(long)]
        cascade: bool,
    },
}

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
            Self::License(_) | Self::Cdr(_) => false,
        }
    }

    async fn apply(self, ops: &Provisioner<'_>) -> Result<(), ProvisionError> {
        match self {
            Self::Enterprise(c) => enterprise(ops, c).await,
            Self::DirectRoute(c) => direct_route(ops, c).await,
            Self::Pbx(c) => pbx(ops, c).await,
            Self::User(c) => user(ops, c).await,
            Self::ServiceNumber(c) => service_number(ops, c).await,
            Self::LcmTemplate(c) => lcm_template(ops, c).await,
            Self::License(c) => license(ops, c).await,
            Self::Cdr(c) => cdr(ops, c).await,
        }
    }
}

async fn enterprise(ops: &Provisioner<'_>, c: EnterpriseCommand) -> Result<(), ProvisionError> {
    let store = ops.store;
    match c {
        EnterpriseCommand::Add {
            name,
            tenant_id,
            acquired_licenses,
        } => {
            let e = ops
                .add_enterprise(&EnterpriseAdd {
                    name,
                    tenant_id,
                    acquired_licenses,
                })
                .await?;
            println!("enterprise {:?} added (tenant {})", e.name, e.tenant_id);
        }
        EnterpriseCommand::Set {
            name,
            acquired_licenses,
            license_factors,
        } => {
            let req = EnterpriseSet {
                acquired_licenses,
                license_factors,
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

async fn direct_route(ops: &Provisioner<'_>, c: DirectRouteCommand) -> Result<(), ProvisionError> {
    match c {
        DirectRouteCommand::Add {
            enterprise,
            fqdn,
            port,
            max_sessions,
            ms_user,
        } => {
            let route = ops
                .add_direct_route(&DirectRouteAdd {
                    enterprise,
                    fqdn,
                    port,
                    max_sessions,
                    ms_user,
                })
                .await?;
            println!(
                "direct route {} added to {:?} (port {}); {} holds {}",
                route.fqdn,
                route.enterprise,
                route.port,
                route.ms_user.as_deref().unwrap_or("-"),
                route.licenses.join(" + ")
            );
        }
        DirectRouteCommand::List { enterprise, output } => {
            let list = ops.store.list_direct_routes(enterprise.as_deref()).await?;
            print_rows(
                output.json,
                &list,
                &[
                    "FQDN",
                    "ENTERPRISE",
                    "PORT",
                    "MAX SESSIONS",
                    "MS USER",
                    "LICENSES",
                ],
                |d| {
                    vec![
                        d.fqdn.clone(),
                        d.enterprise.clone(),
                        d.port.to_string(),
                        d.max_sessions
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        d.ms_user.clone().unwrap_or_else(|| "-".to_owned()),
                        d.licenses.join(","),
                    ]
                },
            );
        }
        DirectRouteCommand::Delete { fqdn, cascade } => {
            ops.store.delete_direct_route(&fqdn, cascade).await?;
            println!("direct route {fqdn} deleted");
        }
    }
    Ok(())
}

async fn pbx(ops: &Provisioner<'_>, c: PbxCommand) -> Result<(), ProvisionError> {
    match c {
        PbxCommand::Add {
            enterprise,
            name,
            domain,
            proxy,
            transport,
            expires,
            codecs,
            number_format,
            country_code,
            diversion,
        } => {
            let pbx = ops
                .add_pbx(&PbxAdd {
                    enterprise,
                    name,
                    domain,
                    proxy,
                    transport,
                    expires,
                    codecs,
                    number_format,
                    country_code,
                    diversion,
                })
                .await?;
            println!("PBX {:?} added to {:?}", pbx.name, pbx.enterprise);
        }
        PbxCommand::List { enterprise, output } => {
            let list = ops.store.list_pbxs(&enterprise).await?;
            print_rows(
                output.json,
                &list,
                &[
                    "NAME",
                    "DOMAIN",
                    "PROXY",
                    "TRANSPORT",
                    "EXPIRES",
                    "CODECS",
                    "NUMBERS",
                    "CC",
                    "DIVERSION",
                ],
                |p| {
                    vec![
                        p.name.clone(),
                        p.domain.clone(),
                        p.proxy.clone().unwrap_or_else(|| "-".to_owned()),
                        p.transport.as_str().to_owned(),
                        p.expires.to_string(),
                        p.codecs.join(","),
                        p.number_format.as_str().to_owned(),
                        p.country_code.clone().unwrap_or_else(|| "-".to_owned()),
                        yes_no(p.diversion),
                    ]
                },
            );
        }
        PbxCommand::Set {
            enterprise,
            name,
            domain,
            proxy,
            transport,
            expires,
            codecs,
            number_format,
            country_code,
            diversion,
        } => {
            let req = PbxSet {
                domain,
                proxy,
                transport,
                expires,
                codecs,
                number_format,
                country_code,
                diversion,
            };
            let pbx = ops.set_pbx(&enterprise, &name, &req).await?;
            println!("PBX {:?} of {:?} updated", pbx.name, pbx.enterprise);
        }
        PbxCommand::Delete {
            enterprise,
            name,
            cascade,
        } => {
            ops.store.delete_pbx(&enterprise, &name, cascade).await?;
            println!("PBX {name:?} of {enterprise:?} deleted");
        }
    }
    Ok(())
}

async fn user(ops: &Provisioner<'_>, c: UserCommand) -> Result<(), ProvisionError> {
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

async fn service_number(
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

async fn lcm_template(ops: &Provisioner<'_>, c: LcmTemplateCommand) -> Result<(), ProvisionError> {
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

const REPORT_HEADER: [&str; 8] = [
    "ACQUIRED",
    "LICENSED",
    "AVAILABLE",
    "MONITORED",
    "DR",
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
        license_report::cell(&r.factors.lcm),
        license_report::cell(&r.factors.ui),
        license_report::cell(&r.factors.service_numbers),
    ]
}

async fn license(ops: &Provisioner<'_>, c: LicenseCommand) -> Result<(), ProvisionError> {
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

async fn cdr(ops: &Provisioner<'_>, c: CdrCommand) -> Result<(), ProvisionError> {
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
