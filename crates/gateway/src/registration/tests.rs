//! The agent against a scripted registrar on a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use teamsgw_sip::message::MessageBuilder;

fn settings() -> AgentSettings {
    AgentSettings {
        contact_host: "192.0.2.10".into(),
        udp_port: 5070,
        tcp_port: 5071,
        rate_per_second: 10,
        max_auth_attempts: 2,
        ..AgentSettings::default()
    }
}

fn user(n: u32) -> Registration {
    Registration {
        upn: format!("u{n}@acme.example"),
        enterprise: "Acme".into(),
        extension: format!("{}", 1000 + n),
        domain: "pbx.acme.example".into(),
        registrar: Registrar::parse("10.0.0.5:5080", Transport::Udp),
        auth_user: format!("{}", 1000 + n),
        password: "secret".into(),
        contact_token: format!("tok{n}"),
        expires: 600,
        enabled: true,
    }
}

fn respond(send: &Send, status: u16, extra: &[(&str, String)]) -> Outcome {
    let mut b = MessageBuilder::response_to(&send.request, status, "Reason", Some("t1"), None);
    for (name, value) in extra {
        b = b.header(name, value);
    }
    Outcome::Response(Message::parse(b.finish()).unwrap())
}

fn challenge(stale: bool) -> (&'static str, String) {
    (
        "WWW-Authenticate",
        format!(
            "Digest realm=\"pbx\", nonce=\"n{}\", qop=\"auth\", algorithm=MD5{}",
            u8::from(stale),
            if stale { ", stale=true" } else { "" }
        ),
    )
}

fn drain(agent: &mut RegistrationAgent) -> Vec<Send> {
    std::iter::from_fn(|| agent.poll_send()).collect()
}

fn header(send: &Send, name: &str) -> String {
    send.request
        .headers()
        .find(|h| h.raw_name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .unwrap_or_default()
}

fn state(agent: &RegistrationAgent, upn: &str) -> Status {
    agent.status().find(|s| s.upn == upn).unwrap()
}

/// Registers `u0` through one challenge; returns the 200'd request.
fn register(agent: &mut RegistrationAgent, now: Instant) -> Send {
    let first = drain(agent).pop().unwrap();
    agent.on_outcome(first.id, respond(&first, 401, &[challenge(false)]), now);
    let second = drain(agent).pop().unwrap();
    assert!(header(&second, "Authorization").starts_with("Digest username=\"1000\""));
    agent.on_outcome(second.id, respond(&second, 200, &[]), now);
    second
}

/// RFC 3261 §10.2: Request-URI is the domain, To/From the AOR, Contact our token, one
/// Call-ID per binding and increasing CSeq (§10.2.4).
#[test]
fn register_request_shape_and_digest() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    let first = drain(&mut agent).pop().unwrap();
    let raw = String::from_utf8_lossy(first.request.as_bytes()).into_owned();
    assert!(
        raw.starts_with("REGISTER sip:pbx.acme.example SIP/2.0\r\n"),
        "{raw}"
    );
    assert_eq!(header(&first, "To"), "<sip:1000@pbx.acme.example>");
    assert!(header(&first, "From").starts_with("<sip:1000@pbx.acme.example>;tag="));
    assert_eq!(header(&first, "Contact"), "<sip:tok0@192.0.2.10:5070>");
    assert!(header(&first, "Via").starts_with("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK"));
    assert_eq!(header(&first, "Expires"), "600");
    assert_eq!(first.registrar.port_or_default(), 5080);
    agent.on_outcome(first.id, respond(&first, 401, &[challenge(false)]), t0);
    let second = drain(&mut agent).pop().unwrap();
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&second, "CSeq"), "2 REGISTER");
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registering);
    agent.on_outcome(second.id, respond(&second, 200, &[]), t0);
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registered);
    let results: Vec<_> = std::iter::from_fn(|| agent.poll_finished())
        .map(|f| f.result)
        .collect();
    assert_eq!(results, ["challenged", "ok"]);
}

/// Refresh at ~85 % of the granted expiry (Contact expires wins over Expires), with the
/// remembered challenge answered pre-emptively.
#[test]
fn refresh_at_85_percent_of_the_granted_expiry() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    let first = drain(&mut agent).pop().unwrap();
    agent.on_outcome(
        first.id,
        respond(
            &first,
            200,
            &[
                ("Contact", "<sip:tok0@192.0.2.10:5070>;expires=100".into()),
                ("Expires", "600".into()),
            ],
        ),
        t0,
    );
    let due = agent.poll_timeout().unwrap();
    let secs = due.duration_since(t0).as_secs_f64();
    assert!((80.0..=90.0).contains(&secs), "refresh after {secs} s");
    agent.handle_timeout(due - Duration::from_millis(1));
    assert!(drain(&mut agent).is_empty());
    agent.handle_timeout(due);
    let refresh = drain(&mut agent);
    assert_eq!(refresh.len(), 1);
    assert_eq!(header(&refresh[0], "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registered);
}

/// Issue 31 §3: an expiry above the one we asked for (600 s), up to 2^32-1 s, is taken as
/// ours: the binding is refreshed at 80-90 % of 600 s, not in 136 years.
#[test]
fn a_granted_expiry_longer_than_asked_is_bounded_rfc3261_10_3() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    let first = drain(&mut agent).pop().unwrap();
    agent.on_outcome(
        first.id,
        respond(
            &first,
            200,
            &[(
                "Contact",
                "<sip:tok0@192.0.2.10:5070>;expires=4294967295".into(),
            )],
        ),
        t0,
    );
    let secs = agent
        .poll_timeout()
        .unwrap()
        .duration_since(t0)
        .as_secs_f64();
    assert!((480.0..=540.0).contains(&secs), "refresh after {secs} s");
}

/// Backoff from 5 s doubling to 5 min, with jitter, and Retry-After honoured; success resets.
#[test]
fn failures_back_off_exponentially_and_honour_retry_after() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..8 {
        let send = drain(&mut agent).pop().unwrap();
        agent.on_outcome(send.id, Outcome::Timeout, now);
        let s = state(&agent, "u0@acme.example");
        assert_eq!(s.state, State::Backoff);
        assert_eq!(s.last_error.as_deref(), Some("no response (timeout)"));
        let due = agent.poll_timeout().unwrap();
        delays.push(due.duration_since(now).as_secs_f64());
        now = due;
        agent.handle_timeout(now);
    }
    for (i, d) in delays.iter().enumerate() {
        let base = (5.0 * f64::from(1u32 << i)).min(300.0);
        assert!(
            *d >= 5.0 && *d >= base * 0.9 && *d <= base * 1.1,
            "attempt {i}: {d} s ({delays:?})"
        );
    }
    let send = drain(&mut agent).pop().unwrap();
    agent.on_outcome(
        send.id,
        respond(&send, 503, &[("Retry-After", "900".into())]),
        now,
    );
    let due = agent.poll_timeout().unwrap();
    assert!(due.duration_since(now) >= Duration::from_secs(900));
    agent.handle_timeout(due);
    let send = drain(&mut agent).pop().unwrap();
    agent.on_outcome(send.id, respond(&send, 200, &[]), due);
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registered);
    assert_eq!(state(&agent, "u0@acme.example").last_error, None);
}

/// A second challenge to our credentials without stale=true (RFC 7616 §3.3) is an
/// authentication failure; after max_auth_attempts the user is auth_failed and stays so
/// until its credentials change.
#[test]
fn wrong_password_ends_in_auth_failed_until_the_credentials_change() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    let mut now = t0;
    for attempt in 0..2 {
        let first = drain(&mut agent).pop().unwrap();
        agent.on_outcome(first.id, respond(&first, 401, &[challenge(false)]), now);
        let second = drain(&mut agent).pop().unwrap();
        agent.on_outcome(second.id, respond(&second, 401, &[challenge(false)]), now);
        let s = state(&agent, "u0@acme.example");
        if attempt == 0 {
            assert_eq!(s.state, State::Backoff);
            now = agent.poll_timeout().unwrap();
            agent.handle_timeout(now);
        } else {
            assert_eq!(s.state, State::AuthFailed);
            assert!(s.last_error.unwrap().contains("credentials rejected"));
        }
    }
    assert_eq!(agent.poll_timeout(), None, "no retry while auth_failed");
    agent.sync(vec![user(0)], now);
    assert!(
        drain(&mut agent).is_empty(),
        "same credentials: still auth_failed"
    );
    let mut fixed = user(0);
    fixed.password = "right".into();
    agent.sync(vec![fixed], now);
    assert_eq!(drain(&mut agent).len(), 1);
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registering);
}

/// stale=true means "same credentials, new nonce": retried at once, not a failure.
#[test]
fn stale_nonce_is_retried_not_failed() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0)], t0);
    register(&mut agent, t0);
    let due = agent.poll_timeout().unwrap();
    agent.handle_timeout(due);
    let refresh = drain(&mut agent).pop().unwrap();
    assert!(
        header(&refresh, "Authorization").contains("nc=00000002"),
        "pre-emptive credentials"
    );
    agent.on_outcome(refresh.id, respond(&refresh, 401, &[challenge(true)]), due);
    let retry = drain(&mut agent).pop().unwrap();
    assert!(header(&retry, "Authorization").contains("nonce=\"n1\""));
    agent.on_outcome(retry.id, respond(&retry, 200, &[]), due);
    assert_eq!(state(&agent, "u0@acme.example").state, State::Registered);
}

/// RFC 3261 §10.3 / §21.4.17: 423 carries Min-Expires; retry with it.
#[test]
fn interval_too_brief_retries_with_min_expires() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    let mut short = user(0);
    short.expires = 30;
    agent.sync(vec![short], t0);
    let first = drain(&mut agent).pop().unwrap();
    agent.on_outcome(
        first.id,
        respond(&first, 423, &[("Min-Expires", "120".into())]),
        t0,
    );
    let second = drain(&mut agent).pop().unwrap();
    assert_eq!(header(&second, "Expires"), "120");
    agent.on_outcome(second.id, respond(&second, 200, &[]), t0);
    let due = agent.poll_timeout().unwrap().duration_since(t0).as_secs();
    assert!((96..=108).contains(&due), "{due}");
}

/// The token bucket: 10/s means 25 users take ~1.5 s beyond the first burst of 10.
#[test]
fn rate_limit_spreads_a_mass_start() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync((0..25).map(user).collect(), t0);
    assert_eq!(drain(&mut agent).len(), 10);
    let mut now = t0;
    let mut sent = 10;
    while sent < 25 {
        now = agent.poll_timeout().unwrap();
        agent.handle_timeout(now);
        sent += drain(&mut agent).len();
    }
    let took = now.duration_since(t0).as_secs_f64();
    assert!((1.4..=1.6).contains(&took), "{took} s");
}

/// Removed users are unregistered with Expires: 0 and forgotten; disabled ones too, but
/// stay listed as disabled; a PBX change registers at the new place with a new Call-ID.
#[test]
fn removal_disable_and_moves() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync(vec![user(0), user(1)], t0);
    for send in drain(&mut agent) {
        agent.on_outcome(send.id, respond(&send, 200, &[]), t0);
    }
    let mut disabled = user(1);
    disabled.enabled = false;
    agent.sync(vec![disabled.clone()], t0);
    let sends = drain(&mut agent);
    assert_eq!(sends.len(), 2);
    for send in &sends {
        assert_eq!(header(send, "Expires"), "0");
        agent.on_outcome(send.id, respond(send, 200, &[]), t0);
    }
    assert_eq!(agent.len(), 1);
    assert_eq!(state(&agent, "u1@acme.example").state, State::Disabled);
    assert_eq!(agent.poll_timeout(), None);

    let mut moved = user(1);
    moved.registrar = Registrar::parse("10.0.0.6", Transport::Tcp);
    agent.sync(vec![moved], t0);
    let send = drain(&mut agent).pop().unwrap();
    assert_eq!(
        header(&send, "Contact"),
        "<sip:tok1@192.0.2.10:5071;transport=tcp>"
    );
    assert!(header(&send, "Via").starts_with("SIP/2.0/TCP 192.0.2.10:5071"));
    assert_eq!(send.registrar.port_or_default(), 5060);
    assert_ne!(header(&send, "Call-ID"), header(&sends[1], "Call-ID"));
}

/// Shutdown unregisters every binding and reports when nothing is pending.
#[test]
fn shutdown_unregisters_everyone() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(settings(), t0);
    agent.sync((0..3).map(user).collect(), t0);
    for send in drain(&mut agent) {
        agent.on_outcome(send.id, respond(&send, 200, &[]), t0);
    }
    agent.shutdown(t0);
    let sends = drain(&mut agent);
    assert_eq!(sends.len(), 3);
    assert_eq!(agent.pending(), 3);
    for send in &sends {
        assert_eq!(header(send, "Expires"), "0");
        agent.on_outcome(send.id, Outcome::Timeout, t0);
    }
    assert_eq!(agent.pending(), 0);
    assert!(agent.is_empty());
}
