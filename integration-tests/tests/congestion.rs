//! What publishing does when a peer cannot keep up: `Block` slows the publisher down and loses
//! nothing; `Drop` never waits and accounts for every publication it could not queue.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::VecDeque;

use bytes::Bytes;
use weft::{Congestion, Node, Subscription};
use weft_integration_tests::{mesh, next_event, shutdown, within};

const MESSAGES: u64 = 3000;
/// A peer queue far smaller than what is published, so the sender is always ahead of QUIC.
const PEER_QUEUE: usize = 32;

/// Publishes `MESSAGES` numbered 1 KiB publications from `nodes[0]`, at most `window` unawaited;
/// returns what the publisher counted as dropped.
async fn blast(nodes: &[Node], window: usize) -> u64 {
    let publisher = nodes[0].realm("dev").unwrap();
    within(
        "subscriber known",
        publisher.wait_for_subscriber("load.data"),
    )
    .await
    .unwrap();
    let mut in_flight = VecDeque::new();
    for i in 0..MESSAGES {
        let mut body = vec![0u8; 1024];
        body[..8].copy_from_slice(&i.to_be_bytes());
        in_flight.push_back(publisher.publish_bytes("load.data", Bytes::from(body)));
        if in_flight.len() >= window {
            within("publish", in_flight.pop_front().unwrap())
                .await
                .unwrap();
        }
    }
    for pending in in_flight {
        within("publish", pending).await.unwrap();
    }
    publisher.stats().await.dropped_slow_peer
}

/// A publisher with a small peer queue under `congestion`, and a subscriber to `load.*` on
/// another node that has room for every publication.
async fn publisher_and_subscriber(congestion: Congestion) -> (Vec<Node>, Subscription) {
    let nodes = mesh(2, |b, i| {
        let b = b.open_realm("dev").subscriber_queue(MESSAGES as usize);
        if i == 0 {
            b.peer_queue(PEER_QUEUE).congestion(congestion)
        } else {
            b
        }
    })
    .await;
    let events = nodes[1]
        .realm("dev")
        .unwrap()
        .subscribe("load.*")
        .await
        .unwrap();
    (nodes, events)
}

fn number(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_slows_the_publisher_and_loses_nothing() {
    let (nodes, mut events) = publisher_and_subscriber(Congestion::Block).await;
    // Fewer unawaited publications than half a queue: Block then never has to drop.
    let dropped = blast(&nodes, PEER_QUEUE / 2 - 4).await;
    assert_eq!(dropped, 0);
    for i in 0..MESSAGES {
        assert_eq!(
            number(&next_event(&mut events).await.payload),
            i,
            "every one, in order"
        );
    }
    assert_eq!(events.dropped(), 0);
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_never_waits_and_counts_what_it_could_not_queue() {
    let (nodes, mut events) = publisher_and_subscriber(Congestion::Drop).await;
    let dropped = blast(&nodes, 1024).await;
    // Whatever was not dropped arrives, in order: nothing is lost without being counted.
    let mut last = None;
    for _ in 0..MESSAGES - dropped {
        let n = number(&next_event(&mut events).await.payload);
        assert!(last.is_none_or(|l| n > l), "in order: {n} after {last:?}");
        last = Some(n);
    }
    shutdown(&nodes).await;
}
