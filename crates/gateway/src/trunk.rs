//! Teams trunk health, sans-IO: OPTIONS to each Teams SIP proxy every interval
//! (reference: teams-direct-routing.md §2.1) and an up/down verdict per proxy for the call layer.
//!
//! Each OPTIONS carries `Contact: <sip:<carrier FQDN>:<port>;transport=tls>` (mandatory for
//! Direct Routing; Teams sends its own OPTIONS back to that Contact), `Allow` exactly as we
//! answer it, and `X-MS-SBC: <vendor>/teamsgw/<version>`. A proxy is down after a timeout, a
//! transport/TLS failure or a 5xx; a 503 with Retry-After keeps it down, unprobed, that long
//! (§1.6). Any other final response means it is reachable: up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use teamsgw_sip::message::{Message, MessageBuilder};

use crate::registration::{Outcome, RequestId};
use crate::rng::Rng;
use crate::stateless::ALLOW;

#[derive(Debug, Clone)]
pub struct TrunkSettings {
    /// Teams SIP proxy host names, in failover order (sip, sip2, sip3).
    pub proxies: Vec<String>,
    pub port: u16,
    pub interval: Duration,
    /// The carrier base FQDN (Contact, From, Via) and the port Teams reaches us on.
    pub fqdn: String,
    pub local_port: u16,
    /// `X-MS-SBC` value.
    pub sbc_header: String,
    /// Fixes the identifiers' generator (tests); `None`: seeded from the OS.
    pub seed: Option<u64>,
}

/// A proxy's health as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatus {
    pub proxy: String,
    pub up: bool,
    /// `200 OK`, `timeout`, `503 Service Unavailable`, `transport: ...`; `None` before the first probe.
    pub last_result: Option<String>,
    pub next_probe: Instant,
}

/// An OPTIONS to put on a client transaction to `proxy:port` over TLS.
#[derive(Debug, Clone)]
pub struct Probe {
    pub id: RequestId,
    pub proxy: String,
    pub port: u16,
    pub request: Message,
}

struct Proxy {
    name: String,
    up: bool,
    last_result: Option<String>,
    next_probe: Instant,
    in_flight: Option<RequestId>,
    /// A call's 503 with Retry-After: down until then whatever an OPTIONS says.
    held_until: Option<Instant>,
}

pub struct TrunkHealth {
    settings: TrunkSettings,
    proxies: Vec<Proxy>,
    out: VecDeque<Probe>,
    /// (proxy, result label) for `teamsgw_teams_options_total{proxy,result}`.
    results: VecDeque<(String, &'static str)>,
    next_id: u64,
    rng: Rng,
    /// Moves whenever a proxy goes up or down, so the driver can pass changes on at once.
    changes: u64,
}

impl TrunkHealth {
    pub fn new(settings: TrunkSettings, now: Instant) -> Self {
        let proxies = settings
            .proxies
            .iter()
            .map(|name| Proxy {
                name: name.clone(),
                // Unknown until the first probe; the call layer tries them in order meanwhile.
                up: true,
                last_result: None,
                next_probe: now,
                in_flight: None,
                held_until: None,
            })
            .collect();
        let rng = Rng::seeded_or_os(settings.seed);
        let mut health = Self {
            settings,
            proxies,
            out: VecDeque::new(),
            results: VecDeque::new(),
            next_id: 1,
            rng,
            changes: 0,
        };
        health.handle_timeout(now);
        health
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.proxies.len() {
            let due = self.proxies[i].in_flight.is_none() && self.proxies[i].next_probe <= now;
            if due && let Some(probe) = self.options(i) {
                self.proxies[i].in_flight = Some(probe.id);
                self.out.push_back(probe);
            }
        }
    }

    fn options(&mut self, i: usize) -> Option<Probe> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let (branch, tag, call_id) = (self.rng.token(), self.rng.token(), self.rng.token());
        let s = &self.settings;
        let proxy = &self.proxies[i].name;
        let target = format!("sip:{proxy}:{}", s.port);
        let local = format!("{}:{}", s.fqdn, s.local_port);
        let data = MessageBuilder::request("OPTIONS", &target)
            .header(
                "Via",
                format!("SIP/2.0/TLS {local};branch=z9hG4bK-{branch}"),
            )
            .header("Max-Forwards", "70")
            .header("From", format!("<sip:{local}>;tag={tag}"))
            .header("To", format!("<{target}>"))
            .header("Call-ID", format!("{call_id}@{}", s.fqdn))
            .header("CSeq", "1 OPTIONS")
            .header("Contact", format!("<sip:{local};transport=tls>"))
            .header("Allow", ALLOW)
            .header("X-MS-SBC", &s.sbc_header)
            .finish();
        // Built from validated settings; unparsable only through a bug the tests catch.
        let request = Message::parse(data).ok()?;
        Some(Probe {
            id,
            proxy: proxy.clone(),
            port: s.port,
            request,
        })
    }

    pub fn on_outcome(&mut self, id: RequestId, outcome: Outcome, now: Instant) {
        let Some(i) = self.proxies.iter().position(|p| p.in_flight == Some(id)) else {
            return;
        };
        let interval = self.settings.interval;
        let p = &mut self.proxies[i];
        p.in_flight = None;
        p.next_probe = now + interval;
        let (up, label, text) = match outcome {
            Outcome::Response(r) => {
                let status = r.status().unwrap_or(0);
                let text = format!(
                    "{status} {}",
                    String::from_utf8_lossy(r.reason_phrase().unwrap_or_default())
                );
                if status == 503
                    && let Some(ra) = r.retry_after().and_then(Result::ok)
                {
                    let hold = Duration::from_secs(u64::from(ra.seconds).min(3600));
                    p.next_probe = now + hold.max(interval);
                }
                match status {
                    200..=299 => (true, "ok", text),
                    500..=699 if status < 600 => (false, "server_error", text),
                    _ => (true, "rejected", text),
                }
            }
            Outcome::Timeout => (false, "timeout", "timeout".to_owned()),
            Outcome::TransportError(e) => (false, "transport_error", format!("transport: {e}")),
        };
        let held = p.held_until.filter(|t| *t > now);
        if let Some(until) = held {
            p.next_probe = p.next_probe.max(until);
        }
        let up = up && held.is_none();
        if p.up != up {
            self.changes += 1;
            if up {
                tracing::info!(proxy = %p.name, result = %text, "Teams proxy is up");
            } else {
                tracing::warn!(proxy = %p.name, result = %text, "Teams proxy is down");
            }
        }
        p.up = up;
        p.last_result = Some(text);
        self.results.push_back((p.name.clone(), label));
    }

    /// A call's INVITE got 503 with Retry-After from `proxy`: down and unprobed that long,
    /// as if an OPTIONS had been answered so (§1.6).
    pub fn hold_down(&mut self, proxy: &str, hold: Duration, now: Instant) {
        let Some(p) = self.proxies.iter_mut().find(|p| p.name == proxy) else {
            return;
        };
        if p.up {
            tracing::warn!(proxy = %p.name, seconds = hold.as_secs(), "Teams proxy answered a call 503 with Retry-After: down");
        }
        let until = now + hold.min(Duration::from_secs(3600));
        if p.up {
            self.changes += 1;
        }
        p.up = false;
        p.last_result = Some(format!("503 to a call, Retry-After {}", hold.as_secs()));
        p.held_until = Some(until);
        p.next_probe = p.next_probe.max(until);
    }

    pub fn poll_probe(&mut self) -> Option<Probe> {
        self.out.pop_front()
    }

    pub fn poll_result(&mut self) -> Option<(String, &'static str)> {
        self.results.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.proxies
            .iter()
            .filter(|p| p.in_flight.is_none())
            .map(|p| p.next_probe)
            .min()
    }

    /// A number that moves whenever a proxy goes up or down.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn status(&self) -> Vec<ProxyStatus> {
        self.proxies
            .iter()
            .map(|p| ProxyStatus {
                proxy: p.name.clone(),
                up: p.up,
                last_result: p.last_result.clone(),
                next_probe: p.next_probe,
            })
            .collect()
    }

    /// The proxies calls may go to now, in failover order (§1.6).
    pub fn usable(&self) -> impl Iterator<Item = &str> {
        self.proxies
            .iter()
            .filter(|p| p.up)
            .map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn health(now: Instant) -> TrunkHealth {
        TrunkHealth::new(
            TrunkSettings {
                proxies: vec![
                    "sip.pstnhub.microsoft.com".into(),
                    "sip2.pstnhub.microsoft.com".into(),
                ],
                port: 5061,
                interval: Duration::from_secs(60),
                fqdn: "sbc.carrier.example".into(),
                local_port: 5061,
                sbc_header: "Carrier/teamsgw/1.2.3".into(),
                seed: Some(7),
            },
            now,
        )
    }

    fn answer(probe: &Probe, status: u16, extra: &str) -> Outcome {
        let mut b = MessageBuilder::response_to(&probe.request, status, "X", Some("t"), None);
        if let Some((n, v)) = extra.split_once(": ") {
            b = b.header(n, v);
        }
        Outcome::Response(Message::parse(b.finish()).unwrap())
    }

    /// teams-direct-routing.md §2.1: Contact with the FQDN and transport=tls, Allow, X-MS-SBC.
    #[test]
    fn options_carry_contact_allow_and_x_ms_sbc() {
        let t0 = Instant::now();
        let mut h = health(t0);
        let probe = h.poll_probe().unwrap();
        let raw = String::from_utf8_lossy(probe.request.as_bytes()).into_owned();
        assert!(
            raw.starts_with("OPTIONS sip:sip.pstnhub.microsoft.com:5061 SIP/2.0\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("\r\nContact: <sip:sbc.carrier.example:5061;transport=tls>\r\n"),
            "{raw}"
        );
        assert!(raw.contains(&format!("\r\nAllow: {ALLOW}\r\n")), "{raw}");
        assert!(
            raw.contains("\r\nX-MS-SBC: Carrier/teamsgw/1.2.3\r\n"),
            "{raw}"
        );
        assert!(
            raw.contains("\r\nVia: SIP/2.0/TLS sbc.carrier.example:5061;branch=z9hG4bK"),
            "{raw}"
        );
        assert_eq!(h.poll_probe().unwrap().proxy, "sip2.pstnhub.microsoft.com");
    }

    /// Every interval; a timeout or 5xx marks the proxy down, a 200 up again.
    #[test]
    fn up_down_and_interval() {
        let t0 = Instant::now();
        let mut h = health(t0);
        let a = h.poll_probe().unwrap();
        let b = h.poll_probe().unwrap();
        h.on_outcome(a.id, answer(&a, 200, ""), t0);
        // Up as assumed: no change to pass on; the second one down: one change.
        assert_eq!(h.changes(), 0);
        h.on_outcome(b.id, Outcome::Timeout, t0);
        assert_eq!(h.changes(), 1);
        assert_eq!(
            h.usable().collect::<Vec<_>>(),
            ["sip.pstnhub.microsoft.com"]
        );
        assert_eq!(h.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        h.handle_timeout(t0 + Duration::from_secs(59));
        assert!(h.poll_probe().is_none());
        let t1 = t0 + Duration::from_secs(60);
        h.handle_timeout(t1);
        let a = h.poll_probe().unwrap();
        let b = h.poll_probe().unwrap();
        h.on_outcome(a.id, answer(&a, 500, ""), t1);
        h.on_outcome(b.id, answer(&b, 200, ""), t1);
        assert_eq!(h.changes(), 3, "the first down, the second up again");
        assert_eq!(
            h.usable().collect::<Vec<_>>(),
            ["sip2.pstnhub.microsoft.com"]
        );
        let results: Vec<_> = std::iter::from_fn(|| h.poll_result())
            .map(|r| r.1)
            .collect();
        assert_eq!(results, ["ok", "timeout", "server_error", "ok"]);
    }

    /// §1.6: 503 with Retry-After keeps the proxy down and unprobed that long.
    #[test]
    fn retry_after_holds_the_proxy_down() {
        let t0 = Instant::now();
        let mut h = health(t0);
        let a = h.poll_probe().unwrap();
        let _b = h.poll_probe().unwrap();
        h.on_outcome(a.id, answer(&a, 503, "Retry-After: 300"), t0);
        assert!(!h.status()[0].up);
        h.handle_timeout(t0 + Duration::from_secs(299));
        assert!(h.poll_probe().is_none());
        h.handle_timeout(t0 + Duration::from_secs(300));
        assert_eq!(h.poll_probe().unwrap().proxy, "sip.pstnhub.microsoft.com");
    }

    /// §1.6: a call's 503 with Retry-After marks the proxy down like an OPTIONS 503: even an
    /// OPTIONS 200 in flight does not bring it back before the hold ends.
    #[test]
    fn a_calls_retry_after_holds_the_proxy_down() {
        let t0 = Instant::now();
        let mut h = health(t0);
        let a = h.poll_probe().unwrap();
        let _b = h.poll_probe().unwrap();
        h.hold_down("sip.pstnhub.microsoft.com", Duration::from_secs(120), t0);
        assert_eq!(
            h.usable().collect::<Vec<_>>(),
            ["sip2.pstnhub.microsoft.com"]
        );
        h.on_outcome(a.id, answer(&a, 200, ""), t0 + Duration::from_secs(1));
        assert!(!h.status()[0].up, "held down through the probe's 200");
        h.handle_timeout(t0 + Duration::from_secs(119));
        assert!(h.poll_probe().is_none());
        let t1 = t0 + Duration::from_secs(120);
        h.handle_timeout(t1);
        let a = h.poll_probe().unwrap();
        h.on_outcome(a.id, answer(&a, 200, ""), t1);
        assert!(h.status()[0].up, "up again after the hold");
        // An unknown proxy name changes nothing.
        h.hold_down("sip9.pstnhub.microsoft.com", Duration::from_secs(5), t1);
        assert_eq!(h.usable().count(), 2);
    }
}
