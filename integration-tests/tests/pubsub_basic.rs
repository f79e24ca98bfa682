//! Two nodes over real QUIC on 127.0.0.1, through the `weft` facade only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use serde_json::json;
use tokio::time::timeout;
use weft::Node;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_on_b_sees_publication_from_a() {
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();

    let mut orders = b.realm("dev").unwrap().subscribe("orders.*").await.unwrap();
    let dev = a.realm("dev").unwrap();
    timeout(LIMIT, dev.wait_for_subscriber("orders.placed"))
        .await
        .unwrap()
        .unwrap();

    dev.publish("orders.placed", &json!({"id": 1}))
        .await
        .unwrap();
    dev.publish("billing.paid", &json!({"id": 2}))
        .await
        .unwrap();
    dev.publish("orders.shipped", &json!({"id": 3}))
        .await
        .unwrap();

    let first = timeout(LIMIT, orders.next()).await.unwrap().unwrap();
    assert_eq!(first.topic.as_str(), "orders.placed");
    assert_eq!(first.json::<serde_json::Value>().unwrap(), json!({"id": 1}));
    assert_eq!(first.publisher, a.did());
    let second = timeout(LIMIT, orders.next()).await.unwrap().unwrap();
    assert_eq!(
        second.topic.as_str(),
        "orders.shipped",
        "billing.paid does not match orders.*"
    );

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_on_a_stopped_node_is_an_error_not_a_hang() {
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let dev = a.realm("dev").unwrap();
    dev.publish("orders.placed", &json!({"id": 1}))
        .await
        .unwrap();
    // Queued before the stop and never handled, or published after it: both are answered.
    let queued: Vec<_> = (0..100)
        .map(|i| dev.publish("orders.placed", &json!({ "id": i })))
        .collect();
    a.shutdown().await;
    for publish in queued {
        let _ = timeout(LIMIT, publish)
            .await
            .expect("answered, not left waiting");
    }
    let after = timeout(LIMIT, dev.publish("orders.placed", &json!({"id": 2})))
        .await
        .expect("answered, not left waiting");
    assert!(
        matches!(
            after,
            Err(weft::Error::Publish(weft::PublishError::Stopped))
        ),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_leaves_right_after_a_burst_loses_nothing() {
    // The burst's last frames reach the subscriber just before its stream ends: they must be
    // handled, not dropped with the session.
    const BURST: u64 = 20_000;
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .subscriber_queue(BURST as usize)
        .start()
        .await
        .unwrap();
    let mut events = b.realm("dev").unwrap().subscribe("burst.*").await.unwrap();
    let dev = a.realm("dev").unwrap();
    timeout(LIMIT, dev.wait_for_subscriber("burst.n"))
        .await
        .unwrap()
        .unwrap();
    let mut pending = Vec::new();
    for n in 0..BURST {
        pending.push(dev.publish_bytes("burst.n", n.to_be_bytes().to_vec()));
    }
    for publish in pending {
        publish.await.unwrap();
    }
    assert_eq!(dev.stats().await.dropped_slow_peer, 0);
    a.shutdown().await;
    for n in 0..BURST {
        let event = timeout(LIMIT, events.next())
            .await
            .unwrap_or_else(|_| panic!("publication {n} of {BURST} never arrived"))
            .unwrap();
        assert_eq!(event.payload.as_ref(), n.to_be_bytes(), "publication {n}");
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_subscriber_has_the_event_when_publish_returns() {
    // A publication is answered only after its local subscribers have it.
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let dev = a.realm("dev").unwrap();
    let mut events = dev.subscribe("local.*").await.unwrap();
    for n in 0..100u64 {
        timeout(
            LIMIT,
            dev.publish_bytes("local.n", n.to_be_bytes().to_vec()),
        )
        .await
        .unwrap()
        .unwrap();
        let event = events
            .try_next()
            .unwrap_or_else(|| panic!("publication {n} not delivered when publish returned"));
        assert_eq!(event.payload.as_ref(), n.to_be_bytes());
    }
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_subscription_keeps_the_oldest_and_counts_the_rest() {
    const QUEUE: usize = 10;
    let a = Node::builder()
        .open_realm("dev")
        .subscriber_queue(QUEUE)
        .start()
        .await
        .unwrap();
    let dev = a.realm("dev").unwrap();
    let mut events = dev.subscribe("slow.*").await.unwrap();
    // Published in one go, so the router sees them in stretches; nobody reads meanwhile.
    let pending: Vec<_> = (0..100u64)
        .map(|n| dev.publish_bytes("slow.n", n.to_be_bytes().to_vec()))
        .collect();
    for publish in pending {
        timeout(LIMIT, publish).await.unwrap().unwrap();
    }
    let kept: Vec<u64> = std::iter::from_fn(|| events.try_next())
        .map(|e| u64::from_be_bytes(e.payload.as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(kept, (0..QUEUE as u64).collect::<Vec<_>>());
    assert_eq!(events.dropped(), 90);
    assert_eq!(dev.stats().await.dropped_slow_subscriber, 90);
    assert_eq!(dev.stats().await.delivered, QUEUE as u64);
    a.shutdown().await;
}
