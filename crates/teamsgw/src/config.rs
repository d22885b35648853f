//! The daemon's configuration: one TOML file plus environment overrides
//! `TEAMSGW_<SECTION>__<KEY>` (e.g. `TEAMSGW_ADMIN__LISTEN=127.0.0.1:9191`).
//!
//! Loading reports *every* problem at once, each with its key path, because an operator fixing
//! a config file one error per restart is an outage. Unknown keys are errors: a typo must never
//! silently fall back to a default. `config/teamsgw.toml` documents every key.
//!
//! Which keys apply live on SIGHUP and which need a restart is decided in `daemon/mod.rs`
//! ([`Settings::restart_only_changes`] lists the latter).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

const ENV_PREFIX: &str = "TEAMSGW";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub daemon: DaemonSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub tls: TlsSettings,
    pub sip: SipSettings,
    pub teams: TeamsSettings,
    pub pbx: PbxSettings,
    pub media: MediaSettings,
    pub license: LicenseSettings,
    pub hep: HepSettings,
    pub calls: CallsSettings,
    pub dns: DnsSettings,
    pub cdr: CdrSettings,
}

/// Call detail records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdrSettings {
    /// Records of calls that started longer ago are deleted daily; 0 keeps them all.
    pub retention_days: u32,
}

impl Default for CdrSettings {
    fn default() -> Self {
        Self {
            retention_days: 400,
        }
    }
}

/// The resolver for every name teamsgw dials (Teams proxies and in-dialog hosts, PBXs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    /// `IP:PORT` of the DNS servers to ask; empty: `/etc/resolv.conf` and `/etc/hosts`.
    pub servers: Vec<String>,
}

/// Call handling that is not one leg's: which numbers are emergency calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsSettings {
    /// Calls from Teams to these are never refused by a direct route's `max_sessions`, reach
    /// the PBX as dialled, and are counted and logged.
    pub emergency_numbers: Vec<String>,
}

impl Default for CallsSettings {
    fn default() -> Self {
        Self {
            emergency_numbers: ["911", "933", "112", "999"].map(String::from).to_vec(),
        }
    }
}

/// SIP capture to a Homer collector (HEPv3 over UDP). Off unless `collector` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HepSettings {
    /// `host:port` of the collector (heplify-server listens on 9060).
    pub collector: Option<String>,
    /// Tells this SBC's captures apart at the collector.
    pub capture_id: u32,
    /// The collector's password (HEP chunk 0x000e), when it asks for one.
    pub auth_key: Option<String>,
}

/// Global switches of the optional license factors (licensing.md §1.3); an enterprise can
/// override each. Factor 1 (Managed Users–Direct Routing) always counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicenseSettings {
    pub lcm_factor: bool,
    pub ui_factor: bool,
    pub service_numbers_factor: bool,
    /// A second license change to the same user within this many hours is refused unless forced.
    pub change_cooldown_hours: u64,
    /// `teamsgw_license_warning{enterprise}` is 1 when usage passes this percentage of acquired.
    pub warning_percent: u8,
    /// How often the daemon recounts licenses (gauges) and writes today's audit row.
    pub refresh_seconds: u64,
    /// Criteria regexes (licensing.md §1.4) with placeholders `_PSTNGATEWAY_TO_REPLACE_`
    /// and `_MSTENANTID_TO_REPLACE_`.
    pub licensed_users_by_gateway: String,
    pub dr_numbers: String,
    /// Empty: no service-number tag is rejected.
    pub reject_as_service_numbers: String,
}

impl Default for LicenseSettings {
    fn default() -> Self {
        let criteria = teamsgw_license::factors::Criteria::default();
        Self {
            lcm_factor: true,
            ui_factor: true,
            service_numbers_factor: true,
            change_cooldown_hours: 24,
            warning_percent: 90,
            refresh_seconds: 300,
            licensed_users_by_gateway: criteria.licensed_users_by_gateway,
            dr_numbers: criteria.dr_numbers,
            reject_as_service_numbers: criteria.reject_as_service_numbers.unwrap_or_default(),
        }
    }
}

impl LicenseSettings {
    pub fn criteria(&self) -> teamsgw_license::factors::Criteria {
        teamsgw_license::factors::Criteria {
            licensed_users_by_gateway: self.licensed_users_by_gateway.clone(),
            dr_numbers: self.dr_numbers.clone(),
            reject_as_service_numbers: (!self.reject_as_service_numbers.is_empty())
                .then(|| self.reject_as_service_numbers.clone()),
        }
    }

    pub fn cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.change_cooldown_hours.saturating_mul(3600))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSettings {
    /// Writable directory for generated files (development certificate).
    pub state_dir: PathBuf,
    /// How long SIGTERM waits for in-flight work before exiting.
    pub drain_seconds: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("var"),
            drain_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// Bearer token for `/api/v1` and the console's sign-in. Unset: both refuse everyone.
    pub token: Option<String>,
    /// A console session ends after this long without a request.
    pub session_idle_seconds: u64,
    /// ... and this long after sign-in, however busy.
    pub session_max_hours: u64,
    /// Bearer token `/metrics` asks for; unset: `/metrics` is open (bind admin.listen to a
    /// management address).
    pub metrics_token: Option<String>,
}

/// The shortest admin token taken: 32 characters (a random 24-byte token in base64, or 128
/// bits in hex) puts guessing out of reach even without the sign-in throttle.
pub const MIN_TOKEN_LEN: usize = 32;

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090),
            token: None,
            session_idle_seconds: 1800,
            session_max_hours: 12,
            metrics_token: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: LogLevel("info".to_owned()),
            format: LogFormat::Text,
        }
    }
}

/// A `tracing` filter directive (`info`, `debug`, `info,teamsgw_sip=debug`), checked on load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLevel(String);

impl LogLevel {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn filter(&self) -> EnvFilter {
        // Validated on deserialisation; an empty filter is the safe fallback.
        EnvFilter::try_new(&self.0).unwrap_or_else(|_| EnvFilter::new("info"))
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EnvFilter::try_new(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a log filter ({e}); use error, warn, info, debug or trace"
            ))
        })?;
        Ok(Self(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    /// Where the AES-256-GCM key that seals SIP passwords lives: `file:PATH` or `env:NAME`.
    pub password_key: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://var/teamsgw.db".to_owned(),
            password_key: "file:var/password.key".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM chain, leaf first. Unset: a development certificate is generated in `state_dir`.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// PEM bundle of CAs that peer certificates must chain to.
    pub trust_anchors: PathBuf,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            certificate: None,
            key: None,
            trust_anchors: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipSettings {
    pub max_message_size: usize,
    pub max_headers: usize,
    pub idle_timeout_seconds: u64,
    /// A message whose first bytes arrived must be complete within this.
    pub message_timeout_seconds: u64,
    pub max_connections: usize,
    /// Connections one source may hold on the PBX listeners.
    pub max_connections_per_source: usize,
    pub tls_handshake_timeout_seconds: u64,
    pub udp_receive_buffer_bytes: usize,
}

impl Default for SipSettings {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_headers: 256,
            idle_timeout_seconds: 300,
            message_timeout_seconds: 10,
            max_connections: 20_000,
            max_connections_per_source: 64,
            tls_handshake_timeout_seconds: 5,
            udp_receive_buffer_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamsSettings {
    pub listen: SocketAddr,
    /// Sources allowed to connect (Microsoft's signalling ranges by default).
    pub allowed_sources: Vec<String>,
    /// Patterns the client certificate's DNS names must match (empty: any trusted certificate).
    pub allowed_peer_names: Vec<String>,
    /// The carrier's base FQDN; tenant FQDNs are single labels under it.
    pub base_fqdn: String,
    pub proxies: Vec<String>,
    pub proxy_port: u16,
    pub options_interval_seconds: u64,
    /// First part of `X-MS-SBC: <vendor>/teamsgw/<version>`.
    pub sbc_vendor: String,
    /// An INVITE to a Teams proxy with no response at all in this time goes to the next one.
    pub invite_timeout_seconds: u64,
    /// A PBX's hold towards Teams: `inactive` (hold Teams) or `relay` (Teams stays un-held and
    /// hears the PBX's music on hold).
    pub hold_towards_teams: String,
}

/// The embedded default `teams.base_fqdn`: a reserved name no SBC can have. While it is in
/// use no OPTIONS are sent (Teams would refuse them, and a first run must not dial Microsoft).
pub const PLACEHOLDER_BASE_FQDN: &str = "sbc.example.invalid";

impl Default for TeamsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5061),
            // reference: teams-direct-routing.md §1.4 (52.120.0.0/14 contains 52.122.0.0/15).
            allowed_sources: vec!["52.112.0.0/14".to_owned(), "52.120.0.0/14".to_owned()],
            allowed_peer_names: vec!["*.pstnhub.microsoft.com".to_owned()],
            base_fqdn: PLACEHOLDER_BASE_FQDN.to_owned(),
            proxies: ["sip", "sip2", "sip3"]
                .iter()
                .map(|h| format!("{h}.pstnhub.microsoft.com"))
                .collect(),
            proxy_port: 5061,
            options_interval_seconds: 60,
            sbc_vendor: "teamsgw".to_owned(),
            invite_timeout_seconds: 5,
            hold_towards_teams: "inactive".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PbxSettings {
    pub listen_udp: SocketAddr,
    pub listen_tcp: SocketAddr,
    pub allowed_sources: Vec<String>,
    pub unregister_on_shutdown: bool,
    /// Keep a REGISTER binding at its PBX for every user; false on a standby node that shares
    /// the database with the active one (two nodes must not fight over the same bindings).
    pub register_users: bool,
    /// Address the PBXs reach us at (Contact and Via of our REGISTERs); unset: the
    /// listen_udp address, which must then be a concrete one.
    pub advertised_address: Option<String>,
    /// New REGISTER attempts per second across all users.
    pub register_rate_per_second: u32,
    /// Authentication failures in a row after which a user is `auth_failed`.
    pub max_auth_attempts: u32,
    /// The session interval (RFC 4028) we ask for in every INVITE and use on a PBX leg whose
    /// PBX offers none.
    pub session_expires_seconds: u64,
    /// Where a PBX leg's RTP may come from: its SDP address, or one learned (NAT).
    pub media_source: PbxMediaSource,
    /// Requests outside dialogs one source may send a second (bursts of twice that).
    pub max_requests_per_second_per_source: u32,
}

/// `pbx.media_source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PbxMediaSource {
    #[default]
    Sdp,
    Learn,
}

impl From<PbxMediaSource> for teamsgw_media::pbx_source::MediaSource {
    fn from(s: PbxMediaSource) -> Self {
        match s {
            PbxMediaSource::Sdp => Self::Sdp,
            PbxMediaSource::Learn => Self::Learn,
        }
    }
}

impl Default for PbxSettings {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Self {
            listen_udp: SocketAddr::new(any, 5060),
            listen_tcp: SocketAddr::new(any, 5060),
            allowed_sources: vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()],
            unregister_on_shutdown: true,
            register_users: true,
            advertised_address: None,
            register_rate_per_second: 200,
            max_auth_attempts: 3,
            session_expires_seconds: 1800,
            media_source: PbxMediaSource::Sdp,
            max_requests_per_second_per_source: 50,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub bind_address: IpAddr,
    pub advertised_address: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
    pub timeout_seconds: u64,
    pub batch_window_microseconds: u64,
    pub raw_socket: bool,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            advertised_address: None,
            port_min: 20000,
            port_max: 29999,
            timeout_seconds: 60,
            batch_window_microseconds: 1000,
            raw_socket: false,
        }
    }
}

/// One thing wrong with a configuration, by key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Everything wrong with a configuration. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Problems {
    fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![Problem {
            key: key.into(),
            message: message.into(),
        }])
    }
}

impl Settings {
    /// Loads the file at `path` with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, Problems> {
        Self::load_with_env(path, None)
    }

    /// Loads with an explicit environment (tests), or the process environment when `None`.
    pub fn load_with_env(
        path: &Path,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Self, Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(path.display().to_string(), format!("cannot read: {e}")))?;
        let env_source = env
            .clone()
            .map(|m| m.into_iter().collect::<config::Map<String, String>>());
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("teams.proxies")
            .with_list_parse_key("teams.allowed_sources")
            .with_list_parse_key("teams.allowed_peer_names")
            .with_list_parse_key("pbx.allowed_sources")
            .source(env_source);
        let merged = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(environment)
            .build()
            .map_err(|e| Problems::one(path.display().to_string(), e.to_string()))?;

        let tree: config::Map<String, config::Value> = merged
            .clone()
            .try_deserialize()
            .map_err(|e| Problems::one(path.display().to_string(), e.to_string()))?;
        let env_names = env.map(|m| m.into_keys().collect::<Vec<_>>());
        let mut problems = check_keys_and_types(&tree, env_names.as_deref());
        if !problems.is_empty() {
            problems.sort_by(|a, b| a.key.cmp(&b.key));
            return Err(Problems(problems));
        }
        let settings: Settings = merged
            .try_deserialize()
            .map_err(|e| Problems::one("(config)", clean_message(&e.to_string())))?;
        let problems = settings.semantic_problems();
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(Problems(problems))
        }
    }

    /// Rules that span keys or ranges that types cannot express.
    fn semantic_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(Problem {
                key: key.to_owned(),
                message,
            })
        };
        if let Some(c) = &self.hep.collector {
            let port = c
                .rsplit_once(':')
                .and_then(|(h, p)| (!h.is_empty()).then_some(p));
            if port
                .and_then(|p| p.parse::<u16>().ok())
                .is_none_or(|p| p == 0)
            {
                bad("hep.collector", format!("{c:?} is not host:port"));
            }
        }
        for s in &self.dns.servers {
            if s.parse::<std::net::SocketAddr>().is_err() {
                bad(
                    "dns.servers",
                    format!("{s:?} is not IP:PORT (for example \"192.0.2.53:53\")"),
                );
            }
        }
        for n in &self.calls.emergency_numbers {
            let digits = n.strip_prefix('+').unwrap_or(n);
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                bad(
                    "calls.emergency_numbers",
                    format!("{n:?} is not a number of 1-15 digits (E.164 §6)"),
                );
            }
        }
        if self.daemon.drain_seconds > 3600 {
            bad(
                "daemon.drain_seconds",
                format!("{} is more than 3600", self.daemon.drain_seconds),
            );
        }
        if teamsgw_store::Backend::from_url(&self.database.url).is_none() {
            bad(
                "database.url",
                format!(
                    "{:?} is not sqlite://PATH or postgres://...",
                    self.database.url
                ),
            );
        }
        if !(self.database.password_key.starts_with("file:")
            || self.database.password_key.starts_with("env:"))
        {
            bad(
                "database.password_key",
                format!(
                    "{:?} is not file:PATH or env:NAME",
                    self.database.password_key
                ),
            );
        }
        match (&self.tls.certificate, &self.tls.key) {
            (Some(_), None) => bad("tls.key", "must be set when tls.certificate is".into()),
            (None, Some(_)) => bad("tls.certificate", "must be set when tls.key is".into()),
            _ => {}
        }
        if self.teams.base_fqdn.is_empty() || !self.teams.base_fqdn.contains('.') {
            bad(
                "teams.base_fqdn",
                format!("{:?} is not a fully qualified name", self.teams.base_fqdn),
            );
        }
        for (key, list) in [
            ("teams.allowed_sources", &self.teams.allowed_sources),
            ("pbx.allowed_sources", &self.pbx.allowed_sources),
        ] {
            for (i, entry) in list.iter().enumerate() {
                if let Err(e) = entry.parse::<teamsgw_sip::acl::Cidr>() {
                    bad(key, format!("entry {}: {e}", i + 1));
                }
            }
        }
        if self.sip.max_message_size < 1500 || self.sip.max_message_size > 1 << 20 {
            bad(
                "sip.max_message_size",
                format!("{} is outside 1500..=1048576", self.sip.max_message_size),
            );
        }
        if self.sip.max_headers == 0 {
            bad("sip.max_headers", "must be at least 1".into());
        }
        if self.pbx.max_requests_per_second_per_source == 0 {
            bad(
                "pbx.max_requests_per_second_per_source",
                "must be at least 1".into(),
            );
        }
        if self.sip.message_timeout_seconds == 0 {
            bad("sip.message_timeout_seconds", "must be at least 1".into());
        }
        if self.sip.max_connections_per_source == 0 {
            bad(
                "sip.max_connections_per_source",
                "must be at least 1".into(),
            );
        }
        if self.sip.idle_timeout_seconds == 0 {
            bad("sip.idle_timeout_seconds", "must be at least 1".into());
        }
        if self.sip.tls_handshake_timeout_seconds == 0 {
            bad(
                "sip.tls_handshake_timeout_seconds",
                "must be at least 1".into(),
            );
        }
        if self.teams.invite_timeout_seconds == 0 || self.teams.invite_timeout_seconds > 32 {
            bad(
                "teams.invite_timeout_seconds",
                "must be 1 to 32 (Timer B ends an INVITE at 32 s anyway)".into(),
            );
        }
        if !matches!(self.teams.hold_towards_teams.as_str(), "inactive" | "relay") {
            bad(
                "teams.hold_towards_teams",
                "must be \"inactive\" or \"relay\"".into(),
            );
        }
        if !(90..=86_400).contains(&self.pbx.session_expires_seconds) {
            bad(
                "pbx.session_expires_seconds",
                "must be 90 to 86400 (RFC 4028 §4: no interval below 90 s)".into(),
            );
        }
        if self.teams.options_interval_seconds == 0 {
            bad(
                "teams.options_interval_seconds",
                "must be at least 1".into(),
            );
        }
        if !self.media.port_min.is_multiple_of(2) {
            bad(
                "media.port_min",
                format!("{} is odd; RTP uses even ports", self.media.port_min),
            );
        }
        if self.media.port_min >= self.media.port_max {
            bad(
                "media.port_max",
                format!(
                    "{} is not above media.port_min {}",
                    self.media.port_max, self.media.port_min
                ),
            );
        }
        if self.media.timeout_seconds == 0 {
            bad("media.timeout_seconds", "must be at least 1".into());
        }
        if self.media.batch_window_microseconds > 5000 {
            bad(
                "media.batch_window_microseconds",
                format!(
                    "{} is more than 5000 (a quarter of a 20 ms packet interval)",
                    self.media.batch_window_microseconds
                ),
            );
        }
        if self.pbx.register_rate_per_second == 0 {
            bad("pbx.register_rate_per_second", "must be at least 1".into());
        }
        if self.pbx.max_auth_attempts == 0 {
            bad("pbx.max_auth_attempts", "must be at least 1".into());
        }
        if let Some(a) = &self.pbx.advertised_address
            && (a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '@' || c == ';'))
        {
            bad(
                "pbx.advertised_address",
                format!("{a:?} is not a host or IP address"),
            );
        }
        if self.teams.sbc_vendor.is_empty()
            || self
                .teams
                .sbc_vendor
                .contains(|c: char| c.is_control() || c == '/')
        {
            bad(
                "teams.sbc_vendor",
                "must be non-empty printable text without '/'".into(),
            );
        }
        if self.license.warning_percent > 100 {
            bad(
                "license.warning_percent",
                format!("{} is above 100", self.license.warning_percent),
            );
        }
        for (key, token) in [
            ("admin.token", &self.admin.token),
            ("admin.metrics_token", &self.admin.metrics_token),
        ] {
            if let Some(t) = token
                && t.chars().count() < MIN_TOKEN_LEN
            {
                bad(
                    key,
                    format!(
                        "{} characters is fewer than {MIN_TOKEN_LEN}; generate one with \
                         `openssl rand -hex 32`",
                        t.chars().count()
                    ),
                );
            }
        }
        if !(1..=720).contains(&self.admin.session_max_hours) {
            bad(
                "admin.session_max_hours",
                format!("{} is outside 1..=720", self.admin.session_max_hours),
            );
        }
        if !(60..=86_400).contains(&self.admin.session_idle_seconds) {
            bad(
                "admin.session_idle_seconds",
                format!("{} is outside 60..=86400", self.admin.session_idle_seconds),
            );
        }
        if self.license.refresh_seconds == 0 {
            bad("license.refresh_seconds", "must be at least 1".into());
        }
        if let Err(e) = self.license.criteria().check() {
            bad(&format!("license.{}", e.name), e.problem);
        }
        out
    }

    /// Keys that differ from `new` but only take effect after a restart.
    pub fn restart_only_changes(&self, new: &Settings) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |changed: bool, key: &'static str| {
            if changed {
                out.push(key)
            }
        };
        check(self.admin.listen != new.admin.listen, "admin.listen");
        check(self.log.format != new.log.format, "log.format");
        check(self.database.url != new.database.url, "database.url");
        check(
            self.daemon.state_dir != new.daemon.state_dir,
            "daemon.state_dir",
        );
        check(self.teams.listen != new.teams.listen, "teams.listen");
        check(self.pbx.listen_udp != new.pbx.listen_udp, "pbx.listen_udp");
        check(self.pbx.listen_tcp != new.pbx.listen_tcp, "pbx.listen_tcp");
        check(self.media != new.media, "media");
        check(self.sip != new.sip, "sip");
        check(self.hep != new.hep, "hep");
        check(self.calls != new.calls, "calls");
        check(
            self.teams.allowed_sources != new.teams.allowed_sources,
            "teams.allowed_sources",
        );
        check(
            self.teams.allowed_peer_names != new.teams.allowed_peer_names,
            "teams.allowed_peer_names",
        );
        check(
            self.pbx.allowed_sources != new.pbx.allowed_sources,
            "pbx.allowed_sources",
        );
        // The registration agent and trunk health take their settings at start.
        check(
            self.pbx.advertised_address != new.pbx.advertised_address,
            "pbx.advertised_address",
        );
        check(
            self.pbx.register_users != new.pbx.register_users,
            "pbx.register_users",
        );
        check(
            self.pbx.register_rate_per_second != new.pbx.register_rate_per_second,
            "pbx.register_rate_per_second",
        );
        check(
            self.pbx.max_auth_attempts != new.pbx.max_auth_attempts,
            "pbx.max_auth_attempts",
        );
        let trunk = |t: &TeamsSettings| {
            (
                t.base_fqdn.clone(),
                t.proxies.clone(),
                t.proxy_port,
                t.options_interval_seconds,
                t.sbc_vendor.clone(),
            )
        };
        check(
            trunk(&self.teams) != trunk(&new.teams),
            "teams.base_fqdn/proxies/proxy_port/options_interval_seconds/sbc_vendor",
        );
        out
    }
}

/// Walks the merged tree against the known keys (those of `Settings::default()`), and checks
/// every known leaf on its own so that each bad value is reported, not only the first.
fn check_keys_and_types(
    tree: &config::Map<String, config::Value>,
    env_names: Option<&[String]>,
) -> Vec<Problem> {
    let schema = match serde_json::to_value(Settings::default()) {
        Ok(v) => v,
        Err(e) => return vec![Problem::internal(e)],
    };
    let mut leaves = Vec::new();
    let mut problems = Vec::new();
    walk(tree, &schema, "", &mut leaves, &mut problems, env_names);
    for (key, value) in leaves {
        let single = config::Config::builder()
            .set_override(key.as_str(), value)
            .and_then(|b| b.build())
            .and_then(|c| c.try_deserialize::<Settings>());
        if let Err(e) = single {
            problems.push(Problem {
                key: with_env_hint(&key, env_names),
                message: clean_message(&e.to_string()),
            });
        }
    }
    problems
}

fn walk(
    tree: &config::Map<String, config::Value>,
    schema: &serde_json::Value,
    prefix: &str,
    leaves: &mut Vec<(String, config::Value)>,
    problems: &mut Vec<Problem>,
    env_names: Option<&[String]>,
) {
    for (name, value) in tree {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some(expected) = schema.get(name) else {
            problems.push(Problem {
                key: with_env_hint(&key, env_names),
                message: "unknown key (see config/teamsgw.toml for the valid keys)".to_owned(),
            });
            continue;
        };
        match (&value.kind, expected) {
            (config::ValueKind::Table(sub), serde_json::Value::Object(_)) => {
                walk(sub, expected, &key, leaves, problems, env_names)
            }
            (_, serde_json::Value::Object(_)) => problems.push(Problem {
                key: with_env_hint(&key, env_names),
                message: "must be a table (a [section])".to_owned(),
            }),
            _ => leaves.push((key, value.clone())),
        }
    }
}

/// Names the environment variable when the key came from one, since that is where to fix it.
fn with_env_hint(key: &str, env_names: Option<&[String]>) -> String {
    let var = format!(
        "{ENV_PREFIX}_{}",
        key.replace('.', "__").to_ascii_uppercase()
    );
    let from_env = match env_names {
        Some(names) => names.iter().any(|n| n.eq_ignore_ascii_case(&var)),
        None => std::env::vars_os().any(|(n, _)| n.to_string_lossy().eq_ignore_ascii_case(&var)),
    };
    if from_env {
        format!("{key} (from environment {var})")
    } else {
        key.to_owned()
    }
}

/// config-rs appends "for key `x` in <origin>"; the key is already in front of our message.
fn clean_message(message: &str) -> String {
    match message.find(" for key `") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl Problem {
    fn internal(e: impl fmt::Display) -> Self {
        Self {
            key: "(config)".to_owned(),
            message: format!("internal error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, Problems> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teamsgw.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(&path, Some(env))
    }

    fn keys(p: &Problems) -> Vec<&str> {
        p.0.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        assert_eq!(load("", &[]).unwrap(), Settings::default());
    }

    #[test]
    fn shipped_config_file_is_valid_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/teamsgw.toml");
        let settings = Settings::load_with_env(&path, Some(BTreeMap::new())).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn an_admin_or_metrics_token_shorter_than_32_characters_is_refused_issue_31_7() {
        let err = load(
            "[admin]\ntoken = \"short-token\"\nmetrics_token = \"also-short\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(keys(&err), vec!["admin.token", "admin.metrics_token"]);
        assert!(err.to_string().contains("fewer than 32"), "{err}");
        let long = "x".repeat(32);
        assert!(load(&format!("[admin]\ntoken = \"{long}\"\n"), &[]).is_ok());
        // The environment is held to the same rule.
        let err = load("", &[("TEAMSGW_ADMIN__TOKEN", "abc")]).unwrap_err();
        assert_eq!(keys(&err), vec!["admin.token"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_all_reported_by_path() {
        let err = load(
            "[admin]\nlisten = \"nowhere:99999\"\nlisn = 1\n[log]\nformat = \"xml\"\n[bogus]\nx = 1\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            keys(&err),
            vec!["admin.lisn", "admin.listen", "bogus", "log.format"],
            "{err}"
        );
        let listen = err.0.iter().find(|p| p.key == "admin.listen").unwrap();
        assert!(listen.message.contains("socket address"), "{listen}");
        let fmt = err.0.iter().find(|p| p.key == "log.format").unwrap();
        assert!(fmt.message.contains("xml"), "{fmt}");
    }

    #[test]
    fn environment_overrides_the_file_and_is_named_when_wrong() {
        let s = load(
            "[admin]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("TEAMSGW_ADMIN__LISTEN", "127.0.0.1:2"),
                ("TEAMSGW_DAEMON__DRAIN_SECONDS", "5"),
                ("TEAMSGW_TEAMS__PROXIES", "a.example,b.example"),
            ],
        )
        .unwrap();
        assert_eq!(s.admin.listen.port(), 2);
        assert_eq!(s.daemon.drain_seconds, 5);
        assert_eq!(s.teams.proxies, vec!["a.example", "b.example"]);

        let err = load("", &[("TEAMSGW_ADMIN__LISTN", "x")]).unwrap_err();
        assert_eq!(
            keys(&err),
            vec!["admin.listn (from environment TEAMSGW_ADMIN__LISTN)"]
        );
    }

    #[test]
    fn bad_log_filter_and_cross_key_rules() {
        let err = load("[log]\nlevel = \"info,[\"\n", &[]).unwrap_err();
        assert_eq!(keys(&err), vec!["log.level"]);

        let err = load(
            "[tls]\ncertificate = \"/x.pem\"\n[media]\nport_min = 30001\nport_max = 30000\n[database]\nurl = \"mysql://x\"\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            keys(&err),
            vec![
                "database.url",
                "tls.key",
                "media.port_min",
                "media.port_max"
            ]
        );

        let err = load("[media]\nbatch_window_microseconds = 5001\n", &[]).unwrap_err();
        assert_eq!(keys(&err), vec!["media.batch_window_microseconds"]);
        assert!(load("[media]\nbatch_window_microseconds = 0\n", &[]).is_ok());

        // RFC 4028 §4: no session interval below 90 s.
        let err = load("[teams]\nhold_towards_teams = \"music\"\n", &[]).unwrap_err();
        assert_eq!(keys(&err), vec!["teams.hold_towards_teams"]);
        let err = load("[pbx]\nsession_expires_seconds = 60\n", &[]).unwrap_err();
        assert_eq!(keys(&err), vec!["pbx.session_expires_seconds"]);
        assert!(load("[pbx]\nsession_expires_seconds = 90\n", &[]).is_ok());
    }

    #[test]
    fn allow_lists_are_checked_entry_by_entry() {
        let err = load(
            "[teams]\nallowed_sources = [\"52.112.0.0/14\", \"52.112.0.1/14\"]\n[pbx]\nallowed_sources = [\"x\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            keys(&err),
            vec!["teams.allowed_sources", "pbx.allowed_sources"]
        );
        assert!(err.0[0].message.starts_with("entry 2:"), "{err}");
        let ok = load(
            "",
            &[("TEAMSGW_PBX__ALLOWED_SOURCES", "10.0.0.0/8,192.0.2.0/24")],
        )
        .unwrap();
        assert_eq!(ok.pbx.allowed_sources, vec!["10.0.0.0/8", "192.0.2.0/24"]);
    }

    #[test]
    fn toml_syntax_error_names_the_file() {
        let err = load("[admin\n", &[]).unwrap_err();
        assert!(err.0[0].key.ends_with("teamsgw.toml"), "{err}");
    }

    #[test]
    fn restart_only_changes_are_listed() {
        let old = Settings::default();
        let mut new = old.clone();
        new.log.level = LogLevel("debug".into());
        assert!(old.restart_only_changes(&new).is_empty());
        new.admin.listen.set_port(1);
        assert_eq!(old.restart_only_changes(&new), vec!["admin.listen"]);
    }
}
