//! The PBX registration agent, sans-IO: one REGISTER binding per provisioned Teams user, kept
//! alive at the user's PBX (RFC 3261 §10).
//!
//! Driven like `quinn-proto`: [`RegistrationAgent::sync`] hands it the users the routing
//! snapshot says should be registered, [`RegistrationAgent::poll_send`] yields REGISTER
//! requests for the driver to put on transactions, [`RegistrationAgent::on_outcome`] takes
//! their final responses (or timeout / transport failure), and [`RegistrationAgent::handle_timeout`]
//! runs refreshes, backoffs and the rate limit. It never reads a clock or touches a socket, so
//! every timing rule is tested with a virtual clock.
//!
//! Rules (issue: registration agent; RFC 3261 §10.2, §21.4.17, §20.33):
//! - Request-URI = PBX domain; To/From = extension@domain; Contact = `sip:<token>@<us>`;
//!   one Call-ID per binding, CSeq incremented for every request (§10.2.4).
//! - 401/407: answered with digest at once; a second challenge to our credentials without
//!   `stale=true`, or 403, is an authentication failure: after `max_auth_attempts` the user
//!   is `auth_failed` until its credentials change.
//! - Refresh at 80–90 % of the granted expiry (~85 % with jitter, so 100,000 users do not
//!   refresh in lock-step). 423 Interval Too Brief: retry with its Min-Expires.
//! - Failure (timeout, transport, other 4xx–6xx): exponential backoff from `min_backoff` to
//!   `max_backoff` with jitter, or Retry-After when the registrar asks for longer.
//! - New attempts pass a token bucket of `rate_per_second`, so a start with 100,000 users is
//!   smooth; the authenticated retry after a challenge is part of the same attempt.
//! - A removed or disabled user is unregistered (`Expires: 0`); so is everyone on shutdown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use teamsgw_sip::HeaderName;
use teamsgw_sip::digest::{Credentials, DigestClient, DigestError};
use teamsgw_sip::message::{Contact, Message, MessageBuilder};
use teamsgw_sip::transport::Transport;

use crate::rng::Rng;

/// Where a PBX takes registrations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registrar {
    /// DNS name or IP literal (`[v6]` for IPv6).
    pub host: String,
    pub port: Option<u16>,
    pub transport: Transport,
}

impl Registrar {
    /// `host[:port]` (the PBX's proxy, else its domain) with the PBX's transport.
    pub fn parse(host_port: &str, transport: Transport) -> Self {
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !host_port.ends_with(']') => match p.parse() {
                Ok(port) => (h.to_owned(), Some(port)),
                Err(_) => (host_port.to_owned(), None),
            },
            _ => (host_port.to_owned(), None),
        };
        Self {
            host,
            port,
            transport,
        }
    }

    /// The port to use: the given one, or 5060 (5061 for TLS), RFC 3263 §4.2 without SRV.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            Transport::Tls => 5061,
            _ => 5060,
        })
    }
}

/// The binding one user should have, as the routing snapshot says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub upn: String,
    pub enterprise: String,
    /// The user part of the AOR at the PBX.
    pub extension: String,
    pub domain: String,
    pub registrar: Registrar,
    pub auth_user: String,
    pub password: String,
    /// The user part of our Contact: how a call from the PBX finds the user.
    pub contact_token: String,
    pub expires: u32,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Host (IP or name) the PBX reaches us at, for Contact and Via.
    pub contact_host: String,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub rate_per_second: u32,
    pub max_auth_attempts: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub user_agent: String,
    /// Seeds tags, branches and jitter; any value works, tests fix it.
    /// Fixes the identifiers' generator (tests); `None`: seeded from the OS.
    pub seed: Option<u64>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            contact_host: "127.0.0.1".into(),
            udp_port: 5060,
            tcp_port: 5060,
            rate_per_second: 200,
            max_auth_attempts: 3,
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            user_agent: "teamsgw".into(),
            seed: Some(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Registering,
    Registered,
    Backoff,
    AuthFailed,
    Disabled,
    Unregistering,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Backoff => "backoff",
            Self::AuthFailed => "auth_failed",
            Self::Disabled => "disabled",
            Self::Unregistering => "unregistering",
        }
    }

    pub const ALL: [State; 6] = [
        State::Registering,
        State::Registered,
        State::Backoff,
        State::AuthFailed,
        State::Disabled,
        State::Unregistering,
    ];
}

/// One user's registration as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub upn: String,
    pub enterprise: String,
    pub state: State,
    pub last_error: Option<String>,
    /// When the next REGISTER is due (refresh or retry).
    pub next_attempt: Option<Instant>,
}

/// A REGISTER to put on a client transaction.
#[derive(Debug, Clone)]
pub struct Send {
    pub id: RequestId,
    pub request: Message,
    pub registrar: Registrar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// How a REGISTER transaction ended.
#[derive(Debug)]
pub enum Outcome {
    /// A final response (provisional ones are not the agent's business).
    Response(Message),
    /// Timer F: no final response (§8.1.3.1: as 408).
    Timeout,
    /// Could not be sent (§8.1.3.1: as 503).
    TransportError(String),
}

/// A finished attempt, for `teamsgw_register_requests_total{result}` and the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub result: &'static str,
    /// First REGISTER of the attempt to its final 2xx (challenge round included).
    pub latency: Option<Duration>,
}

struct InFlight {
    id: RequestId,
    request: Message,
    started: Instant,
    unregister: bool,
    challenges: u32,
}

/// What to do once the request in flight is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    /// Registration parameters changed: register anew.
    Register,
    Unregister,
}

struct Entry {
    reg: Registration,
    state: State,
    call_id: String,
    from_tag: String,
    cseq: u32,
    digest: DigestClient,
    /// Overrides `reg.expires` after a 423.
    expires: u32,
    failures: u32,
    auth_failures: u32,
    last_error: Option<String>,
    wake: Option<Instant>,
    in_flight: Option<InFlight>,
    then: Then,
    queued: bool,
    /// The registrar may hold a binding of ours (we sent a REGISTER that might have landed).
    bound: bool,
    /// Forget the user after its unregistration.
    remove: bool,
}

pub struct RegistrationAgent {
    settings: AgentSettings,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_upn: HashMap<String, usize>,
    in_flight: HashMap<RequestId, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    queue: VecDeque<usize>,
    tokens: f64,
    refilled: Instant,
    out: VecDeque<Send>,
    finished: VecDeque<Finished>,
    next_id: u64,
    rng: Rng,
    shutting_down: bool,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl RegistrationAgent {
    pub fn new(settings: AgentSettings, now: Instant) -> Self {
        let rng = Rng::seeded_or_os(settings.seed);
        let tokens = f64::from(settings.rate_per_second.max(1));
        Self {
            settings,
            entries: Vec::new(),
            free: Vec::new(),
            by_upn: HashMap::new(),
            in_flight: HashMap::new(),
            timers: BinaryHeap::new(),
            queue: VecDeque::new(),
            tokens,
            refilled: now,
            out: VecDeque::new(),
            finished: VecDeque::new(),
            next_id: 1,
            rng,
            shutting_down: false,
        }
    }

    fn token(&mut self) -> String {
        self.rng.token()
    }

    fn jitter(&mut self, lo: f64, hi: f64) -> f64 {
        self.rng.between(lo, hi)
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// Makes the agent's users exactly `wanted`: new ones register, changed ones register
    /// anew (an `auth_failed` user only once its credentials change), removed or disabled
    /// ones unregister.
    pub fn sync(&mut self, wanted: Vec<Registration>, now: Instant) {
        let mut seen = vec![false; self.entries.len()];
        for reg in wanted {
            match self.by_upn.get(&reg.upn).copied() {
                Some(idx) => {
                    if let Some(flag) = seen.get_mut(idx) {
                        *flag = true;
                    }
                    self.update(idx, reg, now);
                }
                None => {
                    let idx = self.insert(reg);
                    if seen.len() <= idx {
                        seen.resize(idx + 1, false);
                    }
                    seen[idx] = true;
                    let enabled = self.entry(idx).is_some_and(|e| e.reg.enabled);
                    if enabled {
                        self.enqueue(idx);
                    } else if let Some(e) = self.entry_mut(idx) {
                        e.state = State::Disabled;
                    }
                }
            }
        }
        for (idx, seen) in seen.into_iter().enumerate() {
            if !seen && self.entry(idx).is_some_and(|e| !e.remove) {
                if let Some(e) = self.entry_mut(idx) {
                    e.remove = true;
                }
                self.unregister(idx);
            }
        }
        self.dispatch(now);
    }

    fn update(&mut self, idx: usize, reg: Registration, now: Instant) {
        let Some(e) = self.entry_mut(idx) else { return };
        if e.reg == reg && !e.remove {
            return;
        }
        e.remove = false;
        let credentials_changed =
            e.reg.auth_user != reg.auth_user || e.reg.password != reg.password;
        let binding_moved = e.reg.registrar != reg.registrar
            || e.reg.domain != reg.domain
            || e.reg.extension != reg.extension
            || e.reg.contact_token != reg.contact_token;
        let was_enabled = e.reg.enabled;
        let auth_failed = e.state == State::AuthFailed;
        e.expires = reg.expires;
        e.reg = reg;
        if credentials_changed {
            e.auth_failures = 0;
            e.digest.forget();
        }
        if binding_moved {
            // A new binding elsewhere: a fresh Call-ID (§10.2.4 keeps it per registrar).
            e.digest.forget();
            e.bound = false;
        }
        let enabled = e.reg.enabled;
        if !enabled {
            if was_enabled {
                self.unregister(idx);
            }
            return;
        }
        if auth_failed && !credentials_changed && !binding_moved {
            return;
        }
        if binding_moved {
            let (call_id, tag) = (self.token(), self.token());
            if let Some(e) = self.entry_mut(idx) {
                e.call_id = format!("{call_id}@teamsgw");
                e.from_tag = tag;
            }
        }
        match self.entry_mut(idx) {
            Some(e) if e.in_flight.is_some() => e.then = Then::Register,
            Some(e) => {
                e.failures = 0;
                e.state = State::Registering;
                self.enqueue(idx);
            }
            None => {}
        }
        self.dispatch(now);
    }

    /// Unregisters everyone (`pbx.unregister_on_shutdown`); see [`Self::pending`].
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        for idx in 0..self.entries.len() {
            if self.entry(idx).is_some() {
                if let Some(e) = self.entry_mut(idx) {
                    e.remove = true;
                }
                self.unregister(idx);
            }
        }
        self.dispatch(now);
    }

    /// Users with a request in flight or waiting for one (shutdown waits for 0).
    pub fn pending(&self) -> usize {
        self.in_flight.len() + self.queue.len()
    }

    /// The final outcome of request `id`.
    pub fn on_outcome(&mut self, id: RequestId, outcome: Outcome, now: Instant) {
        let Some(idx) = self.in_flight.remove(&id) else {
            return;
        };
        let Some(flight) = self.entry_mut(idx).and_then(|e| e.in_flight.take()) else {
            return;
        };
        if flight.id != id {
            return;
        }
        match outcome {
            Outcome::Response(response) => self.on_response(idx, flight, &response, now),
            Outcome::Timeout => self.failed(
                idx,
                flight,
                "timeout",
                "no response (timeout)".into(),
                None,
                now,
            ),
            Outcome::TransportError(e) => self.failed(
                idx,
                flight,
                "transport_error",
                format!("transport: {e}"),
                None,
                now,
            ),
        }
        self.dispatch(now);
    }

    fn on_response(&mut self, idx: usize, flight: InFlight, response: &Message, now: Instant) {
        let status = response.status().unwrap_or(0);
        let reason = format!(
            "{status} {}",
            text(response.reason_phrase().unwrap_or_default())
        );
        match status {
            200..=299 => self.succeeded(idx, flight, response, now),
            401 | 407 => {
                let Some(e) = self.entry_mut(idx) else { return };
                match e.digest.on_challenge(&flight.request, response) {
                    Ok(()) if flight.challenges < 2 => {
                        self.finished.push_back(Finished {
                            result: "challenged",
                            latency: None,
                        });
                        self.send_now(
                            idx,
                            flight.unregister,
                            flight.started,
                            flight.challenges + 1,
                        );
                    }
                    Ok(()) => {
                        self.auth_failed(idx, flight, "challenged again and again".into(), now)
                    }
                    Err(DigestError::Rejected(realm)) => self.auth_failed(
                        idx,
                        flight,
                        format!("{reason}: credentials rejected for realm {realm:?}"),
                        now,
                    ),
                    Err(other) => self.failed(
                        idx,
                        flight,
                        "rejected",
                        format!("{reason}: {other}"),
                        None,
                        now,
                    ),
                }
            }
            403 => self.auth_failed(idx, flight, reason, now),
            423 => {
                let min = response
                    .min_expires()
                    .and_then(Result::ok)
                    .filter(|m| *m <= 86_400);
                match (min, self.entry_mut(idx)) {
                    (Some(min), Some(e)) if min > e.expires => {
                        e.expires = min;
                        self.finished.push_back(Finished {
                            result: "interval_too_brief",
                            latency: None,
                        });
                        self.send_now(idx, flight.unregister, flight.started, flight.challenges);
                    }
                    _ => self.failed(
                        idx,
                        flight,
                        "rejected",
                        format!("{reason} without a usable Min-Expires"),
                        None,
                        now,
                    ),
                }
            }
            _ => {
                let retry_after = response
                    .retry_after()
                    .and_then(Result::ok)
                    .map(|r| Duration::from_secs(u64::from(r.seconds)));
                let result = if status >= 500 {
                    "server_error"
                } else {
                    "rejected"
                };
                self.failed(idx, flight, result, reason, retry_after, now)
            }
        }
    }

    fn succeeded(&mut self, idx: usize, flight: InFlight, response: &Message, now: Instant) {
        self.finished.push_back(Finished {
            result: "ok",
            latency: Some(now.saturating_duration_since(flight.started)),
        });
        let jitter = self.jitter(0.80, 0.90);
        let Some(e) = self.entry_mut(idx) else { return };
        e.failures = 0;
        e.auth_failures = 0;
        e.last_error = None;
        if flight.unregister {
            e.bound = false;
            if e.remove {
                self.forget(idx);
            } else {
                e.state = State::Disabled;
                e.wake = None;
                self.after_flight(idx);
            }
            return;
        }
        // RFC 3261 §10.3 lets a registrar shorten the expiry we asked for, never lengthen it:
        // a larger number from the network is taken as ours (issue 31 §3).
        let granted =
            granted_expiry(response, &e.reg.contact_token).map_or(e.expires, |g| g.min(e.expires));
        e.bound = granted > 0;
        e.state = State::Registered;
        let refresh = Duration::from_secs_f64(f64::from(granted.max(1)) * jitter);
        let at = now + refresh;
        self.schedule(idx, at);
        self.after_flight(idx);
    }

    fn auth_failed(&mut self, idx: usize, flight: InFlight, error: String, now: Instant) {
        let max = self.settings.max_auth_attempts.max(1);
        let Some(e) = self.entry_mut(idx) else { return };
        e.auth_failures += 1;
        if e.auth_failures >= max && !flight.unregister {
            e.state = State::AuthFailed;
            e.last_error = Some(format!(
                "{error} ({} attempts; fix the credentials to retry)",
                e.auth_failures
            ));
            e.wake = None;
            self.finished.push_back(Finished {
                result: "auth_failed",
                latency: None,
            });
            self.after_flight(idx);
            return;
        }
        self.failed(idx, flight, "auth_failed", error, None, now);
    }

    fn failed(
        &mut self,
        idx: usize,
        flight: InFlight,
        result: &'static str,
        error: String,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        self.finished.push_back(Finished {
            result,
            latency: None,
        });
        if flight.unregister && (self.shutting_down || self.entry(idx).is_some_and(|e| e.remove)) {
            // Best effort: the binding expires on its own.
            self.forget(idx);
            return;
        }
        let jitter = self.jitter(0.9, 1.1);
        let (min, max) = (self.settings.min_backoff, self.settings.max_backoff);
        let Some(e) = self.entry_mut(idx) else { return };
        e.failures = e.failures.saturating_add(1);
        let exponent = e.failures.saturating_sub(1).min(16);
        let base = min.saturating_mul(1 << exponent).min(max);
        let mut delay = base.mul_f64(jitter).max(min);
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(Duration::from_secs(3600)));
        }
        e.state = if flight.unregister {
            State::Disabled
        } else {
            State::Backoff
        };
        e.last_error = Some(error);
        if !flight.unregister {
            self.schedule(idx, now + delay);
        }
        self.after_flight(idx);
    }

    /// Follows up on changes that arrived while a request was in flight.
    fn after_flight(&mut self, idx: usize) {
        let Some(e) = self.entry_mut(idx) else { return };
        let then = std::mem::replace(&mut e.then, Then::Nothing);
        match then {
            Then::Nothing => {}
            Then::Register => {
                e.failures = 0;
                e.state = State::Registering;
                e.wake = None;
                self.enqueue(idx);
            }
            Then::Unregister => self.unregister(idx),
        }
    }

    /// Runs refreshes, backoffs and the rate limit due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, idx))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let due = self.entry(idx).is_some_and(|e| e.wake == Some(at));
            if !due {
                continue;
            }
            if let Some(e) = self.entry_mut(idx) {
                e.wake = None;
                if e.state == State::Backoff {
                    e.state = State::Registering;
                }
            }
            self.enqueue(idx);
        }
        self.dispatch(now);
    }

    // ---- outputs -----------------------------------------------------------------------------

    pub fn poll_send(&mut self) -> Option<Send> {
        self.out.pop_front()
    }

    pub fn poll_finished(&mut self) -> Option<Finished> {
        self.finished.pop_front()
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop timers that were superseded, so the next deadline is a real one.
        while let Some(Reverse((at, idx))) = self.timers.peek().copied() {
            if self.entry(idx).is_some_and(|e| e.wake == Some(at)) {
                break;
            }
            self.timers.pop();
        }
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let token = (!self.queue.is_empty()).then(|| {
            let missing = (1.0 - self.tokens).max(0.0);
            self.refilled
                + Duration::from_secs_f64(missing / f64::from(self.settings.rate_per_second.max(1)))
        });
        [timer, token].into_iter().flatten().min()
    }

    pub fn status(&self) -> impl Iterator<Item = Status> + '_ {
        self.entries.iter().flatten().map(|e| Status {
            upn: e.reg.upn.clone(),
            enterprise: e.reg.enterprise.clone(),
            state: e.state,
            last_error: e.last_error.clone(),
            next_attempt: e.wake,
        })
    }

    /// Users per (enterprise, state), for `teamsgw_registrations` and `/readyz`.
    pub fn counts(&self) -> HashMap<(&str, State), usize> {
        let mut out = HashMap::new();
        for e in self.entries.iter().flatten() {
            *out.entry((e.reg.enterprise.as_str(), e.state)).or_insert(0) += 1;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.by_upn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_upn.is_empty()
    }

    // ---- internals ---------------------------------------------------------------------------

    fn entry(&self, idx: usize) -> Option<&Entry> {
        self.entries.get(idx).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, idx: usize) -> Option<&mut Entry> {
        self.entries.get_mut(idx).and_then(Option::as_mut)
    }

    fn insert(&mut self, reg: Registration) -> usize {
        let call_id = format!("{}@teamsgw", self.token());
        let from_tag = self.token();
        let entry = Entry {
            expires: reg.expires,
            reg,
            state: State::Registering,
            call_id,
            from_tag,
            cseq: 0,
            digest: DigestClient::new(),
            failures: 0,
            auth_failures: 0,
            last_error: None,
            wake: None,
            in_flight: None,
            then: Then::Nothing,
            queued: false,
            bound: false,
            remove: false,
        };
        let upn = entry.reg.upn.clone();
        let idx = match self.free.pop() {
            Some(idx) => {
                self.entries[idx] = Some(entry);
                idx
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        self.by_upn.insert(upn, idx);
        idx
    }

    fn forget(&mut self, idx: usize) {
        if let Some(e) = self.entries.get_mut(idx).and_then(Option::take) {
            self.by_upn.remove(&e.reg.upn);
            if let Some(f) = e.in_flight {
                self.in_flight.remove(&f.id);
            }
            self.queue.retain(|&i| i != idx);
            self.free.push(idx);
        }
    }

    fn schedule(&mut self, idx: usize, at: Instant) {
        if let Some(e) = self.entry_mut(idx) {
            e.wake = Some(at);
            self.timers.push(Reverse((at, idx)));
        }
    }

    fn enqueue(&mut self, idx: usize) {
        if let Some(e) = self.entry_mut(idx)
            && !e.queued
            && e.in_flight.is_none()
        {
            e.queued = true;
            self.queue.push_back(idx);
        }
    }

    fn unregister(&mut self, idx: usize) {
        let Some(e) = self.entry_mut(idx) else { return };
        e.wake = None;
        if e.in_flight.is_some() {
            e.then = Then::Unregister;
            return;
        }
        if !e.bound {
            if e.remove {
                self.forget(idx);
            } else {
                e.state = State::Disabled;
            }
            return;
        }
        e.state = State::Unregistering;
        self.enqueue(idx);
    }

    /// Sends what the token bucket allows.
    fn dispatch(&mut self, now: Instant) {
        let rate = f64::from(self.settings.rate_per_second.max(1));
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        while self.tokens >= 1.0 {
            let Some(idx) = self.queue.pop_front() else {
                break;
            };
            let Some(e) = self.entry_mut(idx) else {
                continue;
            };
            e.queued = false;
            if e.in_flight.is_some() {
                continue;
            }
            let unregister = e.state == State::Unregistering;
            self.tokens -= 1.0;
            self.send_now(idx, unregister, now, 0);
        }
    }

    fn send_now(&mut self, idx: usize, unregister: bool, started: Instant, challenges: u32) {
        let branch = format!("z9hG4bK-{}", self.token());
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let settings = &self.settings;
        let Some(e) = self.entries.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        e.cseq += 1;
        e.bound = true;
        let request = build_register(settings, e, &branch, unregister);
        let Ok(request) = Message::parse(request) else {
            // Our own bytes always parse; a user whose data made them unparsable is parked.
            e.state = State::Backoff;
            e.last_error = Some("cannot build a REGISTER from the provisioned data".into());
            return;
        };
        e.in_flight = Some(InFlight {
            id,
            request: request.clone(),
            started,
            unregister,
            challenges,
        });
        if !unregister && e.state != State::Registered {
            e.state = State::Registering;
        }
        let registrar = e.reg.registrar.clone();
        self.in_flight.insert(id, idx);
        self.out.push_back(Send {
            id,
            request,
            registrar,
        });
    }
}

pub(crate) fn transport_token(t: Transport) -> (&'static str, &'static str) {
    match t {
        Transport::Udp => ("UDP", ""),
        Transport::Tcp => ("TCP", ";transport=tcp"),
        Transport::Tls => ("TLS", ";transport=tls"),
    }
}

fn build_register(
    settings: &AgentSettings,
    e: &mut Entry,
    branch: &str,
    unregister: bool,
) -> bytes::Bytes {
    let reg = &e.reg;
    let (via_transport, contact_param) = transport_token(reg.registrar.transport);
    let port = match reg.registrar.transport {
        Transport::Udp => settings.udp_port,
        _ => settings.tcp_port,
    };
    let host = &settings.contact_host;
    let uri = format!("sip:{}", reg.domain);
    let aor = format!("<sip:{}@{}>", reg.extension, reg.domain);
    let expires = if unregister { 0 } else { e.expires };
    let mut b = MessageBuilder::request("REGISTER", &uri)
        .header(
            "Via",
            format!("SIP/2.0/{via_transport} {host}:{port};branch={branch};rport"),
        )
        .header("Max-Forwards", "70")
        .header("From", format!("{aor};tag={}", e.from_tag))
        .header("To", aor)
        .header("Call-ID", &e.call_id)
        .header("CSeq", format!("{} REGISTER", e.cseq))
        .header(
            "Contact",
            format!("<sip:{}@{host}:{port}{contact_param}>", reg.contact_token),
        )
        .header("Expires", expires.to_string())
        .header("User-Agent", &settings.user_agent);
    let credentials = Credentials {
        username: reg.auth_user.clone(),
        password: reg.password.clone(),
    };
    for (name, value) in e.digest.authorize(&credentials, "REGISTER", &uri) {
        b = b.header(name, value);
    }
    b.finish()
}

/// The expiry the registrar granted our Contact (its `expires` parameter, else `Expires`).
fn granted_expiry(response: &Message, token: &str) -> Option<u32> {
    let ours = response
        .contacts()
        .filter_map(Result::ok)
        .find(|c| match c {
            Contact::Addr(a) => a.uri.user() == Some(token.as_bytes()),
            Contact::Star => false,
        });
    ours.and_then(|c| c.expires())
        .or_else(|| response.expires().and_then(Result::ok))
        .or_else(|| {
            response
                .header(HeaderName::Expires)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.trim().parse().ok())
        })
}

#[cfg(test)]
mod tests;
