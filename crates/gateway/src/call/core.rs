//! [`CallCore`]: one shard's calls, the transaction layer they share, and their timers.
//!
//! Calls live in a slab addressed by a generational [`Handle`], so a late event for a reused
//! slot never reaches the wrong call (quinn's known hazard). Transactions, dialogs and media
//! sessions map to handles; a call's events are handled by the call itself (`state.rs`).
//! A new INVITE is admitted (or refused) in `core/admission.rs`.

mod admission;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use teamsgw_sip::Message;
use teamsgw_sip::message::{HeaderName, MessageBuilder, Method};
use teamsgw_sip::transaction::{Event, TransactionLayer, TxId};
use teamsgw_sip::transport::{Source, Target, Transport};

use super::cause::{EndCause, Side};
use super::media::MediaPlane;
use super::routing::{SharedView, TeamsProxy};
use super::session_timer::MIN_SE;
use super::state::{Call, Leg, Phase};
use super::{CallEvent, CallRecord, CallSettings, CallView, Dest, Direction, Input, Output};
use crate::rng::Rng;
use crate::stateless::warning;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    index: u32,
    generation: u32,
}

/// What a call needs from the core while it handles one event.
pub struct Ctx<'a> {
    pub now: Instant,
    pub layer: &'a mut TransactionLayer<Dest>,
    pub media: &'a mut dyn MediaPlane,
    pub settings: &'a CallSettings,
    pub out: &'a mut VecDeque<Output>,
    rng: &'a mut Rng,
    down: &'a HashSet<String>,
    held: &'a HashMap<String, Instant>,
    /// Teams proxies as configured (a transfer's new leg goes to one of them).
    pub proxies: &'a [TeamsProxy],
    owned: Vec<TxId>,
    /// Dialogs the call gained or left while handling the event (a transfer swaps one).
    dialogs: Vec<(DialogKey, bool)>,
    /// BYEs the call sent, and to which side.
    byes: Vec<(TxId, Side)>,
}

/// (Call-ID, our tag): how an in-dialog request finds its call.
pub type DialogKey = (Vec<u8>, Vec<u8>);

impl Ctx<'_> {
    pub fn branch(&mut self) -> String {
        super::shards::branch_for_shard(&self.rng.token(), self.settings.shard)
    }

    /// A random wait below `max` (RFC 3261 §14.1's glare retry).
    pub fn random_wait(&mut self, max: Duration) -> Duration {
        let millis = max.as_millis().max(1) as u64;
        Duration::from_millis(self.rng.next_u64() % millis)
    }

    /// Routes the events of `tx` to the current call.
    /// A BYE went to `side` in `tx`: if no answer comes before Timer F it is lost, and
    /// the call's record says so (after the call itself has ended).
    pub fn bye_sent(&mut self, tx: Option<TxId>, side: Side) {
        if let Some(tx) = tx {
            self.byes.push((tx, side));
        }
    }

    pub fn own(&mut self, tx: TxId) {
        self.owned.push(tx);
    }

    /// A fresh random token (tags, Call-ID parts).
    pub fn token(&mut self) -> String {
        self.rng.token()
    }

    /// Our tag in a dialog the peer opens under its own Call-ID: it names this shard.
    pub fn local_tag(&mut self) -> String {
        super::shards::tag_for_shard(&self.rng.token(), self.settings.shard)
    }

    /// Routes requests of the dialog `key` to the current call (`true`), or no longer (`false`).
    pub fn dialog(&mut self, key: DialogKey, routed: bool) {
        self.dialogs.push((key, routed));
    }

    /// Held down by a 503 with Retry-After, down by trunk health (OPTIONS), or up (§1.6).
    pub fn proxy_state(&self, name: &str) -> ProxyState {
        if self.held.get(name).is_some_and(|&until| self.now < until) {
            ProxyState::Held
        } else if self.down.contains(name) {
            ProxyState::Down
        } else {
            ProxyState::Up
        }
    }

    /// A transfer of `kind` ended as `result` (`completed`, `failed`).
    pub fn transfer_event(&mut self, kind: &'static str, result: &'static str) {
        self.out
            .push_back(Output::Event(CallEvent::Transfer { kind, result }));
    }

    /// Links a new leg's Call-ID to the call's id, for a SIP capture.
    pub fn correlate(&mut self, call_id: &str, call: &str) {
        if self.settings.correlate_legs {
            self.out.push_back(Output::Correlate {
                call_id: call_id.to_owned(),
                correlation: Some(call.to_owned()),
            });
        }
    }

    pub fn setup_event(&mut self, direction: Direction, stage: &'static str, took: Duration) {
        self.out.push_back(Output::Event(CallEvent::Setup {
            direction,
            stage,
            seconds: took.as_secs_f64(),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState {
    Up,
    Down,
    Held,
}

struct Slot {
    generation: u32,
    call: Option<Call>,
}

pub struct CallCore<M: MediaPlane> {
    settings: CallSettings,
    view: SharedView,
    layer: TransactionLayer<Dest>,
    media: M,
    rng: Rng,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tx: HashMap<TxId, Handle>,
    /// (Call-ID, our tag) → call: in-dialog requests and ACKs.
    by_dialog: HashMap<DialogKey, Handle>,
    by_session: HashMap<u64, Handle>,
    timers: BinaryHeap<Reverse<(Instant, Handle)>>,
    out: VecDeque<Output>,
    down: HashSet<String>,
    held: HashMap<String, Instant>,
    drain: Option<Instant>,
    /// BYEs awaiting an answer: the call's id and the side. They outlive their call.
    byes: HashMap<TxId, (String, Side)>,
}

impl<M: MediaPlane> CallCore<M> {
    pub fn new(settings: CallSettings, view: SharedView, media: M) -> Self {
        let mut layer = TransactionLayer::new(settings.timers);
        layer.set_peer_check(super::peers::same_peer);
        Self {
            layer,
            rng: Rng::seeded_or_os(settings.seed),
            settings,
            view,
            media,
            slots: Vec::new(),
            free: Vec::new(),
            by_tx: HashMap::new(),
            by_dialog: HashMap::new(),
            by_session: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            down: HashSet::new(),
            held: HashMap::new(),
            drain: None,
            byes: HashMap::new(),
        }
    }

    pub fn media(&self) -> &M {
        &self.media
    }

    /// Sizes of the core's tables: (slots, transaction owners, dialogs, timers, live client
    /// and server transactions). Bounded by the calls up, whatever the calls done.
    pub fn table_sizes(&self) -> [usize; 6] {
        let (c, srv) = self.layer.live_transactions();
        [
            self.slots.len(),
            self.by_tx.len(),
            self.by_dialog.len(),
            self.timers.len(),
            c,
            srv,
        ]
    }

    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.call.is_some()).count()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let call = self.timers.peek().map(|Reverse((t, _))| *t);
        let drain = self.drain.filter(|_| self.active() > 0);
        [self.layer.poll_timeout(), call, drain]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Message { message, source } => {
                let reliable = source.transport != Transport::Udp;
                self.layer
                    .receive(message, Dest::Reply(source), reliable, now);
            }
            Input::SendFailed { target } => self.send_failed(&target),
            Input::MediaTimeout { session } => {
                if let Some(&h) = self.by_session.get(&session) {
                    self.with_call(h, now, |call, ctx| {
                        // A late report for a session a bridged call already gave back.
                        if call.media_released.is_none() {
                            call.hangup(ctx, EndCause::MediaTimeout, None)
                        }
                    });
                }
            }
            Input::Routes(view) => self.view = view,
            Input::ProxyState { proxy, up } => {
                if up {
                    self.down.remove(&proxy);
                } else {
                    self.down.insert(proxy);
                }
            }
            Input::Drain { deadline } => self.drain = Some(deadline),
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(now);
        while let Some(Reverse((at, h))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.with_call(h, now, |call, ctx| {
                call.scheduled = None;
                call.handle_timeout(ctx)
            });
            self.pump(now);
        }
        if self.drain.is_some_and(|d| now >= d) {
            for h in self.handles() {
                self.with_call(h, now, |call, ctx| {
                    call.hangup(ctx, EndCause::Drained, None)
                });
            }
            self.pump(now);
        }
    }

    /// After a panic in this core (issue 31 §4): ends every call as far as its state still
    /// allows (BYE or CANCEL on both legs), then retires whatever is left, so ports,
    /// `max_sessions` slots and counters come back and each call gets its record with reason
    /// "internal error". The transaction layer and the tables start afresh; what was queued
    /// to send still goes out. Configuration, routes and proxy states are kept.
    pub fn recover(&mut self, now: Instant) {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        for h in self.handles() {
            let ended = catch_unwind(AssertUnwindSafe(|| {
                self.with_call(h, now, |call, ctx| {
                    call.hangup(ctx, EndCause::InternalError, None)
                });
                self.pump(now);
            }));
            if ended.is_err() {
                tracing::error!(
                    "a call could not be ended cleanly after an internal error; released without BYE"
                );
            }
        }
        for h in self.handles() {
            if let Some(call) = self.call_mut(h) {
                call.end = Some((EndCause::InternalError, 500, Some(Side::Gateway)));
            }
            let retired = catch_unwind(AssertUnwindSafe(|| self.retire(h, now)));
            if retired.is_err() {
                tracing::error!("a call's state could not be retired after an internal error");
            }
        }
        let mut layer = TransactionLayer::new(self.settings.timers);
        layer.set_peer_check(super::peers::same_peer);
        self.layer = layer;
        self.slots.clear();
        self.free.clear();
        self.by_tx.clear();
        self.by_dialog.clear();
        self.by_session.clear();
        self.timers.clear();
        self.byes.clear();
    }

    fn call_mut(&mut self, h: Handle) -> Option<&mut Call> {
        let slot = self.slots.get_mut(h.index as usize)?;
        (slot.generation == h.generation)
            .then_some(slot.call.as_mut())
            .flatten()
    }

    fn handles(&self) -> Vec<Handle> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.call.is_some())
            .map(|(i, s)| Handle {
                index: i as u32,
                generation: s.generation,
            })
            .collect()
    }

    /// Live calls for `call list`.
    pub fn calls(&self, now: Instant) -> Vec<CallView> {
        self.slots
            .iter()
            .filter_map(|s| s.call.as_ref())
            .map(|c| CallView {
                call_id: c.log_id().to_owned(),
                direction: c.direction,
                enterprise: c.tenant.enterprise.clone(),
                user: c.user.upn.clone(),
                caller: c.caller.clone(),
                callee: c.callee.clone(),
                state: c.phase.as_str(),
                seconds: now.saturating_duration_since(c.started).as_secs(),
            })
            .collect()
    }

    fn send_failed(&mut self, target: &Target) {
        let txs: Vec<TxId> = self
            .slots
            .iter()
            .filter_map(|s| s.call.as_ref())
            .filter(|c| {
                c.outbound.target.addr == target.addr
                    && c.outbound.target.transport == target.transport
                    && !c.outbound.heard
            })
            .filter_map(|c| c.outbound.tx)
            .collect();
        for tx in txs {
            self.layer.transport_error(tx);
        }
    }

    /// Moves the transaction layer's events to their calls until quiet.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                Event::Transmit { dest, data } => {
                    self.out.push_back(Output::Transmit { dest, data });
                }
                Event::Request {
                    tx,
                    message,
                    source,
                } => match source {
                    Dest::Reply(source) => self.on_request(now, tx, message, source),
                    Dest::To(_) | Dest::Hop(_) => {}
                },
                Event::Ack { message, source } => {
                    let Some((h, leg)) = self.dialog_of(&message) else {
                        continue;
                    };
                    if !self.heard_from_peer(h, leg, &source) {
                        self.source_refused(&source, "an ACK");
                        continue;
                    }
                    self.with_call(h, now, |call, ctx| call.on_ack(ctx, leg, &message));
                }
                Event::OffPath { message, source } => {
                    self.source_refused(&source, "a response, CANCEL or ACK");
                    if message.method() == Some(Method::Cancel)
                        && let Dest::Reply(s) = &source
                    {
                        let data = self.forbidden(&message);
                        self.layer.send_stateless(Dest::Reply(s.clone()), data);
                    }
                }
                Event::Response { tx, message } => {
                    self.byes.remove(&tx);
                    if let Some(&h) = self.by_tx.get(&tx) {
                        self.with_call(h, now, |call, ctx| {
                            call.on_invite_response(ctx, tx, message)
                        });
                    }
                }
                Event::Timeout { tx } | Event::TransportError { tx }
                    if self.byes.contains_key(&tx) =>
                {
                    if let Some((call_id, side)) = self.byes.remove(&tx) {
                        self.out
                            .push_back(Output::Event(CallEvent::ByeLost { call_id, side }));
                    }
                }
                Event::Timeout { tx } => self.invite_failed(now, tx, "timeout"),
                Event::TransportError { tx } => self.invite_failed(now, tx, "transport_error"),
                Event::Cancelled { tx, reason } => {
                    if let Some(&h) = self.by_tx.get(&tx) {
                        self.with_call(h, now, |call, ctx| call.on_cancelled(ctx, reason));
                    }
                }
                Event::StrayResponse { .. } | Event::AckTimeout { .. } => {}
            }
        }
    }

    fn invite_failed(&mut self, now: Instant, tx: TxId, cause: &'static str) {
        if let Some(&h) = self.by_tx.get(&tx) {
            self.with_call(h, now, |call, ctx| call.on_invite_failed(ctx, tx, cause));
        }
    }

    fn dialog_of(&self, msg: &Message) -> Option<(Handle, Leg)> {
        let key = (msg.call_id()?.to_vec(), msg.to_tag()?.to_vec());
        let h = *self.by_dialog.get(&key)?;
        let call = self.call(h)?;
        let tag = String::from_utf8_lossy(&key.1);
        Some((h, call.leg_of(&tag)?))
    }

    fn call(&self, h: Handle) -> Option<&Call> {
        let slot = self.slots.get(h.index as usize)?;
        (slot.generation == h.generation)
            .then_some(slot.call.as_ref())
            .flatten()
    }

    /// Runs `f` on the call with a context, then files what it started and its next timer,
    /// and retires it when it is done.
    fn with_call(&mut self, h: Handle, now: Instant, f: impl FnOnce(&mut Call, &mut Ctx<'_>)) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else {
            return;
        };
        if slot.generation != h.generation {
            return;
        }
        let Some(call) = slot.call.as_mut() else {
            return;
        };
        let mut ctx = Ctx {
            now,
            layer: &mut self.layer,
            media: &mut self.media,
            settings: &self.settings,
            out: &mut self.out,
            rng: &mut self.rng,
            down: &self.down,
            held: &self.held,
            proxies: &self.view.proxies,
            owned: Vec::new(),
            dialogs: Vec::new(),
            byes: Vec::new(),
        };
        f(call, &mut ctx);
        let owned = std::mem::take(&mut ctx.owned);
        let dialogs = std::mem::take(&mut ctx.dialogs);
        for (tx, side) in std::mem::take(&mut ctx.byes) {
            self.byes.insert(tx, (call.log_id().to_owned(), side));
        }
        for tx in owned {
            self.by_tx.insert(tx, h);
        }
        for (key, routed) in dialogs {
            if routed {
                self.by_dialog.insert(key, h);
            } else {
                self.by_dialog.remove(&key);
            }
        }
        if call.phase == Phase::Done {
            self.retire(h, now);
        } else if let Some(at) = call.poll_timeout()
            && call.scheduled != Some(at)
        {
            // One heap entry per deadline, not per event: the heap stays as small as the calls.
            call.scheduled = Some(at);
            self.timers.push(Reverse((at, h)));
        }
        self.take_proxy_holds(now);
    }

    /// Applies 503 Retry-After holds to this shard's own proxy choice too.
    fn take_proxy_holds(&mut self, now: Instant) {
        for o in &self.out {
            if let Output::ProxyDown { proxy, retry_after } = o {
                self.held.insert(proxy.clone(), now + *retry_after);
            }
        }
    }

    fn retire(&mut self, h: Handle, now: Instant) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else {
            return;
        };
        let Some(mut call) = slot.call.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.index);
        for tx in &call.txs {
            self.by_tx.remove(tx);
        }
        self.by_tx.remove(&call.inbound.tx);
        for key in call.dialog_keys() {
            if self.settings.correlate_legs && key.0 != call.id.as_bytes() {
                self.out.push_back(Output::Correlate {
                    call_id: String::from_utf8_lossy(&key.0).into_owned(),
                    correlation: None,
                });
            }
            self.by_dialog.remove(&key);
        }
        self.by_session.remove(&call.media.session);
        let counters = match call.media_released.take() {
            Some(c) => c,
            None => self.media.release(call.media.session),
        };
        self.settings.sessions.release(&call.tenant.fqdn);
        let (cause, status, by) = call
            .end
            .take()
            .unwrap_or((EndCause::Unreachable, 500, None));
        tracing::info!(call_id = %call.log_id(), direction = call.direction.as_str(), result = cause.result(), reason = %cause.describe(), "call ended");
        let record = CallRecord {
            call_id: call.log_id().to_owned(),
            direction: call.direction,
            enterprise: call.tenant.enterprise.clone(),
            direct_route: call.tenant.fqdn.clone(),
            operator_connect: call.tenant.operator_connect,
            user: call.user.upn.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            teams_proxy: call.proxy.clone(),
            failovers: std::mem::take(&mut call.failovers),
            started: call.started,
            answered: call.answered,
            ended: now,
            status,
            result: cause.result(),
            reason: cause.describe(),
            hung_up_by: by,
            codec: call.sdp.codec(),
            emergency: call.emergency,
            media: counters,
        };
        self.out
            .push_back(Output::Event(CallEvent::Finished(Box::new(record))));
        self.compact_timers();
    }

    /// Drops heap entries of retired calls and superseded deadlines. Deletion is lazy, and a
    /// finished call's far deadlines (a 1800 s session timer) would otherwise stay for
    /// half an hour; compacting when stale entries outnumber live ones keeps the heap bounded
    /// at amortised O(1) per call.
    fn compact_timers(&mut self) {
        let live = self.slots.len() - self.free.len();
        if self.timers.len() <= 2 * live + 1024 {
            return;
        }
        let slots = &self.slots;
        self.timers.retain(|Reverse((at, h))| {
            slots.get(h.index as usize).is_some_and(|s| {
                s.generation == h.generation
                    && s.call.as_ref().is_some_and(|c| c.scheduled == Some(*at))
            })
        });
    }

    // ---- new requests ------------------------------------------------------------------------

    /// Whether `source` is the peer of `leg` in call `h` (issue 31 §2).
    fn heard_from_peer(&self, h: Handle, leg: Leg, source: &Dest) -> bool {
        let Dest::Reply(source) = source else {
            return false;
        };
        self.call(h).is_some_and(|c| c.peer_allows(leg, source))
    }

    fn source_refused(&mut self, source: &Dest, what: &str) {
        if let Dest::Reply(s) = source {
            tracing::info!(peer = %s.peer, listener = s.listener, "{what} with a dialog's or transaction's ids from outside its peer: refused");
        }
        self.out.push_back(Output::Event(CallEvent::SourceRefused {
            reason: "dialog_source",
        }));
    }

    /// 403 for a request from outside its dialog's peer; it names nothing of the call.
    fn forbidden(&mut self, request: &Message) -> bytes::Bytes {
        let tag = self.rng.token();
        MessageBuilder::response_to(request, 403, "Forbidden", Some(&tag), None)
            .header("Server", &self.settings.user_agent)
            .header("Warning", warning("not from this dialog's peer"))
            .finish()
    }

    fn on_request(&mut self, now: Instant, tx: TxId, message: Message, source: Source) {
        if message.to_tag().is_some()
            && let Some((h, leg)) = self.dialog_of(&message)
        {
            if !self.call(h).is_some_and(|c| c.peer_allows(leg, &source)) {
                self.source_refused(&Dest::Reply(source), "an in-dialog request");
                let data = self.forbidden(&message);
                self.layer.respond_once(tx, data);
                return;
            }
            self.with_call(h, now, |call, ctx| {
                call.heard(leg, &source);
                call.on_in_dialog(ctx, leg, tx, &message)
            });
            return;
        }
        // §12.2.2, §9.2: an unknown dialog, or a request that needs one.
        if message.to_tag().is_some() || message.method() != Some(Method::Invite) {
            self.stateless(
                now,
                tx,
                &message,
                481,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        }
        if message.header(HeaderName::Replaces).is_some() {
            self.on_replaces(now, tx, &message, source);
            return;
        }
        if self.drain.is_some() {
            let extra = [
                ("Retry-After", "30".to_owned()),
                ("Warning", warning("shutting down")),
            ];
            self.stateless(now, tx, &message, 503, "Service Unavailable", &extra);
            self.refused("draining");
            return;
        }
        // A stranger's INVITE gets one final answer and nothing else (issue 31 §6).
        if self.is_known(&source) {
            let trying = MessageBuilder::response_to(&message, 100, "Trying", None, None).finish();
            self.layer.respond(tx, 100, trying, now);
        }
        #[cfg(feature = "fault-injection")]
        injected_fault(&message);
        match self.new_call(now, tx, &message, source) {
            Ok(h) => self.with_call(h, now, |call, ctx| call.start(ctx)),
            Err(r) => {
                let mut extra = vec![("Warning", warning(&r.warning))];
                if r.status == 422 {
                    extra.push(("Min-SE", MIN_SE.as_secs().to_string()));
                }
                if r.status == 503 {
                    // A rate limit has room again within a second.
                    let retry = if r.label == "max_cps" { "1" } else { "5" };
                    extra.push(("Retry-After", retry.to_owned()));
                    extra.push(("Reason", format!("Q.850;cause=41;text=\"{}\"", r.label)));
                }
                self.stateless(now, tx, &message, r.status, r.reason, &extra);
                self.refused(r.label);
            }
        }
    }

    /// Teams (an mTLS connection) or a provisioned PBX's address.
    fn is_known(&self, source: &Source) -> bool {
        super::peers::is_teams_connection(source) || self.view.is_pbx_source(source.peer.ip())
    }

    fn refused(&mut self, reason: &'static str) {
        self.out
            .push_back(Output::Event(CallEvent::Refused { reason }));
    }

    fn stateless(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Message,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let tag = self.rng.token();
        let mut b = MessageBuilder::response_to(request, status, reason, Some(&tag), None)
            .header("Server", &self.settings.user_agent);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        // To a source that is neither Teams nor a PBX: once, without retransmissions or
        // 32 s of transaction state; the address may be spoofed (amplification).
        let stranger = match self.layer.server_peer(tx) {
            Some(Dest::Reply(source)) => !self.is_known(source),
            _ => false,
        };
        if stranger {
            self.layer.respond_once(tx, b.finish());
        } else {
            self.layer.respond(tx, status, b.finish(), now);
        }
    }
}

/// Test builds only (feature `fault-injection`, which the tests crate turns on): an INVITE
/// whose Request-URI names the number in `FAULT_PANIC_NUMBER_FOR_TEAMSGW` panics its shard, so
/// the supervision of shards is tested against the real daemon (issue 31 §4). The variable is
/// read once: the benches build with this feature and measure every INVITE.
#[cfg(feature = "fault-injection")]
#[allow(clippy::panic)]
fn injected_fault(message: &Message) {
    static NUMBER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let number = NUMBER.get_or_init(|| std::env::var("FAULT_PANIC_NUMBER_FOR_TEAMSGW").ok());
    let Some(number) = number else {
        return;
    };
    let uri = String::from_utf8_lossy(message.request_uri_raw().unwrap_or_default());
    if !number.is_empty() && uri.contains(number.as_str()) {
        panic!("injected fault: an INVITE for {number}");
    }
}
