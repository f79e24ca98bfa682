//! This node's place in one realm: what the realm's actors and their cores are built from.

use std::sync::Arc;

use weft_auth::{Authorizer, Chain, Realm};
use weft_identity::Did;
use weft_wire::RealmIndex;

/// The realm, its index on this node's sessions, the node's authorizer, and the DID and chains
/// this node acts with in the realm. Fixed for the realm's life; shared as `Arc<Seat>` so the
/// roster, the router and the registry read the same one.
#[derive(Debug)]
pub(crate) struct Seat {
    pub(crate) realm: Realm,
    /// The realm's index in this node's hello (what frames of the realm carry).
    pub(crate) index: RealmIndex,
    pub(crate) authorizer: Arc<Authorizer>,
    /// This node's DID.
    pub(crate) did: Did,
    /// The chains that authorize this node in the realm, parsed.
    pub(crate) chains: Arc<Vec<Chain>>,
}

impl Seat {
    pub(crate) fn new(
        realm: Realm,
        index: RealmIndex,
        authorizer: Arc<Authorizer>,
        did: Did,
        chains: Arc<Vec<Chain>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            realm,
            index,
            authorizer,
            did,
            chains,
        })
    }
}
