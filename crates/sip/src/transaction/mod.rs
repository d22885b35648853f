//! The transaction layer (RFC 3261 §17), sans-IO.
//!
//! [`TransactionLayer`] owns every client and server transaction. It is driven like
//! `quinn-proto`: the caller feeds it received messages ([`TransactionLayer::receive`]), the
//! transaction user's requests and responses, transport errors and the passage of time
//! ([`TransactionLayer::handle_timeout`]), always with the current [`Instant`]; it produces
//! [`Event`]s to drain with [`TransactionLayer::poll_event`] and tells when it next needs
//! the clock ([`TransactionLayer::poll_timeout`]). It never touches a socket or a clock, so
//! every timer rule is tested in microseconds with a virtual clock.
//!
//! `D` is the caller's handle for where a message came from or goes to (socket address,
//! connection id...); the layer only stores and returns it.
//!
//! Beyond the state machines the layer applies the UAS core rules that need transaction
//! state: CANCEL matching (§9.2: 200 for the CANCEL, 487 for a pending INVITE, 481 for an
//! unknown one) and merged-request detection (§8.2.2.2: 482).

mod client;
mod server;

pub use client::{ClientState, ack_for_non_2xx};
pub use server::ServerState;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{HeaderName, Message, MessageBuilder, Method};
use client::{ClientAction, ClientTx};
use server::{ServerAction, ServerTx};

/// RFC 3261 timer base values (§17.1.1.1, table 4). All configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What the layer asks of its driver and its transaction user.
#[derive(Debug)]
pub enum Event<D> {
    /// Send these bytes to `dest`.
    Transmit { dest: D, data: Bytes },
    /// A new request (not ACK, not a retransmission): respond through [`TransactionLayer::respond`].
    Request {
        tx: TxId,
        message: Message,
        source: D,
    },
    /// An ACK that matches no INVITE transaction: the ACK for a 2xx (a dialog's business)
    /// or a stray one to discard (RFC 6026 §7.1).
    Ack { message: Message, source: D },
    /// A response to a request we sent (provisional, final, and 2xx retransmissions while the
    /// INVITE transaction is Accepted).
    Response { tx: TxId, message: Message },
    /// A response matching no client transaction (e.g. a 2xx retransmission after timer M).
    StrayResponse { message: Message, source: D },
    /// Timer B or F: no final response in time (treated as 408 by the TU, §8.1.3.1).
    Timeout { tx: TxId },
    /// The transport could not send for this transaction (treated as 503, §8.1.3.1).
    TransportError { tx: TxId },
    /// A CANCEL ended this pending INVITE; 487 was already sent.
    /// `reason` is the CANCEL's Reason header (RFC 3326), for the UAS to pass on.
    Cancelled { tx: TxId, reason: Option<String> },
    /// Timer H: the ACK for our non-2xx final response never came.
    AckTimeout { tx: TxId },
    /// A response, CANCEL or ACK that matched a transaction but came from elsewhere than
    /// the transaction's peer (see [`TransactionLayer::set_peer_check`]). The layer dropped
    /// it; the transaction user may answer a CANCEL with 403.
    OffPath { message: Message, source: D },
}

/// Server transactions are matched by top-Via branch and sent-by plus method (ACK counts as
/// INVITE); requests without an RFC 3261 branch use the RFC 2543 rules (§17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    Rfc3261 {
        branch: Bytes,
        sent_by: Bytes,
        method: Bytes,
    },
    Rfc2543(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: Bytes,
    method: Bytes,
}

/// §8.2.2.2: From tag, Call-ID and CSeq identify a request arriving by several paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    from_tag: Bytes,
    call_id: Bytes,
    cseq: Bytes,
}

struct ServerEntry<D> {
    tx: ServerTx,
    key: ServerKey,
    merge: Option<MergeKey>,
    source: D,
}

struct ClientEntry<D> {
    tx: ClientTx,
    key: ClientKey,
    dest: D,
}

pub struct TransactionLayer<D> {
    timers: TimerSettings,
    next_id: u64,
    // Entries are boxed: they hold a parsed message, and churn makes hashbrown double its table
    // now and then; boxed, a doubling costs pointer slots, not whole entries (measured with the
    // call_core bench: a 223 MB step at 50k calls).
    servers: HashMap<TxId, Box<ServerEntry<D>>>,
    server_index: HashMap<ServerKey, TxId>,
    merge_index: HashMap<MergeKey, TxId>,
    clients: HashMap<TxId, Box<ClientEntry<D>>>,
    client_index: HashMap<ClientKey, TxId>,
    /// Deadlines, possibly stale (checked against the transaction when popped).
    deadlines: BinaryHeap<Reverse<(Instant, TxId)>>,
    events: VecDeque<Event<D>>,
    peer_check: PeerCheck<D>,
}

/// Whether a message from `incoming` may act on a transaction whose peer is `peer`.
pub type PeerCheck<D> = fn(peer: &D, incoming: &D) -> bool;

impl<D: Clone> TransactionLayer<D> {
    pub fn new(timers: TimerSettings) -> Self {
        Self {
            timers,
            next_id: 1,
            servers: HashMap::new(),
            server_index: HashMap::new(),
            merge_index: HashMap::new(),
            clients: HashMap::new(),
            client_index: HashMap::new(),
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            peer_check: |_, _| true,
        }
    }

    /// Binds transactions to their peers: a response, a CANCEL, an ACK or a retransmission
    /// that matches a transaction is taken only when `check(peer, source)` holds, where
    /// `peer` is where the request went (client) or came from (server). The branch alone is
    /// no proof: whoever saw it, or guessed a peer's weak one, could end or answer it.
    /// Anything else becomes [`Event::OffPath`]. By default every source is taken.
    pub fn set_peer_check(&mut self, check: PeerCheck<D>) {
        self.peer_check = check;
    }

    pub fn timers(&self) -> &TimerSettings {
        &self.timers
    }

    pub fn poll_event(&mut self) -> Option<Event<D>> {
        self.events.pop_front()
    }

    /// When [`TransactionLayer::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if self.deadline_of(id) == Some(at) {
                return Some(at);
            }
            self.deadlines.pop(); // stale
        }
        None
    }

    pub fn live_transactions(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    pub fn client_state(&self, tx: TxId) -> Option<ClientState> {
        self.clients.get(&tx).map(|e| e.tx.state)
    }

    pub fn server_state(&self, tx: TxId) -> Option<ServerState> {
        self.servers.get(&tx).map(|e| e.tx.state)
    }

    fn deadline_of(&self, id: TxId) -> Option<Instant> {
        self.clients
            .get(&id)
            .map(|e| e.tx.deadline())
            .or_else(|| self.servers.get(&id).map(|e| e.tx.deadline()))
            .flatten()
    }

    fn schedule(&mut self, id: TxId) {
        if let Some(at) = self.deadline_of(id) {
            self.deadlines.push(Reverse((at, id)));
        }
    }

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    // ---- from the network ------------------------------------------------------------

    /// A message from the transport. `reliable` is false for UDP.
    pub fn receive(&mut self, message: Message, source: D, reliable: bool, now: Instant) {
        if message.is_request() {
            self.receive_request(message, source, reliable, now);
        } else {
            self.receive_response(message, source, now);
        }
    }

    fn receive_request(&mut self, message: Message, source: D, reliable: bool, now: Instant) {
        let Some(method) = message.method() else {
            return;
        };
        let Some(key) = server_key(&message) else {
            return;
        };
        if let Some(&id) = self.server_index.get(&key) {
            let timers = self.timers;
            let Some(entry) = self.servers.get_mut(&id) else {
                return;
            };
            if !(self.peer_check)(&entry.source, &source) {
                self.events.push_back(Event::OffPath { message, source });
                return;
            }
            if method == Method::Ack {
                entry.tx.on_ack(&timers, now);
                self.schedule(id);
            } else if let Some(data) = entry.tx.on_retransmission() {
                self.events.push_back(Event::Transmit {
                    dest: entry.source.clone(),
                    data,
                });
            }
            return;
        }
        match method {
            Method::Ack => {
                self.events.push_back(Event::Ack { message, source });
                return;
            }
            Method::Cancel => {
                self.receive_cancel(message, source, reliable, now);
                return;
            }
            _ => {}
        }
        let merge = merge_key(&message);
        if let Some(m) = &merge
            && self.merge_index.contains_key(m)
        {
            // Same request by another path: 482 statelessly (§8.2.2.2).
            let tag = local_tag_for(&message);
            let data =
                MessageBuilder::response_to(&message, 482, "Loop Detected", Some(&tag), None)
                    .finish();
            self.events
                .push_back(Event::Transmit { dest: source, data });
            return;
        }
        let id = self.new_id();
        let tx = ServerTx::new(message.clone(), method == Method::Invite, reliable);
        self.server_index.insert(key.clone(), id);
        if let Some(m) = &merge {
            self.merge_index.insert(m.clone(), id);
        }
        self.servers.insert(
            id,
            Box::new(ServerEntry {
                tx,
                key,
                merge,
                source: source.clone(),
            }),
        );
        self.events.push_back(Event::Request {
            tx: id,
            message,
            source,
        });
    }

    /// §9.2: a CANCEL matches the INVITE server transaction with the same key (method aside).
    fn receive_cancel(&mut self, cancel: Message, source: D, reliable: bool, now: Instant) {
        let invite_id = server_key_for_method(&cancel, b"INVITE")
            .and_then(|k| self.server_index.get(&k).copied());
        let Some(invite_id) = invite_id else {
            let tag = local_tag_for(&cancel);
            let data = MessageBuilder::response_to(
                &cancel,
                481,
                "Call/Transaction Does Not Exist",
                Some(&tag),
                None,
            )
            .finish();
            self.events
                .push_back(Event::Transmit { dest: source, data });
            return;
        };
        if let Some(invite) = self.servers.get(&invite_id)
            && !(self.peer_check)(&invite.source, &source)
        {
            self.events.push_back(Event::OffPath {
                message: cancel,
                source,
            });
            return;
        }
        // The CANCEL is a non-INVITE transaction of its own, answered 200 at once.
        let id = self.new_id();
        let cancel_key = server_key(&cancel);
        let mut tx = ServerTx::new(cancel.clone(), false, reliable);
        let to_tag = self
            .servers
            .get(&invite_id)
            .map(|e| local_tag_for(&e.tx.request));
        let ok = MessageBuilder::response_to(&cancel, 200, "OK", to_tag.as_deref(), None).finish();
        let timers = self.timers;
        if let Some(data) = tx.respond(200, ok, &timers, now) {
            self.events.push_back(Event::Transmit {
                dest: source.clone(),
                data,
            });
        }
        if let Some(key) = cancel_key {
            self.server_index.insert(key.clone(), id);
            self.servers.insert(
                id,
                Box::new(ServerEntry {
                    tx,
                    key,
                    merge: None,
                    source,
                }),
            );
            self.schedule(id);
        }
        // A pending INVITE ends with 487.
        let Some(entry) = self.servers.get_mut(&invite_id) else {
            return;
        };
        if entry.tx.has_final() {
            return;
        }
        let tag = local_tag_for(&entry.tx.request);
        let terminated = MessageBuilder::response_to(
            &entry.tx.request,
            487,
            "Request Terminated",
            Some(&tag),
            None,
        )
        .finish();
        if let Some(data) = entry.tx.respond(487, terminated, &timers, now) {
            self.events.push_back(Event::Transmit {
                dest: entry.source.clone(),
                data,
            });
        }
        let reason = cancel
            .header(HeaderName::Reason)
            .map(|r| String::from_utf8_lossy(r).into_owned());
        self.events.push_back(Event::Cancelled {
            tx: invite_id,
            reason,
        });
        self.schedule(invite_id);
    }

    fn receive_response(&mut self, message: Message, source: D, now: Instant) {
        let key = message.top_via().and_then(Result::ok).and_then(|via| {
            let branch = via.branch()?;
            let cseq = message.cseq()?.ok()?;
            Some(ClientKey {
                branch: sub(&message, branch),
                method: Bytes::copy_from_slice(cseq.method.as_str().as_bytes()),
            })
        });
        let Some(id) = key.and_then(|k| self.client_index.get(&k).copied()) else {
            self.events
                .push_back(Event::StrayResponse { message, source });
            return;
        };
        let timers = self.timers;
        let Some(entry) = self.clients.get_mut(&id) else {
            return;
        };
        if !(self.peer_check)(&entry.dest, &source) {
            self.events.push_back(Event::OffPath { message, source });
            return;
        }
        match entry.tx.on_response(&message, &timers, now) {
            ClientAction::PassUp => self.events.push_back(Event::Response { tx: id, message }),
            ClientAction::PassUpWithAck(ack) => {
                self.events.push_back(Event::Transmit {
                    dest: entry.dest.clone(),
                    data: ack,
                });
                self.events.push_back(Event::Response { tx: id, message });
            }
            ClientAction::SendAck(ack) | ClientAction::Retransmit(ack) => {
                self.events.push_back(Event::Transmit {
                    dest: entry.dest.clone(),
                    data: ack,
                })
            }
            ClientAction::Timeout | ClientAction::Absorb => {}
        }
        self.finish_client_if_done(id);
        self.schedule(id);
    }

    // ---- from the transaction user --------------------------------------------------------

    /// Starts a client transaction for `request` (its top Via must carry our branch) and
    /// transmits it. ACK is not a transaction: use [`TransactionLayer::send_stateless`].
    pub fn send_request(
        &mut self,
        request: Message,
        dest: D,
        reliable: bool,
        now: Instant,
    ) -> Option<TxId> {
        let method = request.method()?;
        let branch = request.top_via()?.ok()?.branch()?;
        let key = ClientKey {
            branch: sub(&request, branch),
            method: Bytes::copy_from_slice(method.as_str().as_bytes()),
        };
        let invite = method == Method::Invite;
        let id = self.new_id();
        let data = request.as_bytes().clone();
        let tx = ClientTx::new(request, invite, reliable, &self.timers, now);
        self.client_index.insert(key.clone(), id);
        self.clients.insert(
            id,
            Box::new(ClientEntry {
                tx,
                key,
                dest: dest.clone(),
            }),
        );
        self.events.push_back(Event::Transmit { dest, data });
        self.schedule(id);
        Some(id)
    }

    /// Sends outside any transaction (ACK for 2xx, stateless answers).
    pub fn send_stateless(&mut self, dest: D, data: Bytes) {
        self.events.push_back(Event::Transmit { dest, data });
    }

    /// Sends a response on a server transaction. Ignored once the transaction has ended.
    pub fn respond(&mut self, tx: TxId, status: u16, data: Bytes, now: Instant) {
        let timers = self.timers;
        let Some(entry) = self.servers.get_mut(&tx) else {
            return;
        };
        if let Some(data) = entry.tx.respond(status, data, &timers, now) {
            self.events.push_back(Event::Transmit {
                dest: entry.source.clone(),
                data,
            });
        }
        self.finish_server_if_done(tx);
        self.schedule(tx);
    }

    /// Answers a server transaction's request once, statelessly, and forgets the transaction
    /// (RFC 3261 §8.2.7 lets a UAS answer without one): no retransmission, no 32 s of state.
    /// For a final answer to a source that may be spoofed or hostile (issue 31 §6), which
    /// must not turn one datagram into ten, nor hold memory.
    pub fn respond_once(&mut self, tx: TxId, data: Bytes) {
        if let Some(entry) = self.servers.get(&tx) {
            self.events.push_back(Event::Transmit {
                dest: entry.source.clone(),
                data,
            });
            self.remove_server(tx);
        }
    }

    /// Where a live server transaction's request came from.
    pub fn server_peer(&self, tx: TxId) -> Option<&D> {
        self.servers.get(&tx).map(|e| &e.source)
    }

    /// The request of a live server transaction (to build responses from).
    pub fn server_request(&self, tx: TxId) -> Option<&Message> {
        self.servers.get(&tx).map(|e| &e.tx.request)
    }

    /// The transport failed to send for `tx` (§8.1.3.1, §17.1.4, §17.2.4).
    pub fn transport_error(&mut self, tx: TxId) {
        if self.clients.contains_key(&tx) {
            self.remove_client(tx);
            self.events.push_back(Event::TransportError { tx });
        } else if self.servers.contains_key(&tx) {
            self.remove_server(tx);
            self.events.push_back(Event::TransportError { tx });
        }
    }

    // ---- time ------------------------------------------------------------------------------

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timers = self.timers;
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.deadline_of(id) != Some(at) {
                continue; // stale
            }
            if let Some(entry) = self.clients.get_mut(&id) {
                match entry.tx.on_timeout(&timers, now) {
                    Some(ClientAction::Retransmit(data)) => {
                        self.events.push_back(Event::Transmit {
                            dest: entry.dest.clone(),
                            data,
                        })
                    }
                    Some(ClientAction::Timeout) => self.events.push_back(Event::Timeout { tx: id }),
                    _ => {}
                }
                self.finish_client_if_done(id);
            } else if let Some(entry) = self.servers.get_mut(&id) {
                match entry.tx.on_timeout(&timers, now) {
                    Some(ServerAction::Send(data)) => self.events.push_back(Event::Transmit {
                        dest: entry.source.clone(),
                        data,
                    }),
                    Some(ServerAction::AckTimeout) => {
                        self.events.push_back(Event::AckTimeout { tx: id })
                    }
                    None => {}
                }
                self.finish_server_if_done(id);
            }
            self.schedule(id);
        }
    }

    fn finish_client_if_done(&mut self, id: TxId) {
        if self
            .clients
            .get(&id)
            .is_some_and(|e| e.tx.state == ClientState::Terminated)
        {
            self.remove_client(id);
        }
    }

    fn finish_server_if_done(&mut self, id: TxId) {
        if self
            .servers
            .get(&id)
            .is_some_and(|e| e.tx.state == ServerState::Terminated)
        {
            self.remove_server(id);
        }
    }

    fn remove_client(&mut self, id: TxId) {
        if let Some(e) = self.clients.remove(&id) {
            self.client_index.remove(&e.key);
        }
    }

    fn remove_server(&mut self, id: TxId) {
        if let Some(e) = self.servers.remove(&id) {
            self.server_index.remove(&e.key);
            if let Some(m) = e.merge {
                self.merge_index.remove(&m);
            }
        }
    }
}

/// A zero-copy slice of the message buffer when `part` lies inside it, a copy otherwise
/// (never a panic, whatever a typed accessor returns).
fn sub(message: &Message, part: &[u8]) -> Bytes {
    let buf = message.as_bytes();
    let (start, end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= end {
        buf.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

fn server_key(message: &Message) -> Option<ServerKey> {
    let method = match message.method()? {
        Method::Ack => "INVITE",
        m => m.as_str(),
    };
    server_key_for_method(message, method.as_bytes())
}

fn server_key_for_method(message: &Message, method: &[u8]) -> Option<ServerKey> {
    let via = message.top_via()?.ok()?;
    if via.has_rfc3261_branch() {
        let branch = via.branch()?;
        return Some(ServerKey::Rfc3261 {
            branch: sub(message, branch),
            sent_by: sub(message, via.sent_by),
            method: Bytes::copy_from_slice(method),
        });
    }
    // RFC 2543 (§17.2.3): Request-URI, From tag, Call-ID, CSeq number and the top Via.
    let mut key = Vec::with_capacity(256);
    for part in [
        message.request_uri_raw().unwrap_or_default(),
        message.from_tag().unwrap_or_default(),
        message.call_id().unwrap_or_default(),
        message.cseq()?.ok()?.seq.to_string().as_bytes(),
        message.values(HeaderName::Via).next().unwrap_or_default(),
        method,
    ] {
        key.extend_from_slice(part);
        key.push(0);
    }
    Some(ServerKey::Rfc2543(Bytes::from(key)))
}

fn merge_key(message: &Message) -> Option<MergeKey> {
    if message.to_tag().is_some() {
        return None; // only requests outside a dialog can merge
    }
    Some(MergeKey {
        from_tag: sub(message, message.from_tag()?),
        call_id: sub(message, message.call_id()?),
        cseq: sub(message, message.header(HeaderName::CSeq)?),
    })
}

/// The To-tag a UAS uses for this request's responses: its own when in a dialog, else one
/// derived from the request (so 487 and the CANCEL's 200 agree).
fn local_tag_for(request: &Message) -> String {
    if let Some(tag) = request.to_tag() {
        return String::from_utf8_lossy(tag).into_owned();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in request
        .call_id()
        .unwrap_or_default()
        .iter()
        .chain(request.from_tag().unwrap_or_default())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests;
