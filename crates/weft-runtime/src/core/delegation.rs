//! A client's authority, delegated to its access node.
//!
//! A client (a process attached to one node) acts in the realm through its access node. So that
//! the members the access node passes its actions on to check the client's authority rather than
//! the access node's, the client delegates to its access node what it may do: for each chain it
//! holds in the realm, a token it issues to the access node for a short while ([`LIFETIME`]),
//! with that chain's capabilities, over that chain ([`delegate`]). It sends them in a
//! `Delegate` frame once admitted, and anew every [`RENEW`], before they run out.
//!
//! The access node keeps each client's latest delegation ([`Delegated`]) and acts for the client
//! under the chain of it that allows the action ([`Delegated::chain_for`]): the members check
//! that chain, which names the client as the one who delegated. An access node holding no grant
//! beyond `realm/join` thus serves clients as far as each may go, and no further. Where no chain
//! of the delegation allows the action (none has arrived yet, or it ran out), the access node
//! acts under its own chains, having checked the client's authority itself as before.

use std::sync::Arc;
use std::time::Duration;

use weft_auth::{Ability, AbilitySet, Action, AuthError, Chain, Grant, VerifyBudget};
use weft_identity::{Did, Keypair};
use weft_names::Name;
use weft_ucan::Builder;
use weft_wire::WireChain;
use weft_wire::frame::{MAX_CHAINS, MAX_PROOFS};

use crate::core::chains::{ChainCache, wire_chain};
use crate::core::seat::Seat;

/// How long a delegation is good for, in seconds: an access node the client left, or that was
/// compromised after, holds nothing of it for longer.
pub(crate) const LIFETIME: u64 = 10 * 60;
/// How often a client delegates anew: half the lifetime, so that a delegation lost or late
/// leaves the other half to replace it.
pub(crate) const RENEW: Duration = Duration::from_secs(LIFETIME / 2);
/// Least time between two delegations a client's access node takes from it in one realm, in
/// seconds: each costs parsing up to [`MAX_CHAINS`] chains, and a client sends one every
/// [`RENEW`].
pub(crate) const MIN_INTERVAL: u64 = 10;

/// The abilities a client delegates: what its access node does for it. Not `realm/join` (the
/// access node joins on its own grant) nor `rpc/advertise` (a client's procedures are advertised
/// under the access node's own chains), so that a delegation lets its holder do no more than
/// pass on the client's publications, subscriptions and calls.
const DELEGATED: [Ability; 3] = [Ability::Publish, Ability::Subscribe, Ability::Call];

/// What `key`'s holder delegates to its access node `to` at `now` (Unix seconds): for each of
/// its `chains` that names it as audience and has not run out, a token from it to `to` with that
/// chain's capabilities narrowed to [`DELEGATED`] abilities (`*` on a resource becomes
/// `msg/publish`, `msg/subscribe` and `rpc/call` on it), good for [`LIFETIME`] or until that
/// chain's leaf expires, whichever comes first. A chain granting none of them, or needing more
/// than [`MAX_PROOFS`] proofs, is left out.
pub(crate) fn delegate(key: &Keypair, to: Did, chains: &[Chain], now: u64) -> Vec<WireChain> {
    let me = key.did();
    chains
        .iter()
        .filter_map(|chain| {
            let leaf = chain.leaf();
            if *leaf.audience() != me {
                return None;
            }
            let until = now.saturating_add(LIFETIME);
            let exp = leaf.expires_at().map_or(until, |exp| exp.min(until));
            if exp <= now {
                return None;
            }
            let mut builder = Builder::new(key, to).expires_at(exp).proof(*leaf.cid());
            // A delegation's window lies within its proof's.
            if let Some(nbf) = leaf.not_before() {
                builder = builder.not_before(nbf);
            }
            let mut claims = 0;
            for capability in leaf.capabilities() {
                let covered = AbilitySet::covered_by(&capability.ability);
                for ability in DELEGATED.into_iter().filter(|a| covered.contains(*a)) {
                    builder = builder.claim_with_caveats(
                        capability.resource.clone(),
                        ability.as_str(),
                        capability.caveats.clone(),
                    );
                    claims += 1;
                }
            }
            if claims == 0 {
                return None;
            }
            let token = builder.build().ok()?;
            let mut proofs = vec![leaf.as_str().to_owned()];
            proofs.extend(wire_chain(chain).proofs);
            (proofs.len() <= MAX_PROOFS).then(|| WireChain {
                leaf: token.as_str().to_owned(),
                proofs,
            })
        })
        .take(MAX_CHAINS)
        .collect()
}

/// The chain of a delegation an action goes under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chosen<'a> {
    pub(crate) chain: &'a Chain,
    pub(crate) wire: &'a WireChain,
    /// When it runs out (Unix seconds); `None`: never, which a delegation is not.
    pub(crate) expires_at: Option<u64>,
}

/// Whether a subscription announced under a delegation's chain that runs out at `expires_at`
/// is announced again at `now`, under a newer delegation: once half the chain's life is gone,
/// as renewals come. Earlier, a new delegation changes nothing at the members (it may come every
/// [`MIN_INTERVAL`], and each announcement goes to every member).
pub(crate) fn renew_at(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_some_and(|exp| exp.saturating_sub(now) <= LIFETIME / 2)
}

/// A client's delegation, as its access node keeps it.
#[derive(Debug)]
pub(crate) struct Delegated {
    chains: Vec<Chain>,
    wire: Vec<WireChain>,
}

impl Delegated {
    /// Takes the chains of a `Delegate` frame that `client` sent this node (`me`): each leaf
    /// must be issued by the client, to this node, or the whole delegation is refused (a token
    /// the client holds from someone else is not the client's to hand on this way). Whether each
    /// chain allows anything is decided as it is used, under the client's budget.
    pub(crate) fn accept(
        client: &Did,
        me: &Did,
        chains: Vec<WireChain>,
        cache: &mut ChainCache,
    ) -> Result<Self, AuthError> {
        let mut parsed = Vec::with_capacity(chains.len());
        for wire in &chains {
            let chain = cache.parse(wire)?;
            let leaf = chain.leaf();
            if leaf.issuer() != client {
                return Err(AuthError::Unauthorized(format!(
                    "a delegation issued by {}, not by the client {client}",
                    leaf.issuer()
                )));
            }
            if leaf.audience() != me {
                return Err(AuthError::WrongAudience {
                    audience: *leaf.audience(),
                    actor: *me,
                });
            }
            parsed.push(chain);
        }
        Ok(Self {
            chains: parsed,
            wire: chains,
        })
    }

    /// The chain of the delegation this node (`seat`) acts under for the client in `action`
    /// at `now`, verifying a new one under the client's `budget`, and when it runs out: `None`
    /// if none allows it.
    pub(crate) fn chain_for(
        &self,
        seat: &Seat,
        budget: &VerifyBudget,
        action: Action<'_>,
        now: u64,
    ) -> Option<Chosen<'_>> {
        if self.chains.is_empty() {
            return None;
        }
        let grant = seat
            .authorizer
            .authorize_any_from(&seat.realm, &self.chains, &seat.did, action, now, budget)
            .ok()?;
        let Grant::Delegated {
            chain: cid,
            expires_at,
            ..
        } = grant
        else {
            return None;
        };
        let at = self.chains.iter().position(|chain| *chain.cid() == cid)?;
        Some(Chosen {
            chain: &self.chains[at],
            wire: &self.wire[at],
            expires_at,
        })
    }

    /// How many chains it holds.
    pub(crate) fn len(&self) -> usize {
        self.chains.len()
    }
}

/// The last chain chosen for a client's publications to one topic, kept while the client's
/// delegation, the revocations known and the second stay the same: a client's publications
/// come in runs to one topic, and each choice checks up to [`MAX_CHAINS`] chains.
#[derive(Debug, Default)]
pub(crate) struct LastChoice {
    last: Option<Remembered>,
}

#[derive(Debug)]
struct Remembered {
    delegation: Arc<Delegated>,
    topic: Name,
    second: u64,
    epoch: u64,
    chosen: Option<(Chain, WireChain)>,
}

impl LastChoice {
    /// The chain of `delegation` for a publication to `topic` at `second`, with `epoch`
    /// revocations known: the last choice if it was made for the same, else `decide`'s.
    pub(crate) fn choose(
        &mut self,
        delegation: &Arc<Delegated>,
        topic: &Name,
        second: u64,
        epoch: u64,
        decide: impl FnOnce() -> Option<(Chain, WireChain)>,
    ) -> Option<(Chain, WireChain)> {
        if let Some(last) = &self.last
            && Arc::ptr_eq(&last.delegation, delegation)
            && last.topic == *topic
            && last.second == second
            && last.epoch == epoch
        {
            return last.chosen.clone();
        }
        let chosen = decide();
        self.last = Some(Remembered {
            delegation: delegation.clone(),
            topic: topic.clone(),
            second,
            epoch,
            chosen: chosen.clone(),
        });
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_auth::{Authorizer, Realm};
    use weft_names::{Pattern, RealmName};

    const NOW: u64 = 1_800_000_000;

    struct World {
        owner: Keypair,
        client: Keypair,
        access: Keypair,
        realm: Realm,
        authorizer: Arc<Authorizer>,
        /// The access node's seat in the realm.
        seat: Arc<Seat>,
    }

    fn world() -> World {
        let owner = Keypair::generate().unwrap();
        let realm = Realm::owned(RealmName::new("io.acme").unwrap(), owner.did());
        let access = Keypair::generate().unwrap();
        let authorizer = Arc::new(Authorizer::new());
        let seat = Seat::new(
            realm.clone(),
            0,
            authorizer.clone(),
            access.did(),
            Arc::default(),
        );
        World {
            owner,
            client: Keypair::generate().unwrap(),
            access,
            realm,
            authorizer,
            seat,
        }
    }

    /// The owner's grant to `to`, of `claims`, until `exp`.
    fn grant(w: &World, to: Did, claims: &[(&str, &str)], exp: u64) -> Chain {
        let mut builder = Builder::new(&w.owner, to).expires_at(exp);
        for (resource, ability) in claims {
            builder = builder.claim(*resource, *ability);
        }
        Chain::new(builder.build().unwrap(), [])
    }

    fn accepted(w: &World, chains: Vec<WireChain>) -> Delegated {
        let mut cache = ChainCache::default();
        Delegated::accept(&w.client.did(), &w.access.did(), chains, &mut cache).unwrap()
    }

    #[test]
    fn the_access_node_acts_within_the_clients_grant_and_no_further() {
        let w = world();
        let narrow = grant(
            &w,
            w.client.did(),
            &[
                ("weft://io.acme", "realm/join"),
                ("weft://io.acme/orders.*", "msg/publish"),
                ("weft://io.acme/orders.**", "msg/subscribe"),
            ],
            NOW + 3600,
        );
        let wire = delegate(&w.client, w.access.did(), &[narrow], NOW);
        assert_eq!(wire.len(), 1);
        let delegated = accepted(&w, wire.clone());
        let budget = VerifyBudget::default();
        let me = w.access.did();
        let topic = Name::new("orders.placed").unwrap();
        let under = |action| {
            delegated
                .chain_for(&w.seat, &budget, action, NOW + 60)
                .map(|chosen| chosen.wire.clone())
        };
        assert_eq!(under(Action::Publish(&topic)), Some(wire[0].clone()));
        let pattern = Pattern::new("orders.**").unwrap();
        assert!(under(Action::Subscribe(&pattern)).is_some());
        let refund = Name::new("billing.refund").unwrap();
        assert_eq!(under(Action::Publish(&refund)), None, "not the client's");
        let call = Name::new("orders.get").unwrap();
        assert_eq!(under(Action::Call(&call)), None);
        // Checked as a member would: the access node, under the chain, may publish there.
        let chain = Chain::parse(&wire[0].leaf, &wire[0].proofs).unwrap();
        let publish = Action::Publish(&topic);
        assert!(
            w.authorizer
                .authorize(&w.realm, Some(&chain), &me, publish, NOW + 60)
                .is_ok()
        );
        let other = Keypair::generate().unwrap().did();
        assert!(
            w.authorizer
                .authorize(&w.realm, Some(&chain), &other, publish, NOW + 60)
                .is_err(),
            "nobody else may act under it"
        );
    }

    #[test]
    fn a_delegation_lasts_its_lifetime_or_its_proof_whichever_ends_first() {
        let w = world();
        let claims = [("weft://io.acme/**", "msg/publish")];
        let long = grant(&w, w.client.did(), &claims, NOW + 3600);
        let short = grant(&w, w.client.did(), &claims, NOW + 30);
        let gone = grant(&w, w.client.did(), &claims, NOW);
        let someone_elses = grant(&w, w.access.did(), &claims, NOW + 3600);
        let wire = delegate(
            &w.client,
            w.access.did(),
            &[long, short, gone, someone_elses],
            NOW,
        );
        assert_eq!(wire.len(), 2, "only live chains of the client's own");
        let exp = |wire: &WireChain| {
            Chain::parse(&wire.leaf, &wire.proofs)
                .unwrap()
                .leaf()
                .expires_at()
        };
        assert_eq!(exp(&wire[0]), Some(NOW + LIFETIME));
        assert_eq!(exp(&wire[1]), Some(NOW + 30));
        let delegated = accepted(&w, wire);
        let topic = Name::new("orders.placed").unwrap();
        let under = |now| {
            delegated
                .chain_for(
                    &w.seat,
                    &VerifyBudget::default(),
                    Action::Publish(&topic),
                    now,
                )
                .is_some()
        };
        assert!(under(NOW + 60));
        // Past the lifetime and the clock leeway (60 s), it allows nothing more.
        assert!(!under(NOW + LIFETIME + 61));
    }

    #[test]
    fn a_delegation_hands_on_publishing_subscribing_and_calling_only() {
        let w = world();
        let everything = grant(
            &w,
            w.client.did(),
            &[("weft://io.acme", "*"), ("weft://io.acme/**", "*")],
            NOW + 3600,
        );
        let only_join = grant(
            &w,
            w.client.did(),
            &[("weft://io.acme", "realm/join")],
            NOW + 3600,
        );
        let wire = delegate(&w.client, w.access.did(), &[everything, only_join], NOW);
        assert_eq!(wire.len(), 1, "a chain granting none of them is left out");
        let leaf = Chain::parse(&wire[0].leaf, &wire[0].proofs).unwrap();
        let mut granted: Vec<(String, String)> = leaf
            .leaf()
            .capabilities()
            .iter()
            .map(|c| (c.resource.clone(), c.ability.clone()))
            .collect();
        granted.sort();
        let on = |resource: &str, ability: &str| (resource.to_owned(), ability.to_owned());
        assert_eq!(
            granted,
            [
                on("weft://io.acme", "msg/publish"),
                on("weft://io.acme", "msg/subscribe"),
                on("weft://io.acme", "rpc/call"),
                on("weft://io.acme/**", "msg/publish"),
                on("weft://io.acme/**", "msg/subscribe"),
                on("weft://io.acme/**", "rpc/call"),
            ]
        );
        let delegated = accepted(&w, wire);
        let budget = VerifyBudget::default();
        let procedure = Name::new("orders.get").unwrap();
        let allows = |action| {
            delegated
                .chain_for(&w.seat, &budget, action, NOW + 60)
                .is_some()
        };
        assert!(
            allows(Action::Call(&procedure)),
            "narrowed from `*`, and valid"
        );
        assert!(!allows(Action::Advertise(&procedure)));
        assert!(!allows(Action::Join));
    }

    #[test]
    fn a_subscription_moves_to_a_new_delegation_once_half_the_last_ones_life_is_gone() {
        let exp = NOW + LIFETIME;
        assert!(!renew_at(Some(exp), NOW));
        assert!(!renew_at(Some(exp), NOW + LIFETIME / 2 - 1));
        assert!(renew_at(Some(exp), NOW + LIFETIME / 2));
        assert!(renew_at(Some(exp), exp + 1), "or after it ran out");
        assert!(!renew_at(None, NOW), "a chain that never runs out");
    }

    #[test]
    fn a_choice_is_made_again_for_another_topic_second_delegation_or_revocation() {
        let w = world();
        let empty = |w: &World| Arc::new(accepted(w, Vec::new()));
        let (one, other) = (empty(&w), empty(&w));
        let (orders, billing) = (
            Name::new("orders.a").unwrap(),
            Name::new("billing.a").unwrap(),
        );
        let mut memo = LastChoice::default();
        let decided = std::cell::Cell::new(0);
        let choose = |memo: &mut LastChoice, d: &Arc<Delegated>, topic: &Name, second, epoch| {
            memo.choose(d, topic, second, epoch, || {
                decided.set(decided.get() + 1);
                None
            });
        };
        choose(&mut memo, &one, &orders, NOW, 0);
        choose(&mut memo, &one, &orders, NOW, 0);
        assert_eq!(decided.get(), 1, "the same run");
        choose(&mut memo, &one, &billing, NOW, 0);
        choose(&mut memo, &one, &billing, NOW + 1, 0);
        choose(&mut memo, &one, &billing, NOW + 1, 1);
        choose(&mut memo, &other, &billing, NOW + 1, 1);
        assert_eq!(decided.get(), 5, "each change decides anew");
    }

    #[test]
    fn a_delegation_not_from_the_client_to_this_node_is_refused_whole() {
        let w = world();
        let claims = [("weft://io.acme/**", "msg/publish")];
        let own = grant(&w, w.client.did(), &claims, NOW + 3600);
        let good = delegate(&w.client, w.access.did(), std::slice::from_ref(&own), NOW);
        // To another node: not this node's to act under.
        let elsewhere = delegate(&w.client, w.owner.did(), &[own], NOW);
        // Someone else's delegation to this node, handed on by the client.
        let third = Keypair::generate().unwrap();
        let theirs = grant(&w, third.did(), &claims, NOW + 3600);
        let handed_on = delegate(&third, w.access.did(), &[theirs], NOW);
        let mut cache = ChainCache::default();
        let (client, me) = (w.client.did(), w.access.did());
        for bad in [elsewhere, handed_on] {
            let chains = good.iter().chain(&bad).cloned().collect();
            assert!(Delegated::accept(&client, &me, chains, &mut cache).is_err());
        }
        let garbage = vec![WireChain {
            leaf: "not a token".into(),
            proofs: Vec::new(),
        }];
        assert!(Delegated::accept(&client, &me, garbage, &mut cache).is_err());
        let empty = Delegated::accept(&client, &me, Vec::new(), &mut cache).unwrap();
        assert_eq!(empty.len(), 0);
        let topic = Name::new("x").unwrap();
        let budget = VerifyBudget::default();
        let action = Action::Publish(&topic);
        assert!(empty.chain_for(&w.seat, &budget, action, NOW).is_none());
    }
}
