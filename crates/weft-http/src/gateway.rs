//! The gateway: publish, call and subscribe over HTTP, for clients that do not speak QUIC.
//!
//! Authority works as everywhere else in weft (contract §3, `docs/contract.md`). In an owned
//! realm the client sends a UCAN chain whose leaf is delegated **to this node** (audience = the
//! node's DID):
//! `Authorization: Bearer <leaf JWT>`, with the proofs it needs in a `ucans` header
//! (comma-separated JWTs, as in UCAN-as-Bearer). The gateway checks the chain first (401 for
//! credentials that are not acceptable, 403 for a valid chain that does not grant the action),
//! then acts under that chain alone, never its own: the chain travels with the publication, call
//! or subscription, and every receiving node checks it again. In an open realm no token is needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use weft::{Action, CallOptions, Chain, Name, Pattern, RealmHandle, Strategy};

use crate::{ApiError, AppState};

/// Most proofs a request may carry.
const MAX_PROOFS: usize = 32;
/// Longest call timeout a client may ask for.
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// `POST /v1/realms/{realm}/publish/{topic}`: the body (JSON) is published; 202 once it is
/// authorized and handed to subscribers and peers (delivery is at most once, as always).
pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (realm, topic) = path_of(path)?;
    let body = body_of(body)?;
    let handle = realm_handle(&state, &realm)?;
    let name = Name::new(&topic).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    require_json(&body, "the publication")?;
    let chain = credentials(
        &state,
        source.as_ref(),
        &handle,
        &headers,
        Asked::Publish(name.clone()),
    )
    .await?;
    handle
        .publish_bytes_with_ucan(&topic, body, chain)
        .await
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "published", "realm": realm, "topic": topic })),
    )
        .into_response())
}

/// `POST /v1/realms/{realm}/revocations`: the body is a UCAN revocation record (`weft ucan
/// revoke`). A record proves itself (its issuer's signature, and where it counts is decided by
/// the chains it meets), so no token is needed. 202 with `"applied"` (new here: it travels on to
/// the realm's members) or `"known"`.
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(realm): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_of(body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the record is not UTF-8".into()))?;
    let record = weft::ucan::Revocation::parse(text.trim())
        .map_err(|e| ApiError::BadRequest(format!("not a revocation record: {e}")))?;
    let handle = realm_handle(&state, &realm)?;
    if !handle.may_revoke(record.issuer()) {
        return Err(ApiError::Forbidden(format!(
            "{} is neither the realm's owner nor an issuer in any chain this node knows",
            record.issuer()
        )));
    }
    source_budget(&state, source.as_ref())
        .take(unix_seconds())
        .then_some(())
        .ok_or_else(|| ApiError::Busy("too many revocation records lately".into()))?;
    let new = state.node.apply_revocation(&record).map_err(|e| match e {
        weft::Error::Revocation(e) => ApiError::Unauthenticated {
            code: e.code(),
            message: e.to_string(),
        },
        other => ApiError::Unavailable(other.to_string()),
    })?;
    let status = if new { "applied" } else { "known" };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": status, "realm": realm, "revoke": record.revoked().to_string() })),
    )
        .into_response())
}

/// How a call is made: `?timeout=2s&strategy=round_robin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallParams {
    timeout: Option<String>,
    strategy: Option<String>,
}

/// `POST /v1/realms/{realm}/call/{procedure}`: the body is the arguments (JSON); 200 with the
/// result.
pub(crate) async fn call(
    State(state): State<Arc<AppState>>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    params: Result<Query<CallParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (realm, procedure) = path_of(path)?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let body = body_of(body)?;
    let handle = realm_handle(&state, &realm)?;
    let name = Name::new(&procedure).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    require_json(&body, "the arguments")?;
    let mut options = CallOptions::default();
    if let Some(timeout) = &params.timeout {
        options.timeout = parse_timeout(timeout)?;
    }
    if let Some(strategy) = &params.strategy {
        options.strategy = strategy
            .parse::<Strategy>()
            .map_err(|e| ApiError::BadRequest(format!("strategy: {e}")))?;
    }
    options.chain = credentials(
        &state,
        source.as_ref(),
        &handle,
        &headers,
        Asked::Call(name.clone()),
    )
    .await?;
    let result = handle
        .call_bytes(&procedure, body, options)
        .await
        .map_err(ApiError::from)?;
    // JSON handlers return JSON; a raw handler's bytes are passed through as they are.
    let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&result).is_ok() {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], result).into_response())
}

/// `GET /v1/realms/{realm}/subscribe/{pattern}`: Server-Sent Events, one `data:` line of JSON
/// per publication (`{"topic", "payload", "publisher"}`), after a `: ready` comment once the
/// subscription is announced. Closing the request ends the subscription.
pub(crate) async fn subscribe(
    State(state): State<Arc<AppState>>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    let (realm, pattern) = path_of(path)?;
    let handle = realm_handle(&state, &realm)?;
    let parsed = Pattern::new(&pattern).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Each stream holds a subscription and its queue for as long as the client stays: taken
    // before anything else is spent on the request, given back when the stream ends.
    let slot = StreamSlot::take(&state.streams, state.config.max_streams).ok_or_else(|| {
        ApiError::Full(format!(
            "this gateway serves at most {} event streams at once",
            state.config.max_streams
        ))
    })?;
    let chain = credentials(
        &state,
        source.as_ref(),
        &handle,
        &headers,
        Asked::Subscribe(parsed.clone()),
    )
    .await?;
    let subscription = handle
        .subscribe_with_ucan(&pattern, chain)
        .await
        .map_err(ApiError::from)?;
    let ready = futures::stream::once(async { Ok(SseEvent::default().comment("ready")) });
    let events = subscription.map(|event| {
        let payload = serde_json::from_slice::<Value>(&event.payload)
            .unwrap_or_else(|_| json!({ "base64": data_encoding::BASE64.encode(&event.payload) }));
        let data = json!({
            "topic": event.topic.as_str(),
            "payload": payload,
            "publisher": event.publisher.to_string(),
        });
        Ok(SseEvent::default().data(data.to_string()))
    });
    let stream = ready
        .chain(events)
        .take_until(state.stopped())
        .map(move |item| {
            let _held = &slot;
            item
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One open event stream, counted until it is dropped.
struct StreamSlot(Arc<std::sync::atomic::AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(open.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Axum's own rejections answer in plain text; the gateway answers every error in JSON.
fn path_of(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    path.map(|Path(parts)| parts)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

fn realm_handle(state: &AppState, realm: &str) -> Result<RealmHandle, ApiError> {
    state
        .node
        .realm(realm)
        .ok_or_else(|| ApiError::NotFound(format!("realm {realm:?} is not hosted by this node")))
}

fn require_json(body: &[u8], what: &str) -> Result<(), ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| ApiError::BadRequest(format!("{what} is not JSON: {e}")))
}

/// What a request asks to do, owned, so that its check can run on another thread.
enum Asked {
    Publish(Name),
    Call(Name),
    Subscribe(Pattern),
}

impl Asked {
    fn action(&self) -> Action<'_> {
        match self {
            Asked::Publish(topic) => Action::Publish(topic),
            Asked::Call(procedure) => Action::Call(procedure),
            Asked::Subscribe(pattern) => Action::Subscribe(pattern),
        }
    }
}

/// The chain a request acts under (`None` in an open realm), checked for what it asks with this
/// node as the actor. Checking a chain can cost signature verifications, so it runs on the
/// blocking pool: the threads that serve requests (and `/health`) never wait for it.
async fn credentials(
    state: &Arc<AppState>,
    source: Option<&Extension<ConnectInfo<SocketAddr>>>,
    handle: &RealmHandle,
    headers: &HeaderMap,
    asked: Asked,
) -> Result<Option<Chain>, ApiError> {
    if handle.realm().is_open() {
        return Ok(None);
    }
    let budget = source_budget(state, source);
    let (state, handle, headers) = (state.clone(), handle.clone(), headers.clone());
    tokio::task::spawn_blocking(move || {
        check_credentials(&state, &budget, &handle, &headers, asked.action())
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("the credentials check did not finish: {e}")))?
}

/// The verification budget of the request's client address (within the gateway's shared one);
/// the shared one itself when the address is unknown (a router served without connection info).
fn source_budget(
    state: &AppState,
    source: Option<&Extension<ConnectInfo<SocketAddr>>>,
) -> Arc<weft::auth::VerifyBudget> {
    match source {
        Some(Extension(ConnectInfo(addr))) => state
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .of(&addr.ip()),
        None => state.verify_budget.clone(),
    }
}

fn check_credentials(
    state: &AppState,
    budget: &weft::auth::VerifyBudget,
    handle: &RealmHandle,
    headers: &HeaderMap,
    action: Action<'_>,
) -> Result<Option<Chain>, ApiError> {
    let realm = handle.realm();
    if realm.is_open() {
        return Ok(None);
    }
    let me = state.node.did();
    let unauthenticated = |message: String| ApiError::Unauthenticated {
        code: "unauthorized",
        message,
    };
    let leaf = match headers.get(header::AUTHORIZATION) {
        None => {
            return Err(unauthenticated(format!(
                "realm {} needs `Authorization: Bearer <UCAN>` with a token delegated to {me}",
                realm.name()
            )));
        }
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthenticated("the Authorization header is not `Bearer <UCAN>`".into())
            })?,
    };
    let mut proofs = Vec::new();
    for value in headers.get_all("ucans") {
        let value = value
            .to_str()
            .map_err(|_| unauthenticated("the ucans header is not text".into()))?;
        proofs.extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()));
    }
    if proofs.len() > MAX_PROOFS {
        return Err(unauthenticated(format!(
            "{} proofs (at most {MAX_PROOFS})",
            proofs.len()
        )));
    }
    let chain = Chain::parse(leaf, &proofs).map_err(|e| ApiError::Unauthenticated {
        code: e.code(),
        message: e.to_string(),
    })?;
    require_complete(&chain)?;
    handle.authorize_within(&chain, action, budget)?;
    // Only a token that authorizes is remembered: a stranger's garbage must not fill the guard.
    let token = chain.leaf();
    let now = unix_seconds();
    state
        .replay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .accept(
            *token.cid(),
            token.nonce(),
            token.expires_at(),
            now,
            // Remembered as long as the node would accept it: its expiry plus the node's leeway.
            handle.clock_leeway().as_secs(),
        )
        .map_err(|e| ApiError::Unauthenticated {
            code: "replay",
            message: e.to_string(),
        })?;
    Ok(Some(chain))
}

/// The clock, in Unix seconds, as tokens count time.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every proof the chain cites must be in the request. The node may remember a chain it verified
/// before and accept the leaf alone, but only what the request carried travels on: a receiver
/// that has not seen the proofs would refuse what the client was told had succeeded.
fn require_complete(chain: &Chain) -> Result<(), ApiError> {
    let mut cited: Vec<weft::Cid> = chain.leaf().proofs().to_vec();
    let mut seen = std::collections::HashSet::new();
    while let Some(cid) = cited.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let proof = chain
            .proofs()
            .get(&cid)
            .ok_or_else(|| ApiError::Unauthenticated {
                code: "incorrectProofs",
                message: format!(
                    "proof {cid} is cited but not sent (send proofs in the ucans header)"
                ),
            })?;
        cited.extend_from_slice(proof.proofs());
    }
    Ok(())
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a plain number of seconds (as in the CLI and config file).
fn parse_timeout(text: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::BadRequest(format!("timeout {text:?}: expected e.g. 500ms, 2s or 1m"));
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    let timeout = Duration::try_from_secs_f64(seconds).map_err(|_| bad())?;
    if timeout.is_zero() || timeout > MAX_CALL_TIMEOUT {
        return Err(ApiError::BadRequest(format!(
            "timeout {text:?}: must be above 0 and at most {}s",
            MAX_CALL_TIMEOUT.as_secs()
        )));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_are_bounded() {
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_timeout("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_timeout("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("1m").unwrap(), Duration::from_secs(60));
        for bad in [
            "",
            "s",
            "0",
            "2h",
            "-1s",
            "1..5s",
            "99999999999999999999s",
            "301s",
            "NaN",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
