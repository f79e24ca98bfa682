//! A realm's membership as this node keeps it: who is admitted and on what grant, what this node
//! subscribes to in the realm (for its application, and for its clients as their access node),
//! and what each change means for the members.
//!
//! The `Membership` actor drives it:
//! 1. [`Roster::admit`] decides a peer's `realm/join`; if it is allowed, the actor makes the
//!    member's record and hands it to [`Roster::join`].
//! 2. [`Roster::leave`] when the member's session ends; [`Roster::subscribe`] and
//!    [`Roster::unsubscribe`] for the application; [`Roster::relay`] for a client's interests,
//!    and [`Roster::take_delegation`] for what it delegated to this node; [`Roster::revoke`] for
//!    a member's revocation record.
//! 3. [`Roster::sweep`] every [`SWEEP`](crate::core::standing::SWEEP): what rests on a chain that
//!    expired or was revoked ends.
//! 4. After each of these, [`Roster::poll`] until it returns `None`: the frames to send, and to
//!    whom ([`Roster::recipients`]).
//!
//! Clients are members too, but the mesh is not theirs to hear about: subscriptions and
//! revocations go to the other members only, and a client's subscriptions are announced to them
//! by this node, under the client's delegation where it allows them (`core::delegation`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use weft_auth::{Action, AuthError, Chain, Grant, Realm, VerifyBudget};
use weft_identity::Did;
use weft_names::Pattern;
use weft_ucan::Revocation;
use weft_wire::{Frame, Interest, RevokeRecord, WireChain};

use crate::core::authority::{Acting, Admission, admit, authorize_member};
use crate::core::chains::{ChainCache, wire_chain};
use crate::core::delegation::{self, Delegated};
use crate::core::resolve::{Step, Subscribed};
use crate::core::seat::Seat;
use crate::core::standing::Standing;

/// What the roster needs to know of a member: the actor's own record of it implements this.
pub(crate) trait Credentials {
    /// A client of this node.
    fn client(&self) -> bool;
    /// As it acts here: its DID, its join's chains, and its budget.
    fn acting(&self) -> Acting<'_>;
    /// What it (a client) delegated to this node, if anything.
    fn delegation(&self) -> Option<Arc<Delegated>>;
    /// Keeps what it delegated to this node, in place of what it delegated before: shared with
    /// whoever else acts for it (the router, the registry).
    fn delegate(&self, delegation: Arc<Delegated>);
}

/// Who a [`Notice`] is for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum To<P> {
    /// One member.
    Member(P),
    /// Every member but clients.
    Members,
    /// Every member but clients and this one (who sent what is passed on).
    MembersBut(P),
}

/// A frame to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice<P> {
    pub(crate) to: To<P>,
    pub(crate) frame: Frame,
}

/// What a [`Roster::sweep`] ended, for the actor to tell and count.
#[derive(Debug)]
pub(crate) struct Ended<M> {
    /// Members whose `realm/join` ended: out of the roster, each to be told why once the
    /// router and registry no longer count it.
    pub(crate) members: Vec<(M, AuthError)>,
    /// Local subscriptions made under a chain of their own that ended (already withdrawn from
    /// the members): their streams end.
    pub(crate) subscriptions: Vec<(u32, Pattern, AuthError)>,
}

/// What a member's revocation record did.
#[derive(Debug)]
pub(crate) enum Revoked {
    /// Applied, and passed on to the other members: keep it for the next run.
    Applied(Revocation),
    /// Known already, or about nothing in this realm.
    Ignored,
    /// Refused: unreadable, badly signed, or over the member's budget.
    Refused(String),
}

/// How long before a delegation's chain runs out the subscriptions announced under it move to
/// a newer one, or to this node's own chains (seconds): ahead of the members' sweeps, which end
/// a subscription once its chain has run out (beyond their clock leeway).
const LAPSING: u64 = 30;

/// A client's subscription, as this node holds it in the mesh.
#[derive(Debug)]
struct Relayed {
    /// This node's id for it.
    ours: u32,
    pattern: Pattern,
    /// The chain of the client's delegation it was announced under; `None`: this node's own.
    under: Option<WireChain>,
    /// When that chain runs out (Unix seconds).
    expires: Option<u64>,
}

/// A realm's members and this node's subscriptions in it.
#[derive(Debug)]
pub(crate) struct Roster<P, M> {
    /// The realm, and this node's identity and authority in it.
    seat: Arc<Seat>,
    members: HashMap<P, M>,
    /// Memberships, which end when the `realm/join` chain they rest on does.
    memberships: Standing<P, ()>,
    /// Local subscriptions, with the chain each was made under if not the node's own: they are
    /// announced again, chain included, to every member that joins.
    local: HashMap<u32, (Pattern, Option<WireChain>)>,
    /// Local subscriptions made under a chain of their own (a gateway's client's), which end
    /// with it.
    delegated: Standing<u32, (Pattern, Chain)>,
    /// Clients' subscriptions held in the mesh by this node, by (client, its id). Our ids come
    /// from the same counter as local ones, so a member sees distinct ids.
    relayed: HashMap<(P, u32), Relayed>,
    /// When each client's last delegation was taken (Unix seconds).
    delegated_at: HashMap<P, u64>,
    /// What each relayed subscription rests on (the chain sent with it, if any).
    relayed_grants: Standing<(P, u32), Option<WireChain>>,
    /// Relayed subscriptions by client, against `max_relayed`.
    relayed_per_client: HashMap<P, usize>,
    max_relayed: usize,
    /// Clients' chains, parsed once.
    chain_cache: ChainCache,
    next_id: u32,
    notices: VecDeque<Notice<P>>,
    /// The DHT records of the subscriptions held here (local and relayed).
    buckets: Subscribed,
}

impl<P, M> Roster<P, M>
where
    P: Copy + Eq + Hash,
    M: Credentials,
{
    /// The roster of the realm `seat` names.
    pub(crate) fn new(seat: Arc<Seat>) -> Self {
        Self {
            seat,
            members: HashMap::new(),
            memberships: Standing::default(),
            local: HashMap::new(),
            delegated: Standing::default(),
            relayed: HashMap::new(),
            delegated_at: HashMap::new(),
            relayed_grants: Standing::default(),
            relayed_per_client: HashMap::new(),
            max_relayed: crate::Limits::default().max_subscriptions_per_peer,
            chain_cache: ChainCache::default(),
            next_id: 1,
            notices: VecDeque::new(),
            buckets: Subscribed::default(),
        }
    }

    /// Holds at most `max` subscriptions for one client (`Limits::max_subscriptions_per_peer`).
    pub(crate) fn max_relayed(mut self, max: usize) -> Self {
        self.max_relayed = max;
        self
    }

    /// The realm.
    pub(crate) fn realm(&self) -> &Realm {
        &self.seat.realm
    }

    /// Decides whether `did`, presenting `chains`, may join at `now` (Unix seconds); its budget
    /// pays for chains not verified before.
    pub(crate) fn admit(
        &self,
        did: &Did,
        chains: &[WireChain],
        budget: &VerifyBudget,
        now: u64,
    ) -> Result<Admission, AuthError> {
        admit(
            &self.seat.authorizer,
            &self.seat.realm,
            did,
            chains,
            budget,
            now,
        )
    }

    /// Makes an admitted peer a member, on `grant` (from [`admit`](Self::admit)). A member that
    /// is not a client is sent the revocation records this node knows and every subscription it
    /// holds here; a client that reconnects starts afresh, and what it held before is withdrawn.
    pub(crate) fn join(&mut self, peer: P, member: M, grant: &Grant) {
        self.memberships.insert(peer, (), grant);
        // A client that comes back delegates anew at once.
        self.delegated_at.remove(&peer);
        self.drop_relayed(&peer);
        if !member.client() {
            for record in self.seat.authorizer.revocation_records() {
                let frame = self.revoke_frame(&record);
                self.tell(To::Member(peer), frame);
            }
            let local = self
                .local
                .iter()
                .map(|(id, (pattern, chain))| (*id, pattern.clone(), chain.clone()));
            let relayed = self
                .relayed
                .values()
                .map(|held| (held.ours, held.pattern.clone(), held.under.clone()));
            let mut held: Vec<_> = local.chain(relayed).collect();
            held.sort_unstable_by_key(|(id, ..)| *id);
            for (id, pattern, chain) in held {
                let subscribe = Interest::Subscribe {
                    realm: self.seat.index,
                    id,
                    pattern,
                    chain,
                };
                self.tell(To::Member(peer), Frame::Interest(subscribe));
            }
        }
        self.members.insert(peer, member);
    }

    /// A member's session ended: it is no longer one, and what this node held for it as a
    /// client is withdrawn.
    pub(crate) fn leave(&mut self, peer: &P) -> Option<M> {
        self.memberships.remove(peer);
        self.delegated_at.remove(peer);
        let member = self.members.remove(peer)?;
        self.drop_relayed(peer);
        Some(member)
    }

    /// The application subscribes to `pattern`, under `chain` instead of this node's own
    /// chains if one is given (a gateway's client's), at `now`. Returns its id.
    pub(crate) fn subscribe(
        &mut self,
        pattern: Pattern,
        chain: Option<Chain>,
        now: u64,
    ) -> Result<u32, AuthError> {
        let chains = match &chain {
            Some(chain) => std::slice::from_ref(chain),
            None => self.seat.chains.as_slice(),
        };
        let action = Action::Subscribe(&pattern);
        let grant = self.seat.authorizer.authorize_any(
            &self.seat.realm,
            chains,
            &self.seat.did,
            action,
            now,
        )?;
        let id = self.take_id();
        let wire = chain.as_ref().map(wire_chain);
        if let Some(chain) = chain {
            self.delegated.insert(id, (pattern.clone(), chain), &grant);
        }
        self.broadcast(Interest::Subscribe {
            realm: self.seat.index,
            id,
            pattern: pattern.clone(),
            chain: wire.clone(),
        });
        self.buckets.add(&pattern, now);
        self.local.insert(id, (pattern, wire));
        Ok(id)
    }

    /// The application's subscription `id` ended: withdrawn from the members. Returns its
    /// pattern, if it was one.
    pub(crate) fn unsubscribe(&mut self, id: u32) -> Option<Pattern> {
        self.delegated.remove(&id);
        let (pattern, _) = self.local.remove(&id)?;
        self.buckets.remove(&pattern);
        self.broadcast(Interest::Unsubscribe {
            realm: self.seat.index,
            id,
        });
        Some(pattern)
    }

    /// The patterns this node subscribes to here for its application, sorted.
    pub(crate) fn local_patterns(&self) -> Vec<Pattern> {
        let mut patterns: Vec<Pattern> = self.local.values().map(|(p, _)| p.clone()).collect();
        patterns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        patterns
    }

    /// How many subscriptions this node holds here for its application.
    pub(crate) fn local_count(&self) -> usize {
        self.local.len()
    }

    /// A client's subscription changed: this node subscribes (or unsubscribes) in the mesh for
    /// it, once the client may read what it asks for (checked here too, not only before
    /// delivery, so that a client cannot make this node subscribe to what it may not read).
    /// Anything from a peer that is not a client of this node is ignored.
    pub(crate) fn relay(
        &mut self,
        client: &P,
        interest: Interest,
        now: u64,
    ) -> Result<(), AuthError> {
        let Some(member) = self.members.get(client).filter(|m| m.client()) else {
            return Ok(());
        };
        match interest {
            Interest::Subscribe {
                id, pattern, chain, ..
            } => {
                if !self.relayed.contains_key(&(*client, id))
                    && self.relayed_per_client.get(client).copied().unwrap_or(0) >= self.max_relayed
                {
                    return Err(AuthError::Limit(format!(
                        "{} subscriptions held for one client",
                        self.max_relayed
                    )));
                }
                let grant = authorize_member(
                    &self.seat.authorizer,
                    &mut self.chain_cache,
                    &self.seat.realm,
                    chain.as_ref(),
                    member.acting(),
                    Action::Subscribe(&pattern),
                    now,
                )?;
                self.relayed_grants.insert((*client, id), chain, &grant);
                // An id already in use is replaced, as any subscription is.
                match self.relayed.get(&(*client, id)) {
                    Some(held) if held.pattern == pattern => return Ok(()),
                    Some(_) => self.drop_relayed_one(*client, id),
                    None => {}
                }
                let ours = self.take_id();
                // Under the client's delegation where it allows it, else this node's own chains:
                // the members check the chain it goes under.
                let (under, expires) = self
                    .delegated_chain(client, Action::Subscribe(&pattern), now)
                    .unzip();
                self.broadcast(Interest::Subscribe {
                    realm: self.seat.index,
                    id: ours,
                    pattern: pattern.clone(),
                    chain: under.clone(),
                });
                self.buckets.add(&pattern, now);
                let held = Relayed {
                    ours,
                    pattern,
                    under,
                    expires: expires.flatten(),
                };
                self.relayed.insert((*client, id), held);
                *self.relayed_per_client.entry(*client).or_default() += 1;
            }
            Interest::Unsubscribe { id, .. } => {
                self.relayed_grants.remove(&(*client, id));
                self.drop_relayed_one(*client, id);
            }
            Interest::Advertise { .. } | Interest::Unadvertise { .. } => {}
        }
        Ok(())
    }

    /// Member `from` sent a revocation record, at `now`. A record about this realm's owner's
    /// tokens that is new here is applied and passed on to the other members; checking its
    /// signature costs the member's budget.
    pub(crate) fn revoke(&mut self, from: &P, record: &str, now: u64) -> Revoked {
        let Some(member) = self.members.get(from) else {
            return Revoked::Ignored;
        };
        let record = match Revocation::parse(record) {
            Ok(record) => record,
            Err(e) => return Revoked::Refused(format!("unreadable: {e}")),
        };
        if !self
            .seat
            .authorizer
            .may_revoke(&self.seat.realm, record.issuer())
        {
            return Revoked::Ignored;
        }
        if member
            .acting()
            .budget
            .is_some_and(|budget| !budget.take(now))
        {
            return Revoked::Refused("verification budget spent".into());
        }
        match self.seat.authorizer.apply(&record) {
            Ok(true) => {
                self.spread(&record, To::MembersBut(*from));
                Revoked::Applied(record)
            }
            Ok(false) => Revoked::Ignored,
            Err(e) => Revoked::Refused(e.to_string()),
        }
    }

    /// `client` delegated `chains` to this node at `now` (`core::delegation`): kept in place of
    /// what it delegated before. The subscriptions held for it under this node's own chains, or
    /// under a chain past half its life (`delegation::renew_at`), are announced again under the
    /// new delegation's chains, since the members end each with the chain it went under.
    /// Refused when the peer is no client of this node, when a chain is not the client's to this
    /// node, or when it comes within `delegation::MIN_INTERVAL` of the last one taken.
    pub(crate) fn take_delegation(
        &mut self,
        client: &P,
        chains: Vec<WireChain>,
        now: u64,
    ) -> Result<usize, AuthError> {
        let Some(member) = self.members.get(client).filter(|m| m.client()) else {
            return Err(AuthError::Unauthorized(
                "only a client delegates to its access node".into(),
            ));
        };
        if let Some(last) = self.delegated_at.get(client)
            && now < last.saturating_add(delegation::MIN_INTERVAL)
        {
            return Err(AuthError::Limit(format!(
                "one delegation per {} s",
                delegation::MIN_INTERVAL
            )));
        }
        self.delegated_at.insert(*client, now);
        let client_did = *member.acting().did;
        let delegation =
            Delegated::accept(&client_did, &self.seat.did, chains, &mut self.chain_cache)?;
        let taken = delegation.len();
        member.delegate(Arc::new(delegation));
        let mut ids: Vec<u32> = self
            .relayed
            .keys()
            .filter(|(peer, _)| peer == client)
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let due = self.relayed.get(&(*client, id)).is_some_and(|held| {
                held.under.is_none() || delegation::renew_at(held.expires, now)
            });
            if due {
                self.announce_relayed(*client, id, now);
            }
        }
        Ok(taken)
    }

    /// Announces again the subscription held for `client` under its id `id`, if the chain it
    /// goes under at `now` is not the one it went under: the chain of the client's delegation
    /// that allows it and lasts beyond [`LAPSING`], else this node's own chains. The same id:
    /// each member replaces the subscription.
    fn announce_relayed(&mut self, client: P, id: u32, now: u64) {
        let Some(pattern) = self.relayed.get(&(client, id)).map(|h| h.pattern.clone()) else {
            return;
        };
        let (under, expires) = self
            .delegated_chain(&client, Action::Subscribe(&pattern), now)
            .filter(|(_, exp)| exp.is_none_or(|exp| exp > now + LAPSING))
            .unzip();
        let Some(held) = self.relayed.get_mut(&(client, id)) else {
            return;
        };
        if held.under == under {
            return;
        }
        held.under = under.clone();
        held.expires = expires.flatten();
        let ours = held.ours;
        self.broadcast(Interest::Subscribe {
            realm: self.seat.index,
            id: ours,
            pattern,
            chain: under,
        });
    }

    /// The chain of `client`'s delegation this node acts under for it in `action` at `now`, if
    /// one allows it, and when it runs out.
    fn delegated_chain(
        &self,
        client: &P,
        action: Action<'_>,
        now: u64,
    ) -> Option<(WireChain, Option<u64>)> {
        let member = self.members.get(client)?;
        let delegation = member.delegation()?;
        let budget = member.acting().budget?;
        delegation
            .chain_for(&self.seat, budget, action, now)
            .map(|chosen| (chosen.wire.clone(), chosen.expires_at))
    }

    /// This node applied `record` itself: pass it on to every member.
    pub(crate) fn spread(&mut self, record: &Revocation, to: To<P>) {
        let frame = self.revoke_frame(record);
        self.tell(to, frame);
    }

    /// Ends, at `now`, the memberships, delegated local subscriptions and relayed subscriptions
    /// whose chain expired or was revoked. Relayed ones are withdrawn from the members here; the
    /// rest is returned for the actor to act on.
    pub(crate) fn sweep(&mut self, now: u64) -> Ended<M> {
        let (authorizer, realm, own_did) =
            (&self.seat.authorizer, &self.seat.realm, &self.seat.did);
        let delegated = self
            .delegated
            .sweep_under(authorizer, now, |_, (pattern, chain)| {
                let action = Action::Subscribe(pattern);
                authorizer.authorize(realm, Some(chain), own_did, action, now)
            });
        let (members, relayed, cache) = (&self.members, &self.relayed, &mut self.chain_cache);
        let relayed = self
            .relayed_grants
            .sweep_under(authorizer, now, |(client, id), chain| {
                let (Some(member), Some(held)) =
                    (members.get(client), relayed.get(&(*client, *id)))
                else {
                    return Err(AuthError::Unauthorized("no longer relayed".into()));
                };
                let acting = member.acting().without_budget();
                let action = Action::Subscribe(&held.pattern);
                authorize_member(
                    authorizer,
                    cache,
                    realm,
                    chain.as_ref(),
                    acting,
                    action,
                    now,
                )
            });
        let memberships = self.memberships.sweep_under(authorizer, now, |peer, ()| {
            let member = members
                .get(peer)
                .ok_or_else(|| AuthError::Unauthorized("no longer a member".into()))?;
            let Acting { did, chains, .. } = member.acting();
            authorizer.authorize_any(realm, chains, did, Action::Join, now)
        });

        let mut subscriptions = Vec::new();
        for (id, (pattern, _), e) in delegated {
            self.unsubscribe(id);
            subscriptions.push((id, pattern, e));
        }
        for ((client, id), _, _) in relayed {
            self.drop_relayed_one(client, id);
        }
        // Subscriptions under a delegation about to run out that no newer one replaced (the
        // client's renewal was lost or refused) go under this node's own chains before the
        // members end them.
        let mut lapsing: Vec<(P, u32)> = self
            .relayed
            .iter()
            .filter(|(_, held)| held.expires.is_some_and(|exp| exp <= now + LAPSING))
            .map(|(key, _)| *key)
            .collect();
        lapsing.sort_unstable_by_key(|(_, id)| *id);
        for (client, id) in lapsing {
            self.announce_relayed(client, id, now);
        }
        let mut ended = Vec::new();
        for (peer, (), e) in memberships {
            if let Some(member) = self.members.remove(&peer) {
                self.drop_relayed(&peer);
                ended.push((member, e));
            }
        }
        Ended {
            members: ended,
            subscriptions,
        }
    }

    /// The next frame to send, if any.
    pub(crate) fn poll(&mut self) -> Option<Notice<P>> {
        self.notices.pop_front()
    }

    /// From `now` on, announces the subscriptions held in the DHT and looks up their
    /// publishers (once this node holds as many members as it dials: past that, not every
    /// member is connected to every other).
    pub(crate) fn resolve_through_dht(&mut self, now: u64) {
        self.buckets.activate(now);
    }

    /// Looks again, at `now`, for the publishers of the buckets subscribed to (call every few
    /// seconds).
    pub(crate) fn refresh(&mut self, now: u64) {
        self.buckets.tick(now);
    }

    /// The next DHT request for the subscriptions held here, if any.
    pub(crate) fn poll_dht(&mut self) -> Option<Step> {
        self.buckets.poll()
    }

    /// The members a notice is for.
    pub(crate) fn recipients<'a>(&'a self, to: &'a To<P>) -> impl Iterator<Item = &'a M> + 'a {
        // One member is a lookup: admission sends a newcomer every subscription held here.
        let (one, all) = match to {
            To::Member(peer) => (self.members.get(peer), None),
            To::Members | To::MembersBut(_) => (None, Some(self.members.iter())),
        };
        let all = all
            .into_iter()
            .flatten()
            .filter(move |(peer, member)| match to {
                To::MembersBut(but) => *peer != but && !member.client(),
                _ => !member.client(),
            });
        one.into_iter().chain(all.map(|(_, member)| member))
    }

    /// Every member, clients included.
    #[cfg(test)]
    pub(crate) fn peers(&self) -> impl Iterator<Item = &P> {
        self.members.keys()
    }

    /// A member, if it is one.
    pub(crate) fn member(&self, peer: &P) -> Option<&M> {
        self.members.get(peer)
    }

    /// How many members the realm has besides this node.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn tell(&mut self, to: To<P>, frame: Frame) {
        self.notices.push_back(Notice { to, frame });
    }

    fn broadcast(&mut self, interest: Interest) {
        self.tell(To::Members, Frame::Interest(interest));
    }

    fn revoke_frame(&self, record: &Revocation) -> Frame {
        Frame::Revoke(RevokeRecord {
            realm: self.seat.index,
            record: record.to_json(),
        })
    }

    /// Withdraws every subscription held for `client`.
    fn drop_relayed(&mut self, client: &P) {
        self.relayed_grants.retain(|(peer, _)| peer != client);
        let mut ended: Vec<u32> = self
            .relayed
            .keys()
            .filter(|(peer, _)| peer == client)
            .map(|(_, id)| *id)
            .collect();
        ended.sort_unstable();
        for id in ended {
            self.drop_relayed_one(*client, id);
        }
    }

    /// Withdraws from the members the subscription held for `client` under its id `id`.
    fn drop_relayed_one(&mut self, client: P, id: u32) {
        if let Some(Relayed { ours, pattern, .. }) = self.relayed.remove(&(client, id)) {
            self.buckets.remove(&pattern);
            if let Some(count) = self.relayed_per_client.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    self.relayed_per_client.remove(&client);
                }
            }
            self.broadcast(Interest::Unsubscribe {
                realm: self.seat.index,
                id: ours,
            });
        }
    }
}

/// A member as the tests and the simulator hold it: what the roster needs, and the member's
/// index.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestMember {
    pub(crate) node: usize,
    pub(crate) did: Did,
    pub(crate) chains: Vec<Chain>,
    pub(crate) client: bool,
    pub(crate) budget: VerifyBudget,
    pub(crate) delegation: std::sync::Mutex<Option<Arc<Delegated>>>,
}

#[cfg(test)]
impl Credentials for TestMember {
    fn client(&self) -> bool {
        self.client
    }
    fn acting(&self) -> Acting<'_> {
        Acting {
            did: &self.did,
            chains: &self.chains,
            budget: Some(&self.budget),
        }
    }
    fn delegation(&self) -> Option<Arc<Delegated>> {
        self.delegation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
    fn delegate(&self, delegation: Arc<Delegated>) {
        *self
            .delegation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(delegation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_auth::Authorizer;
    use weft_identity::Keypair;
    use weft_names::RealmName;
    use weft_ucan::{Builder, Token};

    const NOW: u64 = 1_800_000_000;
    const HOUR: u64 = 3600;

    type Member = TestMember;

    struct Setup {
        owner: Keypair,
        roster: Roster<u32, Member>,
    }

    /// The owner's token for `to`: `ability` on `resource` (under `weft://io.acme`), until
    /// `expires`.
    fn token(owner: &Keypair, to: &Keypair, resource: &str, ability: &str, expires: u64) -> Token {
        Builder::new(owner, to.did())
            .claim(format!("weft://io.acme{resource}"), ability)
            .expires_at(expires)
            .build()
            .unwrap()
    }

    fn chain(token: Token) -> Chain {
        Chain::new(token, [])
    }

    /// A roster of `io.acme` for a node that may subscribe to anything there.
    fn realm() -> Setup {
        let owner = Keypair::generate().unwrap();
        let node = Keypair::generate().unwrap();
        let own = chain(token(&owner, &node, "/**", "msg/subscribe", NOW + HOUR));
        let realm = Realm::owned(RealmName::new("io.acme").unwrap(), owner.did());
        let authorizer = Arc::new(Authorizer::new().with_leeway(0));
        let roster = Roster::new(Seat::new(
            realm,
            3,
            authorizer,
            node.did(),
            Arc::new(vec![own]),
        ));
        Setup { owner, roster }
    }

    /// Admits and joins peer `peer` with the owner's grants `grants` ((resource, ability)),
    /// which expire at `expires`.
    fn join(
        r: &mut Setup,
        peer: u32,
        client: bool,
        grants: &[(&str, &str)],
        expires: u64,
    ) -> Keypair {
        let key = Keypair::generate().unwrap();
        let chains: Vec<Chain> = grants
            .iter()
            .map(|(resource, ability)| chain(token(&r.owner, &key, resource, ability, expires)))
            .collect();
        let wire: Vec<WireChain> = chains.iter().map(wire_chain).collect();
        let budget = VerifyBudget::default();
        let Admission { chains, grant } = r.roster.admit(&key.did(), &wire, &budget, NOW).unwrap();
        let member = Member {
            node: peer as usize,
            did: key.did(),
            chains,
            client,
            budget,
            delegation: Default::default(),
        };
        r.roster.join(peer, member, &grant);
        key
    }

    fn notices(roster: &mut Roster<u32, Member>) -> Vec<Notice<u32>> {
        std::iter::from_fn(|| roster.poll()).collect()
    }

    fn subscribe(id: u32, pattern: &str) -> Interest {
        Interest::Subscribe {
            realm: 3,
            id,
            pattern: Pattern::new(pattern).unwrap(),
            chain: None,
        }
    }

    fn unsubscribe(id: u32) -> Interest {
        Interest::Unsubscribe { realm: 3, id }
    }

    fn notice(to: To<u32>, interest: Interest) -> Notice<u32> {
        Notice {
            to,
            frame: Frame::Interest(interest),
        }
    }

    const JOIN: (&str, &str) = ("", "realm/join");

    #[test]
    fn a_peer_joins_only_with_a_grant_to_join() {
        let r = realm();
        let stranger = Keypair::generate().unwrap();
        let budget = VerifyBudget::default();
        assert!(r.roster.admit(&stranger.did(), &[], &budget, NOW).is_err());
        let read = token(&r.owner, &stranger, "/**", "msg/subscribe", NOW + HOUR);
        let wire = [wire_chain(&chain(read))];
        assert!(
            r.roster
                .admit(&stranger.did(), &wire, &budget, NOW)
                .is_err(),
            "reading is not joining"
        );
    }

    #[test]
    fn a_newcomer_hears_of_every_subscription_held_here_and_a_client_of_none() {
        let mut r = realm();
        let id = r
            .roster
            .subscribe(Pattern::new("orders.*").unwrap(), None, NOW)
            .unwrap();
        let told = notices(&mut r.roster);
        assert_eq!(told, [notice(To::Members, subscribe(id, "orders.*"))]);
        assert_eq!(r.roster.recipients(&told[0].to).count(), 0, "no member yet");

        join(&mut r, 1, false, &[JOIN], NOW + HOUR);
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Member(1), subscribe(id, "orders.*"))]
        );
        join(&mut r, 2, true, &[JOIN], NOW + HOUR);
        assert_eq!(
            notices(&mut r.roster),
            [],
            "a client is sent everything anyway"
        );

        let second = r
            .roster
            .subscribe(Pattern::new("audit.**").unwrap(), None, NOW)
            .unwrap();
        let told = notices(&mut r.roster);
        assert_eq!(told, [notice(To::Members, subscribe(second, "audit.**"))]);
        let to: Vec<&Did> = r.roster.recipients(&told[0].to).map(|m| &m.did).collect();
        assert_eq!(
            to,
            [&r.roster.member(&1).unwrap().did],
            "members, not clients"
        );

        assert_eq!(
            r.roster.unsubscribe(id),
            Some(Pattern::new("orders.*").unwrap())
        );
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Members, unsubscribe(id))]
        );
        assert_eq!(
            r.roster.local_patterns(),
            [Pattern::new("audit.**").unwrap()]
        );
    }

    #[test]
    fn this_node_subscribes_only_where_its_chains_let_it() {
        let mut r = realm();
        let other = Keypair::generate().unwrap();
        let elsewhere = chain(token(&r.owner, &other, "/**", "msg/subscribe", NOW + HOUR));
        let pattern = Pattern::new("orders.*").unwrap();
        assert!(
            r.roster
                .subscribe(pattern.clone(), Some(elsewhere), NOW)
                .is_err(),
            "a chain sent with the request must be this node's"
        );
        assert!(r.roster.subscribe(pattern, None, NOW + 2 * HOUR).is_err());
        assert_eq!(r.roster.local_count(), 0);
        assert_eq!(notices(&mut r.roster), []);
    }

    #[test]
    fn a_clients_subscription_is_held_as_this_nodes_own_until_the_client_leaves() {
        let mut r = realm();
        join(&mut r, 1, false, &[JOIN], NOW + HOUR);
        let reads = ("/orders.*", "msg/subscribe");
        join(&mut r, 2, true, &[JOIN, reads], NOW + HOUR);
        notices(&mut r.roster);

        r.roster.relay(&2, subscribe(7, "orders.*"), NOW).unwrap();
        let ours = match &notices(&mut r.roster)[..] {
            [
                Notice {
                    to: To::Members,
                    frame:
                        Frame::Interest(Interest::Subscribe {
                            id, chain: None, ..
                        }),
                },
            ] => *id,
            other => panic!("{other:?}"),
        };
        r.roster.relay(&2, subscribe(7, "orders.*"), NOW).unwrap();
        assert_eq!(notices(&mut r.roster), [], "the same again changes nothing");
        assert!(
            r.roster.relay(&2, subscribe(8, "payroll.*"), NOW).is_err(),
            "a client cannot make this node subscribe to what it may not read"
        );
        r.roster.relay(&1, subscribe(9, "orders.*"), NOW).unwrap();
        assert_eq!(
            notices(&mut r.roster),
            [],
            "only a client's interests are relayed"
        );

        // A member that joins later hears of it as this node's.
        join(&mut r, 3, false, &[JOIN], NOW + HOUR);
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Member(3), subscribe(ours, "orders.*"))]
        );
        assert!(r.roster.leave(&2).is_some());
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Members, unsubscribe(ours))]
        );
        assert!(r.roster.leave(&2).is_none());
    }

    #[test]
    fn a_membership_ends_once_its_join_expires() {
        let mut r = realm();
        let soon = NOW + 60;
        join(&mut r, 1, false, &[JOIN], NOW + HOUR);
        join(&mut r, 2, false, &[JOIN], soon);
        let expiring = r.roster.member(&2).unwrap().did;
        notices(&mut r.roster);

        assert!(r.roster.sweep(soon).members.is_empty(), "not yet");
        let ended = r.roster.sweep(soon + 1);
        let gone: Vec<&Did> = ended.members.iter().map(|(m, _)| &m.did).collect();
        assert_eq!(gone, [&expiring]);
        assert!(r.roster.member(&2).is_none() && r.roster.member(&1).is_some());
        assert!(
            r.roster.sweep(NOW + 2 * HOUR).members.len() == 1,
            "then the other"
        );
        assert_eq!(r.roster.len(), 0);
    }

    #[test]
    fn a_delegated_subscription_ends_with_its_chain_and_is_withdrawn() {
        let mut r = realm();
        join(&mut r, 1, false, &[JOIN], NOW + 10 * HOUR);
        notices(&mut r.roster);
        // A gateway's client's chain, delegated to the node, briefly.
        let soon = NOW + 60;
        let pattern = Pattern::new("orders.*").unwrap();
        let brief = Builder::new(&r.owner, r.roster.seat.did)
            .claim("weft://io.acme/orders.*", "msg/subscribe")
            .expires_at(soon)
            .build()
            .unwrap();
        let brief = chain(brief);
        let id = r
            .roster
            .subscribe(pattern.clone(), Some(brief), NOW)
            .unwrap();
        notices(&mut r.roster);
        assert!(r.roster.sweep(soon).subscriptions.is_empty());
        let ended = r.roster.sweep(soon + 1);
        assert_eq!(ended.subscriptions.len(), 1);
        assert_eq!(
            (ended.subscriptions[0].0, &ended.subscriptions[0].1),
            (id, &pattern)
        );
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Members, unsubscribe(id))]
        );
        assert_eq!(r.roster.local_count(), 0);
    }

    /// A client makes this node hold at most `max_relayed` subscriptions for it, each announced
    /// in the DHT: a replacement under an id in use counts once, and an ended one makes room.
    #[test]
    fn a_client_has_this_node_hold_a_bounded_number_of_subscriptions() {
        let mut r = realm();
        r.roster = r.roster.max_relayed(2);
        r.roster.resolve_through_dht(NOW);
        join(
            &mut r,
            2,
            true,
            &[JOIN, ("/orders.**", "msg/subscribe")],
            NOW + HOUR,
        );
        r.roster.relay(&2, subscribe(1, "orders.a"), NOW).unwrap();
        r.roster.relay(&2, subscribe(2, "orders.b"), NOW).unwrap();
        r.roster.relay(&2, subscribe(2, "orders.c"), NOW).unwrap();
        let refused = r.roster.relay(&2, subscribe(3, "orders.d"), NOW);
        assert!(matches!(refused, Err(AuthError::Limit(_))), "{refused:?}");
        r.roster
            .relay(&2, Interest::Unsubscribe { realm: 0, id: 1 }, NOW)
            .unwrap();
        r.roster.relay(&2, subscribe(3, "orders.d"), NOW).unwrap();
        let steps: Vec<Step> = std::iter::from_fn(|| r.roster.poll_dht()).collect();
        let provided = |bucket: &str| {
            steps.contains(&Step::Provide(crate::core::resolve::Record::Subscribers(
                bucket.into(),
            )))
        };
        assert!(provided("orders.a") && provided("orders.c") && provided("orders.d"));
        assert!(!provided("orders.e"));
    }

    #[test]
    fn a_relayed_subscription_ends_with_the_clients_chain() {
        let mut r = realm();
        join(&mut r, 1, false, &[JOIN], NOW + 10 * HOUR);
        let soon = NOW + 60;
        join(&mut r, 2, true, &[JOIN], NOW + 10 * HOUR);
        // The client reads under its own join's chains plus a brief grant sent with the frame.
        let client_did = r.roster.member(&2).unwrap().did;
        let brief = Builder::new(&r.owner, client_did)
            .claim("weft://io.acme/orders.*", "msg/subscribe")
            .expires_at(soon)
            .build()
            .unwrap();
        let with_chain = Interest::Subscribe {
            realm: 3,
            id: 5,
            pattern: Pattern::new("orders.*").unwrap(),
            chain: Some(wire_chain(&chain(brief))),
        };
        notices(&mut r.roster);
        r.roster.relay(&2, with_chain, NOW).unwrap();
        let ours = match &notices(&mut r.roster)[..] {
            [
                Notice {
                    frame: Frame::Interest(Interest::Subscribe { id, .. }),
                    ..
                },
            ] => *id,
            other => panic!("{other:?}"),
        };
        r.roster.sweep(soon);
        assert_eq!(notices(&mut r.roster), []);
        r.roster.sweep(soon + 1);
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Members, unsubscribe(ours))]
        );
        assert!(r.roster.member(&2).is_some(), "the client stays a member");
    }

    #[test]
    fn a_clients_subscriptions_go_under_its_delegation_and_move_to_each_new_one() {
        let mut r = realm();
        join(&mut r, 1, false, &[JOIN], NOW + 10 * HOUR);
        let grants = [JOIN, ("/orders.*", "msg/subscribe")];
        let client = join(&mut r, 2, true, &grants, NOW + 10 * HOUR);
        notices(&mut r.roster);
        let node = r.roster.seat.did;
        // Before any delegation: under this node's own chains.
        r.roster.relay(&2, subscribe(5, "orders.*"), NOW).unwrap();
        let ours = match &notices(&mut r.roster)[..] {
            [
                Notice {
                    frame:
                        Frame::Interest(Interest::Subscribe {
                            id, chain: None, ..
                        }),
                    ..
                },
            ] => *id,
            other => panic!("{other:?}"),
        };
        let own = r.roster.member(&2).unwrap().chains.clone();
        let first = delegation::delegate(&client, node, &own, NOW);
        assert_eq!(first.len(), 1, "its join is not delegated");
        assert_eq!(r.roster.take_delegation(&2, first.clone(), NOW).unwrap(), 1);
        // The same subscription, now under the chain of the delegation that allows it.
        let moved = |chains: &[WireChain]| {
            let under = chains
                .iter()
                .find(|c| c.proofs.first().map(String::as_str) == Some(own_subscribe(&own)))
                .cloned();
            notice(
                To::Members,
                Interest::Subscribe {
                    realm: 3,
                    id: ours,
                    pattern: Pattern::new("orders.*").unwrap(),
                    chain: under,
                },
            )
        };
        assert_eq!(notices(&mut r.roster), [moved(&first)]);
        assert!(
            matches!(
                r.roster.take_delegation(&2, first.clone(), NOW + 1),
                Err(AuthError::Limit(_))
            ),
            "at most one per interval"
        );
        // One early in the last one's life moves nothing: the members hold that one still.
        let soon = NOW + delegation::MIN_INTERVAL;
        let early = delegation::delegate(&client, node, &own, soon);
        r.roster.take_delegation(&2, early, soon).unwrap();
        assert_eq!(notices(&mut r.roster), []);
        // Past half its life, the next one moves it.
        let later = NOW + delegation::LIFETIME / 2;
        let second = delegation::delegate(&client, node, &own, later);
        r.roster.take_delegation(&2, second.clone(), later).unwrap();
        assert_eq!(notices(&mut r.roster), [moved(&second)]);
        // A newcomer hears of it under the delegation too.
        join(&mut r, 3, false, &[JOIN], NOW + 10 * HOUR);
        let told = notices(&mut r.roster);
        assert!(
            told.iter().any(|n| n.to == To::Member(3)
                && matches!(&n.frame, Frame::Interest(Interest::Subscribe { chain: Some(c), .. }) if second.contains(c))),
            "{told:?}"
        );
        // Only a client delegates, and only its own chains to this node.
        assert!(r.roster.take_delegation(&1, second.clone(), later).is_err());
        let stranger = Keypair::generate().unwrap();
        let not_its = delegation::delegate(&stranger, node, &own, later);
        assert!(not_its.is_empty(), "not the stranger's chains to delegate");
        let elsewhere = delegation::delegate(&client, stranger.did(), &own, later);
        let much_later = later + delegation::MIN_INTERVAL;
        assert!(r.roster.take_delegation(&2, elsewhere, much_later).is_err());
        notices(&mut r.roster);
        // No renewal came: before the members would end it, it goes under this node's own.
        let runs_out = later + delegation::LIFETIME;
        r.roster.sweep(runs_out - LAPSING - 1);
        assert_eq!(notices(&mut r.roster), []);
        r.roster.sweep(runs_out - LAPSING);
        assert_eq!(
            notices(&mut r.roster),
            [notice(To::Members, subscribe(ours, "orders.*"))]
        );
    }

    /// The JWT of the client's own chain that grants `msg/subscribe`.
    fn own_subscribe(own: &[Chain]) -> &str {
        own.iter()
            .find(|c| {
                c.leaf()
                    .capabilities()
                    .iter()
                    .any(|cap| cap.ability == "msg/subscribe")
            })
            .map(|c| c.leaf().as_str())
            .unwrap()
    }

    #[test]
    fn a_revocation_record_is_applied_once_and_passed_on_to_the_others() {
        let mut r = realm();
        join(&mut r, 1, false, &[JOIN], NOW + HOUR);
        join(&mut r, 2, false, &[JOIN], NOW + HOUR);
        join(&mut r, 3, true, &[JOIN], NOW + HOUR);
        notices(&mut r.roster);
        let victim = Keypair::generate().unwrap();
        let revoked = token(&r.owner, &victim, "", "realm/join", NOW + HOUR);
        let record = Revocation::issue(&r.owner, &revoked);

        let json = record.to_json();
        assert!(
            matches!(r.roster.revoke(&9, &json, NOW), Revoked::Ignored),
            "not a member"
        );
        assert!(matches!(r.roster.revoke(&1, "{", NOW), Revoked::Refused(_)));
        assert!(matches!(
            r.roster.revoke(&1, &json, NOW),
            Revoked::Applied(_)
        ));
        let told = notices(&mut r.roster);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].to, To::MembersBut(1));
        let to: Vec<&Did> = r.roster.recipients(&told[0].to).map(|m| &m.did).collect();
        assert_eq!(
            to,
            [&r.roster.member(&2).unwrap().did],
            "not its sender, not a client"
        );
        assert!(
            matches!(r.roster.revoke(&2, &json, NOW), Revoked::Ignored),
            "known"
        );
        assert_eq!(notices(&mut r.roster), []);

        // A member that joins later is sent the records this node knows.
        join(&mut r, 4, false, &[JOIN], NOW + HOUR);
        assert!(matches!(
            &notices(&mut r.roster)[..],
            [Notice {
                to: To::Member(4),
                frame: Frame::Revoke(_)
            }]
        ));
        let stranger = Keypair::generate().unwrap();
        let foreign = Revocation::issue(
            &stranger,
            &token(&stranger, &victim, "", "realm/join", NOW + HOUR),
        );
        assert!(
            matches!(
                r.roster.revoke(&1, &foreign.to_json(), NOW),
                Revoked::Ignored
            ),
            "about nothing here"
        );
    }
}
