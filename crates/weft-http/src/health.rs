//! `GET /health`: is this node of use?

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::AppState;

/// 200 when ready, 503 when not: the node has stopped, or it needs peers (it was given bootstrap
/// peers) and has none.
pub(crate) async fn health(
    State(state): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let node = &state.node;
    let peers = node.peers().await.len();
    let dht = node.dht_stats().await;
    let running = node.is_running();
    let ready = running && (peers > 0 || !state.config.require_peers);
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
            "realms": node.realms().len(),
            "routing_table": dht.routing_table,
        })),
    )
}
