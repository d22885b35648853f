//! Server transactions (RFC 3261 §17.2, with the RFC 6026 Accepted state for INVITE).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TimerSettings;
use crate::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, no response yet (non-INVITE: Trying; INVITE goes to Proceeding).
    Trying,
    Proceeding,
    /// Final response sent (INVITE: non-2xx, waiting for the ACK).
    Completed,
    /// INVITE: the ACK for a non-2xx arrived.
    Confirmed,
    /// RFC 6026: a 2xx was sent; INVITE retransmissions are absorbed, the TU retransmits 2xx.
    Accepted,
    Terminated,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ServerAction {
    Send(Bytes),
    /// Timer H fired: the ACK never came (§17.2.1).
    AckTimeout,
}

pub struct ServerTx {
    pub invite: bool,
    pub state: ServerState,
    pub request: Message,
    reliable: bool,
    last_response: Option<Bytes>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    end_at: Option<Instant>,
}

impl ServerTx {
    pub fn new(request: Message, invite: bool, reliable: bool) -> Self {
        Self {
            invite,
            // §17.2.1: the INVITE server transaction starts in Proceeding.
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            request,
            reliable,
            last_response: None,
            interval: Duration::ZERO,
            retransmit_at: None,
            timeout_at: None,
            end_at: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn has_final(&self) -> bool {
        matches!(
            self.state,
            ServerState::Completed
                | ServerState::Confirmed
                | ServerState::Accepted
                | ServerState::Terminated
        )
    }

    /// The TU sends a response; returns what to transmit (nothing once terminated).
    pub fn respond(
        &mut self,
        status: u16,
        data: Bytes,
        t: &TimerSettings,
        now: Instant,
    ) -> Option<Bytes> {
        match (self.invite, self.state, status) {
            (_, ServerState::Trying | ServerState::Proceeding, 100..=199) => {
                self.state = ServerState::Proceeding;
            }
            (true, ServerState::Proceeding, 200..=299) => {
                self.state = ServerState::Accepted;
                // Timer L = 64*T1 (RFC 6026 §8.7).
                self.end_at = Some(now + t.t1 * 64);
            }
            // RFC 6026 §8.7: 2xx retransmissions from the TU pass through in Accepted.
            (true, ServerState::Accepted, 200..=299) => return Some(data),
            (true, ServerState::Proceeding, 300..=699) => {
                self.state = ServerState::Completed;
                if !self.reliable {
                    self.interval = t.t1;
                    self.retransmit_at = Some(now + t.t1); // timer G
                }
                self.timeout_at = Some(now + t.t1 * 64); // timer H
            }
            (false, ServerState::Trying | ServerState::Proceeding, 200..=699) => {
                self.state = ServerState::Completed;
                // Timer J: 64*T1 on unreliable transports, 0 on reliable ones (§17.2.2).
                self.end_at = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        t.t1 * 64
                    },
                );
            }
            _ => return None,
        }
        self.last_response = Some(data.clone());
        Some(data)
    }

    /// A retransmission of the request: answered with the last response, if any (§17.2.1,
    /// §17.2.2); in Accepted the TU's own 2xx retransmissions cover it (RFC 6026).
    pub fn on_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.clone(),
            _ => None,
        }
    }

    /// An ACK matching this INVITE transaction (for a non-2xx response).
    pub fn on_ack(&mut self, t: &TimerSettings, now: Instant) {
        if self.state == ServerState::Completed {
            self.state = ServerState::Confirmed;
            self.retransmit_at = None;
            self.timeout_at = None;
            // Timer I: T4 on unreliable transports, 0 on reliable ones.
            self.end_at = Some(now + if self.reliable { Duration::ZERO } else { t.t4 });
        }
    }

    pub fn on_timeout(&mut self, t: &TimerSettings, now: Instant) -> Option<ServerAction> {
        if self.timeout_at.is_some_and(|at| at <= now) {
            self.state = ServerState::Terminated;
            return Some(ServerAction::AckTimeout);
        }
        if self.end_at.is_some_and(|at| at <= now) {
            self.state = ServerState::Terminated;
            return None;
        }
        if self.retransmit_at.is_some_and(|at| at <= now) {
            // Timer G doubles up to T2 (§17.2.1).
            self.interval = (self.interval * 2).min(t.t2);
            self.retransmit_at = Some(now + self.interval);
            return self.last_response.clone().map(ServerAction::Send);
        }
        None
    }
}
