//! One hosting node serves two customers, each in a realm of its own: `acme.shop`, owned by Acme's
//! key, and `globex.billing`, owned by Globex's key. Each owner delegates to the host only what it
//! needs in its own realm, and to its own service node only what that needs. Both customers use
//! the same names (`orders.placed`, `ledger.append`): the realms keep them apart. Then Globex's
//! service tries its hand in Acme's realm, holding the only kind of token it can get there (one
//! Globex signed), and is refused at every step.
//!
//! Run: `cargo run -p weft --example multitenant`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use weft::{
    AdvertiseError, Builder, CallError, Chain, Did, Error, Keypair, Node, PeerEvent, PublishError,
    RealmHandle, Registration, SubscribeError, Subscription,
};

const ACME: &str = "acme.shop";
const GLOBEX: &str = "globex.billing";
/// The same topic and procedure names in both realms.
const TOPIC: &str = "orders.placed";
const LEDGER: &str = "ledger.append";
const ORDERS: u64 = 3;
const WAIT: Duration = Duration::from_secs(10);

/// What the host needs in a customer's realm: to join, hear its orders, provide its ledger.
const HOST_NEEDS: &[(&str, &str)] = &[
    ("", "realm/join"),
    ("orders.*", "msg/subscribe"),
    ("ledger.*", "rpc/advertise"),
];
/// What a customer's service needs in its realm: to join, publish orders, call the ledger.
const SERVICE_NEEDS: &[(&str, &str)] = &[
    ("", "realm/join"),
    ("orders.*", "msg/publish"),
    ("ledger.*", "rpc/call"),
];

/// One customer's traffic, as the host saw it.
#[derive(Debug)]
pub(crate) struct Tenant {
    /// `acme` or `globex`.
    pub(crate) name: &'static str,
    /// Its realm.
    pub(crate) realm: &'static str,
    /// Its service node.
    pub(crate) service: Did,
    /// What the host's subscription to `orders.*` in this realm received: the tenant named in the
    /// payload, the order number, the publisher.
    pub(crate) events: Vec<(String, u64, Did)>,
    /// The host's replies to this tenant's `ledger.append` calls: whose ledger answered, entry.
    pub(crate) ledger: Vec<(String, u64)>,
    /// Peers the host admitted to this realm.
    pub(crate) members: u64,
}

/// What the example saw; `run` fails unless isolation held.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Acme, then Globex.
    pub(crate) tenants: [Tenant; 2],
    /// What Globex's service tried in Acme's realm, and the error code it was refused with.
    pub(crate) refused: Vec<(String, String)>,
}

/// A root token: `owner` lets `to` do each `(name, ability)` of `claims` in `realm` until `exp`
/// (an empty name is the realm itself).
fn delegate(
    owner: &Keypair,
    to: Did,
    realm: &str,
    claims: &[(&str, &str)],
    exp: u64,
) -> Result<Chain, weft::UcanError> {
    let mut token = Builder::new(owner, to).expires_at(exp);
    for (name, ability) in claims {
        let resource = match *name {
            "" => format!("weft://{realm}"),
            name => format!("weft://{realm}/{name}"),
        };
        token = token.claim(resource, *ability);
    }
    Ok(Chain::new(token.build()?, []))
}

fn describe(claims: &[(&str, &str)]) -> String {
    let claims: Vec<String> = claims
        .iter()
        .map(|(name, ability)| format!("{ability} {name}").trim_end().to_string())
        .collect();
    claims.join(", ")
}

/// The host's side of one tenant: a subscription to its orders and a ledger of its own.
async fn host_tenant(
    realm: &RealmHandle,
    tenant: &'static str,
) -> Result<(Subscription, Registration), Error> {
    let orders = realm.subscribe("orders.*").await?;
    let entries = Arc::new(AtomicU64::new(0));
    let ledger = realm
        .advertise(LEDGER, move |_ctx, _args| {
            let entry = entries.fetch_add(1, Ordering::Relaxed) + 1;
            async move { Ok(json!({ "ledger": tenant, "entry": entry })) }
        })
        .await?;
    Ok((orders, ledger))
}

fn realm(node: &Node, name: &str) -> Result<RealmHandle, String> {
    node.realm(name)
        .ok_or_else(|| format!("realm {name} not configured"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// Runs the scenario; an error if any step fails or isolation is violated.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let (acme, globex) = (Keypair::generate()?, Keypair::generate()?);
    let host_key = Keypair::generate()?;
    let (acme_key, globex_key) = (Keypair::generate()?, Keypair::generate()?);

    // The host: both realms, each with the owner's token for it and for nothing else.
    let host = Node::builder()
        .key(host_key.clone())
        .realm(ACME, acme.did())
        .ucan(
            ACME,
            delegate(&acme, host_key.did(), ACME, HOST_NEEDS, exp)?,
        )
        .realm(GLOBEX, globex.did())
        .ucan(
            GLOBEX,
            delegate(&globex, host_key.did(), GLOBEX, HOST_NEEDS, exp)?,
        )
        .start()
        .await?;
    println!(
        "host            {} at {}",
        host.did().short(),
        host.listen_addrs()[0]
    );
    println!("acme   -> host  in {ACME}: {}", describe(HOST_NEEDS));
    println!("globex -> host  in {GLOBEX}: {}", describe(HOST_NEEDS));
    let (host_acme, host_globex) = (realm(&host, ACME)?, realm(&host, GLOBEX)?);
    let (mut acme_orders, _acme_ledger) = host_tenant(&host_acme, "acme").await?;
    let (mut globex_orders, _globex_ledger) = host_tenant(&host_globex, "globex").await?;

    // Each customer's service joins its own realm through the host. Globex's also configures
    // Acme's realm, with a token Globex signed for it: Globex owns nothing there.
    let seed = host.listen_addrs()[0].to_string();
    let acme_service = Node::builder()
        .key(acme_key.clone())
        .bootstrap(seed.clone())
        .realm(ACME, acme.did())
        .ucan(
            ACME,
            delegate(&acme, acme_key.did(), ACME, SERVICE_NEEDS, exp)?,
        )
        .start()
        .await?;
    let globex_service = Node::builder()
        .key(globex_key.clone())
        .bootstrap(seed)
        .realm(GLOBEX, globex.did())
        .ucan(
            GLOBEX,
            delegate(&globex, globex_key.did(), GLOBEX, SERVICE_NEEDS, exp)?,
        )
        .realm(ACME, acme.did())
        .ucan(
            ACME,
            delegate(&globex, globex_key.did(), ACME, &[("", "*")], exp)?,
        )
        .start()
        .await?;
    let intruder_events = globex_service.peer_events();
    println!(
        "acme   -> acme service   {} in {ACME}: {}",
        acme_key.did().short(),
        describe(SERVICE_NEEDS)
    );
    println!(
        "globex -> globex service {} in {GLOBEX}: {}",
        globex_key.did().short(),
        describe(SERVICE_NEEDS)
    );
    println!("globex -> globex service in {ACME}: * (signed by Globex, not by Acme)");

    let outcome = async {
        let tenants = [
            (
                "acme",
                ACME,
                acme_key.did(),
                realm(&acme_service, ACME)?,
                host_acme.clone(),
            ),
            (
                "globex",
                GLOBEX,
                globex_key.did(),
                realm(&globex_service, GLOBEX)?,
                host_globex.clone(),
            ),
        ];
        for (_, _, _, service, on_host) in &tenants {
            tokio::time::timeout(WAIT, on_host.wait_for_members(1)).await??;
            tokio::time::timeout(WAIT, service.wait_for_subscriber(TOPIC)).await??;
            tokio::time::timeout(WAIT, service.wait_for_providers(LEDGER, 1)).await??;
        }

        println!("\n-- Globex's service in {ACME}");
        let refused = intrude(&host, &globex_service, intruder_events).await?;

        println!("\n-- each customer's orders, through the shared host");
        let mut ledgers: [Vec<(String, u64)>; 2] = [Vec::new(), Vec::new()];
        for order in 1..=ORDERS {
            for ((name, realm, _, service, _), ledger) in tenants.iter().zip(&mut ledgers) {
                let reply = service.call(LEDGER, &json!({ "order": order })).await?;
                let (whose, entry) = (
                    reply["ledger"].as_str().unwrap_or("?").to_string(),
                    reply["entry"].as_u64().unwrap_or(0),
                );
                service
                    .publish(TOPIC, &json!({ "tenant": name, "order": order }))
                    .await?;
                println!(
                    "[{realm:<14}] {name:<6} order {order}: {LEDGER} -> entry {entry} of \
                     {whose}'s ledger; published {TOPIC}"
                );
                ledger.push((whose, entry));
            }
        }

        let mut report = Vec::new();
        for ((name, realm, service, _, on_host), (orders, ledger)) in tenants.into_iter().zip(
            [&mut acme_orders, &mut globex_orders]
                .into_iter()
                .zip(ledgers),
        ) {
            let mut events = Vec::new();
            while events.len() < ORDERS as usize {
                let event = tokio::time::timeout(WAIT, orders.next())
                    .await?
                    .ok_or("the host stopped")?;
                let order: Value = event.json()?;
                events.push((
                    order["tenant"].as_str().unwrap_or("?").to_string(),
                    order["order"].as_u64().unwrap_or(0),
                    event.publisher,
                ));
            }
            // Anything more already queued would be a leak: record it, so the check catches it.
            while let Some(event) = orders.try_next() {
                let order: Value = event.json()?;
                events.push((
                    order["tenant"].as_str().unwrap_or("?").to_string(),
                    order["order"].as_u64().unwrap_or(0),
                    event.publisher,
                ));
            }
            let stats = on_host.stats().await;
            let from: Vec<String> = events
                .iter()
                .map(|(tenant, order, publisher)| {
                    let who = if *publisher == service {
                        ""
                    } else {
                        " (NOT its service)"
                    };
                    format!("{tenant} #{order}{who}")
                })
                .collect();
            println!(
                "[{realm:<14}] host heard {}; members {}, denied {}",
                from.join(", "),
                stats.members,
                stats.denied
            );
            report.push(Tenant {
                name,
                realm,
                service,
                events,
                ledger,
                members: stats.members,
            });
        }
        let globex = report.pop().ok_or("no report")?;
        let acme = report.pop().ok_or("no report")?;
        Ok::<_, Box<dyn std::error::Error>>(Summary {
            tenants: [acme, globex],
            refused,
        })
    }
    .await;

    for node in [&acme_service, &globex_service, &host] {
        node.shutdown().await;
    }
    let summary = outcome?;
    summary.check()?;
    println!(
        "\nisolation held: each tenant's {ORDERS} orders and ledger calls stayed in its realm; \
         {} cross-tenant attempts refused",
        summary.refused.len()
    );
    Ok(summary)
}

/// Globex's service acts in Acme's realm; every attempt must be refused. Returns each attempt
/// and its error code.
async fn intrude(
    host: &Node,
    service: &Node,
    mut events: weft::PeerEvents,
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let mut refused = Vec::new();
    let mut refuse = |what: &str, code: &str| {
        println!("[{ACME:<14}] globex {what:<26} refused [{code}]");
        refused.push((what.to_string(), code.to_string()));
    };

    // The host checks the chain Globex's service presents for acme.shop, and does not admit it.
    let prefix = format!("{ACME}=");
    let admission = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(PeerEvent::Denied {
                    did, realm, code, ..
                }) if did == host.did() && realm.starts_with(&prefix) => {
                    return Ok(code);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err("the node stopped");
                }
            }
        }
    })
    .await??;
    refuse("joining (by the host)", &admission);

    // Its own node checks each action before sending anything: its chain is rooted at Globex,
    // not at acme.shop's owner.
    let acme = realm(service, ACME)?;
    match acme
        .publish(TOPIC, &json!({ "tenant": "globex", "order": 666 }))
        .await
    {
        Err(Error::Publish(PublishError::Unauthorized(e))) => {
            refuse("publish orders.placed", e.code())
        }
        other => return Err(format!("isolation violated: publish in {ACME}: {other:?}").into()),
    }
    match acme.subscribe("orders.*").await {
        Err(Error::Subscribe(SubscribeError::Unauthorized(e))) => {
            refuse("subscribe orders.*", e.code())
        }
        other => {
            return Err(format!("isolation violated: subscribe in {ACME}: {other:?}").into());
        }
    }
    match acme.call(LEDGER, &json!({ "order": 666 })).await {
        Err(Error::Call(e @ CallError::Unauthorized(_))) => refuse("call ledger.append", e.code()),
        other => return Err(format!("isolation violated: call in {ACME}: {other:?}").into()),
    }
    // Nor can it pose as Acme's ledger to catch Acme's calls.
    match acme
        .advertise(LEDGER, |_, _| async { Ok(json!({ "ledger": "globex" })) })
        .await
    {
        Err(Error::Advertise(AdvertiseError::Unauthorized(e))) => {
            refuse("advertise ledger.append", e.code())
        }
        other => {
            return Err(format!("isolation violated: advertise in {ACME}: {other:?}").into());
        }
    }
    Ok(refused)
}

impl Summary {
    /// Isolation held: each tenant's host subscription got exactly its own orders, from its own
    /// service; each tenant's calls reached its own ledger; the host admitted only the tenant's
    /// service; every cross-tenant attempt was refused as `unauthorized`.
    fn check(&self) -> Result<(), String> {
        for tenant in &self.tenants {
            let expected: Vec<(String, u64, Did)> = (1..=ORDERS)
                .map(|order| (tenant.name.to_string(), order, tenant.service))
                .collect();
            if tenant.events != expected {
                return Err(format!(
                    "isolation violated: the host's {} subscription got {:?}",
                    tenant.realm, tenant.events
                ));
            }
            let expected: Vec<(String, u64)> = (1..=ORDERS)
                .map(|entry| (tenant.name.to_string(), entry))
                .collect();
            if tenant.ledger != expected {
                return Err(format!(
                    "isolation violated: {}'s ledger calls got {:?}",
                    tenant.name, tenant.ledger
                ));
            }
            if tenant.members != 1 {
                return Err(format!(
                    "isolation violated: the host admitted {} peers to {}",
                    tenant.members, tenant.realm
                ));
            }
        }
        if self.refused.len() != 5 || self.refused.iter().any(|(_, code)| code != "unauthorized") {
            return Err(format!("cross-tenant attempts: {:?}", self.refused));
        }
        Ok(())
    }
}
