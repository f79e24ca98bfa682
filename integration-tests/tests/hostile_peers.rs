//! A raw peer speaking broken frames: each is cut off, and the node keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::{Value, json};
use weft::{Keypair, Node};
use weft_integration_tests::{next_event, shutdown, within};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{NetConfig, NetEvent, Network};
use weft_wire::WIRE_VERSION;

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
