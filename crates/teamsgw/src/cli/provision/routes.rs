//! `direct-route` and `pbx`: where a customer's calls go, the Teams trunk FQDN on one side
//! and the hosted PBX (domain, proxy, transport, codecs, number format) on the other.

use clap::Subcommand;
use teamsgw_store::ProvisionError;

use super::{Output, on_off, print_rows, yes_no};
use crate::operations::{DirectRouteAdd, DirectRouteSet, PbxAdd, PbxSet, Provisioner};

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
        /// New calls per second, both directions, over which calls get 503 with Retry-After
        /// (emergency calls exempt; unlimited when omitted).
        #[arg(long, value_name = "N")]
        max_cps: Option<u32>,
        /// The Microsoft user anchoring the domain (default donotdelete@FQDN); it gets one
        /// Teams + Teams Phone (or inclusive) unit from the enterprise's SKUs.
        #[arg(long, value_name = "UPN")]
        ms_user: Option<String>,
    },
    /// Change a direct route's limits (new calls see them after the next reload); 0 removes
    /// a limit.
    Set {
        fqdn: String,
        #[arg(long, value_name = "N")]
        max_sessions: Option<u32>,
        #[arg(long, value_name = "N")]
        max_cps: Option<u32>,
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
        /// Codecs offered to the PBX, preferred first: any of G722, PCMA, PCMU, G729 (relayed
        /// end to end; teamsgw never transcodes).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "PCMA,PCMU",
            value_name = "G722,PCMA,PCMU,G729"
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
        #[arg(long, value_delimiter = ',', value_name = "G722,PCMA,PCMU,G729")]
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

pub(super) async fn direct_route(
    ops: &Provisioner<'_>,
    c: DirectRouteCommand,
) -> Result<(), ProvisionError> {
    match c {
        DirectRouteCommand::Add {
            enterprise,
            fqdn,
            port,
            max_sessions,
            max_cps,
            ms_user,
        } => {
            let route = ops
                .add_direct_route(&DirectRouteAdd {
                    enterprise,
                    fqdn,
                    port,
                    max_sessions,
                    max_cps,
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
        DirectRouteCommand::Set {
            fqdn,
            max_sessions,
            max_cps,
        } => {
            let route = ops
                .set_direct_route(
                    &fqdn,
                    &DirectRouteSet {
                        max_sessions,
                        max_cps,
                    },
                )
                .await?;
            println!(
                "direct route {}: max sessions {}, max cps {}",
                route.fqdn,
                limit(route.max_sessions),
                limit(route.max_cps)
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
                    "MAX CPS",
                    "MS USER",
                    "LICENSES",
                ],
                |d| {
                    vec![
                        d.fqdn.clone(),
                        d.enterprise.clone(),
                        d.port.to_string(),
                        limit(d.max_sessions),
                        limit(d.max_cps),
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

fn limit(n: Option<u32>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

pub(super) async fn pbx(ops: &Provisioner<'_>, c: PbxCommand) -> Result<(), ProvisionError> {
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
