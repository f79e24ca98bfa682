//! What a subscriber loses while its session is gone is counted, never silent: sent =
//! delivered + counted drops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::json;
use weft::{Keypair, Node};
use weft_integration_tests::{RawPeer, within};
use weft_wire::{Frame, Interest};

fn subscribe(id: u32) -> Frame {
    Frame::Interest(Interest::Subscribe {
        realm: 0,
        id,
        pattern: weft::Pattern::new("orders.*").unwrap(),
        chain: None,
    })
}

/// Reads `count` publications from `raw`.
async fn receive(raw: &mut RawPeer, count: usize) {
    let mut got = 0;
    while got < count {
        let batch = raw.next_frames().await.expect("the node's stream");
        got += batch
            .iter()
            .filter(|f| matches!(f, Frame::Publish(_)))
            .count();
    }
    assert_eq!(got, count, "no more than sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_cut_off_mid_stream_is_counted_not_silently_lost() {
    // A raw peer's network stops without closing its connection: notice it in 2 s, not 10.
    let hub = Node::builder()
        .open_realm("dev")
        .liveness(std::time::Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let dev = hub.realm("dev").unwrap();
    let key = Keypair::generate().unwrap();
    let mut raw = RawPeer::join_open_as(&hub, "dev", key.clone()).await;
    raw.send(&subscribe(1)).await;
    within("the subscription", dev.wait_for_subscriber("orders.placed"))
        .await
        .unwrap();
    let publish = |n: usize| {
        let dev = dev.clone();
        async move {
            for i in 0..n {
                dev.publish("orders.placed", &json!(i)).await.unwrap();
            }
        }
    };
    let mut sent = 0;
    let mut delivered = 0;
    publish(20).await;
    sent += 20;
    receive(&mut raw, 20).await;
    delivered += 20;

    // Cut off without a goodbye.
    raw.close().await;
    within("the hub notices", async {
        while dev.stats().await.members > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    publish(30).await;
    sent += 30;
    assert_eq!(dev.stats().await.dropped_peer_gone, 30);

    // Back, but its subscription not announced yet: still missed, and counted.
    let mut raw = RawPeer::join_open_as(&hub, "dev", key).await;
    within("back", dev.wait_for_members(1)).await.unwrap();
    publish(10).await;
    sent += 10;
    assert_eq!(dev.stats().await.dropped_peer_gone, 40);

    // Announced again: delivered, nothing more counted.
    raw.send(&subscribe(1)).await;
    within(
        "the subscription again",
        dev.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    publish(10).await;
    sent += 10;
    receive(&mut raw, 10).await;
    delivered += 10;
    let stats = dev.stats().await;
    assert_eq!(
        sent,
        delivered + stats.dropped_peer_gone + stats.dropped_slow_peer,
        "{stats:?}"
    );
    raw.close().await;
    hub.shutdown().await;
}

/// A subscriber that stops reading mid-burst and is then cut off: what the hub had queued for it
/// and never wrote is counted to the realm (`dropped_session_ended`), with the queue-full drops,
/// and never more than was sent. What QUIC had taken and not delivered when the connection died
/// cannot be known here; the counts bound the loss from below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_queued_for_a_session_that_ends_are_counted_to_the_realm() {
    let hub = Node::builder()
        .open_realm("dev")
        .liveness(std::time::Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let dev = hub.realm("dev").unwrap();
    let mut raw = RawPeer::join_open(&hub, "dev").await;
    raw.send(&subscribe(1)).await;
    within("the subscription", dev.wait_for_subscriber("orders.placed"))
        .await
        .unwrap();
    // The raw peer reads nothing more: its reader stalls once a few batches wait, QUIC's window
    // fills, and the rest waits in the hub's queue for it.
    let payload = json!("x".repeat(1024));
    dev.publish("orders.placed", &payload).await.unwrap();
    raw.next_frames().await.expect("the first publication");
    let sent = 20_000u64;
    for _ in 1..sent {
        dev.publish("orders.placed", &payload).await.unwrap();
    }
    raw.close().await;
    within("the hub notices", async {
        while dev.stats().await.members > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let stats = within("the loss is counted", async {
        loop {
            let stats = dev.stats().await;
            if stats.dropped_session_ended > 0 {
                break stats;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let counted = stats.dropped_session_ended + stats.dropped_slow_peer + stats.dropped_peer_gone;
    assert!(counted <= sent, "{stats:?}");
    eprintln!("sent {sent}, counted {counted}: {stats:?}");
    hub.shutdown().await;
}
