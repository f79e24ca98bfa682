//! One-shot clients (`NodeBuilder::connect`) coming and going through a node, over real QUIC on
//! 127.0.0.1: every call and publication gets through, nothing they leave behind slows the next
//! one down, and a provider that leaves in the middle makes no call fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use weft::{Node, Subscription};
use weft_integration_tests::{mesh, next_event, shutdown, within};

/// A client of the node at `addr` in the open realm `dev`, admitted.
async fn client(addr: &str) -> Node {
    let node = Node::builder()
        .connect(addr)
        .open_realm("dev")
        .start()
        .await
        .expect("client starts");
    within(
        "client admitted",
        node.realm("dev").unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    node
}

/// A long-lived client of `addr` providing `orders.get`, which answers `id`.
async fn provider(addr: &str, id: u64) -> (Node, weft::Registration) {
    let node = client(addr).await;
    let registration = node
        .realm("dev")
        .unwrap()
        .advertise(
            "orders.get",
            move |_ctx, _args| async move { Ok(json!(id)) },
        )
        .await
        .unwrap();
    (node, registration)
}

/// One one-shot client's job: the `i`-th of the run. Even ones call, odd ones publish
/// `orders.n<i>`. Returns the provider that answered, for calls.
async fn one_shot(addr: &str, i: usize) -> Option<u64> {
    let node = client(addr).await;
    let realm = node.realm("dev").unwrap();
    let answered = if i.is_multiple_of(2) {
        let who = within("call", realm.call("orders.get", &json!({ "i": i })))
            .await
            .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        Some(who.as_u64().unwrap())
    } else {
        realm
            .publish(&format!("orders.n{i}"), &json!({ "i": i }))
            .await
            .unwrap_or_else(|e| panic!("publication {i} failed: {e}"));
        None
    };
    node.shutdown().await;
    answered
}

/// Runs clients `range` through `addr`, `at_once` at a time.
async fn churn(addr: &str, range: std::ops::Range<usize>, at_once: usize) -> Vec<u64> {
    let mut answered = Vec::new();
    let all: Vec<usize> = range.collect();
    for batch in all.chunks(at_once) {
        let results = join_all(batch.iter().map(|i| one_shot(addr, *i))).await;
        answered.extend(results.into_iter().flatten());
    }
    answered
}

/// Reads events until every topic in `expected` has arrived; fails on a duplicate.
async fn receive_all(subscription: &mut Subscription, expected: &HashSet<String>) {
    let mut seen = HashSet::new();
    while seen.len() < expected.len() {
        let event = next_event(subscription).await;
        let topic = event.topic.to_string();
        assert!(expected.contains(&topic), "unexpected {topic}");
        assert!(seen.insert(topic.clone()), "{topic} arrived twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_one_shot_clients_leave_calls_and_publications_working() {
    // Clients attach to the entry node; the provider and the subscriber are clients of the other.
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let entry = nodes[0].listen_addrs()[0].to_string();
    let far = nodes[1].listen_addrs()[0].to_string();
    let (provider, registration) = provider(&far, 1).await;
    let subscriber = client(&far).await;
    let mut events = subscriber
        .realm("dev")
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    let hub = nodes[0].realm("dev").unwrap();
    within(
        "provider known at the entry node",
        hub.wait_for_providers("orders.get", 1),
    )
    .await
    .unwrap();
    within(
        "subscriber known at the entry node",
        hub.wait_for_subscriber("orders.x"),
    )
    .await
    .unwrap();

    let mut answered = churn(&entry, 0..250, 1).await;
    answered.extend(churn(&entry, 250..500, 20).await);
    assert_eq!(answered.len(), 250, "every call answered");
    assert!(answered.iter().all(|who| *who == 1));
    let expected: HashSet<String> = (0..500)
        .filter(|i: &usize| !i.is_multiple_of(2))
        .map(|i| format!("orders.n{i}"))
        .collect();
    receive_all(&mut events, &expected).await;

    // Nothing the clients left behind slows the next call down: no dials to departed clients,
    // no stale records in the way.
    let last = client(&entry).await;
    let realm = last.realm("dev").unwrap();
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        within("a further call", realm.call("orders.get", &json!({})))
            .await
            .unwrap();
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(100),
        "a call after the churn took {fastest:?}"
    );
    // Clients are not in the routing tables: only the other mesh node is.
    assert!(nodes[0].dht_stats().await.routing_table <= 1);
    assert_eq!(last.dht_stats().await.provided_keys, 0);
    last.shutdown().await;

    drop(registration);
    subscriber.shutdown().await;
    provider.shutdown().await;
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_leaving_in_the_middle_fails_no_call() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let entry = nodes[0].listen_addrs()[0].to_string();
    let far = nodes[1].listen_addrs()[0].to_string();
    let (first, first_registration) = provider(&far, 1).await;
    let (second, second_registration) = provider(&entry, 2).await;
    let hub = nodes[0].realm("dev").unwrap();
    within(
        "both providers known",
        hub.wait_for_providers("orders.get", 2),
    )
    .await
    .unwrap();

    // Even-numbered clients call: 60 calls before the first provider leaves, 60 after, each
    // batch running while the departure is under way.
    let before = churn(&entry, 0..120, 10).await;
    assert!(before.contains(&1) && before.contains(&2), "{before:?}");
    // Shut down with its procedure still registered: the node withdraws it itself.
    let (after, ()) = tokio::join!(churn(&entry, 120..240, 10), first.shutdown());
    drop(first_registration);
    assert_eq!(before.len() + after.len(), 120, "no call failed");
    let tail: Vec<u64> = after.iter().rev().take(10).copied().collect();
    assert!(
        tail.iter().all(|who| *who == 2),
        "the rest went to the provider left: {tail:?}"
    );

    drop(second_registration);
    second.shutdown().await;
    shutdown(&nodes).await;
}

/// A realm owned by `owner`, the token granting `claims` to `to`, valid for an hour.
fn grant(owner: &weft::Keypair, to: weft::Did, claims: &[(&str, &str)]) -> weft::Token {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut builder = weft::Builder::new(owner, to).expires_at(now + 3600);
    for (resource, ability) in claims {
        builder = builder.claim(*resource, *ability);
    }
    builder.build().unwrap()
}

/// In an owned realm, a client acts through its access node within its own grant: what it may
/// do reaches the realm, and the access node refuses the rest even from a client that skips its
/// own checks (a raw peer speaking frames).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_acts_within_its_own_grant_and_no_further() {
    use weft_net::outbox::{Outbox, write_outbox};
    use weft_net::{NetConfig, Network};
    use weft_wire::{Frame, Hello, Join, Publish, RealmJoin, WireChain, realm_digest};

    let owner = weft::Keypair::generate().unwrap();
    let realm = |b: weft::NodeBuilder| b.realm("io.acme", owner.did());
    // The access node runs under the owner's key: it may do anything in the realm.
    let access = realm(Node::builder().key(owner.clone()))
        .start()
        .await
        .unwrap();
    let addr = access.listen_addrs()[0].to_string();
    // A member that reads everything.
    let reader_key = weft::Keypair::generate().unwrap();
    let to_reader = grant(
        &owner,
        reader_key.did(),
        &[
            ("weft://io.acme", "realm/join"),
            ("weft://io.acme/**", "msg/subscribe"),
        ],
    );
    let reader = realm(Node::builder().key(reader_key).bootstrap(addr.clone()))
        .ucan("io.acme", weft::Chain::new(to_reader, []))
        .start()
        .await
        .unwrap();
    let mut everything = reader
        .realm("io.acme")
        .unwrap()
        .subscribe("**")
        .await
        .unwrap();
    let hub = access.realm("io.acme").unwrap();
    within(
        "the reader's subscription",
        hub.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();

    // Through the facade: a client that may publish orders.* and call nothing.
    let client_key = weft::Keypair::generate().unwrap();
    let narrow = [
        ("weft://io.acme", "realm/join"),
        ("weft://io.acme/orders.*", "msg/publish"),
    ];
    let to_client = grant(&owner, client_key.did(), &narrow);
    let client = realm(Node::builder().key(client_key).connect(addr.clone()))
        .ucan("io.acme", weft::Chain::new(to_client, []))
        .start()
        .await
        .unwrap();
    let acme = client.realm("io.acme").unwrap();
    within("client admitted", acme.wait_for_members(1))
        .await
        .unwrap();
    acme.publish("orders.placed", &json!(1)).await.unwrap();
    let event = next_event(&mut everything).await;
    assert_eq!(event.topic.as_str(), "orders.placed");
    assert_eq!(event.publisher, access.did(), "relayed by the access node");
    assert!(acme.publish("billing.refund", &json!(2)).await.is_err());
    assert!(acme.call("orders.get", &json!({})).await.is_err());
    client.shutdown().await;

    // A raw client with the same grant, which publishes outside it anyway.
    let raw_key = weft::Keypair::generate().unwrap();
    let to_raw = grant(&owner, raw_key.did(), &narrow);
    let raw_did = raw_key.did();
    let (raw, _events, thread) = Network::start(NetConfig {
        listen: Vec::new(),
        client: true,
        ..NetConfig::loopback(raw_key)
    })
    .unwrap();
    let peer = within("dial", raw.dial(access.listen_addrs()[0].clone()))
        .await
        .unwrap();
    let stream = within("open stream", raw.open_stream(peer)).await.unwrap();
    let outbox = Outbox::new(16);
    let writer = outbox.clone();
    raw.spawn(async move {
        let _ = write_outbox(stream, writer).await;
    });
    let publish = |seq: u64, topic: &str| {
        Frame::Publish(Publish {
            realm: 0,
            topic: weft::Name::new(topic).unwrap(),
            seq,
            payload: bytes::Bytes::from_static(b"{}"),
            chain: None,
        })
    };
    let acme = weft::RealmName::new("io.acme").unwrap();
    let hello = Frame::Hello(Hello {
        realms: vec![realm_digest(
            &raw_did,
            &access.did(),
            &acme,
            Some(&owner.did()),
        )],
        client: true,
        run: 1,
    });
    // The join goes right behind the hello: the raw client knows the realm it shares.
    let join = Frame::Join(Join {
        realms: vec![RealmJoin {
            index: 0,
            realm: acme,
            owner: Some(owner.did()),
            chains: vec![WireChain {
                leaf: to_raw.as_str().to_owned(),
                proofs: Vec::new(),
            }],
        }],
    });
    for frame in [
        hello,
        join,
        publish(1, "billing.refund"),
        publish(2, "orders.shipped"),
    ] {
        let bytes = weft_net::framed::encode(&frame, weft_wire::DEFAULT_MAX_FRAME).unwrap();
        assert!(outbox.push(&bytes).queued);
    }
    // The access node's own publication comes after the raw client's in its sequence: had the
    // refused one been relayed, the reader would see it before these.
    let event = next_event(&mut everything).await;
    assert_eq!(event.topic.as_str(), "orders.shipped");
    hub.publish("zz.end", &json!(0)).await.unwrap();
    let event = next_event(&mut everything).await;
    assert_eq!(
        event.topic.as_str(),
        "zz.end",
        "billing.refund was not relayed"
    );
    assert!(hub.stats().await.denied >= 1);

    raw.shutdown().await;
    thread.join();
    shutdown(&[reader, access]).await;
}

/// In an owned realm, a client's authority travels as a delegation to its access node: an
/// access node that may only join the realm publishes, subscribes and calls for its client
/// under the client's delegation, and the member on the other side checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_node_acts_for_its_client_under_the_clients_delegation() {
    weft_integration_tests::logs();
    let owner = weft::Keypair::generate().unwrap();
    let realm = |b: weft::NodeBuilder| b.realm("io.acme", owner.did());
    let join = [("weft://io.acme", "realm/join")];
    // The access node may join, and nothing more.
    let access_key = weft::Keypair::generate().unwrap();
    let to_access = grant(&owner, access_key.did(), &join);
    let access = realm(Node::builder().key(access_key))
        .ucan("io.acme", weft::Chain::new(to_access, []))
        .start()
        .await
        .unwrap();
    let addr = access.listen_addrs()[0].to_string();
    // A member that may do anything.
    let member = realm(Node::builder().key(owner.clone()).bootstrap(addr.clone()))
        .start()
        .await
        .unwrap();
    let acme = member.realm("io.acme").unwrap();
    let hub = access.realm("io.acme").unwrap();
    within("the member admitted", hub.wait_for_members(1))
        .await
        .unwrap();
    let mut orders = acme.subscribe("orders.**").await.unwrap();
    let _get = acme
        .advertise(
            "orders.get",
            |_ctx, _args| async move { Ok(json!("order 7")) },
        )
        .await
        .unwrap();
    within(
        "the member's subscription",
        hub.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();

    // The access node cannot act on its own grant.
    assert!(hub.publish("orders.placed", &json!(0)).await.is_err());

    let client_key = weft::Keypair::generate().unwrap();
    let claims = [
        ("weft://io.acme", "realm/join"),
        ("weft://io.acme/orders.*", "msg/publish"),
        ("weft://io.acme/alerts.*", "msg/subscribe"),
        ("weft://io.acme/orders.get", "rpc/call"),
    ];
    let to_client = grant(&owner, client_key.did(), &claims);
    let client = realm(Node::builder().key(client_key).connect(addr.clone()))
        .ucan("io.acme", weft::Chain::new(to_client, []))
        .start()
        .await
        .unwrap();
    let mine = client.realm("io.acme").unwrap();
    within("client admitted", mine.wait_for_members(1))
        .await
        .unwrap();

    // Its subscription reaches the member under the delegation: the access node's own
    // chains do not allow it.
    let mut alerts = mine.subscribe("alerts.*").await.unwrap();
    within(
        "the client's subscription at the member",
        acme.wait_for_subscriber("alerts.fire"),
    )
    .await
    .unwrap();
    acme.publish("alerts.fire", &json!(1)).await.unwrap();
    let event = next_event(&mut alerts).await;
    assert_eq!(event.topic.as_str(), "alerts.fire");

    // Its publication reaches the member, which checks the delegation.
    mine.publish("orders.placed", &json!(2)).await.unwrap();
    let event = next_event(&mut orders).await;
    assert_eq!(event.topic.as_str(), "orders.placed");
    assert_eq!(event.publisher, access.did(), "relayed by the access node");

    // Its call reaches the provider under the delegation too.
    let answer: serde_json::Value = within("the call", mine.call("orders.get", &json!({})))
        .await
        .unwrap();
    assert_eq!(answer, json!("order 7"));
    assert_eq!(acme.stats().await.denied, 0, "nothing the member refused");

    shutdown(&[client, member, access]).await;
}

/// A client that hands its access node a delegation that is not its own (another principal's
/// token to the access node) gains nothing by it: the access node refuses the delegation, relays
/// under its own chains, which may only join, and the member refuses the publication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_a_client_did_not_issue_is_not_acted_under() {
    use weft_net::outbox::{Outbox, write_outbox};
    use weft_net::{NetConfig, Network};
    use weft_wire::{Delegation, Frame, Hello, Join, Publish, RealmJoin, WireChain, realm_digest};

    let owner = weft::Keypair::generate().unwrap();
    let realm = |b: weft::NodeBuilder| b.realm("io.acme", owner.did());
    let access_key = weft::Keypair::generate().unwrap();
    let access_did = access_key.did();
    let to_access = grant(&owner, access_did, &[("weft://io.acme", "realm/join")]);
    let access = realm(Node::builder().key(access_key))
        .ucan("io.acme", weft::Chain::new(to_access, []))
        .start()
        .await
        .unwrap();
    let member = realm(
        Node::builder()
            .key(owner.clone())
            .bootstrap(access.listen_addrs()[0].to_string()),
    )
    .start()
    .await
    .unwrap();
    let acme = member.realm("io.acme").unwrap();
    let hub = access.realm("io.acme").unwrap();
    let mut everything = acme.subscribe("**").await.unwrap();
    within(
        "the member's subscription",
        hub.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();

    // Someone else's grant, delegated by them to the access node: genuine, but not the client's.
    let other = weft::Keypair::generate().unwrap();
    let to_other = grant(&owner, other.did(), &[("weft://io.acme/**", "msg/publish")]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let theirs = weft::Builder::new(&other, access_did)
        .claim("weft://io.acme/**", "msg/publish")
        .expires_at(now + 600)
        .proof(*to_other.cid())
        .build()
        .unwrap();
    let handed_on = WireChain {
        leaf: theirs.as_str().to_owned(),
        proofs: vec![to_other.as_str().to_owned()],
    };

    // A raw client that may publish orders.* itself.
    let raw_key = weft::Keypair::generate().unwrap();
    let to_raw = grant(
        &owner,
        raw_key.did(),
        &[
            ("weft://io.acme", "realm/join"),
            ("weft://io.acme/orders.*", "msg/publish"),
        ],
    );
    let raw_did = raw_key.did();
    let (raw, _events, thread) = Network::start(NetConfig {
        listen: Vec::new(),
        client: true,
        ..NetConfig::loopback(raw_key)
    })
    .unwrap();
    let peer = within("dial", raw.dial(access.listen_addrs()[0].clone()))
        .await
        .unwrap();
    let stream = within("open stream", raw.open_stream(peer)).await.unwrap();
    let outbox = Outbox::new(16);
    let writer = outbox.clone();
    raw.spawn(async move {
        let _ = write_outbox(stream, writer).await;
    });
    let name = weft::RealmName::new("io.acme").unwrap();
    let frames = [
        Frame::Hello(Hello {
            realms: vec![realm_digest(
                &raw_did,
                &access_did,
                &name,
                Some(&owner.did()),
            )],
            client: true,
            run: 1,
        }),
        Frame::Join(Join {
            realms: vec![RealmJoin {
                index: 0,
                realm: name,
                owner: Some(owner.did()),
                chains: vec![WireChain {
                    leaf: to_raw.as_str().to_owned(),
                    proofs: Vec::new(),
                }],
            }],
        }),
        Frame::Delegate(Delegation {
            realm: 0,
            chains: vec![handed_on],
        }),
        Frame::Publish(Publish {
            realm: 0,
            topic: weft::Name::new("orders.placed").unwrap(),
            seq: 1,
            payload: bytes::Bytes::from_static(b"{}"),
            chain: None,
        }),
    ];
    for frame in frames {
        let bytes = weft_net::framed::encode(&frame, weft_wire::DEFAULT_MAX_FRAME).unwrap();
        assert!(outbox.push(&bytes).queued);
    }
    // The relayed publication went under the access node's own chains, and was refused.
    within("the member's refusal", async {
        while acme.stats().await.denied == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(everything.try_next().is_none(), "nothing delivered");

    raw.shutdown().await;
    thread.join();
    shutdown(&[member, access]).await;
}
