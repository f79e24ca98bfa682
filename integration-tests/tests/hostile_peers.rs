//! A raw peer speaking broken frames: each is cut off, and the node keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::{Value, json};
use weft::{Keypair, Node, RealmName};
use weft_integration_tests::{next_event, shutdown, within};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{NetConfig, NetEvent, Network};
use weft_wire::{
    DEFAULT_MAX_FRAME, Decoder, Frame, Hello, Join, RealmJoin, WIRE_VERSION, realm_digest,
};

/// Connects a raw network to `target`, writes `bytes` on a weft stream, and waits until the target
/// drops the connection.
async fn send_raw(target: &Node, bytes: Vec<u8>) {
    let (raw, mut events, thread) =
        Network::start(NetConfig::loopback(Keypair::generate().unwrap())).unwrap();
    let peer = within("dial", raw.dial(target.listen_addrs()[0].clone()))
        .await
        .unwrap();
    let stream = within("open stream", raw.open_stream(peer)).await.unwrap();
    let outbox = Outbox::new(4);
    let writer = outbox.clone();
    raw.spawn(async move {
        let _ = write_outbox(stream, writer).await;
    });
    assert!(outbox.push(&bytes).queued);
    within("the node cuts the raw peer off", async {
        while !matches!(events.recv().await, Some(NetEvent::PeerDisconnected { peer: p }) if p == peer) {}
    })
    .await;
    raw.shutdown().await;
    thread.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_rejected_without_harming_other_peers() {
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let mut orders = b.realm("dev").unwrap().subscribe("orders.*").await.unwrap();
    let dev = a.realm("dev").unwrap();
    within("A learns of B", dev.wait_for_subscriber("orders.placed"))
        .await
        .unwrap();

    let oversized = vec![0xff, 0xff, 0xff, 0xff, WIRE_VERSION];
    let garbage = [&[0u8, 0, 0, 8, WIRE_VERSION][..], &[200, 1, 2, 3, 4, 5, 6]].concat();
    let wrong_version = vec![0, 0, 0, 2, 99, 0];
    for (i, bytes) in [oversized, garbage, wrong_version].into_iter().enumerate() {
        send_raw(&a, bytes).await;
        // A still serves B, in order, after each attack.
        dev.publish("orders.placed", &json!(i)).await.unwrap();
        assert_eq!(
            next_event(&mut orders).await.json::<Value>().unwrap(),
            json!(i)
        );
    }
    assert_eq!(dev.stats().await.members, 1, "B is still a member");
    shutdown(&[a, b]).await;
}

/// Greets `target` as a raw peer under `key` with `frames`, says goodbye, and returns every frame
/// the target sends back up to its answer to that goodbye (which follows all it sent before).
async fn greet_raw(target: &Node, key: Keypair, frames: Vec<Frame>) -> Vec<Frame> {
    let (raw, mut events, thread) = Network::start(NetConfig::loopback(key)).unwrap();
    let peer = within("dial", raw.dial(target.listen_addrs()[0].clone()))
        .await
        .unwrap();
    let stream = within("open stream", raw.open_stream(peer)).await.unwrap();
    let outbox = Outbox::new(16);
    let writer = outbox.clone();
    raw.spawn(async move {
        let _ = write_outbox(stream, writer).await;
    });
    for frame in frames.iter().chain([&Frame::Bye]) {
        let bytes = weft_net::framed::encode(frame, DEFAULT_MAX_FRAME).unwrap();
        assert!(outbox.push(&bytes).queued);
    }
    let inbound = within("the target's stream", async {
        loop {
            if let Some(NetEvent::InboundStream { peer: p, stream }) = events.recv().await
                && p == peer
            {
                break stream;
            }
        }
    })
    .await;
    let (sink, mut batches) = tokio::sync::mpsc::channel(16);
    raw.spawn(async move {
        let reader = weft_net::framed::accept(inbound).await.unwrap();
        let _ = weft_net::framed::read_frames(reader, sink, Decoder::new(DEFAULT_MAX_FRAME)).await;
    });
    let received = within("the target's goodbye", async {
        let mut received = Vec::new();
        while !received.contains(&Frame::Bye) {
            received.extend(batches.recv().await.expect("the target hung up first"));
        }
        received
    })
    .await;
    raw.shutdown().await;
    thread.join();
    received
}

/// What a peer learns before it is admitted: nothing of a realm it did not name itself, and no
/// tags or agent until it is admitted somewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_tells_a_stranger_nothing() {
    let owner = Keypair::generate().unwrap();
    let node_key = Keypair::generate().unwrap();
    let to_node = weft::Builder::new(&owner, node_key.did())
        .claim("weft://io.secret", "realm/join")
        .never_expires()
        .build()
        .unwrap();
    let secret = RealmName::new("io.secret").unwrap();
    let dev = RealmName::new("dev").unwrap();
    let target = Node::builder()
        .key(node_key)
        .open_realm("dev")
        .realm("io.secret", owner.did())
        .ucan("io.secret", weft::Chain::new(to_node.clone(), []))
        .tag("dc", "fra-vault-3")
        .tag("role", "payments")
        .start()
        .await
        .unwrap();
    let secrets = [
        "io.secret".to_owned(),
        "dev".to_owned(),
        owner.did().to_string(),
        to_node.as_str().to_owned(),
        "fra-vault-3".to_owned(),
        "payments".to_owned(),
        "weft/".to_owned(),
    ];
    let hello = |key: &Keypair, realms: &[(&RealmName, Option<weft::Did>)]| {
        Frame::Hello(Hello {
            realms: realms
                .iter()
                .map(|(realm, owner)| {
                    realm_digest(&key.did(), &target.did(), realm, owner.as_ref())
                })
                .collect(),
            client: false,
        })
    };
    let join = |realms: Vec<(RealmName, Option<weft::Did>)>| {
        Frame::Join(Join {
            realms: realms
                .into_iter()
                .enumerate()
                .map(|(index, (realm, owner))| RealmJoin {
                    index: index.try_into().unwrap(),
                    realm,
                    owner,
                    chains: Vec::new(),
                })
                .collect(),
        })
    };
    let leaked = |frames: &[Frame], allowed: &[&str]| -> Vec<String> {
        let text = serde_json::to_string(frames).unwrap();
        secrets
            .iter()
            .filter(|s| !allowed.contains(&s.as_str()) && text.contains(s.as_str()))
            .cloned()
            .collect()
    };

    // A stranger naming a realm the target does not host: a hello of digests, an empty join.
    let stranger = Keypair::generate().unwrap();
    let elsewhere = RealmName::new("elsewhere").unwrap();
    let frames = greet_raw(
        &target,
        stranger.clone(),
        vec![
            hello(&stranger, &[(&elsewhere, None)]),
            join(vec![(elsewhere, None)]),
        ],
    )
    .await;
    assert!(
        matches!(&frames[0], Frame::Hello(h) if h.realms.len() == 2),
        "{frames:?}"
    );
    assert!(
        matches!(&frames[1], Frame::Join(j) if j.realms.is_empty()),
        "{frames:?}"
    );
    assert_eq!(frames.len(), 3, "hello, join, goodbye: {frames:?}");
    assert_eq!(leaked(&frames, &[]), Vec::<String>::new());

    // A peer guessing io.secret's name with the wrong owner, and sharing dev: it learns dev,
    // and, once admitted there, the target's tags; nothing of io.secret.
    let guesser = Keypair::generate().unwrap();
    let frames = greet_raw(
        &target,
        guesser.clone(),
        vec![
            hello(&guesser, &[(&dev, None), (&secret, Some(guesser.did()))]),
            join(vec![(dev.clone(), None)]),
        ],
    )
    .await;
    assert!(
        frames.iter().any(|f| matches!(f, Frame::Welcome(_))),
        "{frames:?}"
    );
    assert_eq!(
        leaked(&frames, &["dev", "fra-vault-3", "payments", "weft/"]),
        Vec::<String>::new()
    );

    // A peer that knows io.secret's name and owner, without a grant: it learns what it named
    // (with the target's chain there) and is denied; no tags, since it was admitted nowhere.
    let knower = Keypair::generate().unwrap();
    let frames = greet_raw(
        &target,
        knower.clone(),
        vec![
            hello(&knower, &[(&secret, Some(owner.did()))]),
            join(vec![(secret.clone(), Some(owner.did()))]),
        ],
    )
    .await;
    assert!(
        frames.iter().any(|f| matches!(f, Frame::Denied(_))),
        "{frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Welcome(_))),
        "{frames:?}"
    );
    let owner_did = owner.did().to_string();
    assert_eq!(
        leaked(&frames, &["io.secret", &owner_did, to_node.as_str()]),
        Vec::<String>::new()
    );
    target.shutdown().await;
}
