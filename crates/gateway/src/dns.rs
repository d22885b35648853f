//! The one resolver for every name teamsgw dials: Teams proxies, the `api-du-…` hosts Teams
//! names as in-dialog targets (teams-direct-routing.md §1.5), PBX proxies and domains.
//!
//! Built on hickory-resolver, which caches answers for their TTL (and failures for their
//! negative TTL), so a PBX with 10,000 users costs one lookup per TTL. `dns.servers` empty
//! means the system's `/etc/resolv.conf` and `/etc/hosts`. A failed lookup is tried again
//! with backoff inside [`Resolver::lookup`]; callers run it on their own task (a peer's
//! sender, the routing view builder), never on a call shard.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use prometheus::{IntCounterVec, Opts, Registry};

/// Attempts per lookup, and the wait before the second (doubled before each further one).
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);

/// Why a name has no address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    #[error("{0} does not exist or has no address")]
    NotFound(String),
    #[error("cannot resolve {0}: {1}")]
    Failed(String, String),
}

/// `teamsgw_dns_lookups_total{result}`: `ok`, `not_found` or `failed`, one per lookup a
/// caller made (answers from the cache included; literals are not lookups).
#[derive(Clone)]
pub struct DnsMetrics {
    lookups: IntCounterVec,
}

impl DnsMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "teamsgw_dns_lookups_total",
                "Name lookups for the peers teamsgw dials, by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        for r in ["ok", "not_found", "failed"] {
            lookups.with_label_values(&[r]);
        }
        Ok(Self { lookups })
    }

    /// Metrics nobody scrapes (tests, tools).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).unwrap_or_else(|_| unreachable!("a new registry is empty"))
    }
}

/// Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    metrics: DnsMetrics,
}

impl Resolver {
    /// `servers` as `IP:PORT` (the port defaults to 53); empty for the system's configuration.
    pub fn new(servers: &[String], metrics: DnsMetrics) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| format!("dns: cannot read the system's resolver configuration: {e}"))?
        } else {
            let mut name_servers = Vec::new();
            for s in servers {
                let addr = parse_server(s).ok_or_else(|| {
                    format!("dns.servers: {s:?} is not IP:PORT (for example \"192.0.2.53:53\")")
                })?;
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                name_servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
            }
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            );
            // The servers given answer for everything, /etc/hosts included.
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // SIP names are FQDNs: never try the host's search domains first.
        opts.ndots = 0;
        let inner = builder
            .build()
            .map_err(|e| format!("dns: cannot start the resolver: {e}"))?;
        Ok(Self { inner, metrics })
    }

    /// The addresses of `host` (a name or an IP literal, `[v6]` allowed) on `port`, IPv4
    /// first, in the order the answer gave them.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let mut wait = BACKOFF;
        let mut attempt = 1;
        let result = loop {
            match self.inner.lookup_ip(format!("{bare}.")).await {
                Ok(ips) => {
                    let mut v: Vec<SocketAddr> =
                        ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                    v.sort_by_key(|a| !a.is_ipv4());
                    break if v.is_empty() {
                        Err(DnsError::NotFound(bare.to_owned()))
                    } else {
                        Ok(v)
                    };
                }
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                    break Err(DnsError::NotFound(bare.to_owned()));
                }
                Err(e) if attempt >= ATTEMPTS => {
                    break Err(DnsError::Failed(bare.to_owned(), e.to_string()));
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(DnsError::NotFound(_)) => "not_found",
            Err(DnsError::Failed(..)) => "failed",
        };
        self.metrics.lookups.with_label_values(&[label]).inc();
        result
    }
}

fn parse_server(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_ip_and_port() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("dns.example.com:53"), None);
        let err = Resolver::new(&["nameserver".into()], DnsMetrics::unregistered())
            .err()
            .unwrap();
        assert!(
            err.contains("dns.servers") && err.contains("IP:PORT"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn literals_are_not_looked_up() {
        let r = Resolver::new(&["127.0.0.1:9".into()], DnsMetrics::unregistered()).unwrap();
        assert_eq!(
            r.lookup("[2001:db8::1]", 5061).await.unwrap(),
            vec!["[2001:db8::1]:5061".parse().unwrap()]
        );
        assert_eq!(
            r.lookup("192.0.2.1", 5060).await.unwrap(),
            vec!["192.0.2.1:5060".parse().unwrap()]
        );
    }
}
