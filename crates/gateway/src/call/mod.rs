//! Calls: the B2BUA core that bridges a Teams leg (TLS, SRTP) and a PBX leg (UDP/TCP, RTP).
//!
//! A [`CallCore`] is one shard's sans-IO state machine, driven like `quinn-proto`'s
//! `Endpoint`: [`CallCore::handle`] takes an [`Input`] with `now`, [`CallCore::poll_output`]
//! is drained until `None` after every input, and [`CallCore::poll_timeout`] /
//! [`CallCore::handle_timeout`] carry the passage of time. It never touches a socket or a
//! clock, so a 32 s Timer B failover runs in microseconds under test.
//!
//! The life of a call, one file per concern:
//! - [`routing`]: which tenant, user and PBX a new INVITE is for, and who may place it;
//! - [`inbound`]: the leg that called us (UAS: responses, its dialog, 2xx until ACK);
//! - [`outbound`]: the leg we call (UAC: INVITE, digest, forks, CANCEL, ACK);
//! - [`state`]: one call joining the two legs, its phase and its time;
//! - `progress`: the outbound INVITE's responses for the call (failover, ringing, answer,
//!   failure mapping);
//! - `dialogs`: requests inside the call's dialogs (ACK, BYE, CANCEL) and hanging up;
//! - `reinvite`: re-INVITEs and UPDATEs on each leg: refreshes absorbed, hold passed across;
//! - [`session_timer`]: RFC 4028 intervals and refreshers, one per leg;
//! - `identity`: privacy and call history (PAI, Privacy, History-Info, Diversion) across legs;
//! - [`sdp_bridge`]: offer/answer carried from one leg to the other, in the call too;
//! - [`body_parts`]: the other parts of a multipart INVITE body (an emergency call's
//!   location), carried across byte for byte;
//! - [`next_hop`]: where in-dialog requests go (route set, then remote target);
//! - `setup`: what a new call is built from (Contact, Via, the outbound INVITE);
//! - `transfer`: REFER from Teams (a new Teams leg, NOTIFY progress);
//! - `pbx_transfer`: REFER from Teams to a number, handed to the PBX with our REFER;
//! - `bridge_transfer`: the same for a PBX that takes no REFER: our own call to the number,
//!   its offer given to the remaining party (RFC 3725);
//! - `bridged`: a call between two PBX parties after that, in signalling only;
//! - `replaces`: INVITE with Replaces from Teams (park pickup, consultative transfer);
//! - `shards`: which shard owns a message (Call-IDs, tags and branches name it);
//! - [`media`]: the relay session, behind a small interface the driver implements;
//! - [`cause`]: why a call ended, for the CDR, metrics and `Reason` headers;
//! - [`core`]: many calls, their transactions and timers.

pub mod body_parts;
mod bridge_transfer;
mod bridged;
pub mod cause;
pub mod core;
mod dialogs;
mod identity;
pub mod inbound;
pub mod limits;
pub mod media;
pub mod next_hop;
pub mod outbound;
mod pbx_transfer;
pub mod peers;
mod progress;
mod reinvite;
pub(crate) mod replaces;
pub mod routing;
pub mod sdp_bridge;
pub mod session_timer;
mod setup;
mod shards;
pub mod state;
mod transfer;

/// The Via branch prefix of every request the call layer sends (RFC 3261 §8.1.1.7 magic
/// cookie first). A response on a leg that called us carries the peer's Call-ID, so the
/// branch is what tells the transport that the call layer, not the client driver, owns it.
pub const CALL_BRANCH_PREFIX: &str = "z9hG4bK-call-";

pub use shards::{shard_for_peer_call_id, shard_of_call_id, shard_of_message};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use teamsgw_sip::transaction::TimerSettings;
use teamsgw_sip::transport::{Source, Target};

pub use cause::{EndCause, Side};
pub use core::CallCore;
pub use limits::{CallRates, SessionCounts};
pub use media::{MediaCounters, MediaPlane};
pub use routing::{RoutingView, SharedView};

/// Where a message goes: back the way a request came (its connection, or the UDP socket it
/// arrived on), to a target we chose, or to an in-dialog next hop the driver resolves.
#[derive(Debug, Clone)]
pub enum Dest {
    Reply(Source),
    To(Target),
    Hop(Arc<next_hop::Hop>),
}

impl Dest {
    pub fn transport(&self) -> teamsgw_sip::transport::Transport {
        match self {
            Dest::Reply(s) => s.transport,
            Dest::To(t) => t.transport,
            Dest::Hop(h) => h.transport,
        }
    }
}

/// Which way a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A Teams user calls out through their PBX.
    FromTeams,
    /// A call to the user's PBX extension rings their Teams client.
    ToTeams,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromTeams => "from_teams",
            Direction::ToTeams => "to_teams",
        }
    }
}

/// Plain settings the daemon derives from its configuration.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// `X-MS-SBC` (§3.2).
    pub sbc_header: String,
    pub user_agent: String,
    /// Host the PBX reaches us at (Contact, Via), and our PBX listener ports.
    pub pbx_host: String,
    pub pbx_udp_port: u16,
    pub pbx_tcp_port: u16,
    /// The address put in SDP for both legs.
    pub media_address: String,
    /// An INVITE to a Teams proxy that gets no response at all in this time fails over (§1.6;
    /// shorter than Timer B's 32 s).
    pub invite_timeout: Duration,
    /// A call not answered in this time is ended (the caller gets 480 or our CANCEL goes out).
    pub no_answer_timeout: Duration,
    /// The session interval we ask for, and use on a PBX leg whose PBX offers none (RFC 4028).
    pub session_expires: Duration,
    /// A PBX's hold leaves Teams un-held and relays its music on hold, instead of holding
    /// Teams with `a=inactive` (§3.6).
    pub relay_pbx_hold: bool,
    pub timers: TimerSettings,
    /// This core's shard number, encoded in the Call-IDs it creates.
    pub shard: u16,
    /// Fixes the identifiers' generator (tests); `None`: seeded from the OS.
    pub seed: Option<u64>,
    pub sessions: Arc<SessionCounts>,
    pub rates: Arc<CallRates>,
    /// Emit [`Output::Correlate`] for each leg (a SIP capture links a call's legs by it).
    pub correlate_legs: bool,
    /// Numbers whose calls from Teams are emergency calls: never refused by `max_sessions`,
    /// dialled at the PBX exactly as Teams sent them, counted and logged.
    pub emergency_numbers: Vec<String>,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            sbc_header: "teamsgw/teamsgw/0".into(),
            user_agent: "teamsgw".into(),
            pbx_host: "127.0.0.1".into(),
            pbx_udp_port: 5060,
            pbx_tcp_port: 5060,
            media_address: "127.0.0.1".into(),
            invite_timeout: Duration::from_secs(5),
            no_answer_timeout: Duration::from_secs(180),
            session_expires: Duration::from_secs(1800),
            relay_pbx_hold: false,
            timers: TimerSettings::default(),
            shard: 0,
            seed: Some(1),
            sessions: Arc::new(SessionCounts::default()),
            rates: Arc::new(CallRates::default()),
            correlate_legs: false,
            emergency_numbers: ["911", "933", "112", "999"].map(String::from).to_vec(),
        }
    }
}

/// What the core takes in.
#[derive(Debug)]
pub enum Input {
    /// A SIP message from a transport (requests the stateless policy passed, and responses
    /// to the requests this shard sent).
    Message {
        message: teamsgw_sip::Message,
        source: Source,
    },
    /// A message to `target` could not be sent (connect or TLS failure).
    SendFailed { target: Target },
    /// The relay saw no packets on this session for too long.
    MediaTimeout { session: u64 },
    /// A new routing view (each call keeps the decision it started with).
    Routes(SharedView),
    /// Trunk health: a Teams proxy went up or down.
    ProxyState { proxy: String, up: bool },
    /// SIGTERM: refuse new calls; end those still up at `deadline`.
    Drain { deadline: Instant },
}

/// What the core asks of its driver.
#[derive(Debug)]
pub enum Output {
    Transmit {
        dest: Dest,
        data: Bytes,
    },
    /// A 503 with Retry-After: the trunk health should hold this proxy down that long.
    ProxyDown {
        proxy: String,
        retry_after: Duration,
    },
    Event(CallEvent),
    /// Messages with `call_id` belong to the call whose first Call-ID is `correlation`; `None`
    /// when the leg is gone. Only with [`CallSettings::correlate_legs`].
    Correlate {
        call_id: String,
        correlation: Option<String>,
    },
}

/// Call events, for metrics and the CDR writer.
#[derive(Debug)]
pub enum CallEvent {
    Started {
        direction: Direction,
    },
    /// A message refused for who sent it (`teamsgw_sip_rejected_total{reason}`).
    SourceRefused {
        reason: &'static str,
    },
    /// A call refused before it started (`teamsgw_call_admission_rejected_total{reason}`).
    Refused {
        reason: &'static str,
    },
    /// INVITE to first 18x (`ringing`) or to 200 (`answered`).
    Setup {
        direction: Direction,
        stage: &'static str,
        seconds: f64,
    },
    Failover {
        from_proxy: String,
        cause: &'static str,
    },
    /// A transfer Teams asked for ended (`teamsgw_call_transfers_total{kind,result}`):
    /// `teams_user`, `number` or `replaces`; `completed` or `failed`.
    Transfer {
        kind: &'static str,
        result: &'static str,
    },
    /// An emergency call from Teams started (`teamsgw_emergency_calls_total{enterprise}`).
    Emergency {
        enterprise: String,
        caller: String,
        number: String,
        location: bool,
    },
    Finished(Box<CallRecord>),
    /// A BYE of an ended call got no answer by Timer F (RFC 3261 §17.1.2.2): the peer on
    /// `side` may still think the call is up (`teamsgw_call_bye_lost_total{side}`; the
    /// call's record is marked).
    ByeLost {
        call_id: String,
        side: Side,
    },
}

/// One finished call, as the CDR stores it. Times are the core's instants; the driver turns
/// them into wall-clock times.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call_id: String,
    pub direction: Direction,
    pub enterprise: String,
    pub direct_route: String,
    /// The enterprise is served by Operator Connect (else Direct Routing).
    pub operator_connect: bool,
    pub user: String,
    pub caller: String,
    pub callee: String,
    /// The Teams proxy the call went through, when it went to Teams.
    pub teams_proxy: Option<String>,
    /// Each proxy tried before it, with why it was left.
    pub failovers: Vec<(String, String)>,
    pub started: Instant,
    pub answered: Option<Instant>,
    pub ended: Instant,
    /// The final status the caller saw (200 for answered calls).
    pub status: u16,
    pub result: &'static str,
    pub reason: String,
    pub hung_up_by: Option<Side>,
    pub codec: Option<String>,
    /// A call from Teams to one of `emergency_numbers`.
    pub emergency: bool,
    pub media: MediaCounters,
}

/// A live call, for `call list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallView {
    pub call_id: String,
    pub direction: Direction,
    pub enterprise: String,
    pub user: String,
    pub caller: String,
    pub callee: String,
    pub state: &'static str,
    pub seconds: u64,
}

#[cfg(test)]
mod tests;
