//! An orders service runs on two nodes; a caller on a third node calls it, and round robin
//! spreads the calls over both providers. A call to a missing procedure fails with a typed error.
//!
//! Run: `cargo run -p weft --example rpc`

use std::time::Duration;

use serde_json::json;
use weft::{CallError, CallOptions, Error, HandlerError, Node, Strategy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three nodes on a local mesh, in an open development realm.
    let caller = Node::builder().open_realm("shop").start().await?;
    let seed = caller.listen_addrs()[0].to_string();
    let mut providers = Vec::new();
    for name in ["orders-a", "orders-b"] {
        let node = Node::builder()
            .bootstrap(seed.clone())
            .open_realm("shop")
            .tag("instance", name)
            .start()
            .await?;
        let registration = node
            .realm("shop")
            .ok_or("realm")?
            .advertise("orders.get", move |ctx, args| async move {
                let id = args["id"].as_u64().ok_or_else(|| HandlerError::new("bad_arguments", "id must be a number"))?;
                Ok(json!({ "id": id, "status": "shipped", "served_by": name, "caller": ctx.caller.short() }))
            })
            .await?;
        providers.push((node, registration));
    }

    let shop = caller.realm("shop").ok_or("realm")?;
    tokio::time::timeout(
        Duration::from_secs(10),
        shop.wait_for_providers("orders.get", 2),
    )
    .await??;
    for id in 1..=4 {
        let order = shop.call("orders.get", &json!({ "id": id })).await?;
        println!(
            "order {id}: {} (served by {})",
            order["status"], order["served_by"]
        );
    }
    let first = CallOptions::default()
        .strategy(Strategy::First)
        .timeout(Duration::from_secs(2));
    let order = shop
        .call_with("orders.get", &json!({ "id": 5 }), first)
        .await?;
    println!(
        "order 5 with strategy first: served by {}",
        order["served_by"]
    );

    match shop.call("orders.get", &json!({ "id": "five" })).await {
        Err(Error::Call(CallError::Remote { code, message })) => {
            println!("bad arguments refused: {code}: {message}")
        }
        other => println!("unexpected: {other:?}"),
    }
    match shop.call("orders.cancel", &json!({ "id": 1 })).await {
        Err(Error::Call(e)) => println!("orders.cancel: {e} [{}]", e.code()),
        other => println!("unexpected: {other:?}"),
    }

    for (node, registration) in providers {
        drop(registration);
        node.shutdown().await;
    }
    caller.shutdown().await;
    Ok(())
}
