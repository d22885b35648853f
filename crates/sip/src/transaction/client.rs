//! Client transactions (RFC 3261 §17.1, with the RFC 6026 Accepted state for INVITE).
//!
//! A client transaction is a plain state machine: the layer feeds it responses and timeouts
//! with the current time and it answers with what to do. Retransmissions (timers A and E)
//! run on unreliable transports only.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TimerSettings;
use crate::message::{Message, MessageBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard (INVITE: Calling; non-INVITE: Trying).
    Calling,
    Proceeding,
    /// Final non-2xx received (INVITE), or any final (non-INVITE): absorbing retransmissions.
    Completed,
    /// RFC 6026: a 2xx to an INVITE; further 2xx are passed up for the TU to ACK.
    Accepted,
    Terminated,
}

/// What a client transaction wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAction {
    Retransmit(Bytes),
    /// Send the ACK for a non-2xx final response (§17.1.1.3).
    SendAck(Bytes),
    PassUp,
    /// Pass the final non-2xx response up and send this ACK for it.
    PassUpWithAck(Bytes),
    Timeout,
    Absorb,
}

pub struct ClientTx {
    pub invite: bool,
    pub state: ClientState,
    pub request: Message,
    reliable: bool,
    interval: Duration,
    retransmit_at: Option<Instant>,
    /// Timer B/F: the whole transaction gives up.
    timeout_at: Option<Instant>,
    /// Timer D/K/M: lingering in Completed/Accepted ends.
    end_at: Option<Instant>,
    ack: Option<Bytes>,
}

impl ClientTx {
    pub fn new(
        request: Message,
        invite: bool,
        reliable: bool,
        t: &TimerSettings,
        now: Instant,
    ) -> Self {
        Self {
            invite,
            state: ClientState::Calling,
            request,
            reliable,
            interval: t.t1,
            retransmit_at: (!reliable).then_some(now + t.t1),
            timeout_at: Some(now + t.t1 * 64),
            end_at: None,
            ack: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn on_response(
        &mut self,
        response: &Message,
        t: &TimerSettings,
        now: Instant,
    ) -> ClientAction {
        let Some(status) = response.status() else {
            return ClientAction::Absorb;
        };
        match (self.invite, self.state, status) {
            (_, ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                if self.invite {
                    // Timer A stops on a provisional response; B keeps running (§17.1.1.2).
                    self.retransmit_at = None;
                } else if !self.reliable {
                    // Timer E continues at T2 in Proceeding (§17.1.2.2).
                    self.interval = t.t2;
                }
                ClientAction::PassUp
            }
            (true, ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                // RFC 6026 §8.4: Accepted, timer M = 64*T1; 2xx retransmissions pass up.
                self.state = ClientState::Accepted;
                self.retransmit_at = None;
                self.timeout_at = None;
                self.end_at = Some(now + t.t1 * 64);
                ClientAction::PassUp
            }
            (true, ClientState::Accepted, 200..=299) => ClientAction::PassUp,
            (true, ClientState::Calling | ClientState::Proceeding, 300..=699) => {
                self.state = ClientState::Completed;
                self.retransmit_at = None;
                self.timeout_at = None;
                // Timer D: 32 s on unreliable transports, 0 on reliable ones (§17.1.1.2).
                self.end_at = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    },
                );
                let ack = ack_for_non_2xx(&self.request, response);
                self.ack = Some(ack.clone());
                ClientAction::PassUpWithAck(ack)
            }
            (true, ClientState::Completed, 300..=699) => match &self.ack {
                Some(ack) => ClientAction::SendAck(ack.clone()),
                None => ClientAction::Absorb,
            },
            (false, ClientState::Calling | ClientState::Proceeding, 200..=699) => {
                self.state = ClientState::Completed;
                self.retransmit_at = None;
                self.timeout_at = None;
                // Timer K: T4 on unreliable transports, 0 on reliable ones (§17.1.2.2).
                self.end_at = Some(now + if self.reliable { Duration::ZERO } else { t.t4 });
                ClientAction::PassUp
            }
            _ => ClientAction::Absorb,
        }
    }

    pub fn on_timeout(&mut self, t: &TimerSettings, now: Instant) -> Option<ClientAction> {
        if self.timeout_at.is_some_and(|at| at <= now) {
            self.state = ClientState::Terminated;
            return Some(ClientAction::Timeout);
        }
        if self.end_at.is_some_and(|at| at <= now) {
            self.state = ClientState::Terminated;
            return None;
        }
        if self.retransmit_at.is_some_and(|at| at <= now) {
            // Timer A doubles without bound (B ends it); timer E doubles up to T2 (§17.1.2.2).
            self.interval = if self.invite {
                self.interval * 2
            } else {
                (self.interval * 2).min(t.t2)
            };
            if !self.invite && self.state == ClientState::Proceeding {
                self.interval = t.t2;
            }
            self.retransmit_at = Some(now + self.interval);
            return Some(ClientAction::Retransmit(self.request.as_bytes().clone()));
        }
        None
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): Request-URI, Call-ID, From, CSeq number
/// and Route of the INVITE, the To of the response, and only the INVITE's top Via.
pub fn ack_for_non_2xx(invite: &Message, response: &Message) -> Bytes {
    use crate::message::HeaderName;
    let uri = invite
        .request_uri_raw()
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .unwrap_or_default();
    let mut b = MessageBuilder::request("ACK", &uri);
    if let Some(via) = invite.values(HeaderName::Via).next() {
        b = b.header("Via", via);
    }
    for (name, value) in [
        ("From", invite.header(HeaderName::From)),
        ("To", response.header(HeaderName::To)),
        ("Call-ID", invite.header(HeaderName::CallId)),
    ] {
        if let Some(v) = value {
            b = b.header(name, v);
        }
    }
    let seq = invite.cseq().and_then(Result::ok).map_or(0, |c| c.seq);
    b = b.header("CSeq", format!("{seq} ACK"));
    for route in invite.values(HeaderName::Route) {
        b = b.header("Route", route);
    }
    b.header("Max-Forwards", "70").finish()
}
