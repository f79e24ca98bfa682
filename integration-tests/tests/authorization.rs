//! An owned realm: every action needs a UCAN chain rooted at the owner, checked by the node that
//! receives it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::{Value, json};
use weft::{
    Builder, Chain, Did, Error, Keypair, Node, PeerEvent, PublishError, SubscribeError, Token,
};
use weft_integration_tests::{next_event, shutdown, within};

const REALM: &str = "io.acme";

fn grant(
    issuer: &Keypair,
    audience: Did,
    resource: &str,
    ability: &str,
    proof: Option<&Token>,
) -> Token {
    let mut builder = Builder::new(issuer, audience)
        .expires_at(4_000_000_000)
        .claim(resource, ability);
    if let Some(proof) = proof {
        builder = builder.proof(*proof.cid());
    }
    builder.build().unwrap()
}

fn join(owner: &Keypair, node: &Keypair) -> Chain {
    Chain::new(
        grant(owner, node.did(), "weft://io.acme", "realm/join", None),
        [],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_needs_msg_publish_and_a_delegated_token_is_enough() {
    let owner = Keypair::generate().unwrap();
    let (kb, ka, kc, team) = (
        Keypair::generate().unwrap(),
        Keypair::generate().unwrap(),
        Keypair::generate().unwrap(),
        Keypair::generate().unwrap(),
    );

    // B subscribes: it may join and subscribe to orders.**.
    let subscribe = Chain::new(
        grant(
            &owner,
            kb.did(),
            "weft://io.acme/orders.**",
            "msg/subscribe",
            None,
        ),
        [],
    );
    let b = Node::builder()
        .key(kb.clone())
        .realm(REALM, owner.did())
        .ucan(REALM, join(&owner, &kb))
        .ucan(REALM, subscribe)
        .start()
        .await
        .unwrap();
    let seed = b.listen_addrs()[0].to_string();

    // A may join, nothing more.
    let a = Node::builder()
        .key(ka.clone())
        .bootstrap(seed.clone())
        .realm(REALM, owner.did())
        .ucan(REALM, join(&owner, &ka));
    let a = a.start().await.unwrap();

    // C publishes through a delegation: owner → team (orders.**) → C (orders.*).
    let to_team = grant(
        &owner,
        team.did(),
        "weft://io.acme/orders.**",
        "msg/publish",
        None,
    );
    let to_c = grant(
        &team,
        kc.did(),
        "weft://io.acme/orders.*",
        "msg/publish",
        Some(&to_team),
    );
    let c = Node::builder()
        .key(kc.clone())
        .bootstrap(seed)
        .realm(REALM, owner.did())
        .ucan(REALM, join(&owner, &kc))
        .ucan(REALM, Chain::new(to_c, [to_team]))
        .start()
        .await
        .unwrap();

    let mut orders = b.realm(REALM).unwrap().subscribe("orders.*").await.unwrap();
    let (on_a, on_c) = (a.realm(REALM).unwrap(), c.realm(REALM).unwrap());
    within("A learns of B", on_a.wait_for_subscriber("orders.placed"))
        .await
        .unwrap();
    within("C learns of B", on_c.wait_for_subscriber("orders.placed"))
        .await
        .unwrap();

    // A is refused with a typed error, and nothing is sent.
    let refused = on_a
        .publish("orders.placed", &json!({"from": "a"}))
        .await
        .unwrap_err();
    match refused {
        Error::Publish(PublishError::Unauthorized(e)) => assert_eq!(e.code(), "unauthorized"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(on_a.stats().await.published, 0);

    // C's delegated chain is enough; but only as far as it reaches (orders.*, not billing).
    on_c.publish("orders.placed", &json!({"from": "c"}))
        .await
        .unwrap();
    let refused = on_c
        .publish("billing.paid", &json!({"from": "c"}))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Publish(PublishError::Unauthorized(_))),
        "{refused:?}"
    );

    let event = next_event(&mut orders).await;
    assert_eq!(event.publisher, kc.did());
    assert_eq!(event.json::<Value>().unwrap(), json!({"from": "c"}));
    assert_eq!(
        b.realm(REALM).unwrap().stats().await.denied,
        0,
        "nothing unauthorized was even sent"
    );

    // B may subscribe under orders.** only.
    let refused = b
        .realm(REALM)
        .unwrap()
        .subscribe("billing.*")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Subscribe(SubscribeError::Unauthorized(_))),
        "{refused:?}"
    );

    shutdown(&[a, b, c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_realm_join_is_refused_and_never_routed_to() {
    let owner = Keypair::generate().unwrap();
    let (kb, kx) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());

    // X holds msg/* on every name of the realm, but no realm/join.
    let no_join = Chain::new(
        grant(&owner, kx.did(), "weft://io.acme/**", "msg/*", None),
        [],
    );
    let x = Node::builder()
        .key(kx.clone())
        .realm(REALM, owner.did())
        .ucan(REALM, no_join)
        .start()
        .await
        .unwrap();
    let mut x_events = x.peer_events();
    let _x_orders = x.realm(REALM).unwrap().subscribe("orders.*").await.unwrap();

    let everything = Chain::new(grant(&owner, kb.did(), "weft://io.acme", "*", None), []);
    let b = Node::builder()
        .key(kb.clone())
        .bootstrap(x.listen_addrs()[0].to_string())
        .realm(REALM, owner.did())
        .ucan(REALM, everything)
        .start()
        .await
        .unwrap();

    // X is told why, with the contract's code.
    let denied = within("X is refused", async {
        loop {
            if let Ok(PeerEvent::Denied {
                did, code, realm, ..
            }) = x_events.recv().await
            {
                break (did, code, realm);
            }
        }
    })
    .await;
    assert_eq!(denied.0, kb.did());
    assert_eq!(denied.1, "unauthorized");
    assert!(denied.2.starts_with("io.acme="), "{}", denied.2);

    // B sent the refusal after deciding, so its view is settled: X is no member, and X's
    // subscription was never routed to.
    let stats = b.realm(REALM).unwrap().stats().await;
    assert_eq!((stats.members, stats.remote_subscriptions), (0, 0));
    shutdown(&[b, x]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_publishers_own_token_stops_its_next_publication() {
    // A publisher streaming to one topic is authorized once a second; a revocation must still
    // take effect on the very next publication, not a second later.
    let owner = Keypair::generate().unwrap();
    let key = Keypair::generate().unwrap();
    let publish = grant(
        &owner,
        key.did(),
        "weft://io.acme/orders.*",
        "msg/publish",
        None,
    );
    let node = Node::builder()
        .key(key.clone())
        .realm(REALM, owner.did())
        .ucan(REALM, join(&owner, &key))
        .ucan(REALM, Chain::new(publish.clone(), []))
        .start()
        .await
        .unwrap();
    let realm = node.realm(REALM).unwrap();
    for id in 0..3 {
        within(
            "publish",
            realm.publish("orders.placed", &json!({ "id": id })),
        )
        .await
        .unwrap();
    }
    node.revoke(*publish.cid());
    let refused = within(
        "publish",
        realm.publish("orders.placed", &json!({ "id": 3 })),
    )
    .await;
    match refused {
        Err(Error::Publish(PublishError::Unauthorized(e))) => assert_eq!(e.code(), "revoked"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realm_handle_vets_a_delegation_as_its_routers_would() {
    // A gateway's check before it acts under a client's chain: the chain must reach this node,
    // cover the action, and not be revoked.
    let owner = Keypair::generate().unwrap();
    let key = Keypair::generate().unwrap();
    let node = Node::builder()
        .key(key.clone())
        .realm(REALM, owner.did())
        .ucan(REALM, join(&owner, &key))
        .start()
        .await
        .unwrap();
    let realm = node.realm(REALM).unwrap();
    let client = Keypair::generate().unwrap();
    let to_client = grant(
        &owner,
        client.did(),
        "weft://io.acme/orders.*",
        "msg/publish",
        None,
    );
    let to_node = grant(
        &client,
        key.did(),
        "weft://io.acme/orders.*",
        "msg/publish",
        Some(&to_client),
    );
    let delegation = Chain::new(to_node.clone(), [to_client.clone()]);
    let placed = weft::Name::new("orders.placed").unwrap();
    let payroll = weft::Name::new("payroll.run").unwrap();
    assert!(
        realm
            .authorize(&delegation, weft::Action::Publish(&placed))
            .is_ok()
    );
    let outside = realm.authorize(&delegation, weft::Action::Publish(&payroll));
    assert_eq!(outside.unwrap_err().code(), "unauthorized");
    let subscribe = weft::Pattern::new("orders.*").unwrap();
    let other_ability = realm.authorize(&delegation, weft::Action::Subscribe(&subscribe));
    assert_eq!(other_ability.unwrap_err().code(), "unauthorized");

    // The client's own chain names the client as audience: this node cannot act under it.
    let not_ours = Chain::new(to_client, []);
    let refused = realm.authorize(&not_ours, weft::Action::Publish(&placed));
    assert!(refused.is_err());

    node.revoke(*to_node.cid());
    let revoked = realm.authorize(&delegation, weft::Action::Publish(&placed));
    assert_eq!(revoked.unwrap_err().code(), "revoked");
    node.shutdown().await;
}
