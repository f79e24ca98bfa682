//! `weft demo`: weft's main job on an embedded default, with no configuration.
//!
//! Four nodes on 127.0.0.1 over real QUIC form a mesh: three services and an auditor. A fresh key owns the realm `demo.shop`
//! and delegates to each service exactly what it needs; an orders service publishes orders, two
//! inventory instances reserve stock and serve `inventory.check_stock` (load-balanced), and an
//! auditor that may only join is refused when it tries to call. Every line printed says who did
//! what, and why something was denied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use weft::{Builder, Chain, Did, Error, HandlerError, Keypair, Node, Token};

use crate::error::CliError;

const REALM: &str = "demo.shop";
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One service of the demo: its name, key and the capabilities the owner grants it.
struct Service {
    name: &'static str,
    key: Keypair,
    grants: &'static [(&'static str, &'static str)],
}

pub(crate) async fn run() -> Result<(), CliError> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| CliError::Failed(e.to_string()))?
        .as_secs()
        + 3600;
    let owner = Keypair::generate()?;
    println!("weft demo: three service nodes and an auditor on 127.0.0.1 over QUIC, realm {REALM}");
    println!(
        "[1/5] realm owner {} issues capabilities (UCAN 0.10, valid 1 h):",
        owner.did().short()
    );
    let services = [
        Service {
            name: "orders",
            key: Keypair::generate()?,
            grants: &[
                ("weft://demo.shop", "realm/join"),
                ("weft://demo.shop/orders.*", "msg/publish"),
                ("weft://demo.shop/inventory.*", "rpc/call"),
            ],
        },
        Service {
            name: "inventory-a",
            key: Keypair::generate()?,
            grants: &[
                ("weft://demo.shop", "realm/join"),
                ("weft://demo.shop/orders.*", "msg/subscribe"),
                ("weft://demo.shop/inventory.*", "rpc/advertise"),
            ],
        },
        Service {
            name: "inventory-b",
            key: Keypair::generate()?,
            grants: &[
                ("weft://demo.shop", "realm/join"),
                ("weft://demo.shop/orders.*", "msg/subscribe"),
                ("weft://demo.shop/inventory.*", "rpc/advertise"),
            ],
        },
        Service {
            name: "auditor",
            key: Keypair::generate()?,
            grants: &[("weft://demo.shop", "realm/join")],
        },
    ];
    for service in &services {
        let caps: Vec<String> = service
            .grants
            .iter()
            .map(|(r, a)| format!("{a} on {}", r.trim_start_matches("weft://")))
            .collect();
        println!(
            "      {:<12} {}  {}",
            service.name,
            service.key.did().short(),
            caps.join(", ")
        );
    }

    println!("[2/5] starting nodes");
    let mut nodes: Vec<Node> = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let mut builder = Node::builder()
            .key(service.key.clone())
            .realm(REALM, owner.did())
            .tag("service", service.name);
        if let Some(first) = nodes.first() {
            builder = builder.bootstrap(first.listen_addrs()[0].to_string());
        }
        for (resource, ability) in service.grants {
            builder = builder.ucan(
                REALM,
                Chain::new(
                    grant(&owner, service.key.did(), resource, ability, exp)?,
                    [],
                ),
            );
        }
        let node = builder.start().await?;
        let role = if i == 0 { "(bootstrap)" } else { "" };
        println!(
            "      {:<12} {}  {role}",
            service.name,
            node.listen_addrs()[0]
        );
        nodes.push(node);
    }
    let outcome = scenario(&nodes).await;
    for node in &nodes {
        node.shutdown().await;
    }
    outcome?;
    println!(
        "demo complete: every call and publication above was authorized by the node that received it; \
         the auditor's were refused by its own node before anything was sent"
    );
    Ok(())
}

async fn scenario(nodes: &[Node]) -> Result<(), CliError> {
    let realm = |i: usize| {
        nodes[i]
            .realm(REALM)
            .ok_or_else(|| CliError::Failed("realm missing".into()))
    };
    let (orders, auditor) = (realm(0)?, realm(3)?);

    println!("[3/5] inventory instances subscribe to orders.* and advertise inventory.check_stock");
    let (account, mut lines) = mpsc::unbounded_channel::<String>();
    let mut keep = Vec::new();
    for (i, name) in [(1usize, "inventory-a"), (2, "inventory-b")] {
        let inventory = realm(i)?;
        let stock: Arc<Mutex<HashMap<String, i64>>> = Arc::new(Mutex::new(HashMap::from([
            ("tea".to_owned(), 20),
            ("coffee".to_owned(), 5),
        ])));
        let s = stock.clone();
        keep.push(
            inventory
                .advertise("inventory.check_stock", move |ctx, args| {
                    let s = s.clone();
                    async move {
                        let sku = args["sku"].as_str().ok_or_else(|| HandlerError::new("bad_arguments", "sku is required"))?;
                        let available = s.lock().map_err(|_| HandlerError::new("internal", "stock poisoned"))?.get(sku).copied();
                        let available = available.ok_or_else(|| HandlerError::new("unknown_sku", format!("no such item {sku}")))?;
                        Ok(json!({ "sku": sku, "available": available, "served_by": name, "caller": ctx.caller.short() }))
                    }
                })
                .await?,
        );
        let mut placed = inventory.subscribe("orders.*").await?;
        let account = account.clone();
        tokio::spawn(async move {
            while let Some(event) = placed.next().await {
                let order: Value = event.json().unwrap_or(Value::Null);
                let (sku, qty) = (
                    order["sku"].as_str().unwrap_or("?").to_owned(),
                    order["qty"].as_i64().unwrap_or(0),
                );
                let left = match stock.lock() {
                    Ok(mut stock) => stock.get_mut(&sku).map(|n| {
                        *n -= qty;
                        *n
                    }),
                    Err(_) => None,
                };
                let line = format!(
                    "      {name} received {} from {} and reserved {qty} x {sku} ({} left here)",
                    event.topic,
                    event.publisher.short(),
                    left.map_or_else(|| "unknown item".to_owned(), |n| n.to_string())
                );
                if account.send(line).is_err() {
                    break;
                }
            }
        });
    }
    within(
        "the inventory instances to be known",
        orders.wait_for_providers("inventory.check_stock", 2),
    )
    .await??;
    within(
        "the subscriptions to reach the orders node",
        orders.wait_for_subscriber("orders.order_placed"),
    )
    .await??;

    println!("[4/5] orders checks stock (round robin over both instances) and places orders");
    for (id, sku, qty) in [(1, "tea", 2), (2, "coffee", 1), (3, "tea", 3)] {
        let answer = orders
            .call("inventory.check_stock", &json!({ "sku": sku }))
            .await?;
        println!(
            "      orders called inventory.check_stock({sku}) -> {} available, answered by {}",
            answer["available"],
            answer["served_by"].as_str().unwrap_or("?")
        );
        orders
            .publish(
                "orders.order_placed",
                &json!({ "order": id, "sku": sku, "qty": qty }),
            )
            .await?;
        println!("      orders published orders.order_placed #{id} ({qty} x {sku})");
        for _ in 0..2 {
            let line = within("both instances to see the order", lines.recv()).await?;
            println!("{}", line.unwrap_or_default());
        }
    }

    println!("[5/5] the auditor may join the realm but holds no rpc/call or msg/publish");
    match auditor
        .call("inventory.check_stock", &json!({ "sku": "tea" }))
        .await
    {
        Err(Error::Call(e)) => println!(
            "      auditor calling inventory.check_stock: denied [{}]: {e}",
            e.code()
        ),
        other => {
            return Err(CliError::Failed(format!(
                "the auditor's call should be refused: {other:?}"
            )));
        }
    }
    match auditor
        .publish("orders.order_placed", &json!({ "order": 666 }))
        .await
    {
        Err(Error::Publish(e)) => {
            println!("      auditor publishing orders.order_placed: denied: {e}")
        }
        other => {
            return Err(CliError::Failed(format!(
                "the auditor's publication should be refused: {other:?}"
            )));
        }
    }
    drop(keep);
    Ok(())
}

fn grant(
    owner: &Keypair,
    to: Did,
    resource: &str,
    ability: &str,
    exp: u64,
) -> Result<Token, CliError> {
    Ok(Builder::new(owner, to)
        .expires_at(exp)
        .claim(resource, ability)
        .build()?)
}

async fn within<F: std::future::Future>(what: &str, future: F) -> Result<F::Output, CliError> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .map_err(|_| CliError::Unavailable(format!("timed out waiting for {what}")))
}
