//! A lab for call tests: a test CA, the real daemon with its Teams TLS listener, Kamailio as
//! the customer's hosted PBX (`kamailio/pbx.cfg`), one enterprise with its direct route, PBX
//! and Teams user provisioned through the CLI, and the user registered at Kamailio.
//! baresip instances (phones behind the PBX, the Teams endpoint) are added by the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use teamsgw_sip::test_pki::{LeafFiles, TestCa};

use crate::baresip::{Baresip, BaresipSpec};
use crate::dns::Dns;
use crate::kamailio::Kamailio;
use crate::teams_proxy::TeamsProxy;
use crate::teams_uac::TeamsUac;
use crate::{Daemon, Ports, free_port, free_tcp_udp_port, run_cli, test_config};

pub const TENANT: &str = "cust1.sbc.test";
/// The Teams user: number, extension at the PBX.
pub const TEAMS_NUMBER: &str = "+49301001001";
pub const TEAMS_EXTENSION: &str = "1001";
pub const ADMIN_TOKEN: &str = "call-lab-token-0123456789-0123456789abcdef";

pub struct CallLab {
    pub ca: TestCa,
    pub kamailio: Kamailio,
    pub daemon: Daemon,
    pub ports: Ports,
    pub dir: tempfile::TempDir,
    /// The Teams endpoint's certificate and key in one file (baresip's `sip_certificate`).
    pub teams_cert: PathBuf,
    /// The same certificate as PEM files (the in-house Teams peers).
    pub teams_leaf: LeafFiles,
    /// Resolves the tenant FQDN to loopback for the Teams endpoint.
    pub dns: Dns,
    /// baresip endpoints started from now on log their SIP ([`Baresip::received_from`]).
    pub sip_trace: bool,
}

impl CallLab {
    /// `extra_config` is added to the daemon's config (sections the harness does not set);
    /// `proxies` are `teams.proxies` on `proxy_port`.
    pub fn start(
        extra_config: &str,
        proxies: &[&str],
        proxy_port: u16,
        max_sessions: Option<u32>,
    ) -> CallLab {
        Self::start_with_env(extra_config, proxies, proxy_port, max_sessions, &[], &[])
    }

    /// [`CallLab::start`] with `TEAMSGW_<SECTION>__<KEY>` overrides for the daemon and
    /// `kamailio/pbx.cfg` defines (`REFUSE_REFER`) for the PBX.
    pub fn start_with_env(
        extra_config: &str,
        proxies: &[&str],
        proxy_port: u16,
        max_sessions: Option<u32>,
        env: &[(&str, &str)],
        pbx_defines: &[&str],
    ) -> CallLab {
        Self::launch(
            extra_config,
            proxies,
            proxy_port,
            max_sessions,
            env,
            pbx_defines,
            None,
        )
    }

    /// [`CallLab::start`] with the provisioning database at `database_url` (a PostgreSQL the
    /// test started) instead of SQLite; the daemon and the CLI both use it.
    pub fn start_on_database(database_url: &str) -> CallLab {
        Self::launch("", &[], 5061, None, &[], &[], Some(database_url))
    }

    fn launch(
        extra_config: &str,
        proxies: &[&str],
        proxy_port: u16,
        max_sessions: Option<u32>,
        env: &[(&str, &str)],
        pbx_defines: &[&str],
        database_url: Option<&str>,
    ) -> CallLab {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path(), "call-lab-ca");
        let ours = ca.leaf("sbc", &["sbc.test", "*.sbc.test"]);
        // Teams' in-dialog targets are api-du-… names (§1.5): each proxy at an IP answers
        // with one of its own, which the lab's DNS maps back to it.
        let mut names = vec!["sip.pstnhub.test", "*.pstnhub.microsoft.com"];
        names.extend_from_slice(proxies);
        // The tenant FQDN and the carrier trunk (`teams.base_fqdn`, Operator Connect) are us.
        let mut records = vec![
            (TENANT, std::net::Ipv4Addr::LOCALHOST),
            ("sbc.test", std::net::Ipv4Addr::LOCALHOST),
        ];
        let api_du: Vec<(String, std::net::Ipv4Addr)> = proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .map(|ip| (crate::teams_proxy::api_du_name(ip), ip))
            .collect();
        records.extend(api_du.iter().map(|(n, ip)| (n.as_str(), *ip)));
        let dns = Dns::start_records(&records);
        // Teams' side as Microsoft's proxies present themselves since 2026 (§1.3): serverAuth
        // only, under an intermediate; the in-house peers and baresip all use it.
        let teams = ca.microsoft_leaf("teams", &names);
        let teams_cert = dir.path().join("teams-cert-key.pem");
        let pem = std::fs::read_to_string(&teams.cert).unwrap()
            + &std::fs::read_to_string(&teams.key).unwrap();
        std::fs::write(&teams_cert, pem).unwrap();
        let kamailio = Kamailio::start_config("kamailio/pbx.cfg", pbx_defines);
        let ports = Ports::new();
        let media_min = 30000 + 2 * (free_port() % 8000);
        let proxies_toml: Vec<String> = proxies.iter().map(|p| format!("\"{p}\"")).collect();
        let config = test_config(
            &ports,
            &format!(
                "{}\n[media]\nbind_address = \"127.0.0.1\"\nport_min = {media_min}\nport_max = {}\ntimeout_seconds = 10\n\n\
                 [license]\nrefresh_seconds = 3600\n\n[dns]\nservers = [\"{}\"]\n\n{extra_config}",
                ours.tls_section(&ca),
                media_min + 1999,
                dns.addr,
            ),
        )
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"))
        .replace(
            "proxies = []\n",
            &format!(
                "proxies = [{}]\nproxy_port = {proxy_port}\nbase_fqdn = \"sbc.test\"\n\
                 allowed_peer_names = [\"sip.pstnhub.test\"]\noptions_interval_seconds = 1\n",
                proxies_toml.join(", ")
            ),
        )
        .replace(
            "register_users = false",
            "register_users = true\nadvertised_address = \"127.0.0.1\"",
        );
        let config = match database_url {
            Some(url) => config.replace("sqlite://var/teamsgw.db", url),
            None => config,
        };
        let mut daemon = Daemon::start_with_env(&config, &ports, env);
        daemon.wait_ready(Duration::from_secs(30));
        let lab = CallLab {
            ca,
            kamailio,
            daemon,
            ports,
            dir,
            teams_cert,
            teams_leaf: teams,
            dns,
            sip_trace: false,
        };
        lab.provision(max_sessions);
        lab
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let mut full = vec!["--config", "teamsgw.toml"];
        full.extend_from_slice(args);
        let (code, out, err) = run_cli(self.daemon.dir(), &full);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    }

    fn provision(&self, max_sessions: Option<u32>) {
        self.cli(&[
            "enterprise",
            "add",
            "Contoso",
            "--tenant-id",
            "0e1b2c3d-1111-2222-3333-444455556666",
            "--acquired-licenses",
            "10",
        ]);
        self.cli(&[
            "enterprise",
            "sku",
            "add",
            "Contoso",
            "--sku",
            "SPE_E5",
            "--units",
            "10",
        ]);
        let port = self.ports.tls.to_string();
        let max = max_sessions.map(|m| m.to_string());
        let mut route = vec![
            "direct-route",
            "add",
            "--enterprise",
            "Contoso",
            "--fqdn",
            TENANT,
            "--port",
            &port,
        ];
        if let Some(m) = &max {
            route.extend_from_slice(&["--max-sessions", m]);
        }
        self.cli(&route);
        let proxy = self.kamailio.addr.to_string();
        self.cli(&[
            "pbx",
            "add",
            "--enterprise",
            "Contoso",
            "--name",
            "main",
            "--domain",
            "127.0.0.1",
            "--proxy",
            &proxy,
            "--transport",
            "udp",
            "--expires",
            "600",
        ]);
        std::fs::write(
            self.daemon.dir().join("pw"),
            format!("pw-{TEAMS_EXTENSION}"),
        )
        .unwrap();
        self.cli(&[
            "user",
            "add",
            "--enterprise",
            "Contoso",
            "--pbx",
            "main",
            "--upn",
            "alice@contoso.test",
            "--number",
            TEAMS_NUMBER,
            "--extension",
            TEAMS_EXTENSION,
            "--password-file",
            "pw",
            "--sku",
            "SPE_E5",
        ]);
        self.daemon.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self
            .kamailio
            .bindings()
            .contains(&format!("AoR: {TEAMS_EXTENSION}\n"))
        {
            assert!(
                Instant::now() < deadline,
                "the Teams user never registered at the PBX:\n{}\n{}",
                self.daemon.log(),
                self.kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A phone with `extension` registered at the PBX, auto-answering, sending `tone_hz`.
    pub fn phone(&self, extension: &str, tone_hz: u32) -> Baresip {
        self.phone_answering(extension, tone_hz, true)
    }

    /// A phone that answers by itself (`auto`) or only rings.
    pub fn phone_answering(&self, extension: &str, tone_hz: u32, auto: bool) -> Baresip {
        let mode = if auto { "auto" } else { "manual" };
        self.phone_with(extension, tone_hz, &format!(";answermode={mode}"))
    }

    /// A phone with `params` added to its account (`;answermode=auto;audio_codecs=G722`).
    pub fn phone_with(&self, extension: &str, tone_hz: u32, params: &str) -> Baresip {
        let listen: SocketAddr = ([127, 0, 0, 1], free_tcp_udp_port()).into();
        let k = self.kamailio.addr;
        let b = Baresip::start(BaresipSpec {
            account: format!(
                "<sip:{extension}@127.0.0.1>;auth_pass=pw-{extension};outbound=\"sip:{k}\";regint=600{params}"
            ),
            tone_hz,
            listen,
            tls: None,
            dns: None,
            sip_trace: self.sip_trace,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .kamailio
            .bindings()
            .contains(&format!("AoR: {extension}\n"))
        {
            assert!(
                Instant::now() < deadline,
                "phone {extension} did not register:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        b
    }

    /// The Teams endpoint: TLS with the Teams certificate, mandatory SRTP, calls through our
    /// Teams listener keeping the tenant FQDN in the Request-URI (test-peers.md). It listens
    /// on `listen` (a Teams proxy address for calls towards Teams: TLS on port + 1... as
    /// baresip binds it).
    pub fn teams_endpoint(&self, listen: SocketAddr, tone_hz: u32) -> Baresip {
        self.teams_endpoint_as(listen, tone_hz, TEAMS_NUMBER, TENANT)
    }

    /// [`CallLab::teams_endpoint`] for the Teams user with `number`, calling into `host`:
    /// a tenant FQDN (Direct Routing) or `teams.base_fqdn` (`sbc.test`, Operator Connect).
    pub fn teams_endpoint_as(
        &self,
        listen: SocketAddr,
        tone_hz: u32,
        number: &str,
        host: &str,
    ) -> Baresip {
        let tls = self.ports.tls;
        Baresip::start(BaresipSpec {
            account: format!(
                "<sip:{number}@{host}>;regint=0;outbound=\"sip:127.0.0.1:{tls};transport=tls\";mediaenc=srtp-mand;answermode=auto"
            ),
            tone_hz,
            listen,
            tls: Some((self.teams_cert.clone(), self.ca.ca_path())),
            dns: Some(self.dns.addr),
            sip_trace: self.sip_trace,
        })
    }

    /// One call between `a` (the caller, already dialled) and `b`: both ends heard each
    /// other's tone (`a_hz`, `b_hz`), then `a` hangs up; `n` counts the calls each has had.
    pub fn heard_both(&self, (a, a_hz): (&Baresip, u32), (b, b_hz): (&Baresip, u32), n: usize) {
        a.wait_count("Call established", n, Duration::from_secs(20));
        b.wait_count("Call established", n, Duration::from_secs(5));
        std::thread::sleep(Duration::from_secs(3));
        a.hangup();
        self.wait_calls_ended(&[a, b]);
        a.wait_count("terminated", n, Duration::from_secs(5));
        b.wait_count("terminated", n, Duration::from_secs(5));
        let logs = format!("{}\n--- a\n{}\n--- b\n{}", self.logs(), a.log(), b.log());
        for (who, end, hz) in [("a", a, b_hz), ("b", b, a_hz)] {
            let heard = end.heard();
            let wav = heard
                .last()
                .unwrap_or_else(|| panic!("{who} recorded nothing\n{logs}"));
            crate::baresip::assert_tone(who, crate::baresip::tone_of(wav), hz, &logs);
        }
    }

    /// Waits until no call is up (`teamsgw_calls_active` 0 both ways).
    pub fn wait_calls_ended(&self, peers: &[&Baresip]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, metrics) = self.daemon.get("/metrics");
            let active: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("teamsgw_calls_active{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if active == 0.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "calls still active:\n{}\n{}\n{}",
                peers
                    .iter()
                    .map(|p| p.log())
                    .collect::<Vec<_>>()
                    .join("\n---\n"),
                metrics
                    .lines()
                    .filter(|l| l.starts_with("teamsgw_call") || l.starts_with("teamsgw_sip_"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Teams user's contact token, as the PBX's location table holds it.
    pub fn contact_token(&self) -> String {
        let dump = self.kamailio.bindings();
        let needle = format!("@127.0.0.1:{}", self.ports.sip);
        dump.lines()
            .find_map(|l| {
                let end = l.find(&needle)?;
                let start = l[..end].rfind("sip:")? + 4;
                Some(l[start..end].to_owned())
            })
            .unwrap_or_else(|| panic!("no contact of ours in the PBX's location table:\n{dump}"))
    }

    /// Asserts that `n` calls are up in `direction` (`from_teams`, `to_teams`).
    pub fn assert_active(&self, direction: &str, n: u32) {
        let sample = format!("teamsgw_calls_active{{direction=\"{direction}\"}}");
        assert_eq!(self.metric(&sample), f64::from(n), "{}", self.logs());
    }

    /// The value of one metric sample; a sample that is not exposed fails the test.
    pub fn metric(&self, sample: &str) -> f64 {
        self.daemon.metric(sample)
    }

    /// Packets per second on one leg (`teams`, `pbx`) and direction (`in`, `out`) of the
    /// relay, over `window`.
    pub fn packet_rate(&self, leg: &str, direction: &str, window: Duration) -> f64 {
        let name =
            format!("teamsgw_media_packets_total{{direction=\"{direction}\",leg=\"{leg}\"}}");
        let before = self.metric(&name);
        std::thread::sleep(window);
        (self.metric(&name) - before) / window.as_secs_f64()
    }

    /// A scripted Teams client connected to our Teams listener.
    pub fn teams_uac(&self) -> TeamsUac {
        TeamsUac::connect(self.ports.tls, &self.ca, &self.teams_leaf)
    }

    /// The in-house Teams proxy on `addr` (one of the lab's `teams.proxies`).
    pub fn teams_proxy(&self, addr: SocketAddr) -> TeamsProxy {
        TeamsProxy::start(addr, &self.ca, &self.teams_leaf)
    }

    /// `teamsgw cdr list --json`, waiting up to 5 s for `n` records (they are written
    /// after the call ends).
    pub fn cdrs(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.cli(&["cdr", "list", "--json"]);
            let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CDR-bearing log lines and metrics, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- teamsgw\n{}\n--- kamailio\n{}",
            self.daemon.log(),
            self.kamailio.log()
        )
    }
}
