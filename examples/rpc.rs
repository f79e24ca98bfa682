//! An orders service runs on two nodes; a caller on a third node calls it, and round robin
//! spreads the calls over both providers. A call to a missing procedure fails with a typed error.
//!
//! Run: `cargo run -p weft --example rpc`

use std::time::Duration;

use serde_json::json;
use weft::{CallError, CallOptions, Error, HandlerError, Node, Strategy};

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// The instance that served each of orders 1 to 4, round robin.
    pub(crate) served_by: Vec<String>,
    /// The instance that served order 5, with strategy `First`.
    pub(crate) first: String,
    /// The code of the call with bad arguments (the handler's own).
    pub(crate) bad_arguments: String,
    /// The code of the call to a procedure no one provides.
    pub(crate) missing: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// Runs the example; an error if any step fails.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
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
                let id = args["id"]
                    .as_u64()
                    .ok_or_else(|| HandlerError::new("bad_arguments", "id must be a number"))?;
                Ok(json!({
                    "id": id,
                    "status": "shipped",
                    "served_by": name,
                    "caller": ctx.caller.short(),
                }))
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
    let served = |order: &serde_json::Value| order["served_by"].as_str().unwrap_or("?").to_string();
    let mut served_by = Vec::new();
    for id in 1..=4 {
        let order = shop.call("orders.get", &json!({ "id": id })).await?;
        println!(
            "order {id}: {} (served by {})",
            order["status"], order["served_by"]
        );
        served_by.push(served(&order));
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
    let first = served(&order);

    let bad_arguments = match shop.call("orders.get", &json!({ "id": "five" })).await {
        Err(Error::Call(CallError::Remote { code, message })) => {
            println!("bad arguments refused: {code}: {message}");
            code
        }
        other => return Err(format!("unexpected: {other:?}").into()),
    };
    // Nobody provides it: the call waits for a provider as long as its timeout allows.
    let briefly = CallOptions::default().timeout(Duration::from_millis(500));
    let missing = match shop
        .call_with("orders.cancel", &json!({ "id": 1 }), briefly)
        .await
    {
        Err(Error::Call(e)) => {
            println!("orders.cancel: {e} [{}]", e.code());
            e.code().to_string()
        }
        other => return Err(format!("unexpected: {other:?}").into()),
    };

    for (node, registration) in providers {
        drop(registration);
        node.shutdown().await;
    }
    caller.shutdown().await;
    Ok(Summary {
        served_by,
        first,
        bad_arguments,
        missing,
    })
}
