//! A peer's subscription, advertisement and membership last only as long as the chain they rest
//! on: each ends when that chain expires or is revoked, and the peer is told. The hub runs with
//! no clock leeway, so "expired" means expired now rather than a minute later.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use weft::{Builder, CallError, CallOptions, Chain, Error, Keypair, Node, PeerEvent, Token};
use weft_integration_tests::{next_event, shutdown, within};

const REALM: &str = "io.acme";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(owner: &Keypair, to: &Keypair, resource: &str, ability: &str, exp: u64) -> Token {
    Builder::new(owner, to.did())
        .expires_at(exp)
        .claim(resource, ability)
        .build()
        .unwrap()
}

/// The owner's own node, with no leeway for expiry.
async fn hub(owner: &Keypair) -> Node {
    Node::builder()
        .key(owner.clone())
        .realm(REALM, owner.did())
        .clock_leeway(Duration::ZERO)
        .start()
        .await
        .unwrap()
}

/// A node of `key` holding `tokens`, joined to `hub`.
async fn peer(owner: &Keypair, key: &Keypair, hub: &Node, tokens: Vec<Token>) -> Node {
    let mut builder = Node::builder()
        .key(key.clone())
        .realm(REALM, owner.did())
        .bootstrap(hub.listen_addrs()[0].to_string());
    for token in tokens {
        builder = builder.ucan(REALM, Chain::new(token, []));
    }
    let node = builder.start().await.unwrap();
    within("admitted", hub.realm(REALM).unwrap().wait_for_members(1))
        .await
        .unwrap();
    node
}

/// The next refusal in `events`, as its code.
async fn next_denial(events: &mut weft::PeerEvents) -> String {
    within("a refusal", async {
        loop {
            if let Ok(PeerEvent::Denied { code, .. }) = events.recv().await {
                return code;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_its_token_expires() {
    let owner = Keypair::generate().unwrap();
    let hub = hub(&owner).await;
    let key = Keypair::generate().unwrap();
    let far = now() + 3600;
    let join = token(&owner, &key, "weft://io.acme", "realm/join", far);
    let read = token(
        &owner,
        &key,
        "weft://io.acme/orders.**",
        "msg/subscribe",
        now() + 2,
    );
    let reader = peer(&owner, &key, &hub, vec![join, read]).await;
    let mut events = reader.peer_events();
    let mut orders = reader
        .realm(REALM)
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    let acme = hub.realm(REALM).unwrap();
    within(
        "the subscription arrives",
        acme.wait_for_subscriber("orders.a"),
    )
    .await
    .unwrap();
    acme.publish("orders.a", &json!(1)).await.unwrap();
    assert_eq!(next_event(&mut orders).await.topic.as_str(), "orders.a");

    assert_eq!(next_denial(&mut events).await, "expired");
    assert_eq!(
        acme.stats().await.remote_subscriptions,
        0,
        "the route is gone"
    );
    assert_eq!(
        acme.stats().await.members,
        1,
        "the membership rests on another token"
    );
    shutdown(&[reader, hub]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_provider_is_no_longer_called() {
    let owner = Keypair::generate().unwrap();
    let hub = hub(&owner).await;
    let key = Keypair::generate().unwrap();
    let far = now() + 3600;
    let join = token(&owner, &key, "weft://io.acme", "realm/join", far);
    let serve = token(
        &owner,
        &key,
        "weft://io.acme/orders.**",
        "rpc/advertise",
        far,
    );
    let revoked = *serve.cid();
    let provider = peer(&owner, &key, &hub, vec![join, serve]).await;
    let _registration = provider
        .realm(REALM)
        .unwrap()
        .advertise("orders.get", |_ctx, _args| async { Ok(json!("served")) })
        .await
        .unwrap();
    let acme = hub.realm(REALM).unwrap();
    within(
        "the provider is known",
        acme.wait_for_providers("orders.get", 1),
    )
    .await
    .unwrap();
    assert_eq!(
        acme.call("orders.get", &json!({})).await.unwrap(),
        json!("served")
    );

    let mut events = provider.peer_events();
    hub.revoke(revoked);
    assert_eq!(next_denial(&mut events).await, "revoked");
    let briefly = CallOptions::default().timeout(Duration::from_millis(300));
    let err = acme
        .call_with("orders.get", &json!({}), briefly)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::NotFound(_))),
        "{err:?}"
    );
    shutdown(&[provider, hub]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_ends_when_its_token_expires() {
    let owner = Keypair::generate().unwrap();
    let hub = hub(&owner).await;
    let key = Keypair::generate().unwrap();
    let join = token(&owner, &key, "weft://io.acme", "realm/join", now() + 2);
    let member = peer(&owner, &key, &hub, vec![join]).await;
    let mut events = member.peer_events();
    assert_eq!(next_denial(&mut events).await, "expired");
    assert_eq!(hub.realm(REALM).unwrap().stats().await.members, 0);
    shutdown(&[member, hub]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_revocation_record_ends_what_rests_on_the_token() {
    let owner = Keypair::generate().unwrap();
    let hub = hub(&owner).await;
    let key = Keypair::generate().unwrap();
    let far = now() + 3600;
    let join = token(&owner, &key, "weft://io.acme", "realm/join", far);
    let read = token(
        &owner,
        &key,
        "weft://io.acme/orders.**",
        "msg/subscribe",
        far,
    );
    let record = weft::ucan::Revocation::issue(&owner, &read);
    let reader = peer(&owner, &key, &hub, vec![join, read]).await;
    let mut events = reader.peer_events();
    let _orders = reader
        .realm(REALM)
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    let acme = hub.realm(REALM).unwrap();
    within(
        "the subscription arrives",
        acme.wait_for_subscriber("orders.a"),
    )
    .await
    .unwrap();

    // The owner issued the token: its record revokes it (whose records do not is unit-tested).
    hub.apply_revocation(&record).unwrap();
    assert_eq!(next_denial(&mut events).await, "revoked");
    assert_eq!(acme.stats().await.remote_subscriptions, 0);
    shutdown(&[reader, hub]).await;
}

/// A record applied on one node travels to the others, which apply it, end what rests on the
/// token, and keep the record for their next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_travels_the_realm_and_is_kept() {
    let owner = Keypair::generate().unwrap();
    let kept = std::env::temp_dir().join(format!("weft-revoked-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&kept);
    let hub = Node::builder()
        .key(owner.clone())
        .realm(REALM, owner.did())
        .clock_leeway(Duration::ZERO)
        .revocations_file(&kept)
        .start()
        .await
        .unwrap();
    let far = now() + 3600;
    let reader_key = Keypair::generate().unwrap();
    let join = token(&owner, &reader_key, "weft://io.acme", "realm/join", far);
    let read = token(
        &owner,
        &reader_key,
        "weft://io.acme/orders.**",
        "msg/subscribe",
        far,
    );
    let record = weft::ucan::Revocation::issue(&owner, &read);
    let reader = peer(&owner, &reader_key, &hub, vec![join, read]).await;
    let mut events = reader.peer_events();
    let _orders = reader
        .realm(REALM)
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    let acme = hub.realm(REALM).unwrap();
    within(
        "the subscription arrives",
        acme.wait_for_subscriber("orders.a"),
    )
    .await
    .unwrap();

    // Another member hands the record to the realm.
    let other_key = Keypair::generate().unwrap();
    let other = Node::builder()
        .key(other_key.clone())
        .realm(REALM, owner.did())
        .ucan(
            REALM,
            Chain::new(
                token(&owner, &other_key, "weft://io.acme", "realm/join", far),
                [],
            ),
        )
        .bootstrap(hub.listen_addrs()[0].to_string())
        .start()
        .await
        .unwrap();
    within("both members", acme.wait_for_members(2))
        .await
        .unwrap();
    within(
        "the hub is a member there",
        other.realm(REALM).unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    assert!(other.apply_revocation(&record).unwrap(), "new there");
    assert_eq!(next_denial(&mut events).await, "revoked");
    let text = std::fs::read_to_string(&kept).unwrap();
    let again = weft::ucan::Revocation::parse(text.trim()).unwrap();
    assert_eq!(again, record, "the hub kept it");
    assert!(
        !hub.apply_revocation(&record).unwrap(),
        "known there already"
    );
    shutdown(&[other, reader, hub]).await;
    let _ = std::fs::remove_file(&kept);
}

/// A client's subscription held in the mesh by its access node ends there too when the client's
/// token expires: the other members stop sending for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_subscription_is_withdrawn_when_its_token_expires() {
    let owner = Keypair::generate().unwrap();
    let access = hub(&owner).await;
    let far = now() + 3600;
    let publisher_key = Keypair::generate().unwrap();
    let join = token(&owner, &publisher_key, "weft://io.acme", "realm/join", far);
    let publisher = peer(&owner, &publisher_key, &access, vec![join]).await;
    let client_key = Keypair::generate().unwrap();
    let join = token(&owner, &client_key, "weft://io.acme", "realm/join", far);
    let read = token(
        &owner,
        &client_key,
        "weft://io.acme/orders.**",
        "msg/subscribe",
        now() + 2,
    );
    let client = Node::builder()
        .key(client_key)
        .realm(REALM, owner.did())
        .ucan(REALM, Chain::new(join, []))
        .ucan(REALM, Chain::new(read, []))
        .connect(access.listen_addrs()[0].to_string())
        .start()
        .await
        .unwrap();
    let mut events = client.peer_events();
    let _orders = client
        .realm(REALM)
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    let at_publisher = publisher.realm(REALM).unwrap();
    within(
        "the access node subscribes for it",
        at_publisher.wait_for_subscriber("orders.a"),
    )
    .await
    .unwrap();
    assert_eq!(next_denial(&mut events).await, "expired");
    within("the publisher stops routing to it", async {
        while at_publisher.stats().await.remote_subscriptions > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    shutdown(&[client, publisher, access]).await;
}
