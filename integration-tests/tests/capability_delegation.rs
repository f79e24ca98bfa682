//! The worked example of docs/capabilities.md, step by step, through the `weft` facade only: a
//! realm owner delegates `rpc/call` on `orders.*` to a team, the team re-delegates `orders.get` to
//! one service, and a receiving node decides each action.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use weft::{Action, Authorizer, Builder, Chain, Grant, Keypair, Name, Pattern, Realm, RealmName};

const NOW: u64 = 1_800_000_000;

struct Acme {
    owner: Keypair,
    team: Keypair,
    service: Keypair,
    realm: Realm,
}

fn acme() -> Acme {
    let owner = Keypair::generate().unwrap();
    let realm = Realm::owned(RealmName::new("io.acme").unwrap(), owner.did());
    Acme {
        owner,
        team: Keypair::generate().unwrap(),
        service: Keypair::generate().unwrap(),
        realm,
    }
}

fn service_chain(a: &Acme) -> Chain {
    let to_team = Builder::new(&a.owner, a.team.did())
        .expires_at(NOW + 86_400)
        .claim("weft://io.acme/orders.*", "rpc/call")
        .build()
        .unwrap();
    let to_service = Builder::new(&a.team, a.service.did())
        .expires_at(NOW + 3_600)
        .claim("weft://io.acme/orders.get", "rpc/call")
        .proof(*to_team.cid())
        .build()
        .unwrap();
    Chain::new(to_service, [to_team])
}

#[test]
fn service_may_call_orders_get_and_nothing_else() {
    let a = acme();
    let chain = service_chain(&a);
    let node = Authorizer::new();
    let call = |procedure: &str| {
        let name = Name::new(procedure).unwrap();
        node.authorize(
            &a.realm,
            Some(&chain),
            &a.service.did(),
            Action::Call(&name),
            NOW,
        )
    };
    assert!(matches!(call("orders.get"), Ok(Grant::Delegated { .. })));
    assert_eq!(call("orders.cancel").unwrap_err().code(), "unauthorized");
    assert_eq!(call("billing.refund").unwrap_err().code(), "unauthorized");

    let topic = Name::new("orders.get").unwrap();
    let publish = node.authorize(
        &a.realm,
        Some(&chain),
        &a.service.did(),
        Action::Publish(&topic),
        NOW,
    );
    assert_eq!(
        publish.unwrap_err().code(),
        "unauthorized",
        "rpc/call does not cover msg/publish"
    );
}

#[test]
fn the_team_itself_may_call_any_order_procedure_but_not_subscribe() {
    let a = acme();
    let to_team = Builder::new(&a.owner, a.team.did())
        .expires_at(NOW + 86_400)
        .claim("weft://io.acme/orders.*", "rpc/call")
        .build()
        .unwrap();
    let chain = Chain::new(to_team, []);
    let node = Authorizer::new();
    for procedure in ["orders.get", "orders.cancel"] {
        let name = Name::new(procedure).unwrap();
        assert!(
            node.authorize(
                &a.realm,
                Some(&chain),
                &a.team.did(),
                Action::Call(&name),
                NOW
            )
            .is_ok()
        );
    }
    let pattern = Pattern::new("orders.*").unwrap();
    let err = node
        .authorize(
            &a.realm,
            Some(&chain),
            &a.team.did(),
            Action::Subscribe(&pattern),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized");
}

#[test]
fn someone_else_presenting_the_chain_is_refused() {
    let a = acme();
    let chain = service_chain(&a);
    let thief = Keypair::generate().unwrap();
    let name = Name::new("orders.get").unwrap();
    let err = Authorizer::new()
        .authorize(
            &a.realm,
            Some(&chain),
            &thief.did(),
            Action::Call(&name),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "wrongAudience");
}

#[test]
fn the_same_chain_means_nothing_in_a_realm_with_another_owner() {
    let a = acme();
    let chain = service_chain(&a);
    let squatter = Keypair::generate().unwrap();
    let fake = Realm::owned(RealmName::new("io.acme").unwrap(), squatter.did());
    let name = Name::new("orders.get").unwrap();
    let err = Authorizer::new()
        .authorize(
            &fake,
            Some(&chain),
            &a.service.did(),
            Action::Call(&name),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized");
}

#[test]
fn revoking_the_teams_token_cuts_off_the_service() {
    let a = acme();
    let chain = service_chain(&a);
    let node = Authorizer::new();
    let name = Name::new("orders.get").unwrap();
    assert!(
        node.authorize(
            &a.realm,
            Some(&chain),
            &a.service.did(),
            Action::Call(&name),
            NOW
        )
        .is_ok()
    );
    let team_token = chain.leaf().proofs()[0];
    node.revoke(team_token);
    let err = node
        .authorize(
            &a.realm,
            Some(&chain),
            &a.service.did(),
            Action::Call(&name),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "revoked");
}

#[test]
fn after_an_hour_the_service_token_has_expired() {
    let a = acme();
    let chain = service_chain(&a);
    let name = Name::new("orders.get").unwrap();
    let later = NOW + 3_600 + 61; // past exp and the 60 s leeway
    let err = Authorizer::new()
        .authorize(
            &a.realm,
            Some(&chain),
            &a.service.did(),
            Action::Call(&name),
            later,
        )
        .unwrap_err();
    assert_eq!(err.code(), "expired");
}
