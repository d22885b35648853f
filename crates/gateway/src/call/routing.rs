//! Routing decisions for new calls, read from a narrow gateway-owned view of the provisioning
//! snapshot. The daemon builds a [`RoutingView`] for every new snapshot (passwords opened,
//! PBX and Teams proxy names already resolved, so no call ever waits on DNS) and hands it to
//! every call shard; each call copies its decision when it is created, so a reload or a
//! deleted user never changes a call that is up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use teamsgw_sip::message::{Message, NameAddr, Uri, unescape};
use teamsgw_sip::transport::{Target, Transport};

/// A tenant's direct route (the derived trunk FQDN of the hosting model, §3.1), or for an
/// Operator Connect enterprise the carrier trunk it shares with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub fqdn: String,
    /// Our TLS port as Teams knows it (the Contact port, §3.2).
    pub port: u16,
    pub enterprise_id: String,
    pub enterprise: String,
    pub max_sessions: Option<u32>,
    /// New calls per second, both directions (emergency calls exempt).
    pub max_cps: Option<u32>,
    /// The enterprise's own emergency numbers, in place of `calls.emergency_numbers`.
    pub emergency_numbers: Option<Vec<String>>,
    /// An Operator Connect enterprise on the carrier trunk (its record says so).
    pub operator_connect: bool,
}

/// The carrier trunk that Operator Connect enterprises' calls use (issue 32): Teams addresses
/// it by `teams.base_fqdn`, and a call on it belongs to the enterprise whose activated
/// UserAssigned OC number the caller is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorConnect {
    /// `teams.base_fqdn`.
    pub fqdn: String,
    /// Each OC enterprise as a [`Tenant`] on the carrier trunk (its `fqdn` is [`Self::fqdn`]).
    pub tenants: Vec<Tenant>,
    /// Enterprise id → the Microsoft tenant id `X-MS-TenantId` must match.
    pub tenant_ids: HashMap<String, String>,
    /// Activated UserAssigned OC number → its enterprise's id.
    pub numbers: HashMap<String, String>,
}

/// How a PBX wants called numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumberFormat {
    /// `+4930123456`
    #[default]
    E164,
    /// `4930123456`
    Digits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxRoute {
    pub id: String,
    pub domain: String,
    /// Where requests go: the proxy, else the domain (`host[:port]`).
    pub next_hop: String,
    pub transport: Transport,
    /// The next hop's addresses, resolved when the view was built; the first is used.
    /// They are also the only sources its requests and responses are taken from.
    pub addrs: Arc<[SocketAddr]>,
    pub codecs: Vec<String>,
    pub number_format: NumberFormat,
    /// Country calling code (`49`) that turns national caller numbers into E.164.
    pub country_code: Option<String>,
    /// Calls from Teams carry their History-Info as a Diversion header (RFC 7544).
    pub diversion: bool,
}

impl PbxRoute {
    pub fn dialing(&self) -> PbxDialing {
        PbxDialing {
            domain: self.domain.clone(),
            number_format: self.number_format,
            target: self.target(),
            sources: Arc::clone(&self.addrs),
        }
    }

    /// Where our requests to this PBX go: its first resolved address, over its transport.
    pub fn target(&self) -> Option<Target> {
        let addr = *self.addrs.first()?;
        let server_name = (self.transport == Transport::Tls).then(|| host_only(&self.next_hop));
        Some(Target {
            transport: self.transport,
            addr,
            server_name,
        })
    }
}

/// How a number is addressed at a PBX, and where the call to it goes: a called number, or
/// a transfer target.
#[derive(Debug, Clone)]
pub struct PbxDialing {
    pub domain: String,
    pub number_format: NumberFormat,
    /// `None` when the PBX's next hop did not resolve.
    pub target: Option<Target>,
    /// The PBX's signalling addresses (ports aside).
    pub sources: Arc<[SocketAddr]>,
}

impl PbxDialing {
    /// `number` as the PBX wants it.
    pub fn number(&self, number: &str) -> String {
        match self.number_format {
            NumberFormat::E164 => number.to_owned(),
            NumberFormat::Digits => number.strip_prefix('+').unwrap_or(number).to_owned(),
        }
    }

    /// `sip:<number>@<domain>`.
    pub fn uri(&self, number: &str) -> String {
        format!("sip:{}@{}", self.number(number), self.domain)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRoute {
    pub upn: String,
    pub enterprise_id: String,
    pub pbx_id: String,
    /// E.164 with `+`.
    pub number: String,
    pub extension: String,
    pub auth_user: String,
    pub password: String,
    pub contact_token: String,
    pub enabled: bool,
}

/// A Teams SIP proxy in `teams.proxies` order, with its resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsProxy {
    pub name: String,
    pub addr: Option<SocketAddr>,
}

#[derive(Debug, Default)]
pub struct RoutingView {
    tenants: HashMap<String, Tenant>,
    /// Enterprise id → its first direct route's FQDN (calls towards Teams).
    tenant_of: HashMap<String, String>,
    pbxs: HashMap<String, PbxRoute>,
    users: Vec<UserRoute>,
    by_number: HashMap<(String, String), usize>,
    by_token: HashMap<String, usize>,
    /// Every provisioned PBX's signalling addresses.
    pbx_sources: std::collections::HashSet<IpAddr>,
    pub proxies: Vec<TeamsProxy>,
    operator_connect: OperatorConnect,
    /// Enterprise id → index into `operator_connect.tenants`.
    oc_tenant_of: HashMap<String, usize>,
}

impl RoutingView {
    /// The proxies that resolved, in order, as TLS targets checked against their names.
    pub fn proxy_targets(&self) -> Vec<teamsgw_sip::transport::Target> {
        self.proxies
            .iter()
            .filter_map(|p| {
                Some(teamsgw_sip::transport::Target {
                    transport: teamsgw_sip::transport::Transport::Tls,
                    addr: p.addr?,
                    server_name: Some(p.name.clone()),
                })
            })
            .collect()
    }

    pub fn new(
        tenants: Vec<Tenant>,
        pbxs: Vec<PbxRoute>,
        users: Vec<UserRoute>,
        proxies: Vec<TeamsProxy>,
    ) -> Self {
        let mut view = Self {
            proxies,
            ..Self::default()
        };
        for t in tenants {
            view.tenant_of
                .entry(t.enterprise_id.clone())
                .or_insert_with(|| t.fqdn.to_ascii_lowercase());
            view.tenants.insert(t.fqdn.to_ascii_lowercase(), t);
        }
        for p in pbxs {
            view.pbx_sources.extend(p.addrs.iter().map(SocketAddr::ip));
            view.pbxs.insert(p.id.clone(), p);
        }
        for (i, u) in users.iter().enumerate() {
            view.by_number
                .insert((u.enterprise_id.clone(), u.number.clone()), i);
            view.by_token.insert(u.contact_token.clone(), i);
        }
        view.users = users;
        view
    }

    /// The view with the Operator Connect enterprises on the carrier trunk.
    pub fn with_operator_connect(mut self, oc: OperatorConnect) -> Self {
        self.oc_tenant_of = oc
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.enterprise_id.clone(), i))
            .collect();
        self.operator_connect = oc;
        self
    }

    pub fn tenant(&self, fqdn: &str) -> Option<&Tenant> {
        self.tenants.get(&fqdn.to_ascii_lowercase())
    }

    /// Whether `host` is the carrier trunk of Operator Connect calls.
    pub fn is_carrier_trunk(&self, host: &str) -> bool {
        !self.operator_connect.fqdn.is_empty()
            && host.eq_ignore_ascii_case(&self.operator_connect.fqdn)
    }

    /// The OC enterprise (as its tenant on the carrier trunk) whose activated UserAssigned OC
    /// number `number` is, with that enterprise's Microsoft tenant id.
    pub fn oc_tenant_of_number(&self, number: &str) -> Option<(&Tenant, &str)> {
        let enterprise = self.operator_connect.numbers.get(number)?;
        let tenant = self
            .oc_tenant_of
            .get(enterprise)
            .and_then(|&i| self.operator_connect.tenants.get(i))?;
        let tenant_id = self.operator_connect.tenant_ids.get(enterprise)?;
        Some((tenant, tenant_id))
    }

    /// The trunk an enterprise's calls towards Teams take: its direct route, or for an
    /// Operator Connect enterprise the carrier trunk.
    pub fn tenant_of_enterprise(&self, enterprise_id: &str) -> Option<&Tenant> {
        self.tenant_of
            .get(enterprise_id)
            .and_then(|f| self.tenants.get(f))
            .or_else(|| {
                self.oc_tenant_of
                    .get(enterprise_id)
                    .and_then(|&i| self.operator_connect.tenants.get(i))
            })
    }

    pub fn user_by_number(&self, enterprise_id: &str, number: &str) -> Option<&UserRoute> {
        self.by_number
            .get(&(enterprise_id.to_owned(), number.to_owned()))
            .and_then(|&i| self.users.get(i))
    }

    pub fn user_by_token(&self, token: &str) -> Option<&UserRoute> {
        self.by_token.get(token).and_then(|&i| self.users.get(i))
    }

    pub fn pbx(&self, id: &str) -> Option<&PbxRoute> {
        self.pbxs.get(id)
    }

    /// Whether `ip` is one of a provisioned PBX's signalling addresses.
    pub fn is_pbx_source(&self, ip: IpAddr) -> bool {
        self.pbx_sources.contains(&ip)
    }
}

/// A refused call: the status, its reason phrase and the Warning text that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
    pub warning: String,
    /// Metric label (`teamsgw_call_admission_rejected_total{reason}` or routing failures).
    pub label: &'static str,
}

fn reject(status: u16, label: &'static str, warning: String) -> Rejection {
    let reason = match status {
        403 => "Forbidden",
        404 => "Not Found",
        488 => "Not Acceptable Here",
        _ => "Service Unavailable",
    };
    Rejection {
        status,
        reason,
        warning,
        label,
    }
}

/// The decision a Teams-originated call copies when it starts.
#[derive(Debug, Clone)]
pub struct TeamsCall {
    pub tenant: Tenant,
    pub user: UserRoute,
    pub pbx: PbxRoute,
    /// The called number as the PBX wants it.
    pub called: String,
    /// The called number as Teams sent it (an emergency call goes to the PBX so).
    pub dialled: String,
    pub caller: String,
    /// The Teams user's name as Teams sent it: the PBX shows it on the callee's phone.
    pub caller_display: Option<String>,
}

/// The decision a PBX-originated call copies when it starts.
#[derive(Debug, Clone)]
pub struct PbxCall {
    pub tenant: Tenant,
    pub user: UserRoute,
    pub pbx: PbxRoute,
    /// The caller in E.164 when it could be derived, else as the PBX sent it.
    pub caller: String,
    pub caller_display: Option<String>,
}

/// The number in a URI: `tel:+E164`, `sip:+E164@host;user=phone`, or a digits user part.
/// Visual separators (RFC 3966 §5.1.1) are removed.
pub fn number_of(uri: &Uri<'_>) -> Option<String> {
    let raw = match uri {
        Uri::Tel(t) => t.number,
        Uri::Sip(s) => s.user?,
        Uri::Other { .. } => return None,
    };
    let raw = unescape(raw);
    let text = std::str::from_utf8(&raw).ok()?;
    // A user part may carry its own parameters (`+1555;isub=1`): the number ends there.
    let text = text.split(';').next().unwrap_or(text);
    let number: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let digits = number.strip_prefix('+').unwrap_or(&number);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(number)
}

/// The caller's identity: P-Asserted-Identity first, else From (RFC 3325 §9.1).
fn caller_identity(request: &Message) -> Option<(Option<String>, String)> {
    let pick = |a: NameAddr<'_>| {
        let display = a.display.map(teamsgw_sip::message::display_text);
        number_of(&a.uri).map(|n| (display, n))
    };
    request
        .p_asserted_identities()
        .filter_map(Result::ok)
        .find_map(pick)
        .or_else(|| request.from().and_then(Result::ok).and_then(pick))
}

/// The PBX a user is provisioned on. Warnings go to peers: they never name a user's UPN or
/// an enterprise (issue 31 §8); the log does.
fn pbx_of<'a>(view: &'a RoutingView, user: &UserRoute) -> Result<&'a PbxRoute, Rejection> {
    view.pbx(&user.pbx_id).ok_or_else(|| {
        tracing::warn!(upn = %user.upn, "the user's PBX is not in the routing view");
        reject(503, "no_pbx", "the user's PBX is not provisioned".into())
    })
}

fn host_of(request: &Message) -> Option<String> {
    match request.request_uri()?.ok()? {
        Uri::Sip(s) => match s.host {
            teamsgw_sip::message::Host::Name(n) => Some(n.to_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// A call from Teams (§3.1): the Request-URI host names the tenant, and the caller must be
/// one of its enabled users (caller-number screening). On the carrier trunk the caller's
/// Operator Connect number names the enterprise instead ([`operator_connect_caller`]).
pub fn route_teams_call(view: &RoutingView, request: &Message) -> Result<TeamsCall, Rejection> {
    let host = host_of(request).unwrap_or_default();
    let tenant = if view.is_carrier_trunk(&host) {
        None
    } else {
        Some(view.tenant(&host).ok_or_else(|| {
            reject(
                404,
                "unknown_tenant",
                format!("no direct route for tenant FQDN {host:?}"),
            )
        })?)
    };
    let called = request
        .request_uri()
        .and_then(Result::ok)
        .and_then(|u| number_of(&u))
        .ok_or_else(|| {
            reject(
                404,
                "no_called_number",
                "no called number in the Request-URI".into(),
            )
        })?;
    let (caller_display, caller) = caller_identity(request).ok_or_else(|| {
        reject(
            403,
            "caller_not_provisioned",
            "no caller number in P-Asserted-Identity or From".into(),
        )
    })?;
    let (tenant, user) = match tenant {
        Some(tenant) => {
            let user = view
                .user_by_number(&tenant.enterprise_id, &caller)
                .filter(|u| u.enabled)
                .ok_or_else(|| {
                    reject(
                        403,
                        "caller_not_provisioned",
                        format!("caller {caller} is not an enabled user of this tenant"),
                    )
                })?;
            (tenant, user)
        }
        None => operator_connect_caller(view, request, &caller)?,
    };
    let pbx = pbx_of(view, user)?;
    let dialled = called;
    let called = pbx.dialing().number(&dialled);
    Ok(TeamsCall {
        tenant: tenant.clone(),
        user: user.clone(),
        pbx: pbx.clone(),
        called,
        dialled,
        caller,
        caller_display,
    })
}

/// The tenant and user of a call from Teams on the carrier trunk (issue 32): the enterprise
/// whose activated UserAssigned OC number `caller` is, and Teams' `X-MS-TenantId`, when
/// present, must be that enterprise's tenant. Anything else is refused as caller screening
/// refuses a Direct Routing caller.
fn operator_connect_caller<'a>(
    view: &'a RoutingView,
    request: &Message,
    caller: &str,
) -> Result<(&'a Tenant, &'a UserRoute), Rejection> {
    let unassigned = || {
        reject(
            403,
            "caller_not_provisioned",
            format!("caller {caller} is not an assigned Operator Connect number"),
        )
    };
    let (tenant, tenant_id) = view.oc_tenant_of_number(caller).ok_or_else(unassigned)?;
    if let Some(claimed) = request.other_header("X-MS-TenantId").next()
        && !claimed
            .trim_ascii()
            .eq_ignore_ascii_case(tenant_id.as_bytes())
    {
        let claimed = String::from_utf8_lossy(claimed);
        tracing::info!(%caller, %claimed, "X-MS-TenantId is not the tenant of the caller's OC number");
        return Err(reject(
            403,
            "tenant_mismatch",
            "X-MS-TenantId is not the tenant of the caller's number".into(),
        ));
    }
    let user = view
        .user_by_number(&tenant.enterprise_id, caller)
        .filter(|u| u.enabled)
        .ok_or_else(unassigned)?;
    Ok((tenant, user))
}

/// A call from a PBX: the Request-URI user is our contact token (what the PBX's location
/// table holds for the user), and the request must come from that user's PBX.
pub fn route_pbx_call(
    view: &RoutingView,
    request: &Message,
    source: IpAddr,
) -> Result<PbxCall, Rejection> {
    let token = match request.request_uri().and_then(Result::ok) {
        Some(Uri::Sip(s)) => s
            .user
            .map(|u| String::from_utf8_lossy(&unescape(u)).into_owned()),
        _ => None,
    }
    .unwrap_or_default();
    // Whoever is not the user's PBX learns nothing of the token: a valid one from elsewhere
    // is answered exactly as an unknown one (a scanner such as svwar finds no user).
    let unknown = || {
        reject(
            404,
            "unknown_user",
            format!("no user with contact {token:?}"),
        )
    };
    let user = view.user_by_token(&token).ok_or_else(unknown)?;
    let from_its_pbx = view
        .pbx(&user.pbx_id)
        .is_some_and(|p| p.addrs.iter().any(|a| a.ip() == source));
    if !from_its_pbx {
        tracing::info!(upn = %user.upn, %source, "a user's contact token from an address that is not the user's PBX: answered as unknown");
        return Err(Rejection {
            label: "source_not_pbx",
            ..unknown()
        });
    }
    if !user.enabled {
        return Err(reject(403, "user_disabled", "the user is disabled".into()));
    }
    let pbx = pbx_of(view, user)?;
    let tenant = view
        .tenant_of_enterprise(&user.enterprise_id)
        .ok_or_else(|| {
            tracing::warn!(upn = %user.upn, "the user's enterprise has no direct route");
            reject(
                503,
                "no_direct_route",
                "the user's enterprise has no direct route".into(),
            )
        })?;
    let (caller_display, caller) = caller_identity(request)
        .map(|(d, n)| (d, to_e164(&n, pbx.country_code.as_deref())))
        .or_else(|| {
            let from = request.from().and_then(Result::ok)?;
            let user = from.uri.user()?;
            Some((
                from.display.map(teamsgw_sip::message::display_text),
                String::from_utf8_lossy(&unescape(user)).into_owned(),
            ))
        })
        .unwrap_or((None, "anonymous".to_owned()));
    Ok(PbxCall {
        tenant: tenant.clone(),
        user: user.clone(),
        pbx: pbx.clone(),
        caller,
        caller_display,
    })
}

/// National (`0301234`) and international (`0049301234`) numbers to E.164 with the PBX's
/// country code (§3.2: Teams wants `+E164` in From); anything else passes as it is.
pub fn to_e164(number: &str, country_code: Option<&str>) -> String {
    if number.starts_with('+') {
        return number.to_owned();
    }
    match country_code {
        Some(_) if let Some(rest) = number.strip_prefix("00") => format!("+{rest}"),
        Some(cc) if let Some(rest) = number.strip_prefix('0') => format!("+{cc}{rest}"),
        _ => number.to_owned(),
    }
}

pub type SharedView = Arc<RoutingView>;

fn host_only(host_port: &str) -> String {
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !host_port.ends_with(']') => h.to_owned(),
        _ => host_port.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::to_e164;

    #[test]
    fn national_and_international_numbers_become_e164_with_a_country_code() {
        // §3.2: Teams wants +E164 in From.
        assert_eq!(to_e164("0301234", Some("49")), "+49301234");
        assert_eq!(to_e164("0033142", Some("49")), "+33142");
        assert_eq!(to_e164("+1555", Some("49")), "+1555");
        // Without a country code, or for an extension, the number passes as it is.
        assert_eq!(to_e164("0301234", None), "0301234");
        assert_eq!(to_e164("2001", Some("49")), "2001");
    }
}
