//! The HTTP surface, driven by a real HTTP client: health, status, metrics, and the gateway's
//! publish, call and subscribe (SSE) in an owned realm, with good and bad tokens and bodies.
//!
//! The cast: the realm's `owner`; a `gateway` node serving HTTP; a `service` node on the mesh
//! (subscribed to `orders.*`, providing `orders.get`); and a `client` that speaks only HTTP. The
//! owner delegates to the client, and the client delegates to the gateway: the token it sends
//! as `Authorization: Bearer`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use weft::{Builder, Chain, Did, HandlerError, Keypair, Node, Token};
use weft_http::{HttpConfig, HttpServer};
use weft_integration_tests::{next_event, within};

const REALM: &str = "io.acme";

fn grant(issuer: &Keypair, audience: Did, caps: &[(&str, &str)], proof: Option<&Token>) -> Token {
    let mut builder = Builder::new(issuer, audience).expires_at(4_000_000_000);
    for (resource, ability) in caps {
        builder = builder.claim(*resource, *ability);
    }
    if let Some(proof) = proof {
        builder = builder.proof(*proof.cid());
    }
    builder.build().unwrap()
}

struct Mesh {
    owner: Keypair,
    client: Keypair,
    gateway: Arc<Node>,
    service: Node,
    http: HttpServer,
    base: String,
    /// The owner's grant to the client: the proof of every client token.
    client_grant: Token,
}

impl Mesh {
    async fn start() -> Self {
        let metrics = weft_http::install_metrics().unwrap();
        let owner = Keypair::generate().unwrap();
        let (kg, ks, client) = (
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
        );
        // The gateway itself may only join: whatever it does for clients, it does under theirs.
        let gateway = Node::builder()
            .key(kg.clone())
            .realm(REALM, owner.did())
            .ucan(
                REALM,
                Chain::new(
                    grant(&owner, kg.did(), &[("weft://io.acme", "realm/join")], None),
                    [],
                ),
            )
            .tag("role", "gateway")
            .start()
            .await
            .unwrap();
        let service_caps = [
            ("weft://io.acme", "realm/join"),
            ("weft://io.acme/orders.**", "msg/*"),
            ("weft://io.acme/orders.**", "rpc/*"),
        ];
        let service = Node::builder()
            .key(ks.clone())
            .bootstrap(gateway.listen_addrs()[0].to_string())
            .realm(REALM, owner.did())
            .ucan(
                REALM,
                Chain::new(grant(&owner, ks.did(), &service_caps, None), []),
            )
            .tag("role", "service")
            .start()
            .await
            .unwrap();
        within(
            "the service joins",
            gateway.realm(REALM).unwrap().wait_for_members(1),
        )
        .await
        .unwrap();
        let client_grant = grant(
            &owner,
            client.did(),
            &[
                ("weft://io.acme/orders.*", "msg/publish"),
                ("weft://io.acme/orders.*", "msg/subscribe"),
                ("weft://io.acme/orders.*", "rpc/call"),
            ],
            None,
        );
        let gateway = Arc::new(gateway);
        let http = HttpServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            gateway.clone(),
            HttpConfig {
                metrics: Some(metrics),
                require_peers: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let base = format!("http://{}", http.local_addr());
        Self {
            owner,
            client,
            gateway,
            service,
            http,
            base,
            client_grant,
        }
    }

    /// The client's delegation to the gateway of `caps` (a subset of its own), signed for one
    /// request: a nonce and a two-minute life, as the gateway requires.
    fn bearer(&self, caps: &[(&str, &str)]) -> Token {
        let caps: Vec<(String, String)> = caps
            .iter()
            .map(|(r, a)| ((*r).to_owned(), (*a).to_owned()))
            .collect();
        self.sign(&caps)
    }

    fn sign(&self, caps: &[(String, String)]) -> Token {
        let mut builder = Builder::new(&self.client, self.gateway.did())
            .expires_at(soon(120))
            .nonce(fresh_nonce());
        for (resource, ability) in caps {
            builder = builder.claim(resource.as_str(), ability.as_str());
        }
        builder.proof(*self.client_grant.cid()).build().unwrap()
    }

    /// A fresh token with the capabilities of `template`: each request signs its own.
    fn resign(&self, template: &Token) -> Token {
        let caps: Vec<(String, String)> = template
            .capabilities()
            .iter()
            .map(|c| (c.resource.clone(), c.ability.clone()))
            .collect();
        self.sign(&caps)
    }

    fn post(&self, path: &str, token: Option<&Token>, body: &str) -> reqwest::RequestBuilder {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request
                .bearer_auth(self.resign(token).as_str())
                .header("ucans", self.client_grant.as_str());
        }
        request
    }

    /// A publication to `orders.placed` through the gateway at `base` under `token` exactly as
    /// given (not re-signed), with the client's grant as its proof.
    fn publish_with(&self, base: &str, token: &Token) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{base}/v1/realms/io.acme/publish/orders.placed"))
            .header("content-type", "application/json")
            .bearer_auth(token.as_str())
            .header("ucans", self.client_grant.as_str())
            .body("{}")
    }

    async fn stop(self) {
        self.http.shutdown().await;
        self.service.shutdown().await;
        self.gateway.shutdown().await;
    }
}

/// Unix seconds, `seconds` from now.
fn soon(seconds: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + seconds
}

/// A nonce never used before in this process.
fn fresh_nonce() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "n{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_the_gateway_is_authorized_by_the_clients_delegation() {
    let mesh = Mesh::start().await;
    let service_realm = mesh.service.realm(REALM).unwrap();
    let mut orders = service_realm.subscribe("orders.*").await.unwrap();
    within(
        "the gateway learns of the subscription",
        mesh.gateway
            .realm(REALM)
            .unwrap()
            .wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    let publish = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);

    let response = within(
        "publish",
        mesh.post(
            "/v1/realms/io.acme/publish/orders.placed",
            Some(&publish),
            r#"{"id":7}"#,
        )
        .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let event = next_event(&mut orders).await;
    assert_eq!(event.topic.as_str(), "orders.placed");
    assert_eq!(event.json::<Value>().unwrap(), json!({"id": 7}));
    assert_eq!(
        event.publisher,
        mesh.gateway.did(),
        "the gateway is the actor"
    );

    // No token: 401, with the scheme named.
    let response = mesh
        .post("/v1/realms/io.acme/publish/orders.placed", None, "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(json_of(response).await["error"], "unauthorized");

    // Garbage, and a token that is not delegated to the gateway: 401 with the UCAN code.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/realms/io.acme/publish/orders.placed",
            mesh.base
        ))
        .bearer_auth("not.a.jwt")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(json_of(response).await["error"], "unauthorized");
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/realms/io.acme/publish/orders.placed",
            mesh.base
        ))
        .bearer_auth(mesh.client_grant.as_str())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await["error"], "wrongAudience");

    // A missing proof: the chain cannot be followed to the owner. Even for a leaf whose chain the
    // gateway verified before: receivers need the proofs too.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/realms/io.acme/publish/orders.placed",
            mesh.base
        ))
        .bearer_auth(publish.as_str())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await["error"], "incorrectProofs");
    let unproven = Builder::new(&mesh.client, mesh.gateway.did())
        .expires_at(4_000_000_000)
        .nonce("unproven")
        .claim("weft://io.acme/orders.*", "msg/publish")
        .proof(*mesh.client_grant.cid())
        .build()
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/realms/io.acme/publish/orders.placed",
            mesh.base
        ))
        .bearer_auth(unproven.as_str())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Valid, but not for this topic: 403. Bad JSON: 400. Unknown realm: 404. Bad topic: 400.
    let response = mesh
        .post(
            "/v1/realms/io.acme/publish/billing.paid",
            Some(&publish),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(response).await["error"], "unauthorized");
    let response = mesh
        .post(
            "/v1/realms/io.acme/publish/orders.placed",
            Some(&publish),
            "{not json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(response).await["error"], "badRequest");
    let response = mesh
        .post(
            "/v1/realms/io.other/publish/orders.placed",
            Some(&publish),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = mesh
        .post("/v1/realms/io.acme/publish/orders..x", Some(&publish), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The receiver checks the chain itself: once the service revokes the client's grant, the
    // gateway (which has not) still sends, and the service drops it.
    let second_grant = Builder::new(&mesh.owner, mesh.client.did())
        .expires_at(4_000_000_000)
        .nonce("second")
        .claim("weft://io.acme/orders.marker", "msg/publish")
        .build()
        .unwrap();
    let marker = Builder::new(&mesh.client, mesh.gateway.did())
        .expires_at(soon(120))
        .nonce(fresh_nonce())
        .claim("weft://io.acme/orders.marker", "msg/publish")
        .proof(*second_grant.cid())
        .build()
        .unwrap();
    mesh.service.revoke(*mesh.client_grant.cid());
    let response = mesh
        .post(
            "/v1/realms/io.acme/publish/orders.placed",
            Some(&publish),
            r#"{"id":8}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // A publication through another, unrevoked chain follows it on the same stream, in order:
    // once it arrives, #8 has been judged, and had it been delivered it would come first.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/realms/io.acme/publish/orders.marker",
            mesh.base
        ))
        .bearer_auth(marker.as_str())
        .header("ucans", second_grant.as_str())
        .body("\"marker\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let next = next_event(&mut orders).await;
    assert_eq!(next.topic.as_str(), "orders.marker");
    assert_eq!(service_realm.stats().await.denied, 1);
    drop(orders);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_the_gateway_map_every_outcome_to_a_status() {
    let mesh = Mesh::start().await;
    let service_realm = mesh.service.realm(REALM).unwrap();
    let _get = service_realm
        .advertise("orders.get", |ctx, args: Value| async move {
            Ok(json!({ "id": args["id"], "caller": ctx.caller.to_string() }))
        })
        .await
        .unwrap();
    let _fail = service_realm
        .advertise("orders.fail", |_ctx, _args: Value| async move {
            Err::<Value, _>(HandlerError::new("out_of_stock", "no more widgets"))
        })
        .await
        .unwrap();
    let _slow = service_realm
        .advertise("orders.slow", |_ctx, _args: Value| async move {
            std::future::pending::<()>().await;
            Ok(Value::Null)
        })
        .await
        .unwrap();
    let gateway_realm = mesh.gateway.realm(REALM).unwrap();
    for procedure in ["orders.get", "orders.fail", "orders.slow"] {
        within(
            "the gateway learns of the provider",
            gateway_realm.wait_for_providers(procedure, 1),
        )
        .await
        .unwrap();
    }
    let call = mesh.bearer(&[("weft://io.acme/orders.*", "rpc/call")]);

    let response = mesh
        .post(
            "/v1/realms/io.acme/call/orders.get",
            Some(&call),
            r#"{"id":7}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(response).await,
        json!({"id": 7, "caller": mesh.gateway.did().to_string()})
    );

    let response = mesh
        .post("/v1/realms/io.acme/call/orders.fail", Some(&call), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = json_of(response).await;
    assert_eq!(
        (body["error"].as_str(), body["code"].as_str()),
        (Some("remote"), Some("out_of_stock"))
    );

    let response = mesh
        .post(
            "/v1/realms/io.acme/call/orders.slow?timeout=200ms",
            Some(&call),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);

    let response = mesh
        .post(
            "/v1/realms/io.acme/call/orders.missing?timeout=500ms",
            Some(&call),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    for bad in [
        "/v1/realms/io.acme/call/orders.get?timeout=soon",
        "/v1/realms/io.acme/call/orders.get?strategy=fastest",
        "/v1/realms/io.acme/call/orders.get?retries=3",
    ] {
        let response = mesh.post(bad, Some(&call), "{}").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let response = mesh
        .post("/v1/realms/io.acme/call/orders.get", Some(&call), "[1,")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The client may only publish: calling is forbidden, and the handler never runs.
    let publish_only = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    let response = mesh
        .post(
            "/v1/realms/io.acme/call/orders.get",
            Some(&publish_only),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // An over-large body is refused before it is read.
    let big = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let response = mesh
        .post("/v1/realms/io.acme/call/orders.get", Some(&call), &big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(response).await["error"], "tooLarge");
    // A path that is not UTF-8 once decoded: a JSON 400 as well.
    let response = mesh
        .post("/v1/realms/io.acme/call/orders.%FF", Some(&call), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(response).await["error"], "badRequest");
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_streams_server_sent_events() {
    let mesh = Mesh::start().await;
    let token = mesh.bearer(&[("weft://io.acme/orders.*", "msg/subscribe")]);

    // A bad token is refused before any stream starts.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/realms/io.acme/subscribe/orders.*",
            mesh.base
        ))
        .bearer_auth("x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Beyond the grant: orders.** contains more than orders.*.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/realms/io.acme/subscribe/orders.**",
            mesh.base
        ))
        .bearer_auth(token.as_str())
        .header("ucans", mesh.client_grant.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/realms/io.acme/subscribe/orders.*",
            mesh.base
        ))
        .bearer_auth(token.as_str())
        .header("ucans", mesh.client_grant.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut read_until = async |needle: &str, text: &mut String| {
        while !text.contains(needle) {
            let chunk = within("an SSE chunk", body.next()).await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until(": ready", &mut text).await;

    // The service (a publisher elsewhere in the mesh) routes to it: the subscription travelled
    // with the client's chain, and the service checked it.
    let service_realm = mesh.service.realm(REALM).unwrap();
    within(
        "the service learns of the gateway's subscription",
        service_realm.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    service_realm
        .publish("orders.placed", &json!({"id": 9}))
        .await
        .unwrap();
    read_until("}\n\n", &mut text).await;
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        event,
        json!({"topic": "orders.placed", "payload": {"id": 9}, "publisher": mesh.service.did().to_string()})
    );
    // Stopping the server ends open streams rather than waiting for them forever.
    within("shutdown with a stream open", mesh.stop()).await;
    loop {
        match within("the stream's end", body.next()).await {
            None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_status_and_metrics_describe_the_node() {
    let mesh = Mesh::start().await;
    let service_realm = mesh.service.realm(REALM).unwrap();
    let _get = service_realm
        .advertise(
            "orders.get",
            |_ctx, _args: Value| async move { Ok(json!(1)) },
        )
        .await
        .unwrap();
    // The gateway may only join: it subscribes under a client's delegation.
    let delegated = Chain::new(
        mesh.bearer(&[("weft://io.acme/orders.*", "msg/subscribe")]),
        [mesh.client_grant.clone()],
    );
    let _sub = mesh
        .gateway
        .realm(REALM)
        .unwrap()
        .subscribe_with_ucan("orders.*", Some(delegated))
        .await
        .unwrap();
    within(
        "the gateway learns of the provider",
        mesh.gateway
            .realm(REALM)
            .unwrap()
            .wait_for_providers("orders.get", 1),
    )
    .await
    .unwrap();
    let call = mesh.bearer(&[("weft://io.acme/orders.*", "rpc/call")]);
    let response = mesh
        .post("/v1/realms/io.acme/call/orders.get", Some(&call), "{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let health = reqwest::get(format!("{}/health", mesh.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let health = json_of(health).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["peers"], 1);
    assert_eq!(health["members"], 1);
    assert_eq!(health["realms"], 1);
    assert!(health["routing_table"].as_u64().unwrap() >= 1, "{health}");

    let status = json_of(
        reqwest::get(format!("{}/v1/status", mesh.base))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["did"], mesh.gateway.did().to_string());
    assert_eq!(
        status["listen"][0],
        mesh.gateway.listen_addrs()[0].to_string()
    );
    let peer = &status["peers"][0];
    assert_eq!(peer["did"], mesh.service.did().to_string());
    assert_eq!(peer["tags"]["role"], "service");
    assert!(
        peer["addr"].as_str().unwrap().contains("127.0.0.1"),
        "{peer}"
    );
    let realm = &status["realms"][0];
    assert_eq!(realm["name"], REALM);
    assert_eq!(realm["owner"], mesh.owner.did().to_string());
    assert_eq!(realm["members"], 1);
    assert_eq!(realm["subscriptions"], json!(["orders.*"]));
    assert_eq!(realm["procedures"], json!([]));
    assert!(status["dht"]["queries"].as_u64().unwrap() >= 1, "{status}");

    let response = reqwest::get(format!("{}/metrics", mesh.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "weft_calls_total{realm=\"io.acme\",outcome=\"ok\"}",
        "weft_call_duration_seconds_bucket{realm=\"io.acme\",le=",
        "weft_ucan_checks_total{ability=\"rpc/call\",outcome=\"allowed\"}",
        "weft_connected_peers",
        "weft_bytes_sent_total",
        "weft_dht_queries_total{kind=\"provide\"}",
        "weft_realm_members{realm=\"io.acme\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    promtool_check(&text);

    // Unknown endpoints are JSON 404s; a wrong method a JSON 405.
    let response = reqwest::get(format!("{}/v2/nothing", mesh.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(response).await["error"], "notFound");
    let response = reqwest::Client::new()
        .delete(format!("{}/health", mesh.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json_of(response).await["error"], "methodNotAllowed");

    // A stopped node is not healthy.
    mesh.service.shutdown().await;
    mesh.gateway.shutdown().await;
    let health = reqwest::get(format!("{}/health", mesh.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    mesh.http.shutdown().await;
}

/// `promtool check metrics` on the exposition, where promtool is installed (`.ci/run` installs
/// it); elsewhere says why it is skipped.
fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        // CI installs promtool and sets this, so there the check cannot be skipped by accident.
        assert!(
            std::env::var_os("WEFT_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (WEFT_REQUIRE_PROMTOOL is set) but cannot be run"
        );
        eprintln!("skipping promtool check: promtool is not installed (.ci/run installs it)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A gateway run under the realm owner's own key still verifies every token it is handed, and
/// acts for a client under the client's delegation, never with the owner's authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_keyed_gateway_verifies_every_token() {
    let metrics = weft_http::install_metrics().unwrap();
    let owner = Keypair::generate().unwrap();
    let client = Keypair::generate().unwrap();
    let gateway = Arc::new(
        Node::builder()
            .key(owner.clone())
            .realm(REALM, owner.did())
            .start()
            .await
            .unwrap(),
    );
    let http = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        gateway.clone(),
        HttpConfig {
            metrics: Some(metrics),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", http.local_addr());
    let client_grant = grant(
        &owner,
        client.did(),
        &[
            ("weft://io.acme/orders.*", "msg/publish"),
            ("weft://io.acme/orders.*", "msg/subscribe"),
        ],
        None,
    );
    let bearer = Builder::new(&client, owner.did())
        .expires_at(soon(120))
        .nonce(fresh_nonce())
        .claim("weft://io.acme/orders.*", "msg/publish")
        .claim("weft://io.acme/orders.*", "msg/subscribe")
        .proof(*client_grant.cid())
        .build()
        .unwrap();
    let mut corrupted = bearer.as_str().to_owned().into_bytes();
    let at = corrupted.len() - 10; // inside the signature
    corrupted[at] = if corrupted[at] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(corrupted).unwrap();
    let request = |method: reqwest::Method, path: &str, token: &str| {
        reqwest::Client::new()
            .request(method, format!("{base}{path}"))
            .header("content-type", "application/json")
            .bearer_auth(token)
            .header("ucans", client_grant.as_str())
            .body("{}")
    };
    let publish = "/v1/realms/io.acme/publish/orders.placed";

    let response = request(reqwest::Method::POST, publish, &corrupted)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a corrupted signature"
    );
    let response = request(reqwest::Method::POST, publish, bearer.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "within the client's grant"
    );
    let response = request(
        reqwest::Method::POST,
        "/v1/realms/io.acme/publish/billing.refund",
        bearer.as_str(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "beyond the client's grant"
    );
    let response = request(
        reqwest::Method::GET,
        "/v1/realms/io.acme/subscribe/**",
        bearer.as_str(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a stream beyond the client's grant"
    );

    http.shutdown().await;
    gateway.shutdown().await;
}

/// An SSE stream lasts only as long as the client's token: once it expires, the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_stream_ends_when_the_clients_token_expires() {
    let metrics = weft_http::install_metrics().unwrap();
    let owner = Keypair::generate().unwrap();
    let (kg, client) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let gateway = Arc::new(
        Node::builder()
            .key(kg.clone())
            .realm(REALM, owner.did())
            .ucan(
                REALM,
                Chain::new(
                    grant(&owner, kg.did(), &[("weft://io.acme", "realm/join")], None),
                    [],
                ),
            )
            .clock_leeway(std::time::Duration::ZERO)
            .start()
            .await
            .unwrap(),
    );
    let http = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        gateway.clone(),
        HttpConfig {
            metrics: Some(metrics),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let caps = [("weft://io.acme/orders.*", "msg/subscribe")];
    let client_grant = grant(&owner, client.did(), &caps, None);
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let bearer = Builder::new(&client, kg.did())
        .expires_at(soon)
        .nonce(fresh_nonce())
        .claim(caps[0].0, caps[0].1)
        .proof(*client_grant.cid())
        .build()
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v1/realms/io.acme/subscribe/orders.*",
            http.local_addr()
        ))
        .bearer_auth(bearer.as_str())
        .header("ucans", client_grant.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    within("the stream ends with the token", async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await;
    assert!(text.contains(": ready"), "{text}");

    http.shutdown().await;
    gateway.shutdown().await;
}

/// The client's token travels on with the publication to every member of the realm; replayed at
/// the gateway, by anyone, it is refused. Each request needs a fresh, short-lived token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_was_used_once_is_refused_again() {
    let mesh = Mesh::start().await;
    let send = |token: &Token| mesh.publish_with(&mesh.base, token).send();
    let once = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    assert_eq!(send(&once).await.unwrap().status(), StatusCode::ACCEPTED);
    // What a member saw in the frame, replayed: refused.
    let replayed = send(&once).await.unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(replayed).await["error"], "replay");
    // A long-lived token without a nonce is a bearer credential: refused.
    let reusable = grant(
        &mesh.client,
        mesh.gateway.did(),
        &[("weft://io.acme/orders.*", "msg/publish")],
        Some(&mesh.client_grant),
    );
    let response = send(&reusable).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await["error"], "replay");
    // A fresh one works.
    let fresh = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    assert_eq!(send(&fresh).await.unwrap().status(), StatusCode::ACCEPTED);
    mesh.stop().await;
}

/// A gateway restarted with its replay journal still refuses what it accepted before the
/// restart; one restarted without it would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_remembers_the_tokens_it_accepted() {
    let mesh = Mesh::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("replay.log");
    let serve = |replay_journal: Option<std::path::PathBuf>| {
        HttpServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            mesh.gateway.clone(),
            HttpConfig {
                replay_journal,
                ..Default::default()
            },
        )
    };
    let send = |base: String, token: Token| mesh.publish_with(&base, &token).send();
    let once = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);

    let first = serve(Some(journal.clone())).await.unwrap();
    let base = format!("http://{}", first.local_addr());
    assert_eq!(
        send(base, once.clone()).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    first.shutdown().await;

    let restarted = serve(Some(journal.clone())).await.unwrap();
    let base = format!("http://{}", restarted.local_addr());
    let replayed = send(base.clone(), once.clone()).await.unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(replayed).await["error"], "replay");
    let fresh = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    assert_eq!(
        send(base, fresh).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    restarted.shutdown().await;

    // The control: without the journal a restart forgets, which is what the journal is for.
    let forgetful = serve(None).await.unwrap();
    let base = format!("http://{}", forgetful.local_addr());
    assert_eq!(
        send(base, once).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    forgetful.shutdown().await;

    // A journal that cannot be opened stops the server from starting, with a reason.
    let unwritable = dir.path().join("missing").join("replay.log");
    let error = serve(Some(unwritable)).await.unwrap_err().to_string();
    assert!(error.contains("replay journal"), "{error}");
    mesh.stop().await;
}

/// A revocation record posted to a node applies there (and travels on); it needs no token, since
/// it proves itself, and one that does not is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_records_are_posted_and_checked() {
    let mesh = Mesh::start().await;
    let url = format!("{}/v1/realms/io.acme/revocations", mesh.base);
    let post = |body: String| reqwest::Client::new().post(&url).body(body).send();
    let record = weft::ucan::Revocation::issue(&mesh.owner, &mesh.client_grant);
    let response = post(record.to_json()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = json_of(response).await;
    assert_eq!(body["status"], "applied");
    assert_eq!(body["revoke"], mesh.client_grant.cid().to_string());
    let again = json_of(post(record.to_json()).await.unwrap()).await;
    assert_eq!(again["status"], "known");
    // The client's chain rests on the revoked grant: refused at the gateway now.
    let response = mesh
        .post(
            "/v1/realms/io.acme/publish/orders.placed",
            Some(&mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")])),
            "{}",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await["error"], "revoked");

    let response = post("not a record".into()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Signed by the client, claimed to be the owner's, about a token not revoked yet.
    let other = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    let forged = weft::ucan::Revocation::issue(&mesh.client, &other)
        .to_json()
        .replace(
            &mesh.client.did().to_string(),
            &mesh.owner.did().to_string(),
        );
    let response = post(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(response).await["error"], "badSignature");
    mesh.stop().await;
}

/// Past its cap on event streams the gateway answers 503 `limit`; a stream that ends gives its
/// place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_the_cap_are_refused_with_503() {
    let gateway = Arc::new(Node::builder().open_realm("dev").start().await.unwrap());
    let http = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        gateway.clone(),
        HttpConfig {
            max_streams: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!(
        "http://{}/v1/realms/dev/subscribe/orders.*",
        http.local_addr()
    );
    let client = reqwest::Client::new();
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let mut first = first.bytes_stream();
    within("the first stream is ready", first.next()).await;
    let second = client.get(&url).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(second).await["error"], "limit");

    // The first client goes; the gateway notices when it next writes to it.
    drop(first);
    let dev = gateway.realm("dev").unwrap();
    within("a place is free again", async {
        loop {
            dev.publish("orders.placed", &serde_json::json!(1))
                .await
                .unwrap();
            let third = client.get(&url).send().await.unwrap();
            if third.status() == StatusCode::OK {
                break;
            }
            assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    http.shutdown().await;
    gateway.shutdown().await;
}

/// One address sending chains forged in the owner's name (each a new one, each a signature to
/// check) spends its own share of the gateway's verifications, not everyone's: a client at
/// another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_forging_chains_spends_its_own_budget_not_everyones() {
    let mesh = Mesh::start().await;
    let url = format!("{}/v1/realms/io.acme/publish/orders.placed", mesh.base);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().ok())
            .build()
            .unwrap()
    };
    let forger = from("127.0.0.1");
    let mut refused_after = None;
    for sent in 1..=1_100 {
        let token = Builder::new(&mesh.owner, mesh.gateway.did())
            .expires_at(soon(120))
            .nonce(fresh_nonce())
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        // The same token with one character of its signature changed.
        let (signed, signature) = token.as_str().rsplit_once('.').unwrap();
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        let forged = format!("{signed}.{first}{}", &signature[1..]);
        let response = forger
            .post(&url)
            .header("content-type", "application/json")
            .bearer_auth(forged)
            .body("{}")
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_after = Some(sent);
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused_after = refused_after.expect("the forger is limited");
    // 64 at once and 16 a second for one address, against 1,024 for everyone: limited long
    // before the shared budget would be, however slowly the requests went.
    assert!(
        refused_after < 512,
        "limited after {refused_after} forgeries"
    );
    let bearer = mesh.bearer(&[("weft://io.acme/orders.*", "msg/publish")]);
    let response = from("127.0.0.2")
        .post(&url)
        .header("content-type", "application/json")
        .bearer_auth(mesh.resign(&bearer).as_str())
        .header("ucans", mesh.client_grant.as_str())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    mesh.stop().await;
}
