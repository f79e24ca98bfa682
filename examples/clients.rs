//! Short-lived processes attach to one node as its clients, the way NATS clients attach to their
//! server: a stock service and a dashboard attach to node B, and twenty one-shot clients attach to
//! node A, each checking stock and placing an order before it exits. Every call is answered and
//! every order reaches the dashboard, routed by the nodes the clients attached to, and the clients
//! leave nothing behind in the DHT.
//!
//! Run: `cargo run -p weft --example clients`

use std::time::Duration;

use serde_json::json;
use weft::Node;

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// One-shot clients that ran.
    pub(crate) clients: usize,
    /// Stock checks answered.
    pub(crate) answered: usize,
    /// Orders the dashboard received.
    pub(crate) received: usize,
    /// Peers in node A's routing table afterwards (clients never enter it).
    pub(crate) routing_table: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// A client of the node at `addr` in the open realm `shop`, once the node has admitted it.
async fn attach(addr: &str) -> Result<Node, Box<dyn std::error::Error>> {
    let node = Node::builder()
        .connect(addr)
        .open_realm("shop")
        .start()
        .await?;
    let shop = node.realm("shop").ok_or("realm")?;
    tokio::time::timeout(Duration::from_secs(10), shop.wait_for_members(1)).await??;
    Ok(node)
}

/// Runs the example; an error if any step fails.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    const CLIENTS: usize = 20;
    // Two mesh nodes.
    let a = Node::builder().open_realm("shop").start().await?;
    let addr_a = a.listen_addrs()[0].to_string();
    let b = Node::builder()
        .bootstrap(addr_a.clone())
        .open_realm("shop")
        .start()
        .await?;
    let addr_b = b.listen_addrs()[0].to_string();

    // Long-lived clients of B: a stock service and a dashboard.
    let stock = attach(&addr_b).await?;
    let registration = stock
        .realm("shop")
        .ok_or("realm")?
        .advertise("stock.check", |ctx, args| async move {
            println!("stock.check {args} from {}", ctx.caller.short());
            Ok(json!({ "sku": args["sku"], "in_stock": true }))
        })
        .await?;
    let dashboard = attach(&addr_b).await?;
    let mut orders = dashboard
        .realm("shop")
        .ok_or("realm")?
        .subscribe("orders.*")
        .await?;
    // Node A learns of both through B: B offers the procedure and subscribes for the dashboard.
    let hub = a.realm("shop").ok_or("realm")?;
    let wait = Duration::from_secs(10);
    tokio::time::timeout(wait, hub.wait_for_providers("stock.check", 1)).await??;
    tokio::time::timeout(wait, hub.wait_for_subscriber("orders.placed")).await??;

    // One-shot clients of A come and go.
    let mut answered = 0;
    for id in 0..CLIENTS {
        let client = attach(&addr_a).await?;
        let shop = client.realm("shop").ok_or("realm")?;
        let stock = shop.call("stock.check", &json!({ "sku": "tea" })).await?;
        if stock["in_stock"] == json!(true) {
            answered += 1;
        }
        shop.publish("orders.placed", &json!({ "id": id })).await?;
        client.shutdown().await;
    }
    let mut received = 0;
    while received < CLIENTS {
        let event = tokio::time::timeout(wait, orders.next())
            .await?
            .ok_or("the dashboard's subscription ended")?;
        println!(
            "dashboard: {} {}",
            event.topic,
            String::from_utf8_lossy(&event.payload)
        );
        received += 1;
    }
    let routing_table = a.dht_stats().await.routing_table;
    println!(
        "{CLIENTS} clients came and went: {answered} stock checks answered, {received} orders \
         received; node A's routing table holds {routing_table} peer(s)"
    );

    drop(registration);
    for node in [dashboard, stock, b, a] {
        node.shutdown().await;
    }
    Ok(Summary {
        clients: CLIENTS,
        answered,
        received,
        routing_table,
    })
}
