//! `GET /v1/status`: what this node is, knows and does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::AppState;

/// Peers (with tags and addresses), realms (members, counters, local subscriptions and
/// procedures), and the DHT.
pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let node = &state.node;
    let peers: Vec<Value> = node
        .peers()
        .await
        .into_iter()
        .map(|peer| {
            let tags: Map<String, Value> = peer
                .tags
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            json!({
                "did": peer.did.to_string(),
                "agent": peer.agent,
                "addr": peer.addr,
                "tags": tags,
            })
        })
        .collect();
    // Each answer is an actor round trip: ask every realm at once.
    let handles = node.realms();
    let answers = futures::future::join_all(handles.iter().map(|realm| async move {
        futures::join!(
            realm.stats(),
            realm.local_subscriptions(),
            realm.local_procedures()
        )
    }))
    .await;
    let mut realms = Vec::new();
    for (realm, (stats, subscriptions, procedures)) in handles.iter().zip(answers) {
        let subscriptions: Vec<String> = subscriptions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        let procedures: Vec<String> = procedures.iter().map(|p| p.as_str().to_owned()).collect();
        realms.push(json!({
            "name": realm.realm().name().as_str(),
            "owner": realm.realm().owner().map(ToString::to_string),
            "members": stats.members,
            "subscriptions": subscriptions,
            "procedures": procedures,
            "remote_subscriptions": stats.remote_subscriptions,
            "published": stats.published,
            "delivered": stats.delivered,
            "dropped_slow_subscriber": stats.dropped_slow_subscriber,
            "dropped_slow_peer": stats.dropped_slow_peer,
            "denied": stats.denied,
            "duplicates": stats.duplicates,
        }));
    }
    let dht = node.dht_stats().await;
    let nat = node.nat_status().await.ok();
    Json(json!({
        "did": node.did().to_string(),
                "listen": node
            .current_listen_addrs()
            .await
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        "peers": peers,
        "realms": realms,
        "dht": {
            "routing_table": dht.routing_table,
            "connected_peers": dht.connected_peers,
            "provided_keys": dht.provided_keys,
            "queries": dht.queries,
            "failed_queries": dht.failed_queries,
            "buckets": dht.buckets,
            "records_stored": dht.records_stored,
            "dials": dht.dials,
        },
        "nat": nat,
    }))
}

/// `GET /v1/dht`: the node's DHT in figures, as `weft dht stats` prints them.
pub(crate) async fn dht(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!(weft::DhtFigures::from(&state.node.dht_stats().await)))
}
