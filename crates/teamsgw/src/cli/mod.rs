//! The command line. `run` starts the daemon; `check-config` validates a config file the way
//! the daemon would (including the TLS files it names) without starting anything; `check-tls`
//! reports whether Teams will accept our TLS ([`crate::cli::check_tls`]); the provisioning
//! commands live in [`crate::cli::provision`].

pub mod check_tls;
pub mod provision;
pub mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::build_info::LONG_VERSION;
use crate::cli::provision::{
    CdrCommand, DirectRouteCommand, EnterpriseCommand, LcmTemplateCommand, LicenseCommand,
    OcNumberCommand, PbxCommand, Provision, ServiceNumberCommand, UserCommand,
};
use crate::config::Settings;
use crate::daemon;
use status::{CallCommand, TrunkCommand};

pub const DEFAULT_CONFIG: &str = "/etc/teamsgw/teamsgw.toml";

#[derive(Debug, Parser)]
#[command(
    name = "teamsgw",
    version = LONG_VERSION,
    about = "Microsoft Teams Direct Routing SBC that bridges Teams users to hosted PBXs"
)]
pub struct Cli {
    /// Configuration file (TOML). Environment TEAMSGW_<SECTION>__<KEY> overrides its keys.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify aware).
    Run,
    /// Validate the configuration; exit 0 when valid, 1 with every problem listed.
    CheckConfig,
    /// Pre-flight TLS report: our certificate as Microsoft requires it, Microsoft's roots in
    /// the trust anchors; exit 1 on anything that blocks calls with Teams.
    CheckTls {
        /// Also handshake with each of `teams.proxies` and print the peer's chain.
        #[arg(long)]
        connect: bool,
    },
    /// Customer enterprises (tenants).
    #[command(subcommand)]
    Enterprise(EnterpriseCommand),
    /// Direct routes: the derived-trunk FQDN of each enterprise.
    #[command(subcommand)]
    DirectRoute(DirectRouteCommand),
    /// The hosted PBXs the gateway registers Teams users to.
    #[command(subcommand)]
    Pbx(PbxCommand),
    /// Teams users and the PBX extension each is bridged to.
    #[command(subcommand)]
    User(UserCommand),
    /// Service numbers (auto attendants, fax...) counted as license factor 4.
    #[command(subcommand)]
    ServiceNumber(ServiceNumberCommand),
    /// LifeCycle-Management templates: security groups counted as license factor 2.
    #[command(subcommand)]
    LcmTemplate(LcmTemplateCommand),
    /// Operator Connect numbers of OC enterprises (license factor 1 for them).
    #[command(subcommand)]
    OcNumber(OcNumberCommand),
    /// License usage reports.
    #[command(subcommand)]
    License(LicenseCommand),
    /// The Teams trunk as the running daemon sees it.
    #[command(subcommand)]
    Trunk(TrunkCommand),
    /// Live calls in the running daemon.
    #[command(subcommand)]
    Call(CallCommand),
    /// Call detail records in the database.
    #[command(subcommand)]
    Cdr(CdrCommand),
}

impl Cli {
    pub fn execute(self) -> ExitCode {
        match self.command {
            Command::Run => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("teamsgw")
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(daemon::run(self.config)),
                    Err(e) => {
                        eprintln!("teamsgw: cannot start the runtime: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::CheckConfig => check_config(&self.config),
            Command::CheckTls { connect } => check_tls::check_tls(&self.config, connect),
            Command::Enterprise(c) => Provision::Enterprise(c).execute(&self.config),
            Command::DirectRoute(c) => Provision::DirectRoute(c).execute(&self.config),
            Command::Pbx(c) => Provision::Pbx(c).execute(&self.config),
            Command::User(UserCommand::Status { enterprise, output }) => {
                status::user_status(&self.config, enterprise.as_deref(), output.json)
            }
            Command::User(c) => Provision::User(c).execute(&self.config),
            Command::Trunk(TrunkCommand::Status(output)) => {
                status::trunk_status(&self.config, output.json)
            }
            Command::Call(CallCommand::List(output)) => {
                status::call_list(&self.config, output.json)
            }
            Command::Cdr(c) => Provision::Cdr(c).execute(&self.config),
            Command::ServiceNumber(c) => Provision::ServiceNumber(c).execute(&self.config),
            Command::LcmTemplate(c) => Provision::LcmTemplate(c).execute(&self.config),
            Command::OcNumber(c) => Provision::OcNumber(c).execute(&self.config),
            Command::License(c) => Provision::License(c).execute(&self.config),
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(problems) => {
            daemon::report_problems(path, &problems);
            return ExitCode::FAILURE;
        }
    };
    // Check the files a start would load, but never generate anything here.
    if settings.tls.certificate.is_some() {
        if let Err(problems) = daemon::load_tls(&settings) {
            daemon::report_problems(path, &problems);
            return ExitCode::FAILURE;
        }
    } else if !settings.tls.trust_anchors.is_file() {
        eprintln!(
            "{}: 1 problem(s):\n  tls.trust_anchors: {}: not a readable file",
            path.display(),
            settings.tls.trust_anchors.display()
        );
        return ExitCode::FAILURE;
    }
    println!("{}: configuration is valid", path.display());
    if settings.tls.certificate.is_none() {
        println!("note: no [tls] certificate configured; a development certificate will be used");
    }
    ExitCode::SUCCESS
}
