//! Two services exchange events in an owned realm: an orders service publishes
//! `orders.order_placed`, an inventory service subscribed to `orders.*` reacts. The realm owner
//! gives each service exactly the capability it needs; each node checks the other's.
//!
//! Run: `cargo run -p weft --example pubsub`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use weft::{Builder, Chain, Did, Error, Keypair, Node, PublishError, Token};

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// The orders inventory received, in order, and whether each came from the orders service.
    pub(crate) received: Vec<(u64, bool)>,
    /// The error code the publication to `billing.refund` was refused with.
    pub(crate) refused: String,
}

fn grant(
    owner: &Keypair,
    to: Did,
    resource: &str,
    ability: &str,
    exp: u64,
) -> Result<Token, weft::UcanError> {
    Builder::new(owner, to)
        .expires_at(exp)
        .claim(resource, ability)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// Runs the example; an error if any step fails.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let owner = Keypair::generate()?;
    let (orders_key, inventory_key) = (Keypair::generate()?, Keypair::generate()?);
    let realm = "io.shop";

    // The owner's grants: both may join; orders may publish under orders.*, inventory subscribe.
    let join = |key: &Keypair| grant(&owner, key.did(), "weft://io.shop", "realm/join", exp);
    let orders = Node::builder()
        .key(orders_key.clone())
        .realm(realm, owner.did())
        .ucan(realm, Chain::new(join(&orders_key)?, []))
        .ucan(
            realm,
            Chain::new(
                grant(
                    &owner,
                    orders_key.did(),
                    "weft://io.shop/orders.*",
                    "msg/publish",
                    exp,
                )?,
                [],
            ),
        )
        .start()
        .await?;
    let inventory = Node::builder()
        .key(inventory_key.clone())
        .bootstrap(orders.listen_addrs()[0].to_string())
        .realm(realm, owner.did())
        .ucan(realm, Chain::new(join(&inventory_key)?, []))
        .ucan(
            realm,
            Chain::new(
                grant(
                    &owner,
                    inventory_key.did(),
                    "weft://io.shop/orders.*",
                    "msg/subscribe",
                    exp,
                )?,
                [],
            ),
        )
        .start()
        .await?;
    println!("orders    {} at {}", orders.did(), orders.listen_addrs()[0]);
    println!("inventory {}", inventory.did());

    let shop = inventory.realm(realm).ok_or("realm not configured")?;
    let mut placed = shop.subscribe("orders.*").await?;
    let publisher = orders.realm(realm).ok_or("realm not configured")?;
    tokio::time::timeout(
        Duration::from_secs(10),
        publisher.wait_for_subscriber("orders.order_placed"),
    )
    .await??;

    for id in 1..=3 {
        publisher
            .publish(
                "orders.order_placed",
                &json!({ "order": id, "sku": "tea", "qty": id }),
            )
            .await?;
    }
    // Not allowed: the orders service may publish under orders.* only.
    let refused = match publisher
        .publish("billing.refund", &json!({ "order": 1 }))
        .await
    {
        Err(Error::Publish(PublishError::Unauthorized(e))) => {
            println!("orders    refused: {e}");
            e.code().to_string()
        }
        other => return Err(format!("billing.refund should be refused, got {other:?}").into()),
    };
    let mut received = Vec::new();
    for _ in 1..=3 {
        let event = tokio::time::timeout(Duration::from_secs(10), placed.next())
            .await?
            .ok_or("node stopped")?;
        let order: serde_json::Value = event.json()?;
        println!(
            "inventory reserved {} x {} for order {} (from {})",
            order["qty"],
            order["sku"],
            order["order"],
            event.publisher.short()
        );
        received.push((
            order["order"].as_u64().unwrap_or(0),
            event.publisher == orders.did(),
        ));
    }
    orders.shutdown().await;
    inventory.shutdown().await;
    Ok(Summary { received, refused })
}
