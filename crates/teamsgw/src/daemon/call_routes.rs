//! Feeds the call layer from provisioning: on every new routing snapshot (and every few
//! minutes, as DNS answers change) a [`RoutingView`] with passwords opened and the PBXs' and
//! Teams proxies' names resolved through the daemon's one [`Resolver`], so no call ever
//! waits on DNS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use teamsgw_gateway::call::routing::{
    NumberFormat, OperatorConnect, PbxRoute, RoutingView, TeamsProxy, Tenant, UserRoute,
};
use teamsgw_gateway::call_driver::CallsHandle;
use teamsgw_gateway::dns::Resolver;
use teamsgw_gateway::registration::Registrar;
use teamsgw_sip::transport::Transport;
use teamsgw_store::{PasswordKey, RoutingSnapshot, password_context};
use tokio::sync::watch;

const REFRESH: Duration = Duration::from_secs(300);

/// Addresses of `host` (an IP literal, `[v6]`, or a name), IPv4 first.
async fn resolve(resolver: &Resolver, host: &str, port: u16) -> Vec<SocketAddr> {
    match resolver.lookup(host, port).await {
        Ok(addrs) => addrs,
        Err(e) => {
            tracing::warn!(host, error = %e, "calls through it are refused until it resolves");
            Vec::new()
        }
    }
}

fn transport(name: &str) -> Transport {
    match name {
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        _ => Transport::Udp,
    }
}

/// What of `[teams]` the view needs: where the Teams proxies are, and the carrier trunk.
#[derive(Debug, Clone)]
pub struct TeamsSide {
    /// `teams.proxies`, on `proxy_port`.
    pub proxies: Vec<String>,
    pub proxy_port: u16,
    /// `teams.base_fqdn` and our TLS port: the carrier trunk of Operator Connect calls.
    pub base_fqdn: String,
    pub listen_port: u16,
}

/// The Operator Connect enterprises of `snapshot` on the carrier trunk.
fn operator_connect(snapshot: &RoutingSnapshot, teams: &TeamsSide) -> OperatorConnect {
    let mut oc = OperatorConnect {
        fqdn: teams.base_fqdn.clone(),
        ..OperatorConnect::default()
    };
    for e in snapshot.all_operator_connect() {
        oc.tenants.push(Tenant {
            fqdn: teams.base_fqdn.clone(),
            port: teams.listen_port,
            enterprise_id: e.enterprise_id.clone(),
            enterprise: e.enterprise_name.clone(),
            max_sessions: None,
            max_cps: None,
            emergency_numbers: e.emergency_numbers.clone(),
            operator_connect: true,
        });
        oc.tenant_ids
            .insert(e.enterprise_id.clone(), e.tenant_id.to_ascii_lowercase());
    }
    oc.numbers = snapshot
        .oc_user_numbers()
        .map(|(n, e)| (n.to_owned(), e.to_owned()))
        .collect();
    oc
}

/// The view `snapshot` gives.
pub async fn build(
    snapshot: &RoutingSnapshot,
    key: Option<&PasswordKey>,
    teams_side: &TeamsSide,
    resolver: &Resolver,
) -> RoutingView {
    let (proxies, proxy_port) = (&teams_side.proxies, teams_side.proxy_port);
    let tenants = snapshot
        .all_direct_routes()
        .map(|d| Tenant {
            fqdn: d.fqdn.clone(),
            port: d.port,
            enterprise_id: d.enterprise_id.clone(),
            enterprise: d.enterprise_name.clone(),
            max_sessions: d.max_sessions,
            max_cps: d.max_cps,
            emergency_numbers: d.emergency_numbers.clone(),
            operator_connect: false,
        })
        .collect();
    let mut resolved: HashMap<(String, u16), Vec<SocketAddr>> = HashMap::new();
    let mut pbxs = Vec::new();
    for p in snapshot.all_pbxs() {
        let next_hop = p.proxy.clone().unwrap_or_else(|| p.domain.clone());
        let t = transport(&p.transport);
        let registrar = Registrar::parse(&next_hop, t);
        let port = registrar.port_or_default();
        let key = (registrar.host.clone(), port);
        if !resolved.contains_key(&key) {
            let addrs = resolve(resolver, &registrar.host, port).await;
            resolved.insert(key.clone(), addrs);
        }
        pbxs.push(PbxRoute {
            id: p.id.clone(),
            domain: p.domain.clone(),
            next_hop,
            transport: t,
            addrs: resolved.get(&key).cloned().unwrap_or_default().into(),
            codecs: p.codecs.clone(),
            number_format: match p.number_format {
                teamsgw_store::NumberFormat::E164 => NumberFormat::E164,
                teamsgw_store::NumberFormat::Digits => NumberFormat::Digits,
            },
            country_code: p.country_code.clone(),
            diversion: p.diversion,
        });
    }
    let mut unreadable = 0;
    let users = snapshot
        .all_users()
        .iter()
        .filter_map(|u| {
            let password = match key.map(|k| k.open(&u.password_sealed, &password_context(&u.upn)))
            {
                Some(Ok(p)) => p,
                _ => {
                    unreadable += 1;
                    return None;
                }
            };
            Some(UserRoute {
                upn: u.upn.clone(),
                enterprise_id: u.enterprise_id.clone(),
                pbx_id: u.pbx_id.clone(),
                number: u.number.clone(),
                extension: u.extension.clone(),
                auth_user: u.auth_user.clone(),
                password,
                contact_token: u.contact_token.clone(),
                enabled: u.enabled,
            })
        })
        .collect();
    if unreadable > 0 {
        tracing::error!(
            users = unreadable,
            "cannot open the SIP passwords of some users with database.password_key; they cannot place or take calls"
        );
    }
    // Each address of a proxy's name is a failover target of its own, in order.
    let mut teams = Vec::new();
    for name in proxies {
        let addrs = resolve(resolver, name, proxy_port).await;
        if addrs.is_empty() {
            teams.push(TeamsProxy {
                name: name.clone(),
                addr: None,
            });
        }
        for addr in addrs {
            teams.push(TeamsProxy {
                name: name.clone(),
                addr: Some(addr),
            });
        }
    }
    RoutingView::new(tenants, pbxs, users, teams)
        .with_operator_connect(operator_connect(snapshot, teams_side))
}

/// Hands every new snapshot's view to the call shards until the daemon stops.
pub async fn follow(
    mut snapshots: watch::Receiver<Option<Arc<RoutingSnapshot>>>,
    calls: CallsHandle,
    key: Option<PasswordKey>,
    teams: TeamsSide,
    resolver: Resolver,
) {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(snapshot) = snapshot {
            let view = build(&snapshot, key.as_ref(), &teams, &resolver).await;
            calls.set_routes(Arc::new(view)).await;
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}
