//! The router's half of forwarding (`core::forward`): this node's publications gathered into
//! signed batches, one per topic, while sessions are scarce; and members' batches checked,
//! delivered, passed on and kept for repairs (`repairs.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tracing::debug;
use weft_auth::{Action, Budgets, Chain, VerifyBudget};
use weft_identity::Keypair;
use weft_names::{Name, Pattern};
use weft_net::PeerId;
use weft_wire::{
    DEFAULT_MAX_FRAME, Forward, ForwardBatch, ForwardItem, Frame, MAX_FORWARD_ITEMS, WireChain,
};

use super::Router;
use crate::core::authority::authorize_member;
use crate::core::chains::{ChainCache, wire_chain};
use crate::core::forward::{self, HOPS, Scarcity, Seen};
use crate::core::pubsub::Target;
use crate::core::relay::Origin;
use crate::core::repair::Repair;
use crate::core::roster::Credentials as _;
use crate::core::seat::Seat;
use crate::core::slots::Slot;
use crate::members::Member;
use crate::{Event, unix_now};

/// Topics with a batch being gathered at once: past it, they are all sealed.
const OPEN_BATCHES: usize = 64;
/// Publishers whose verification budgets are remembered.
const PUBLISHER_BUDGETS: usize = 1024;

/// A signed batch a member passed on (`Frame::Forward`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteForward {
    /// The member it came from (not necessarily its publisher).
    pub peer: PeerId,
    /// The batch.
    pub forward: Forward,
    /// Counts the message against its session's limit until the router is done with it.
    pub ticket: crate::sender::Ticket,
}

/// What the router keeps for forwarding.
#[derive(Debug)]
pub(crate) struct Forwarding {
    /// Signs this node's batches; none on a client, whose access node forwards for it.
    pub(super) key: Option<Arc<Keypair>>,
    scarcity: Arc<Scarcity>,
    /// This node's run, as in its hello.
    run: u64,
    /// Whether this node's publications go into the overlay, read once per router message.
    pub(super) on: bool,
    /// Whether sessions are scarce: lookups that only refresh are held back
    /// (`forward::Spells`). Read with `on`.
    pub(super) scarce: bool,
    /// [`weft_wire::forward_realm_id`] of the realm.
    realm_id: [u8; 32],
    pub(super) seen: Seen,
    /// Chains carried by batches, parsed: kept apart from those of peers' own frames, which a
    /// stream of batches would push out.
    chains: ChainCache,
    /// The cold verifications each publisher's chains may cost here: a publisher that sends
    /// new chains spends its own, not the budget of the members that pass its batches on.
    budgets: Budgets<PeerId>,
    /// This node's publications not yet sealed, a batch per topic and chain, oldest first.
    gathered: Vec<Gathered>,
    /// The batches taken lately, offered to the members that may have missed them.
    pub(super) repair: Repair<Slot>,
}

/// Publications of one topic, under one chain, waiting to be sealed.
#[derive(Debug)]
struct Gathered {
    topic: Name,
    /// The chain they were authorized under; none: this node's own.
    chain: Option<WireChain>,
    items: Vec<ForwardItem>,
    bytes: usize,
}

impl Forwarding {
    pub(crate) fn new(realm_id: [u8; 32]) -> Self {
        Self {
            key: None,
            scarcity: Arc::new(Scarcity::new(Instant::now())),
            run: 0,
            on: false,
            scarce: false,
            realm_id,
            seen: Seen::default(),
            chains: ChainCache::default(),
            budgets: Budgets::new(PUBLISHER_BUDGETS, VerifyBudget::default),
            gathered: Vec::new(),
            repair: Repair::default(),
        }
    }

    /// Signs with `key` for this node's run `run`, and forwards while `scarcity` says so.
    pub(crate) fn with(mut self, key: Arc<Keypair>, scarcity: Arc<Scarcity>, run: u64) -> Self {
        self.key = Some(key);
        self.scarcity = scarcity;
        self.run = run;
        self
    }

    /// The member in `slot` left: whoever gets the slot next has none of its batches.
    pub(super) fn forget(&mut self, slot: Slot) {
        self.repair.forget(slot);
    }

    /// Reads whether sessions are scarce now: once per router message, not per publication.
    pub(super) fn refresh(&mut self) {
        let now = Instant::now();
        self.on = self.key.is_some() && self.scarcity.forwarding(now);
        self.scarce = self.key.is_some() && self.scarcity.scarce(now);
    }
}

impl Router {
    /// Whether a publication of this node's, or of a client's, sent to `targets`, also goes
    /// into the overlay (`forward::to_overlay`). Clients among the targets reach no member.
    /// On the path of every publication: the targets are looked at only past the mesh size.
    pub(super) fn to_overlay(&self, targets: &[Target]) -> bool {
        let members = self.routing.members();
        let reached_a_member = || {
            targets.iter().any(|target| match target {
                Target::Peer(slot) => members.get(*slot).is_some_and(|m| !m.client),
                Target::Local(_) => false,
            })
        };
        let (on, resolving) = (self.forwarding.on, self.publishing.resolving());
        self.forwarding.key.is_some()
            && (on || resolving)
            && forward::to_overlay(on, resolving, reached_a_member())
    }
}

impl Router {
    /// Adds this node's publication numbered `seq` to the batch being gathered for its topic,
    /// sealing that batch first if this one does not fit in it.
    pub(super) fn gather_forward(
        &mut self,
        topic: &Name,
        payload: &bytes::Bytes,
        seq: u64,
        chain: Option<&Chain>,
    ) {
        let chain = chain.map(wire_chain);
        let open = &self.forwarding.gathered;
        let at = open
            .iter()
            .position(|g| g.topic == *topic && g.chain == chain);
        let at = match at {
            Some(at)
                if open[at].items.len() >= MAX_FORWARD_ITEMS
                    || open[at].bytes + payload.len() > forward::BATCH_BYTES =>
            {
                let full = self.forwarding.gathered.remove(at);
                self.seal_one(full);
                None
            }
            at => at,
        };
        let at = match at {
            Some(at) => at,
            None => {
                if self.forwarding.gathered.len() >= OPEN_BATCHES {
                    self.seal_forward();
                }
                self.forwarding.gathered.push(Gathered {
                    topic: topic.clone(),
                    chain,
                    items: Vec::new(),
                    bytes: 0,
                });
                self.forwarding.gathered.len() - 1
            }
        };
        if let Some(gathered) = self.forwarding.gathered.get_mut(at) {
            gathered.bytes += payload.len();
            gathered.items.push(ForwardItem {
                seq,
                payload: payload.clone(),
            });
        }
    }

    /// Signs every gathered batch, oldest first, and sends each to the members that may read it.
    pub(super) fn seal_forward(&mut self) {
        for gathered in std::mem::take(&mut self.forwarding.gathered) {
            self.seal_one(gathered);
        }
    }

    fn seal_one(&mut self, gathered: Gathered) {
        let Some(key) = self.forwarding.key.clone() else {
            return;
        };
        let chains = self
            .seat
            .chains
            .iter()
            .take(weft_wire::frame::MAX_CHAINS)
            .map(wire_chain)
            .collect();
        let count = gathered.items.len() as u64;
        let topic = gathered.topic;
        let batch = ForwardBatch {
            realm: self.forwarding.realm_id,
            publisher: self.seat.did,
            signed_at: unix_now(),
            run: self.forwarding.run,
            chains,
            chain: gathered.chain,
            topic: topic.clone(),
            items: gathered.items,
        };
        let forward = match weft_wire::seal(&key, &batch, self.seat.index, HOPS) {
            Ok(forward) => forward,
            Err(e) => {
                debug!(error = %e, "a batch could not be sealed");
                self.counters.dropped_unforwardable(count);
                return;
            }
        };
        let (id, now) = (weft_wire::forward_id(&forward), Instant::now());
        self.forwarding.seen.insert(id, now);
        // Members whose interests match had it directly: the batch is for those beyond them.
        let next = self.next_hops(&topic, &HashSet::new(), None, None, &id);
        match self.send_forward(forward.clone(), &next) {
            Some(queued) => self.forwarding.repair.keep(id, forward, topic, queued, now),
            None => self.counters.dropped_unforwardable(count),
        }
    }

    /// The members a batch of `topic` goes to next (`forward::next_hops`): the `interested`,
    /// and relays among the others that may subscribe to the topic. Clients get publications,
    /// not batches.
    fn next_hops(
        &mut self,
        topic: &Name,
        interested: &HashSet<Slot>,
        from: Option<Slot>,
        publisher: Option<Slot>,
        id: &weft_wire::ForwardId,
    ) -> Vec<Slot> {
        let members = self.routing.members();
        let candidates: Vec<(Slot, bool)> = members
            .slots()
            .filter(|slot| members.get(*slot).is_some_and(|m| !m.client))
            .map(|slot| (slot, interested.contains(&slot)))
            .collect();
        let pattern = Pattern::from(topic.clone());
        let (seat, cache, now) = (&self.seat, &mut self.chain_cache, unix_now());
        forward::next_hops(&candidates, from, publisher, id, |slot| {
            members
                .get(slot)
                .is_some_and(|member| may_read(seat, cache, member, &pattern, now))
        })
    }

    /// Sends `forward` to the members in `to`, encoded once, and says which took it into their
    /// queues. None if it does not fit in a frame.
    fn send_forward(&mut self, forward: Forward, to: &[Slot]) -> Option<Vec<Slot>> {
        if to.is_empty() {
            return Some(Vec::new());
        }
        let mut encoded = Vec::new();
        let forward = Forward {
            realm: self.seat.index,
            ..forward
        };
        if let Err(e) = weft_wire::encode(&Frame::Forward(forward), DEFAULT_MAX_FRAME, &mut encoded)
        {
            debug!(error = %e, "a batch does not fit in a frame");
            return None;
        }
        self.counters.forwarded();
        let mut queued = Vec::with_capacity(to.len());
        for slot in to {
            let Some(member) = self.routing.members().get(*slot) else {
                continue;
            };
            let pushed = member.sender.send_passing(&encoded, self.seat.index);
            if pushed.queued {
                queued.push(*slot);
            } else {
                // Counted, and offered to it again at the next round (`core::repair`).
                self.counters.not_queued(pushed);
            }
        }
        Some(queued)
    }

    /// Checks a batch before anything of it is used: the publisher's signature, its age, the
    /// realm it was signed for, and that the publisher may be in the realm (`realm/join`) and
    /// publish to the batch's topic. New chains are verified under the publisher's budget.
    fn check_forward(&mut self, forward: &Forward) -> Result<(ForwardBatch, PeerId), String> {
        let batch =
            weft_wire::open(forward, &self.forwarding.realm_id).map_err(|e| e.to_string())?;
        let now = unix_now();
        if !forward::recent(batch.signed_at, now) {
            return Err(format!("signed at {}, now {now}", batch.signed_at));
        }
        let publisher = weft_net::did_peer(&batch.publisher)
            .ok_or_else(|| "the publisher's key is not an Ed25519 key".to_owned())?;
        let budget = self.forwarding.budgets.of(&publisher);
        let cache = &mut self.forwarding.chains;
        let chains: Vec<Chain> = batch
            .chains
            .iter()
            .filter_map(|wire| cache.parse(wire).ok())
            .collect();
        // Like a `Publish` frame's own chain, a batch's replaces the publisher's for publishing.
        let publish_under = match &batch.chain {
            Some(wire) => vec![cache.parse(wire).map_err(|e| e.to_string())?],
            None => chains.clone(),
        };
        let (authorizer, realm) = (&self.seat.authorizer, &self.seat.realm);
        let (did, topic) = (&batch.publisher, &batch.topic);
        let checks = [
            (&chains, Action::Join),
            (&publish_under, Action::Publish(topic)),
        ];
        for (chains, action) in checks {
            authorizer
                .authorize_any_from(realm, chains, did, action, now, &budget)
                .map_err(|e| format!("{topic}: {e}"))?;
        }
        Ok((batch, publisher))
    }
}

/// Whether `member` may subscribe to `topic` (as a pattern): only then is a batch of the topic
/// passed or offered to it, so the overlay shows no member what it could not subscribe to.
pub(super) fn may_read(
    seat: &Seat,
    cache: &mut ChainCache,
    member: &Member,
    topic: &Pattern,
    now: u64,
) -> bool {
    let acting = member.record.acting().without_budget();
    let (authorizer, realm) = (&seat.authorizer, &seat.realm);
    authorize_member(
        authorizer,
        cache,
        realm,
        None,
        acting,
        Action::Subscribe(topic),
        now,
    )
    .is_ok()
}

/// Checks a member's batch, delivers what this node's subscriptions and clients want, and
/// passes it on: to the members whose interests match, and while hops remain to a few others
/// that may read it.
impl Handler<RemoteForward> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoteForward, _ctx: &mut Context<Self>) {
        let Some((from, member)) = self.routing.members().by_peer(&msg.peer) else {
            debug!(peer = %msg.peer, "a batch from a non-member dropped");
            return;
        };
        if member.client {
            // A client's publications reach the realm through its access node, as its own.
            debug!(peer = %msg.peer, "a batch from a client dropped");
            return;
        }
        let (record, now) = (member.record.clone(), Instant::now());
        let id = weft_wire::forward_id(&msg.forward);
        if self.forwarding.seen.contains(&id, now) {
            return;
        }
        let (batch, publisher) = match self.check_forward(&msg.forward) {
            Ok(checked) => checked,
            Err(reason) => {
                self.counters.forward_refused();
                debug!(peer = %record.did.short(), %reason, "forwarded batch refused");
                return;
            }
        };
        // Only once it verified: a forged copy must not keep the real one out. Not activity:
        // see `PeerSender::send_passing`.
        self.forwarding.seen.insert(id, now);
        if self.forwarding.repair.taken(&id, from) {
            self.counters.forward_repaired();
        }
        if batch.publisher == self.seat.did {
            return;
        }
        let publisher_slot = self.routing.members().slot(&publisher);
        let count = batch.items.len() as u64;
        let topic = batch.topic;

        // The members that want it get the batch even when this node had its publications
        // already (directly from the publisher, which may hold no session with them).
        let mut targets = std::mem::take(&mut self.targets);
        self.routing.interests().targets_into(&topic, &mut targets);
        let members = self.routing.members();
        let interested: HashSet<Slot> = targets
            .iter()
            .filter_map(|target| match target {
                Target::Peer(slot) if members.get(*slot).is_some_and(|m| !m.client) => Some(*slot),
                _ => None,
            })
            .collect();
        targets.clear();

        let mut sequence = self.routing.begin_batch(&publisher, batch.run);
        for item in batch.items {
            let routed = self
                .routing
                .route_remote(&mut sequence, item.seq, &topic, &mut targets);
            if !self.count_routed(routed) {
                continue;
            }
            // A client that published it does not get it back.
            targets.retain(|target| Some(*target) != publisher_slot.map(Target::Peer));
            let publish = weft_wire::Publish {
                realm: self.seat.index,
                topic: topic.clone(),
                seq: item.seq,
                payload: item.payload,
                chain: None,
            };
            // Clients get it from this node, as any member's publication.
            self.relay(&Origin::Member, &publish, &targets);
            for target in targets.drain(..) {
                if let Target::Local(id) = target {
                    let event = Event {
                        topic: topic.clone(),
                        payload: publish.payload.clone(),
                        publisher: batch.publisher,
                    };
                    self.deliver_local(id, event);
                }
            }
        }
        self.routing.end_batch(publisher, sequence);
        self.targets = targets;
        self.flush_locals();

        // A hop count above the first one's was not set by a well-behaved node.
        let hops = msg.forward.hops.min(HOPS);
        let next = match hops.checked_sub(1) {
            Some(_) => self.next_hops(&topic, &interested, Some(from), publisher_slot, &id),
            // No hops left: only the members that want it.
            None => interested
                .into_iter()
                .filter(|slot| *slot != from && Some(*slot) != publisher_slot)
                .collect(),
        };
        let forward = Forward {
            hops: hops.saturating_sub(1),
            ..msg.forward
        };
        match self.send_forward(forward.clone(), &next) {
            Some(mut known) => {
                known.push(from);
                self.forwarding.repair.keep(id, forward, topic, known, now);
            }
            None => self.counters.dropped_unforwardable(count),
        }
    }
}
