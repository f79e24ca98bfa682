//! Helpers for end-to-end tests of weft over real QUIC on 127.0.0.1; the tests live in `tests/`.
//!
//! Every wait is on an event (a subscription's next event, a router learning of a subscriber),
//! bounded by [`LIMIT`], so a broken build fails in seconds instead of hanging CI.

#![allow(clippy::expect_used)] // test support: a panic is a failed test

use std::future::Future;
use std::time::Duration;

use weft::{Event, Node, NodeBuilder, Subscription};

/// The longest any single wait may take.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Logs to stderr when `WEFT_TEST_LOG` is set (e.g. `WEFT_TEST_LOG=weft_runtime=debug`).
pub fn logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("WEFT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    logs();
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Starts `n` nodes: the first alone, the others bootstrapping from it. `configure` adds realms,
/// keys and tokens to each builder (it gets the node's position).
pub async fn mesh(n: usize, configure: impl Fn(NodeBuilder, usize) -> NodeBuilder) -> Vec<Node> {
    let first = configure(Node::builder(), 0)
        .start()
        .await
        .expect("first node starts");
    let seed = first.listen_addrs()[0].to_string();
    let mut nodes = vec![first];
    for i in 1..n {
        let node = configure(Node::builder().bootstrap(seed.clone()), i)
            .start()
            .await
            .expect("node starts");
        nodes.push(node);
    }
    nodes
}

/// The next event of a subscription, within [`LIMIT`].
pub async fn next_event(subscription: &mut Subscription) -> Event {
    within("next event", subscription.next())
        .await
        .expect("subscription open")
}

/// Shuts every node down gracefully.
pub async fn shutdown(nodes: &[Node]) {
    for node in nodes {
        node.shutdown().await;
    }
}
