//! The one rule by which a member's action is authorized, used by the router, the registry and
//! the realm alike.

use weft_auth::{Action, Authorizer, Chain, Realm, VerifyBudget};
use weft_identity::Did;

use crate::core::chains::ChainCache;
use crate::unix_now;

/// Authorizes a member's action: under the chain sent with the frame alone when there is one (a
/// gateway acting for a client; unparsable refuses), else under the chains of its join. The one
/// rule for publications, subscriptions and calls.
pub(crate) fn authorize_member(
    authorizer: &Authorizer,
    chains: &mut ChainCache,
    realm: &Realm,
    frame_chain: Option<&weft_wire::WireChain>,
    acting: Acting<'_>,
    action: Action<'_>,
) -> Result<weft_auth::Grant, weft_auth::AuthError> {
    let now = unix_now();
    let Acting {
        did,
        chains: hello_chains,
        budget,
    } = acting;
    match (frame_chain, budget) {
        (Some(wire), budget) => chains
            .parse(wire)
            .map_err(weft_auth::AuthError::from)
            .and_then(|chain| match budget {
                Some(budget) => {
                    authorizer.authorize_from(realm, Some(&chain), did, action, now, budget)
                }
                None => authorizer.authorize(realm, Some(&chain), did, action, now),
            }),
        (None, Some(budget)) => {
            authorizer.authorize_any_from(realm, hello_chains, did, action, now, budget)
        }
        (None, None) => authorizer.authorize_any(realm, hello_chains, did, action, now),
    }
}

/// A member acting: its DID, the chains of its join, and the budget its new chains are verified
/// under (none when re-checking what was already granted: that must not fail for lack of
/// budget).
#[derive(Clone, Copy)]
pub(crate) struct Acting<'a> {
    pub(crate) did: &'a Did,
    pub(crate) chains: &'a [Chain],
    pub(crate) budget: Option<&'a VerifyBudget>,
}
