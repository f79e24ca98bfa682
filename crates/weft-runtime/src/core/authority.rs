//! The one rule by which a member's action is authorized, used by the router, the registry and
//! the realm alike, and the rule by which a peer becomes a member.

use weft_auth::{Action, AuthError, Authorizer, Chain, Grant, Realm, VerifyBudget};
use weft_identity::Did;
use weft_wire::WireChain;

use crate::core::chains::ChainCache;

/// A peer's admission to a realm: the chains it presented that parse, and why it may join.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) chains: Vec<Chain>,
    pub(crate) grant: Grant,
}

/// Decides whether `did`, presenting `presented`, may join `realm` at `now` (Unix seconds). A
/// chain that does not parse is left out rather than fatal: another one may still authorize, and
/// what is kept is what the member's later actions are checked under.
pub(crate) fn admit(
    authorizer: &Authorizer,
    realm: &Realm,
    did: &Did,
    presented: &[WireChain],
    budget: &VerifyBudget,
    now: u64,
) -> Result<Admission, AuthError> {
    let chains: Vec<Chain> = presented
        .iter()
        .filter_map(|wire| Chain::parse(&wire.leaf, &wire.proofs).ok())
        .collect();
    let grant = authorizer.authorize_any_from(realm, &chains, did, Action::Join, now, budget)?;
    Ok(Admission { chains, grant })
}

/// Authorizes a member's action at `now` (Unix seconds): under the chain sent with the frame
/// alone when there is one (a gateway acting for a client; unparsable refuses), else under the
/// chains of its join. The one rule for publications, subscriptions and calls.
pub(crate) fn authorize_member(
    authorizer: &Authorizer,
    chains: &mut ChainCache,
    realm: &Realm,
    frame_chain: Option<&weft_wire::WireChain>,
    acting: Acting<'_>,
    action: Action<'_>,
    now: u64,
) -> Result<weft_auth::Grant, weft_auth::AuthError> {
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

impl Acting<'_> {
    /// The same member re-checking what it was granted: that must not fail for lack of budget.
    pub(crate) fn without_budget(self) -> Self {
        Self {
            budget: None,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::Keypair;
    use weft_names::{Name, RealmName};
    use weft_ucan::Builder;

    use crate::core::chains::wire_chain;

    const NOW: u64 = 1_800_000_000;

    struct Setup {
        authorizer: Authorizer,
        realm: Realm,
        owner: Keypair,
        member: Keypair,
    }

    fn setup() -> Setup {
        let owner = Keypair::generate().unwrap();
        Setup {
            authorizer: Authorizer::new(),
            realm: Realm::owned(RealmName::new("io.acme").unwrap(), owner.did()),
            owner,
            member: Keypair::generate().unwrap(),
        }
    }

    /// The owner's grant to `to` of `ability` on `resource`.
    fn grant(s: &Setup, to: &Keypair, resource: &str, ability: &str) -> Chain {
        let token = Builder::new(&s.owner, to.did())
            .claim(resource, ability)
            .expires_at(NOW + 3600)
            .build()
            .unwrap();
        Chain::new(token, [])
    }

    #[test]
    fn a_peer_joins_with_the_chains_that_parse_and_is_refused_without_one_that_grants() {
        let s = setup();
        let join = wire_chain(&grant(&s, &s.member, "weft://io.acme", "realm/join"));
        let garbage = WireChain {
            leaf: "not a token".into(),
            proofs: vec![],
        };
        let budget = VerifyBudget::default();
        let admitted = admit(
            &s.authorizer,
            &s.realm,
            &s.member.did(),
            &[garbage.clone(), join.clone()],
            &budget,
            NOW,
        )
        .unwrap();
        assert_eq!(admitted.chains.len(), 1, "the unparsable chain is left out");

        let refused = admit(
            &s.authorizer,
            &s.realm,
            &s.member.did(),
            &[garbage],
            &budget,
            NOW,
        );
        assert!(refused.is_err());
        let stranger = Keypair::generate().unwrap();
        let stolen = admit(
            &s.authorizer,
            &s.realm,
            &stranger.did(),
            &[join],
            &budget,
            NOW,
        );
        assert!(
            stolen.is_err(),
            "a chain names its audience: another DID cannot use it"
        );
    }

    #[test]
    fn a_chain_sent_with_the_request_replaces_the_members_own() {
        let s = setup();
        let topic = Name::new("orders.placed").unwrap();
        let publish = Action::Publish(&topic);
        let own = [grant(
            &s,
            &s.member,
            "weft://io.acme/orders.*",
            "msg/publish",
        )];
        let acting = Acting {
            did: &s.member.did(),
            chains: &own,
            budget: None,
        };
        let mut cache = ChainCache::default();
        let (authorizer, realm) = (&s.authorizer, &s.realm);
        assert!(
            authorize_member(authorizer, &mut cache, realm, None, acting, publish, NOW).is_ok()
        );

        // A chain that grants something else: the member's own do not fill the gap.
        let narrow = wire_chain(&grant(
            &s,
            &s.member,
            "weft://io.acme/audit.*",
            "msg/publish",
        ));
        let with = Some(&narrow);
        assert!(
            authorize_member(authorizer, &mut cache, realm, with, acting, publish, NOW).is_err()
        );
        let broken = WireChain {
            leaf: "not a token".into(),
            proofs: vec![],
        };
        let with = Some(&broken);
        assert!(
            authorize_member(authorizer, &mut cache, realm, with, acting, publish, NOW).is_err(),
            "a chain that does not parse refuses"
        );
        assert!(
            authorize_member(
                authorizer,
                &mut cache,
                realm,
                None,
                acting,
                publish,
                NOW + 7200
            )
            .is_err(),
            "time is an argument: past the grant's expiry it ends"
        );
    }
}
