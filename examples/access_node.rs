//! An access node that may only join the realm serves clients as far as each may go. In the
//! owned realm `io.acme`, node A holds nothing but `realm/join`; the warehouse (a member, under
//! the owner's key) reads orders and answers `stock.check`. A till attaches to A as its client,
//! with a grant to publish orders and call `stock.check`: it delegates that grant to A for a few
//! minutes at a time, A acts for it under the delegation, and the warehouse checks the till's
//! authority in it. A's own attempt to publish is refused, and so is the till's attempt at
//! billing, which its grant does not cover.
//!
//! Run: `cargo run -p weft --example access_node`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use weft::{Builder, Chain, Error, Keypair, Node, PublishError, Token};

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// The orders the warehouse received, and who passed each on.
    pub(crate) orders: Vec<(String, bool)>,
    /// The till's stock check, answered.
    pub(crate) stock: serde_json::Value,
    /// Node A publishing on its own grant: refused.
    pub(crate) access_alone: String,
    /// The till publishing outside its grant: refused.
    pub(crate) till_billing: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// The owner's token granting `claims` to `to`, for an hour.
fn grant(
    owner: &Keypair,
    to: weft::Did,
    claims: &[(&str, &str)],
) -> Result<Token, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut builder = Builder::new(owner, to).expires_at(now + 3600);
    for (resource, ability) in claims {
        builder = builder.claim(*resource, *ability);
    }
    Ok(builder.build()?)
}

/// The code a publication was refused with, or an error if it was not refused.
fn refusal(result: Result<(), Error>, what: &str) -> Result<String, Box<dyn std::error::Error>> {
    match result {
        Err(Error::Publish(PublishError::Unauthorized(e))) => Ok(e.code().to_string()),
        other => Err(format!("{what} should be refused, got {other:?}").into()),
    }
}

/// Runs the example; an error if any step fails.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    let wait = Duration::from_secs(10);
    let owner = Keypair::generate()?;
    let a_key = Keypair::generate()?;
    let join_only = grant(&owner, a_key.did(), &[("weft://io.acme", "realm/join")])?;
    let a = Node::builder()
        .key(a_key)
        .realm("io.acme", owner.did())
        .ucan("io.acme", Chain::new(join_only, []))
        .start()
        .await?;
    let addr_a = a.listen_addrs()[0].to_string();

    // The warehouse acts under the owner's key: it may do anything in the realm.
    let warehouse = Node::builder()
        .key(owner.clone())
        .bootstrap(addr_a.clone())
        .realm("io.acme", owner.did())
        .start()
        .await?;
    let stock = warehouse.realm("io.acme").ok_or("realm")?;
    let mut orders = stock.subscribe("orders.*").await?;
    let registration = stock
        .advertise("stock.check", |ctx, args| async move {
            println!("stock.check {args} from {}", ctx.caller.short());
            Ok(json!({ "sku": args["sku"], "in_stock": true }))
        })
        .await?;
    let hub = a.realm("io.acme").ok_or("realm")?;
    tokio::time::timeout(wait, hub.wait_for_subscriber("orders.placed")).await??;
    tokio::time::timeout(wait, hub.wait_for_providers("stock.check", 1)).await??;
    let access_alone = refusal(
        hub.publish("orders.placed", &json!({ "id": 0 })).await,
        "node A publishing on its own",
    )?;
    println!("node A on its own: {access_alone}");

    // The till, a client of A, may place orders and check stock.
    let till_key = Keypair::generate()?;
    let till_grant = grant(
        &owner,
        till_key.did(),
        &[
            ("weft://io.acme", "realm/join"),
            ("weft://io.acme/orders.*", "msg/publish"),
            ("weft://io.acme/stock.check", "rpc/call"),
        ],
    )?;
    let till = Node::builder()
        .key(till_key)
        .connect(addr_a.clone())
        .realm("io.acme", owner.did())
        .ucan("io.acme", Chain::new(till_grant, []))
        .start()
        .await?;
    let shop = till.realm("io.acme").ok_or("realm")?;
    tokio::time::timeout(wait, shop.wait_for_members(1)).await??;
    let stock_answer = shop.call("stock.check", &json!({ "sku": "tea" })).await?;
    println!("till: stock.check answered {stock_answer}");
    shop.publish("orders.placed", &json!({ "id": 1 })).await?;
    let till_billing = refusal(
        shop.publish("billing.refund", &json!({ "id": 1 })).await,
        "the till's billing.refund",
    )?;
    println!("till on billing.refund: {till_billing}");

    let mut received = Vec::new();
    let event = tokio::time::timeout(wait, orders.next())
        .await?
        .ok_or("the warehouse's subscription ended")?;
    println!(
        "warehouse: {} {} passed on by {}",
        event.topic,
        String::from_utf8_lossy(&event.payload),
        event.publisher.short()
    );
    received.push((event.topic.to_string(), event.publisher == a.did()));

    drop(registration);
    for node in [till, warehouse, a] {
        node.shutdown().await;
    }
    Ok(Summary {
        orders: received,
        stock: stock_answer,
        access_alone,
        till_billing,
    })
}
