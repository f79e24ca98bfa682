//! Forwarded publications from a hostile member: what a forwarder cannot do to a publisher's
//! signed batch, checked by the node that takes it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use serde_json::{Value, json};
use weft::{Builder, Did, Keypair, Node, RealmName};
use weft_integration_tests::{RawPeer, next_event, shutdown, within};
use weft_wire::{ForwardBatch, ForwardItem, Frame, WireChain, forward_realm_id, seal};

const REALM: &str = "io.acme";

/// The owner's grant to `to` of `ability` on `resource`, as sent on the wire.
fn grant(owner: &Keypair, to: Did, resource: &str, ability: &str) -> WireChain {
    let token = Builder::new(owner, to)
        .claim(resource, ability)
        .expires_at(4_000_000_000)
        .build()
        .unwrap();
    WireChain {
        leaf: token.as_str().to_owned(),
        proofs: Vec::new(),
    }
}

/// A node of `REALM`, keyed as its owner, and the owner's key.
async fn owned_node() -> (Keypair, Node) {
    let owner = Keypair::generate().unwrap();
    let node = Node::builder()
        .key(owner.clone())
        .realm(REALM, owner.did())
        .start()
        .await
        .unwrap();
    (owner, node)
}

/// The owner's grants to `publisher` to join and to publish to `orders.*`.
fn may_publish(owner: &Keypair, publisher: &Keypair) -> Vec<WireChain> {
    vec![
        grant(owner, publisher.did(), "weft://io.acme", "realm/join"),
        grant(
            owner,
            publisher.did(),
            "weft://io.acme/orders.*",
            "msg/publish",
        ),
    ]
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The owner's grants to `key` to join and to subscribe to `resource`.
fn may_subscribe(owner: &Keypair, key: &Keypair, resource: &str) -> Vec<WireChain> {
    vec![
        grant(owner, key.did(), "weft://io.acme", "realm/join"),
        grant(owner, key.did(), resource, "msg/subscribe"),
    ]
}

/// A raw member's subscription to `pattern` (its only one, id 1).
fn subscribe(pattern: &str) -> Frame {
    Frame::Interest(weft_wire::Interest::Subscribe {
        realm: 0,
        id: 1,
        pattern: weft::Pattern::new(pattern).unwrap(),
        chain: None,
    })
}

/// Reads `raw`'s frames up to the first that `wanted` picks, and returns it.
async fn next_of(raw: &mut RawPeer, wanted: fn(&Frame) -> bool) -> Frame {
    let frames = raw.read_until(wanted).await;
    frames
        .into_iter()
        .find(wanted)
        .expect("the node's stream ended first")
}

/// A batch of one publication to `orders.placed`, numbered `seq` in run 1.
fn batch(
    realm: [u8; 32],
    publisher: &Keypair,
    chains: Vec<WireChain>,
    seq: u64,
    n: i64,
) -> ForwardBatch {
    ForwardBatch {
        realm,
        publisher: publisher.did(),
        signed_at: now(),
        run: 1,
        chains,
        chain: None,
        topic: weft::Name::new("orders.placed").unwrap(),
        items: vec![ForwardItem {
            seq,
            payload: Bytes::from(serde_json::to_vec(&json!({ "n": n })).unwrap()),
        }],
    }
}

/// A member passes on batches of publishers it is not: the node delivers those signed by a
/// publisher allowed in the realm and to publish to the topic, once each, in whatever order
/// they come; it refuses an altered one, one of a publisher without `msg/publish` on the topic
/// or without `realm/join`, one signed for another realm, a stale one and an empty one. A
/// replay, re-signed or not, is not delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_can_pass_on_a_publishers_batch_but_not_forge_alter_or_replay_it() {
    let (owner, node) = owned_node().await;
    let mut orders = node
        .realm(REALM)
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();

    let forwarder = Keypair::generate().unwrap();
    let join = grant(&owner, forwarder.did(), "weft://io.acme", "realm/join");
    let raw = RawPeer::join_as(&node, REALM, Some(owner.did()), vec![join], forwarder).await;

    let realm = forward_realm_id(&RealmName::new(REALM).unwrap(), Some(&owner.did()));
    let publisher = Keypair::generate().unwrap();
    let may = may_publish(&owner, &publisher);
    let send = |forward: weft_wire::Forward| {
        let raw = &raw;
        async move { raw.send(&Frame::Forward(forward)).await }
    };

    // The publisher's batch, as signed.
    let good = seal(
        &publisher,
        &batch(realm, &publisher, may.clone(), 10, 1),
        0,
        0,
    )
    .unwrap();
    send(good.clone()).await;
    let event = next_event(&mut orders).await;
    assert_eq!(event.publisher, publisher.did());
    assert_eq!(event.json::<Value>().unwrap(), json!({ "n": 1 }));

    // The same batch again, and the same publication signed again (a new batch, the old number).
    send(good.clone()).await;
    let mut again = batch(realm, &publisher, may.clone(), 10, 1);
    again.signed_at -= 5;
    send(seal(&publisher, &again, 0, 0).unwrap()).await;

    // Its payload changed under the publisher's signature.
    let mut altered = good.clone();
    let changed = batch(realm, &publisher, may.clone(), 11, 666);
    altered.batch = Bytes::from(postcard::to_allocvec(&changed).unwrap());
    send(altered).await;

    // A publisher allowed to publish elsewhere only, and one that may publish but not join.
    let narrow_key = Keypair::generate().unwrap();
    let narrow = vec![
        grant(&owner, narrow_key.did(), "weft://io.acme", "realm/join"),
        grant(
            &owner,
            narrow_key.did(),
            "weft://io.acme/audit.*",
            "msg/publish",
        ),
    ];
    send(
        seal(
            &narrow_key,
            &batch(realm, &narrow_key, narrow, 1, 666),
            0,
            0,
        )
        .unwrap(),
    )
    .await;
    let outsider = Keypair::generate().unwrap();
    let no_join = vec![grant(
        &owner,
        outsider.did(),
        "weft://io.acme/orders.*",
        "msg/publish",
    )];
    send(seal(&outsider, &batch(realm, &outsider, no_join, 1, 666), 0, 0).unwrap()).await;

    // Signed for the open realm of the same name; signed two minutes ago; with nothing in it
    // (which would otherwise need no authority at all).
    let open = forward_realm_id(&RealmName::new(REALM).unwrap(), None);
    send(
        seal(
            &publisher,
            &batch(open, &publisher, may.clone(), 12, 666),
            0,
            0,
        )
        .unwrap(),
    )
    .await;
    let mut stale = batch(realm, &publisher, may.clone(), 13, 666);
    stale.signed_at -= 120;
    send(seal(&publisher, &stale, 0, 0).unwrap()).await;
    let mut empty = batch(realm, &publisher, may.clone(), 14, 666);
    empty.items.clear();
    send(seal(&publisher, &empty, 0, 0).unwrap()).await;

    // Two batches passed on out of order, as two paths would: both are delivered, once.
    let later = seal(
        &publisher,
        &batch(realm, &publisher, may.clone(), 21, 3),
        0,
        0,
    )
    .unwrap();
    let earlier = seal(
        &publisher,
        &batch(realm, &publisher, may.clone(), 20, 2),
        0,
        0,
    )
    .unwrap();
    send(later.clone()).await;
    send(earlier).await;
    let mut late = Vec::new();
    for _ in 0..2 {
        late.push(next_event(&mut orders).await.json::<Value>().unwrap()["n"].clone());
    }
    assert_eq!(
        late,
        vec![json!(3), json!(2)],
        "nothing in between was delivered"
    );

    // A new run of the publisher (it restarted): its numbering starts again.
    let mut restarted = batch(realm, &publisher, may.clone(), 1, 4);
    restarted.run = 2;
    send(seal(&publisher, &restarted, 0, 0).unwrap()).await;
    let event = next_event(&mut orders).await;
    assert_eq!(event.json::<Value>().unwrap(), json!({ "n": 4 }));

    // A gateway's batch, published under a client's chain delegated to it (alone, as a
    // `Publish` frame's own chain is); its own chains only let it join.
    let (gateway, client) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let to_client = Builder::new(&owner, client.did())
        .claim("weft://io.acme/orders.*", "msg/publish")
        .expires_at(4_000_000_000)
        .build()
        .unwrap();
    let to_gateway = Builder::new(&client, gateway.did())
        .claim("weft://io.acme/orders.*", "msg/publish")
        .proof(*to_client.cid())
        .expires_at(4_000_000_000)
        .build()
        .unwrap();
    let joins = vec![grant(&owner, gateway.did(), "weft://io.acme", "realm/join")];
    let mut own_only = batch(realm, &gateway, joins.clone(), 1, 666);
    own_only.signed_at -= 1;
    send(seal(&gateway, &own_only, 0, 0).unwrap()).await;
    let mut delegated = batch(realm, &gateway, joins, 1, 5);
    delegated.chain = Some(WireChain {
        leaf: to_gateway.as_str().to_owned(),
        proofs: vec![to_client.as_str().to_owned()],
    });
    send(seal(&gateway, &delegated, 0, 0).unwrap()).await;
    let event = next_event(&mut orders).await;
    assert_eq!(event.publisher, gateway.did());
    assert_eq!(event.json::<Value>().unwrap(), json!({ "n": 5 }));

    let stats = node.realm(REALM).unwrap().stats().await;
    assert_eq!(stats.forward_refused, 7, "{stats:?}");
    assert_eq!(stats.duplicates, 1, "the re-signed publication: {stats:?}");
    assert_eq!(stats.delivered, 5, "{stats:?}");

    raw.close().await;
    within("the node stops", shutdown(&[node])).await;
}

/// A member passes a batch on only to members that may read its topic: one allowed to
/// subscribe to it gets the batch as a relay though it subscribes to nothing; one allowed to
/// subscribe elsewhere only never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_passed_on_only_to_members_that_may_read_its_topic() {
    let (owner, node) = owned_node().await;
    let join = |key: &Keypair, resource: &str| may_subscribe(&owner, key, resource);
    let (reader_key, other_key) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let mut reader = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&reader_key, "weft://io.acme/orders.*"),
        reader_key,
    )
    .await;
    let mut other = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&other_key, "weft://io.acme/audit.*"),
        other_key,
    )
    .await;
    // The other member subscribes to what it may: the node's publications there come to it.
    other.send(&subscribe("audit.*")).await;
    within(
        "the node routes to the other member",
        node.realm(REALM).unwrap().wait_for_subscriber("audit.log"),
    )
    .await
    .unwrap();

    let forwarder_key = Keypair::generate().unwrap();
    let forwarder = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&forwarder_key, "weft://io.acme/orders.*"),
        forwarder_key,
    )
    .await;
    let publisher = Keypair::generate().unwrap();
    let may = may_publish(&owner, &publisher);
    let realm = forward_realm_id(&RealmName::new(REALM).unwrap(), Some(&owner.did()));
    let sealed = seal(&publisher, &batch(realm, &publisher, may, 1, 1), 0, 3).unwrap();
    forwarder.send(&Frame::Forward(sealed.clone())).await;

    let Frame::Forward(passed) = next_of(&mut reader, |f| matches!(f, Frame::Forward(_))).await
    else {
        unreachable!("picked a batch")
    };
    assert_eq!(
        (passed.batch, passed.hops),
        (sealed.batch, 2),
        "as signed, one hop less"
    );

    // Behind the batch on the other member's stream, had it been sent: the node's own
    // publication to what that member subscribes to.
    node.realm(REALM)
        .unwrap()
        .publish("audit.log", &json!({"x": 1}))
        .await
        .unwrap();
    let frames = other.read_until(|f| matches!(f, Frame::Publish(_))).await;
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Forward(_))),
        "{frames:?}"
    );
    for raw in [reader, other, forwarder] {
        raw.close().await;
    }
    within("the node stops", shutdown(&[node])).await;
}

/// The ids of the next offer (`Frame::Have`) the node sends `raw`.
/// Waits until the realm routes to `count` subscriptions of its members.
async fn remote_subscriptions(realm: &weft::RealmHandle, count: u64) {
    within("the members' subscriptions", async {
        while realm.stats().await.remote_subscriptions < count {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn next_offer(raw: &mut RawPeer) -> Vec<weft_wire::ForwardId> {
    match next_of(raw, |f| matches!(f, Frame::Have(_))).await {
        Frame::Have(offer) => offer.ids,
        _ => unreachable!("picked an offer"),
    }
}

/// A member that missed a batch (it joined after the batch was passed on) is offered its id at
/// the node's next round, and sent it, once, with no hops left, when it asks. A member that may
/// not read the topic is offered nothing, nor sent it when it asks, and the member the batch
/// came from is not offered it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_a_batch_is_offered_it_and_sent_it_once() {
    let (owner, node) = owned_node().await;
    let realm_handle = node.realm(REALM).unwrap();
    let mut orders = realm_handle.subscribe("orders.*").await.unwrap();
    let join = |key: &Keypair, resource: &str| may_subscribe(&owner, key, resource);
    let forwarder_key = Keypair::generate().unwrap();
    let mut forwarder = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&forwarder_key, "weft://io.acme/orders.*"),
        forwarder_key,
    )
    .await;
    let publisher = Keypair::generate().unwrap();
    let realm = forward_realm_id(&RealmName::new(REALM).unwrap(), Some(&owner.did()));
    let may = may_publish(&owner, &publisher);
    let sealed = seal(&publisher, &batch(realm, &publisher, may, 1, 1), 0, 3).unwrap();
    forwarder.send(&Frame::Forward(sealed.clone())).await;
    next_event(&mut orders).await;

    let other_key = Keypair::generate().unwrap();
    let mut other = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&other_key, "weft://io.acme/audit.*"),
        other_key,
    )
    .await;
    let late_key = Keypair::generate().unwrap();
    let mut late = RawPeer::join_as(
        &node,
        REALM,
        Some(owner.did()),
        join(&late_key, "weft://io.acme/orders.*"),
        late_key,
    )
    .await;
    let id = weft_wire::forward_id(&sealed);
    assert_eq!(next_offer(&mut late).await, vec![id]);

    let want = Frame::Want(weft_wire::BatchIds {
        realm: 0,
        ids: vec![id],
    });
    late.send(&want).await;
    let Frame::Forward(sent) = next_of(&mut late, |f| matches!(f, Frame::Forward(_))).await else {
        unreachable!("picked a batch")
    };
    assert_eq!((sent.batch, sent.hops), (sealed.batch.clone(), 0));

    // Asked again, it is not sent again: the node's next publication to the member comes with
    // no batch before it. Asked by a member that may not read its topic, it is not sent at all.
    late.send(&want).await;
    other.send(&want).await;
    late.send(&subscribe("orders.*")).await;
    forwarder.send(&subscribe("orders.*")).await;
    other.send(&subscribe("audit.*")).await;
    // Each of the three members' subscriptions, not merely one per topic (this node's own
    // `orders.*` is one already): a publication made before a member's arrives misses it.
    remote_subscriptions(&realm_handle, 3).await;
    // The round that offered the late member the batch came after the other joined.
    realm_handle
        .publish("orders.placed", &json!({"n": 2}))
        .await
        .unwrap();
    realm_handle
        .publish("audit.log", &json!({"n": 3}))
        .await
        .unwrap();
    let batch_or_offer = |frames: &[Frame]| {
        frames
            .iter()
            .any(|f| matches!(f, Frame::Forward(_) | Frame::Have(_)))
    };
    for (raw, what) in [
        (&mut late, "sent twice"),
        (&mut forwarder, "offered back to its forwarder"),
        (
            &mut other,
            "offered or sent to a member that may not read it",
        ),
    ] {
        let frames = raw.read_until(|f| matches!(f, Frame::Publish(_))).await;
        assert!(!batch_or_offer(&frames), "{what}: {frames:?}");
    }
    for raw in [late, other, forwarder] {
        raw.close().await;
    }
    within("the node stops", shutdown(&[node])).await;
}

/// A node offered a batch it has not taken asks the member for it and delivers it once it
/// arrives; offered it again, it asks for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_asks_for_a_batch_it_missed_and_delivers_it() {
    let (owner, node) = owned_node().await;
    let realm_handle = node.realm(REALM).unwrap();
    let mut orders = realm_handle.subscribe("orders.*").await.unwrap();
    let member_key = Keypair::generate().unwrap();
    let chains = may_subscribe(&owner, &member_key, "weft://io.acme/orders.*");
    let mut member = RawPeer::join_as(&node, REALM, Some(owner.did()), chains, member_key).await;
    let publisher = Keypair::generate().unwrap();
    let realm = forward_realm_id(&RealmName::new(REALM).unwrap(), Some(&owner.did()));
    let may = may_publish(&owner, &publisher);
    let sealed = seal(&publisher, &batch(realm, &publisher, may, 1, 1), 0, 0).unwrap();
    let id = weft_wire::forward_id(&sealed);
    let have = Frame::Have(weft_wire::BatchIds {
        realm: 0,
        ids: vec![id],
    });
    member.send(&have).await;
    let Frame::Want(want) = next_of(&mut member, |f| matches!(f, Frame::Want(_))).await else {
        unreachable!("picked a want")
    };
    assert_eq!(want.ids, vec![id]);
    member.send(&Frame::Forward(sealed)).await;
    let event = next_event(&mut orders).await;
    assert_eq!(event.json::<Value>().unwrap(), json!({ "n": 1 }));
    assert_eq!(realm_handle.stats().await.forward_repaired, 1);

    // Offered again: taken already, so not asked for before the node's next publication.
    member.send(&have).await;
    member.send(&subscribe("orders.*")).await;
    // The member's, not this node's own `orders.*`, which a subscriber of the topic is already.
    remote_subscriptions(&realm_handle, 1).await;
    realm_handle
        .publish("orders.placed", &json!({"n": 2}))
        .await
        .unwrap();
    let frames = member.read_until(|f| matches!(f, Frame::Publish(_))).await;
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Want(_))),
        "{frames:?}"
    );
    member.close().await;
    within("the node stops", shutdown(&[node])).await;
}
