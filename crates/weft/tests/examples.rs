//! Every example runs to completion and shows what it says it shows. Each example file is included
//! as a module; its `run` is the example without `main`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::future::Future;
use std::time::Duration;

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../../../examples/access_node.rs"]
mod access_node;
#[allow(dead_code)]
#[path = "../../../examples/clients.rs"]
mod clients;
#[allow(dead_code)]
#[path = "../../../examples/delegation.rs"]
mod delegation;
#[allow(dead_code)]
#[path = "../../../examples/firehose.rs"]
mod firehose;
#[allow(dead_code)]
#[path = "../../../examples/multitenant.rs"]
mod multitenant;
#[allow(dead_code)]
#[path = "../../../examples/pubsub.rs"]
mod pubsub;
#[allow(dead_code)]
#[path = "../../../examples/rpc.rs"]
mod rpc;

/// Runs an example to completion within 30 s; its summary, or a panic saying why not.
async fn run<T>(
    example: &str,
    run: impl Future<Output = Result<T, Box<dyn std::error::Error>>>,
) -> T {
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(summary)) => summary,
        Ok(Err(e)) => panic!("example {example} failed: {e}"),
        Err(_) => panic!("example {example} did not finish within 30 s"),
    }
}

#[test]
fn delegation_allows_only_what_the_chain_grants() {
    let summary = delegation::run().unwrap();
    assert_eq!(
        summary.calls,
        [
            ("orders.get", Ok(())),
            ("orders.cancel", Err("unauthorized")),
            ("billing.refund", Err("unauthorized")),
        ]
    );
    assert_eq!(summary.widened, "invalidDelegation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_node_without_a_grant_serves_its_client_within_the_clients() {
    let summary = run("access_node", access_node::run()).await;
    assert_eq!(summary.orders, [("orders.placed".to_owned(), true)]);
    assert_eq!(summary.stock["in_stock"], serde_json::json!(true));
    assert_eq!(summary.access_alone, "unauthorized");
    assert_eq!(summary.till_billing, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_delivers_the_orders_and_refuses_billing() {
    let summary = run("pubsub", pubsub::run()).await;
    assert_eq!(summary.received, [(1, true), (2, true), (3, true)]);
    assert_eq!(summary.refused, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firehose_blocks_instead_of_dropping() {
    let summary = run("firehose", firehose::run()).await;
    assert_eq!(summary.received, 20_000);
    assert_eq!(summary.dropped_at_gateway, 0);
    assert_eq!(summary.dropped_at_collector, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_balances_over_both_providers_with_typed_errors() {
    let summary = run("rpc", rpc::run()).await;
    assert_eq!(summary.served_by.len(), 4);
    for instance in ["orders-a", "orders-b"] {
        let served = summary.served_by.iter().filter(|s| *s == instance).count();
        assert_eq!(served, 2, "round robin: {:?}", summary.served_by);
    }
    assert!(
        ["orders-a", "orders-b"].contains(&summary.first.as_str()),
        "{}",
        summary.first
    );
    assert_eq!(summary.bad_arguments, "bad_arguments");
    assert_eq!(summary.missing, "notFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multitenant_keeps_each_tenant_in_its_realm() {
    let summary = run("multitenant", multitenant::run()).await;
    let [acme, globex] = &summary.tenants;
    assert_eq!((acme.name, acme.realm), ("acme", "acme.shop"));
    assert_eq!((globex.name, globex.realm), ("globex", "globex.billing"));
    assert_ne!(acme.service, globex.service);
    for tenant in &summary.tenants {
        // The host's subscription in this realm got exactly this tenant's orders, from its service.
        let expected: Vec<(String, u64, weft::Did)> = (1..=3)
            .map(|order| (tenant.name.to_string(), order, tenant.service))
            .collect();
        assert_eq!(tenant.events, expected, "{}", tenant.realm);
        // Its calls reached its own ledger on the host, and only its service was admitted.
        let expected: Vec<(String, u64)> = (1..=3)
            .map(|entry| (tenant.name.to_string(), entry))
            .collect();
        assert_eq!(tenant.ledger, expected, "{}", tenant.realm);
        assert_eq!(tenant.members, 1, "{}", tenant.realm);
    }
    // Globex's service was refused everything in Acme's realm, with the contract's code.
    let refused: Vec<(&str, &str)> = summary
        .refused
        .iter()
        .map(|(what, code)| (what.as_str(), code.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("joining (by the host)", "unauthorized"),
            ("publish orders.placed", "unauthorized"),
            ("subscribe orders.*", "unauthorized"),
            ("call ledger.append", "unauthorized"),
            ("advertise ledger.append", "unauthorized"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_come_and_go_and_every_call_and_order_gets_through() {
    let summary = run("clients", clients::run()).await;
    assert_eq!(summary.answered, summary.clients);
    assert_eq!(summary.received, summary.clients);
    assert!(
        summary.routing_table <= 1,
        "only node B, never a client: {summary:?}"
    );
}
