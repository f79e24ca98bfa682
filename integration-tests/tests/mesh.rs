//! Multi-node pub/sub over real QUIC on 127.0.0.1: wildcards across a five-node mesh, and realms
//! that never leak into each other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;

use serde_json::{Value, json};
use weft::{Keypair, Node};
use weft_integration_tests::{mesh, next_event, shutdown, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscriber_in_a_five_node_mesh_gets_exactly_the_matching_events() {
    let nodes = mesh(5, |b, _| b.open_realm("mesh")).await;
    let mut eu = nodes[4]
        .realm("mesh")
        .unwrap()
        .subscribe("orders.*.eu")
        .await
        .unwrap();

    // Every publisher knows of the subscription before publishing.
    for node in &nodes[..4] {
        within(
            "subscriber known",
            node.realm("mesh")
                .unwrap()
                .wait_for_subscriber("orders.placed.eu"),
        )
        .await
        .unwrap();
    }
    for (i, node) in nodes[..4].iter().enumerate() {
        let realm = node.realm("mesh").unwrap();
        for topic in [
            "orders.placed.eu",
            "orders.placed.us",
            "orders.eu",
            "billing.paid.eu",
            "orders.shipped.eu",
        ] {
            realm
                .publish(topic, &json!({"node": i, "topic": topic}))
                .await
                .unwrap();
        }
        // Per-publisher order: once this arrives, everything this node published before it has.
        realm
            .publish(
                "orders.done.eu",
                &json!({"node": i, "topic": "orders.done.eu"}),
            )
            .await
            .unwrap();
    }

    let mut received = BTreeSet::new();
    let mut done = 0;
    while done < 4 {
        let event = next_event(&mut eu).await;
        let body: Value = event.json().unwrap();
        assert_eq!(body["topic"], event.topic.as_str());
        assert_eq!(
            event.publisher,
            nodes[body["node"].as_u64().unwrap() as usize].did()
        );
        if event.topic.as_str() == "orders.done.eu" {
            done += 1;
        }
        assert!(
            received.insert((body["node"].as_u64().unwrap(), event.topic.to_string())),
            "duplicate {body}"
        );
    }
    let expected: BTreeSet<(u64, String)> = (0..4)
        .flat_map(|i| {
            ["orders.placed.eu", "orders.shipped.eu", "orders.done.eu"].map(|t| (i, t.to_owned()))
        })
        .collect();
    assert_eq!(received, expected);
    assert_eq!(eu.dropped(), 0);
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_realms_on_the_same_nodes_never_leak_into_each_other() {
    let nodes = mesh(3, |b, _| b.open_realm("alpha").open_realm("beta")).await;
    let mut alpha = nodes[2]
        .realm("alpha")
        .unwrap()
        .subscribe("**")
        .await
        .unwrap();
    let mut beta = nodes[2]
        .realm("beta")
        .unwrap()
        .subscribe("**")
        .await
        .unwrap();
    let (pa, pb) = (
        nodes[0].realm("alpha").unwrap(),
        nodes[0].realm("beta").unwrap(),
    );
    within("alpha subscriber", pa.wait_for_subscriber("x"))
        .await
        .unwrap();
    within("beta subscriber", pb.wait_for_subscriber("x"))
        .await
        .unwrap();

    for i in 0..10 {
        pa.publish("x", &json!({"realm": "alpha", "i": i}))
            .await
            .unwrap();
        pb.publish("x", &json!({"realm": "beta", "i": i}))
            .await
            .unwrap();
    }
    for i in 0..10 {
        assert_eq!(
            next_event(&mut alpha).await.json::<Value>().unwrap(),
            json!({"realm": "alpha", "i": i})
        );
        assert_eq!(
            next_event(&mut beta).await.json::<Value>().unwrap(),
            json!({"realm": "beta", "i": i})
        );
    }
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_realm_name_with_another_owner_is_another_realm() {
    // Each node owns its own "io.acme": the owner needs no token in its realm.
    let (k1, k2) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let a = Node::builder()
        .key(k1.clone())
        .realm("io.acme", k1.did())
        .open_realm("shared")
        .start()
        .await
        .unwrap();
    let b = Node::builder()
        .key(k2.clone())
        .bootstrap(a.listen_addrs()[0].to_string())
        .realm("io.acme", k2.did())
        .open_realm("shared")
        .start()
        .await
        .unwrap();
    let mut acme_on_a = a.realm("io.acme").unwrap().subscribe("**").await.unwrap();
    let mut shared_on_a = a.realm("shared").unwrap().subscribe("**").await.unwrap();
    // The shared realm proves the two nodes are connected and greeted each other.
    within(
        "shared subscriber",
        b.realm("shared").unwrap().wait_for_subscriber("t"),
    )
    .await
    .unwrap();

    b.realm("io.acme")
        .unwrap()
        .publish("t", &json!("squatter"))
        .await
        .unwrap();
    b.realm("shared")
        .unwrap()
        .publish("t", &json!("after"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut shared_on_a).await.json::<Value>().unwrap(),
        json!("after")
    );
    assert_eq!(
        b.realm("io.acme").unwrap().stats().await.members,
        0,
        "not admitted to another owner's realm"
    );
    assert_eq!(
        a.realm("io.acme").unwrap().stats().await.members,
        0,
        "not admitted to another owner's realm"
    );
    assert!(
        acme_on_a.try_next().is_none(),
        "nothing crossed from the other owner's realm"
    );
    shutdown(&[a, b]).await;
}

/// A bootstrap node that hosts none of a realm still serves the DHT: two members of `prod`
/// that only know a node of `dev` find each other through it. It keeps no session with them,
/// and its connections to them close once Kademlia no longer uses them, while theirs to each
/// other, which carry a session, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_find_each_other_through_a_node_of_another_realm() {
    let idle = std::time::Duration::from_secs(1);
    let hub = Node::builder()
        .idle_timeout(idle)
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let at = hub.listen_addrs()[0].to_string();
    let member = || {
        Node::builder()
            .idle_timeout(idle)
            .bootstrap(at.clone())
            .open_realm("prod")
            .start()
    };
    let (b, c) = (member().await.unwrap(), member().await.unwrap());
    within(
        "b and c find each other",
        b.realm("prod").unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    within("the hub's connections close once idle", async {
        while hub.dht_stats().await.connected_peers > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(hub.peers().await.is_empty(), "no session with either");
    tokio::time::sleep(2 * idle).await;
    assert_eq!(
        b.realm("prod").unwrap().stats().await.members,
        1,
        "b and c stay"
    );
    shutdown(&[b, c, hub]).await;
}

/// The DHT names a procedure's providers: one lookup from another member finds the node that
/// advertised it, and a name nobody provides finds no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dht_lookup_names_the_providers_of_a_procedure() {
    let nodes = mesh(3, |b, _| b.open_realm("mesh")).await;
    let provider = nodes[2].realm("mesh").unwrap();
    let _registration = provider
        .advertise("orders.get", |_, args| async move { Ok(args) })
        .await
        .unwrap();
    let found = within("a lookup that finds it", async {
        loop {
            let found = nodes[0].dht_lookup("mesh", "orders.get").await.unwrap();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let dids: Vec<_> = found.iter().map(|p| p.did).collect();
    assert_eq!(dids, vec![nodes[2].did()]);
    let listening = nodes[2].listen_addrs()[0].to_string();
    let listening = listening.split("/p2p/").next().unwrap();
    assert!(
        found[0]
            .addresses
            .iter()
            .any(|a| a.to_string().starts_with(listening)),
        "{found:?}"
    );
    let nobody = nodes[0].dht_lookup("mesh", "orders.cancel").await.unwrap();
    assert!(nobody.is_empty());
    assert!(nodes[0].dht_lookup("nowhere", "orders.get").await.is_err());

    // A node outside the realm asks a member to look up for it, and for its DHT's figures.
    let outsider = Node::builder().start().await.unwrap();
    let member = nodes[1].listen_addrs()[0].to_string();
    let asked = outsider
        .ask_dht_lookup(&member, "mesh", "orders.get")
        .await
        .unwrap();
    let dids: Vec<_> = asked.iter().map(|p| p.did).collect();
    assert_eq!(dids, vec![nodes[2].did()]);
    assert!(!asked[0].addresses.is_empty(), "{asked:?}");
    let figures = outsider.ask_dht_stats(&member).await.unwrap();
    assert!(figures.known_nodes >= 2, "{figures:?}");
    assert!(figures.connected_peers >= 2, "{figures:?}");
    assert!(
        outsider
            .ask_dht_lookup(&member, "mesh", "orders.cancel")
            .await
            .unwrap()
            .is_empty()
    );
    outsider.shutdown().await;
    shutdown(&nodes).await;
}

/// The DIDs of the peers `node` holds a session with.
async fn sessions(node: &Node) -> BTreeSet<weft::Did> {
    node.peers().await.into_iter().map(|p| p.did).collect()
}

/// Which side of a topic's DHT records to look in.
#[derive(Clone, Copy)]
enum Side {
    Publishers,
    Subscribers,
}

/// Returns once `node`'s lookup of `topic`'s buckets in `realm` names `who` on `side`.
async fn announced(node: &Node, realm: &str, topic: &str, who: weft::Did, side: Side) {
    loop {
        let found = node.dht_topic(realm, topic).await.unwrap();
        let named = match side {
            Side::Publishers => found.publishers,
            Side::Subscribers => found.subscribers,
        };
        if named.contains(&who) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// With no full mesh (`mesh_members = 0`: each node holds a session with its bootstrap node
/// only), a publisher and a subscriber that were never connected find each other through the
/// DHT, whichever comes first, and a caller finds a provider; none of them connects to the
/// others, and connections Kademlia opens for its queries hold no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_full_mesh_publishers_subscribers_and_providers_meet_through_the_dht() {
    let mut limits = weft::Limits::default();
    limits.mesh_members = 0;
    let nodes = mesh(6, |b, _| b.limits(limits.clone()).open_realm("big")).await;
    let [hub, publisher, subscriber, early, late, provider] = &nodes[..] else {
        unreachable!()
    };
    let realm = |node: &Node| node.realm("big").unwrap();
    for node in &nodes[1..] {
        within("the hub admits each", realm(node).wait_for_members(1))
            .await
            .unwrap();
    }

    // The subscriber first: the publisher's lookups find it.
    let mut orders = realm(subscriber).subscribe("orders.*").await.unwrap();
    within(
        "the publisher finds the subscriber",
        realm(publisher).wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    realm(publisher)
        .publish("orders.placed", &json!({"n": 1}))
        .await
        .unwrap();
    let event = next_event(&mut orders).await;
    assert_eq!(
        (event.topic.as_str(), event.publisher),
        ("orders.placed", publisher.did())
    );

    // The publisher first: the subscriber's lookup finds it once its record is in the DHT.
    realm(early)
        .publish("metrics.cpu", &json!({"n": 0}))
        .await
        .unwrap();
    within(
        "the early publisher's record is found",
        announced(hub, "big", "metrics.cpu", early.did(), Side::Publishers),
    )
    .await;
    let mut metrics = realm(late).subscribe("metrics.*").await.unwrap();
    // The early publisher looked for subscribers when it first published, before this one
    // came: only the subscriber's lookup connects them.
    within(
        "the late subscriber reaches the early publisher",
        realm(early).wait_for_subscriber("metrics.cpu"),
    )
    .await
    .unwrap();
    realm(early)
        .publish("metrics.cpu", &json!({"n": 1}))
        .await
        .unwrap();
    let event = next_event(&mut metrics).await;
    assert_eq!(event.publisher, early.did());

    // A call finds its provider with one lookup.
    let _add = realm(provider)
        .advertise("calc.add", |_, args| async move {
            Ok(json!(args["a"].as_i64().unwrap_or(0) + 1))
        })
        .await
        .unwrap();
    let answer = within(
        "the call",
        realm(publisher).call("calc.add", &json!({"a": 41})),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!(42));

    let expected = [
        (publisher, vec![hub, subscriber, provider]),
        (subscriber, vec![hub, publisher]),
        (early, vec![hub, late]),
        (late, vec![hub, early]),
        (provider, vec![hub, publisher]),
    ];
    for (node, peers) in expected {
        let peers: BTreeSet<weft::Did> = peers.iter().map(|p| p.did()).collect();
        assert_eq!(sessions(node).await, peers, "{}", node.did());
    }
    shutdown(&nodes).await;
}

/// Limits for a node of the budget tests: at most 6 connections (3 sessions), no membership
/// dials, and sessions idle after `idle`.
fn budget(idle: std::time::Duration) -> weft::Limits {
    let mut limits = weft::Limits::default();
    limits.max_connections = 6;
    limits.mesh_members = 0;
    limits.idle_session = idle;
    limits
}

/// Starts a node of realm `budget` bootstrapping from `hub`, with `mesh_members = 0`.
async fn spoke(hub: &Node) -> Node {
    let mut limits = weft::Limits::default();
    limits.mesh_members = 0;
    Node::builder()
        .bootstrap(hub.listen_addrs()[0].to_string())
        .limits(limits)
        .open_realm("budget")
        .start()
        .await
        .unwrap()
}

/// A hub with `budget(idle)` and three spokes it admitted: as many sessions as it may hold.
async fn full_hub(idle: std::time::Duration) -> (Node, Vec<Node>) {
    let hub = Node::builder()
        .limits(budget(idle))
        .open_realm("budget")
        .start()
        .await
        .unwrap();
    let mut spokes = Vec::new();
    for _ in 0..3 {
        let node = spoke(&hub).await;
        within(
            "the hub admits it",
            node.realm("budget").unwrap().wait_for_members(1),
        )
        .await
        .unwrap();
        spokes.push(node);
    }
    (hub, spokes)
}

/// A node holding as many sessions as its budget allows (three of its six connections) makes
/// room for a new one by releasing the session idle longest. The released peer stays up and
/// keeps its other sessions; the node never holds more than its six connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_releases_the_session_idle_longest_for_a_new_one() {
    // Every session is idle at once: the oldest is the one to go.
    let (hub, mut spokes) = full_hub(std::time::Duration::from_millis(1)).await;
    within("the hub greets all three", async {
        while sessions(&hub).await.len() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;

    let late = spoke(&hub).await;
    within(
        "the hub admits the newcomer",
        late.realm("budget").unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    let released = within("one spoke is released", async {
        loop {
            for node in &spokes {
                if !sessions(node).await.contains(&hub.did()) {
                    return node.did();
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    within("the hub holds the newcomer in its place", async {
        loop {
            let held = sessions(&hub).await;
            if !held.contains(&released) && held.contains(&late.did()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let held = sessions(&hub).await;
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(hub.dht_stats().await.connected_peers <= 6);
    spokes.push(late);
    spokes.push(hub);
    shutdown(&spokes).await;
}

/// With no idle session to let go, a full node refuses a new one (the newcomer is told, and does
/// not try again at once), yet the newcomer's connection still serves the DHT: through it, the
/// newcomer finds a provider elsewhere in the realm and calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_with_no_idle_session_refuses_a_new_one_which_still_reaches_the_realm() {
    let (hub, mut spokes) = full_hub(std::time::Duration::from_secs(3600)).await;
    let _add = spokes[0]
        .realm("budget")
        .unwrap()
        .advertise("calc.add", |_, args| async move {
            Ok(json!(args["a"].as_i64().unwrap_or(0) + 1))
        })
        .await
        .unwrap();

    let late = spoke(&hub).await;
    // Until its Kademlia has learnt the others through the hub, a lookup finds nobody.
    let answer = within(
        "the refused newcomer calls a provider it found through the DHT",
        async {
            loop {
                match late
                    .realm("budget")
                    .unwrap()
                    .call("calc.add", &json!({"a": 41}))
                    .await
                {
                    Err(weft::Error::Call(weft::CallError::NotFound(_))) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await
                    }
                    other => return other.unwrap(),
                }
            }
        },
    )
    .await;
    assert_eq!(answer, json!(42));
    let held = sessions(&hub).await;
    assert!(!held.contains(&late.did()), "{held:?}");
    assert_eq!(held.len(), 3);
    assert!(sessions(&late).await.contains(&spokes[0].did()));
    assert!(hub.dht_stats().await.connected_peers <= 6);
    spokes.push(late);
    spokes.push(hub);
    shutdown(&spokes).await;
}

/// A publisher whose sessions a full node refuses still reaches that node's subscriber: while
/// sessions are scarce, it also sends its publications as a signed batch to a member it holds a
/// session with, which checks it and passes it on to the members that want it. Nothing arrives
/// twice where the direct and the forwarded copy both arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_that_refuses_a_publisher_gets_its_publications_through_a_member() {
    let (hub, mut spokes) = full_hub(std::time::Duration::from_secs(3600)).await;
    let realm = |node: &Node| node.realm("budget").unwrap();
    let mut at_hub = realm(&hub).subscribe("orders.*").await.unwrap();
    let mut at_spoke = realm(&spokes[0]).subscribe("orders.*").await.unwrap();
    within(
        "the spoke routes to the hub's subscription",
        realm(&spokes[0]).wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    within("both subscribers' records are in the DHT", async {
        // A node's own lookup does not name itself.
        let subscribers = Side::Subscribers;
        announced(
            &hub,
            "budget",
            "orders.placed",
            spokes[0].did(),
            subscribers,
        )
        .await;
        announced(
            &spokes[0],
            "budget",
            "orders.placed",
            hub.did(),
            subscribers,
        )
        .await;
    })
    .await;

    // The hub refuses the newcomer's session (its three are busy for an hour); the spokes,
    // found through the realm's membership records, admit it.
    let mut limits = weft::Limits::default();
    limits.mesh_members = 3;
    let late = Node::builder()
        .bootstrap(hub.listen_addrs()[0].to_string())
        .limits(limits)
        .open_realm("budget")
        .start()
        .await
        .unwrap();
    within("the newcomer knows it was refused", async {
        while !late.forwarding() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    within(
        "the spokes admit the newcomer",
        realm(&late).wait_for_members(3),
    )
    .await
    .unwrap();
    let mut sent = 0;
    let first = within("the hub gets the refused publisher's publications", async {
        loop {
            sent += 1;
            realm(&late)
                .publish("orders.placed", &json!({ "n": sent }))
                .await
                .unwrap();
            let wait = std::time::Duration::from_secs(1);
            if let Ok(Some(event)) = tokio::time::timeout(wait, at_hub.next()).await {
                return event;
            }
        }
    })
    .await;
    assert_eq!(first.publisher, late.did());
    assert_eq!(
        first.json::<Value>().unwrap(),
        json!({ "n": 1 }),
        "the first one"
    );
    for n in sent + 1..=sent + 5 {
        realm(&late)
            .publish("orders.placed", &json!({ "n": n }))
            .await
            .unwrap();
    }
    let mut at_hub_got = vec![1];
    while at_hub_got.last() != Some(&(sent + 5)) {
        let event = next_event(&mut at_hub).await;
        at_hub_got.push(event.json::<Value>().unwrap()["n"].as_i64().unwrap());
    }
    assert_eq!(
        at_hub_got,
        (1..=sent + 5).collect::<Vec<_>>(),
        "once each, in order"
    );
    let mut at_spoke_got = Vec::new();
    while at_spoke_got.last() != Some(&(sent + 5)) {
        let event = next_event(&mut at_spoke).await;
        at_spoke_got.push(event.json::<Value>().unwrap()["n"].as_i64().unwrap());
    }
    assert_eq!(
        at_spoke_got,
        (1..=sent + 5).collect::<Vec<_>>(),
        "once each, in order"
    );

    assert!(
        !sessions(&hub).await.contains(&late.did()),
        "never a session"
    );
    assert!(realm(&late).stats().await.forwarded >= 1);
    assert!(realm(&spokes[0]).stats().await.forwarded >= 1);
    assert_eq!(realm(&hub).stats().await.forward_refused, 0);
    spokes.push(late);
    spokes.push(hub);
    shutdown(&spokes).await;
}

/// Past the mesh size, a publisher's very first publication to a bucket reaches a subscriber
/// it has never met: its sending to peers waits for the lookup that finds the subscriber. So
/// does a one-shot client's, published through an access node that never published there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_publication_to_a_bucket_waits_for_the_lookup_that_finds_its_subscribers() {
    let mut limits = weft::Limits::default();
    limits.mesh_members = 0;
    let nodes = mesh(4, |b, _| b.limits(limits.clone()).open_realm("big")).await;
    let [hub, subscriber, publisher, access] = &nodes[..] else {
        unreachable!()
    };
    let realm = |node: &Node| node.realm("big").unwrap();
    for node in &nodes[1..] {
        within("the hub admits each", realm(node).wait_for_members(1))
            .await
            .unwrap();
    }
    let mut orders = realm(subscriber).subscribe("orders.*").await.unwrap();
    let mut metrics = realm(subscriber).subscribe("metrics.*").await.unwrap();
    within("the subscriber's records are in the DHT", async {
        for topic in ["orders.placed", "metrics.cpu"] {
            announced(hub, "big", topic, subscriber.did(), Side::Subscribers).await;
        }
    })
    .await;

    // A node's own first publication, with nothing waited for beforehand.
    realm(publisher)
        .publish("orders.placed", &json!({"n": 1}))
        .await
        .unwrap();
    let event = next_event(&mut orders).await;
    assert_eq!(
        (event.topic.as_str(), event.publisher),
        ("orders.placed", publisher.did())
    );

    // A client's only publication, through an access node that never published to the bucket.
    let client = Node::builder()
        .connect(access.listen_addrs()[0].to_string())
        .open_realm("big")
        .start()
        .await
        .unwrap();
    within("the client is in", realm(&client).wait_for_members(1))
        .await
        .unwrap();
    realm(&client)
        .publish("metrics.cpu", &json!({"n": 2}))
        .await
        .unwrap();
    let event = next_event(&mut metrics).await;
    assert_eq!(event.json::<Value>().unwrap(), json!({"n": 2}));
    client.shutdown().await;
    shutdown(&nodes).await;
}
