//! `GET /health`: is this node of use?

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::AppState;

/// 200 when ready, 503 when not: the node has stopped, or it needs peers (it was given bootstrap
/// peers) and no peer is a member of any of its realms (connected is not enough: a node every
/// peer refused is of no use).
pub(crate) async fn health(
    State(state): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let node = &state.node;
    // Each answer is an actor round trip: ask them all at once.
    let realms = node.realms();
    let (peers, dht, stats) = futures::join!(
        node.peers(),
        node.dht_stats(),
        futures::future::join_all(realms.iter().map(|realm| realm.stats())),
    );
    let peers = peers.len();
    let members: u64 = stats.iter().map(|s| s.members).sum();
    let running = node.is_running();
    let ready = running && (members > 0 || !state.config.require_peers);
    let status = if !running {
        "stopped"
    } else if ready {
        "ok"
    } else {
        "waiting_for_peers"
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": status,
            "did": node.did().to_string(),
                        "peers": peers,
            "members": members,
            "realms": node.realms().len(),
            "routing_table": dht.routing_table,
        })),
    )
}
