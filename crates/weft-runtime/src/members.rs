//! A realm's members: the record every actor of the realm shares, and the router's own entry.

use std::sync::{Arc, Mutex, PoisonError};

use weft_auth::{Chain, VerifyBudget};
use weft_identity::Did;
use weft_net::PeerId;
use weft_wire::RealmIndex;

use crate::core::delegation::Delegated;
use crate::core::handshake::PeerTags;
use crate::sender::PeerSender;

/// A peer admitted to a realm, as every actor of the realm sees it: made once, at admission, and
/// shared, so the realm, its router and its registry hold the same record. What each of them
/// keeps besides (caps, calls in flight) sits next to it in that actor's own table.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) peer: PeerId,
    /// Its DID, proven by the transport.
    pub(crate) did: Did,
    /// The chains it presented for this realm, parsed.
    pub(crate) chains: Arc<Vec<Chain>>,
    /// Its tags, once its welcome arrives.
    pub(crate) tags: PeerTags,
    pub(crate) sender: PeerSender,
    /// A client of this node: what it publishes is relayed to the realm, what the realm
    /// publishes is relayed to it, and every call it does not serve itself comes here.
    pub(crate) client: bool,
    /// The realm's index in its hello (what a `Denied` to it names).
    pub(crate) index: RealmIndex,
    /// The cold verifications its chains may cost, shared by its session's realms.
    pub(crate) budget: Arc<VerifyBudget>,
    /// Its run, from its hello: its publications' numbers count within it.
    pub(crate) run: u64,
    /// What it delegated to this node, if it is a client that did (`core::delegation`): the
    /// realm, its router and its registry act for it under it.
    pub(crate) delegation: Mutex<Option<Arc<Delegated>>>,
}

impl Admitted {
    /// What it delegated to this node, if anything.
    pub(crate) fn delegation(&self) -> Option<Arc<Delegated>> {
        // Nothing panics while holding it; were it poisoned, its value would still be whole.
        self.delegation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl crate::core::roster::Credentials for Arc<Admitted> {
    fn client(&self) -> bool {
        self.client
    }

    fn acting(&self) -> crate::core::authority::Acting<'_> {
        crate::core::authority::Acting {
            did: &self.did,
            chains: &self.chains,
            budget: Some(&self.budget),
        }
    }

    fn delegation(&self) -> Option<Arc<Delegated>> {
        Admitted::delegation(self)
    }

    fn delegate(&self, delegation: Arc<Delegated>) {
        *self
            .delegation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(delegation);
    }
}

/// A member as the router holds it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) record: Arc<Admitted>,
    /// Its subscriptions here, against their cap.
    pub(crate) subscription_cap: crate::core::caps::Cap,
}

impl std::ops::Deref for Member {
    type Target = Admitted;

    fn deref(&self) -> &Admitted {
        &self.record
    }
}

impl crate::core::pubsub::Routed<PeerId> for Member {
    fn peer(&self) -> &PeerId {
        &self.record.peer
    }

    fn client(&self) -> bool {
        self.record.client
    }

    fn run(&self) -> u64 {
        self.record.run
    }
}
