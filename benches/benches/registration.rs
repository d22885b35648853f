//! Registration agent benchmark (issue: registration agent): 100,000 users registered with
//! digest through the sans-IO agent and the client transaction layer, against an in-process
//! registrar that challenges every first REGISTER (401, qop=auth) and grants the second.
//!
//! Measured: the teamsgw side only (agent + transaction layer + parsing responses + building
//! and digesting requests); the registrar's own work is timed separately and subtracted.
//! Sockets and tokio are not in it: the end-to-end figure against Kamailio is in the note.
//! Figures: REGISTER transactions per second on one core, and what steady-state refreshing
//! of 100,000 users with 3600 s expiry costs as a share of one core.
//!
//! `cargo bench -p teamsgw-benches --bench registration`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use teamsgw_gateway::registration::{
    AgentSettings, Outcome, Registrar, Registration, RegistrationAgent,
};
use teamsgw_sip::message::{Message, MessageBuilder};
use teamsgw_sip::transaction::{Event, TimerSettings, TransactionLayer};
use teamsgw_sip::transport::Transport;

const USERS: u32 = 100_000;

fn user(n: u32) -> Registration {
    Registration {
        upn: format!("user{n}@e{}.example", n % 100),
        enterprise: format!("Enterprise {}", n % 100),
        extension: format!("{}", 100_000 + n),
        domain: format!("pbx.e{}.example", n % 100),
        registrar: Registrar::parse("127.0.0.1:5060", Transport::Udp),
        auth_user: format!("{}", 100_000 + n),
        password: format!("secret-{n}"),
        contact_token: format!("{n:016x}"),
        expires: 3600,
        enabled: true,
    }
}

/// The registrar: 401 for a REGISTER without credentials, 200 with the Contact otherwise.
fn registrar(data: &[u8]) -> bytes::Bytes {
    let request = Message::parse(bytes::Bytes::copy_from_slice(data)).unwrap();
    let authorized = request.authorization().next().is_some();
    let b = MessageBuilder::response_to(
        &request,
        if authorized { 200 } else { 401 },
        "X",
        Some("r"),
        None,
    );
    if authorized {
        let contact = String::from_utf8_lossy(
            request
                .header(teamsgw_sip::HeaderName::Contact)
                .unwrap_or_default(),
        )
        .into_owned();
        b.header("Contact", format!("{contact};expires=3600"))
            .finish()
    } else {
        b.header(
            "WWW-Authenticate",
            "Digest realm=\"pbx\", nonce=\"5f1b7c0e4d2a\", qop=\"auth\", algorithm=MD5",
        )
        .finish()
    }
}

struct Run {
    transactions: u64,
    ours: Duration,
}

/// Runs every REGISTER the agent has to send until it is quiet (virtual clock `now`).
fn run(agent: &mut RegistrationAgent, layer: &mut TransactionLayer<u32>, now: Instant) -> Run {
    let started = Instant::now();
    let mut theirs = Duration::ZERO;
    let mut transactions = 0;
    let mut pending = Vec::new();
    loop {
        let mut busy = false;
        while let Some(send) = agent.poll_send() {
            busy = true;
            layer.send_request(send.request, 0, false, now);
            pending.push(send.id);
        }
        while let Some(event) = layer.poll_event() {
            busy = true;
            match event {
                Event::Transmit { data, .. } => {
                    transactions += 1;
                    let t = Instant::now();
                    let response = registrar(&data);
                    theirs += t.elapsed();
                    layer.receive(Message::parse(response).unwrap(), 0, false, now);
                }
                Event::Response { message, .. } => {
                    let id = pending.remove(0);
                    agent.on_outcome(id, Outcome::Response(message), now);
                }
                _ => {}
            }
        }
        while agent.poll_finished().is_some() {}
        if !busy {
            break;
        }
    }
    Run {
        transactions,
        ours: started.elapsed().saturating_sub(theirs),
    }
}

fn main() {
    let t0 = Instant::now();
    let mut agent = RegistrationAgent::new(
        AgentSettings {
            rate_per_second: 1_000_000,
            ..AgentSettings::default()
        },
        t0,
    );
    let mut layer = TransactionLayer::new(TimerSettings::default());
    let users: Vec<Registration> = (0..USERS).map(user).collect();
    let started = Instant::now();
    agent.sync(users, t0);
    let sync = started.elapsed();
    let mut now = t0;
    let mut total = Run {
        transactions: 0,
        ours: Duration::ZERO,
    };
    // The bucket holds one second of tokens: advance virtual time until everyone is done.
    while agent
        .counts()
        .iter()
        .any(|((_, s), n)| *s != teamsgw_gateway::registration::State::Registered && *n > 0)
    {
        let r = run(&mut agent, &mut layer, now);
        total.transactions += r.transactions;
        total.ours += r.ours;
        now += Duration::from_secs(1);
        agent.handle_timeout(now);
    }
    println!(
        "sync of {USERS} users into the agent: {:.0} ms",
        sync.as_secs_f64() * 1e3
    );
    let per_tx = total.ours.as_secs_f64() / total.transactions as f64;
    println!(
        "initial registration: {} REGISTER transactions (401 + 200 each) in {:.2} s of teamsgw CPU: \
         {:.1} us each, {:.0} transactions/s on one core",
        total.transactions,
        total.ours.as_secs_f64(),
        per_tx * 1e6,
        1.0 / per_tx
    );

    // Steady state: an hour of refreshes (each answered 200 at once: the nonce is remembered).
    let hour = now + Duration::from_secs(3600);
    let mut refreshes = Run {
        transactions: 0,
        ours: Duration::ZERO,
    };
    let mut clock = now;
    while clock < hour {
        clock += Duration::from_secs(10);
        agent.handle_timeout(clock);
        let r = run(&mut agent, &mut layer, clock);
        refreshes.transactions += r.transactions;
        refreshes.ours += r.ours;
        layer.handle_timeout(clock);
        while layer.poll_event().is_some() {}
    }
    let share = refreshes.ours.as_secs_f64() / 3600.0 * 100.0;
    println!(
        "steady state, one hour of 3600 s bindings for {USERS} users: {} refresh transactions, \
         {:.2} s of CPU = {share:.3} % of one core",
        refreshes.transactions,
        refreshes.ours.as_secs_f64()
    );
}
