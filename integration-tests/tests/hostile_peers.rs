//! A raw peer speaking broken frames: each is cut off, and the node keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::{Value, json};
use weft::{Keypair, Node, RealmName};
use weft_integration_tests::{RawPeer, next_event, shutdown, within};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{NetConfig, NetEvent, Network};
use weft_wire::{Frame, Hello, Join, RealmJoin, WIRE_VERSION, realm_digest};

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

/// Greets `target` as a raw peer under `key`: reads the target's hello, sends what `answer`
/// makes of it and a goodbye, and returns every frame the target sent, up to its answer to that
/// goodbye (which follows all it sent before) or the end of its stream.
async fn greet_raw(
    target: &Node,
    key: Keypair,
    answer: impl FnOnce(&Hello) -> Vec<Frame>,
) -> Vec<Frame> {
    let mut raw = RawPeer::connect(target, key).await;
    let mut received = raw.read_until(|f| matches!(f, Frame::Hello(_))).await;
    let Some(Frame::Hello(hello)) = received.first() else {
        panic!("a hello first: {received:?}");
    };
    for frame in answer(hello).iter().chain([&Frame::Bye]) {
        raw.send(frame).await;
    }
    received.extend(raw.read_until(|f| *f == Frame::Bye).await);
    raw.close().await;
    received
}

/// What frames told about realms and their sender.
#[derive(Debug, Default, PartialEq)]
struct Revealed {
    realms: Vec<String>,
    owners: Vec<weft::Did>,
    chains: Vec<String>,
    tags: Vec<(String, String)>,
    agent: Option<String>,
}

fn revealed(frames: &[Frame]) -> Revealed {
    let mut out = Revealed::default();
    for frame in frames {
        match frame {
            Frame::Join(join) => {
                for entry in &join.realms {
                    out.realms.push(entry.realm.to_string());
                    out.owners.extend(entry.owner);
                    for chain in &entry.chains {
                        out.chains.push(chain.leaf.clone());
                        out.chains.extend(chain.proofs.iter().cloned());
                    }
                }
            }
            Frame::Welcome(welcome) => {
                out.tags.extend(welcome.tags.iter().cloned());
                out.agent = Some(welcome.agent.clone());
            }
            _ => {}
        }
    }
    out
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
    let target_did = target.did();
    let hello = move |key: &Keypair, realms: &[(&RealmName, Option<weft::Did>)]| {
        Frame::Hello(Hello {
            realms: realms
                .iter()
                .map(|(realm, owner)| realm_digest(&key.did(), &target_did, realm, owner.as_ref()))
                .collect(),
            client: false,
            run: 1,
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
    let tags = vec![
        ("dc".to_owned(), "fra-vault-3".to_owned()),
        ("role".to_owned(), "payments".to_owned()),
    ];

    // A stranger naming a realm the target does not host: a hello of digests, an empty join.
    let stranger = Keypair::generate().unwrap();
    let elsewhere = RealmName::new("elsewhere").unwrap();
    let frames = greet_raw(&target, stranger.clone(), |_| {
        vec![
            hello(&stranger, &[(&elsewhere, None)]),
            join(vec![(elsewhere.clone(), None)]),
        ]
    })
    .await;
    assert!(
        matches!(&frames[0], Frame::Hello(h) if h.realms.len() == 2),
        "{frames:?}"
    );
    assert!(
        matches!(&frames[1], Frame::Join(j) if j.realms.is_empty()),
        "{frames:?}"
    );
    // Nothing in common: the target ends the session there, without a goodbye (which would
    // have it forgotten in the DHT too).
    assert_eq!(frames.len(), 2, "hello, join, then the end: {frames:?}");
    assert_eq!(revealed(&frames), Revealed::default());

    // A stranger sending the target its own hello back, to learn what the digests name: the
    // digests are directional, so they name nothing from the stranger, and the target hangs up.
    let mirror = Keypair::generate().unwrap();
    let frames = greet_raw(&target, mirror, |theirs| vec![Frame::Hello(theirs.clone())]).await;
    assert_eq!(revealed(&frames), Revealed::default(), "{frames:?}");
    assert!(
        !frames.contains(&Frame::Bye),
        "the target hung up: {frames:?}"
    );

    // A peer guessing io.secret's name with the wrong owner, and sharing dev: it learns dev,
    // and, once admitted there, the target's tags; nothing of io.secret.
    let guesser = Keypair::generate().unwrap();
    let frames = greet_raw(&target, guesser.clone(), |_| {
        vec![
            hello(&guesser, &[(&dev, None), (&secret, Some(guesser.did()))]),
            join(vec![(dev.clone(), None)]),
        ]
    })
    .await;
    let learned = revealed(&frames);
    assert_eq!(learned.realms, vec!["dev".to_owned()]);
    assert_eq!((learned.owners, learned.chains), (vec![], vec![]));
    assert_eq!(learned.tags, tags);
    assert!(learned.agent.unwrap().starts_with("weft/"));

    // A peer that knows io.secret's name and owner, without a grant: it learns what it named
    // (with the target's chain there, useless to anyone else) and is denied; no tags or agent,
    // since it was admitted nowhere.
    let knower = Keypair::generate().unwrap();
    let frames = greet_raw(&target, knower.clone(), |_| {
        vec![
            hello(&knower, &[(&secret, Some(owner.did()))]),
            join(vec![(secret.clone(), Some(owner.did()))]),
        ]
    })
    .await;
    assert!(
        frames.iter().any(|f| matches!(f, Frame::Denied(_))),
        "{frames:?}"
    );
    assert_eq!(
        revealed(&frames),
        Revealed {
            realms: vec!["io.secret".to_owned()],
            owners: vec![owner.did()],
            chains: vec![to_node.as_str().to_owned()],
            tags: vec![],
            agent: None,
        }
    );
    target.shutdown().await;
}

/// A peer that connects and never says hello loses its connection after the hello timeout; a
/// peer that says hello keeps its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_says_hello_is_let_go() {
    let mut limits = weft::Limits::default();
    limits.hello_timeout = std::time::Duration::from_millis(500);
    let target = Node::builder()
        .open_realm("dev")
        .limits(limits)
        .start()
        .await
        .unwrap();
    let (raw, mut events, thread) =
        Network::start(NetConfig::loopback(Keypair::generate().unwrap())).unwrap();
    let peer = within("dial", raw.dial(target.listen_addrs()[0].clone()))
        .await
        .unwrap();
    within("the silent peer is cut off", async {
        while !matches!(events.recv().await, Some(NetEvent::PeerDisconnected { peer: p }) if p == peer) {}
    })
    .await;
    raw.shutdown().await;
    thread.join();

    // A real peer, past the same timeout, is still a member.
    let member = Node::builder()
        .bootstrap(target.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let dev = target.realm("dev").unwrap();
    within("the member is admitted", dev.wait_for_members(1))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        dev.stats().await.members,
        1,
        "still a member after the timeout"
    );
    shutdown(&[member, target]).await;
}
