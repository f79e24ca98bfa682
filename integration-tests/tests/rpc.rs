//! RPC across nodes over real QUIC on 127.0.0.1: load balancing, local preference, typed errors,
//! deadlines, concurrency and failover without double execution.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Notify;
use weft::{
    BackoffPolicy, Builder, CallError, CallOptions, Chain, Did, Error, HandlerError, Keypair, Node,
    Strategy, Token,
};
use weft_integration_tests::{mesh, shutdown, within};

/// Advertises `orders.get` on `node`, answering with `id`.
async fn provide(node: &Node, id: u64) -> weft::Registration {
    node.realm("dev")
        .unwrap()
        .advertise(
            "orders.get",
            move |_ctx, _args| async move { Ok(json!(id)) },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_calls_evenly_over_three_providers() {
    let nodes = mesh(4, |b, _| b.open_realm("dev")).await;
    let mut registrations = Vec::new();
    for (i, node) in nodes[1..].iter().enumerate() {
        registrations.push(provide(node, i as u64 + 1).await);
    }
    let caller = nodes[0].realm("dev").unwrap();
    within(
        "3 providers known",
        caller.wait_for_providers("orders.get", 3),
    )
    .await
    .unwrap();

    let mut counts: HashMap<u64, u32> = HashMap::new();
    for _ in 0..100 {
        let who = caller.call("orders.get", &json!({})).await.unwrap();
        *counts.entry(who.as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (provider, n) in &counts {
        assert!(
            (30..=37).contains(n),
            "provider {provider} got {n} of 100 (±10% of 33.3): {counts:?}"
        );
    }
    drop(registrations);
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_first_stays_local() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let _local = provide(&nodes[0], 0).await;
    let caller = nodes[0].realm("dev").unwrap();
    within("members", caller.wait_for_members(1)).await.unwrap();
    let advertised = Instant::now();
    let _remote = provide(&nodes[1], 1).await;
    within(
        "both providers known",
        caller.wait_for_providers("orders.get", 2),
    )
    .await
    .unwrap();
    assert!(
        advertised.elapsed() < Duration::from_secs(1),
        "a new provider is callable within 1 s"
    );
    let local_first = CallOptions::default().strategy(Strategy::LocalFirst);
    for _ in 0..20 {
        assert_eq!(
            caller
                .call_with("orders.get", &json!({}), local_first.clone())
                .await
                .unwrap(),
            json!(0)
        );
    }
    // And the remote one is reachable too.
    let first = CallOptions::default().strategy(Strategy::First);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(caller.call("orders.get", &json!({})).await.unwrap());
    }
    assert!(
        seen.contains(&json!(1)),
        "round robin reaches the remote provider: {seen:?}"
    );
    // `first` is the provider announced first: this node's own, advertised before the remote one.
    assert_eq!(
        caller
            .call_with("orders.get", &json!({}), first)
            .await
            .unwrap(),
        json!(0)
    );
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_procedure_fails_not_found_when_its_timeout_ends() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let _known = provide(&nodes[1], 1).await;
    within(
        "members",
        nodes[0].realm("dev").unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let err = nodes[0]
        .realm("dev")
        .unwrap()
        .call_with(
            "orders.nope",
            &json!({}),
            CallOptions::default().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::NotFound(_))),
        "{err:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_for_a_provider_that_appears_within_its_timeout() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let caller = nodes[0].realm("dev").unwrap();
    within("members", caller.wait_for_members(1)).await.unwrap();
    let options = CallOptions::default().timeout(Duration::from_secs(10));
    let arguments = json!({});
    let call = caller.call_with("orders.get", &arguments, options);
    let (answer, _provider) = tokio::join!(call, async {
        // Advertised after the call has started waiting: it is found and used.
        tokio::task::yield_now().await;
        provide(&nodes[1], 7).await
    });
    assert_eq!(answer.unwrap(), json!(7));
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_handler_error_and_a_panic_come_back_typed() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let provider = nodes[1].realm("dev").unwrap();
    let _failing = provider
        .advertise("stock.check", |_ctx, args| async move {
            if args["sku"] == "boom" {
                panic!("handler bug");
            }
            if args["sku"] == "slow" {
                // A handler's own code never poses as a runtime error.
                return Err(HandlerError::new("timeout", "the warehouse did not answer"));
            }
            Err::<Value, _>(HandlerError::new(
                "out_of_stock",
                format!("no {}", args["sku"]),
            ))
        })
        .await
        .unwrap();
    let caller = nodes[0].realm("dev").unwrap();
    within(
        "provider known",
        caller.wait_for_providers("stock.check", 1),
    )
    .await
    .unwrap();
    match caller
        .call("stock.check", &json!({"sku": "tea"}))
        .await
        .unwrap_err()
    {
        Error::Call(CallError::Remote { code, message }) => {
            assert_eq!(code, "out_of_stock");
            assert!(message.contains("tea"));
        }
        other => panic!("{other:?}"),
    }
    match caller
        .call("stock.check", &json!({"sku": "boom"}))
        .await
        .unwrap_err()
    {
        Error::Call(CallError::Remote { code, .. }) => assert_eq!(code, "panic"),
        other => panic!("{other:?}"),
    }
    match caller
        .call("stock.check", &json!({"sku": "slow"}))
        .await
        .unwrap_err()
    {
        Error::Call(CallError::Remote { code, .. }) => assert_eq!(code, "timeout"),
        other => panic!("a handler's code must come back as Remote: {other:?}"),
    }
    // The provider survived its handler's panic.
    assert!(matches!(
        caller.call("stock.check", &json!({"sku": "tea"})).await,
        Err(Error::Call(CallError::Remote { .. }))
    ));
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_times_out_and_the_provider_drops_the_work() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(Notify::new());
    struct Guard(Arc<AtomicBool>, Arc<Notify>, bool);
    impl Drop for Guard {
        fn drop(&mut self) {
            if !self.2 {
                self.0.store(true, Ordering::SeqCst);
            }
            self.1.notify_one();
        }
    }
    let (c, d) = (cancelled.clone(), dropped.clone());
    let _slow = nodes[1]
        .realm("dev")
        .unwrap()
        .advertise("reports.build", move |ctx, _args| {
            let guard = Guard(c.clone(), d.clone(), false);
            async move {
                // Move the whole guard into the future: it must live (and drop) with the work.
                let mut guard = guard;
                assert!(ctx.deadline > Instant::now());
                tokio::time::sleep(Duration::from_secs(30)).await;
                guard.2 = true; // finished: not cancelled
                Ok(json!("done"))
            }
        })
        .await
        .unwrap();
    let caller = nodes[0].realm("dev").unwrap();
    within(
        "provider known",
        caller.wait_for_providers("reports.build", 1),
    )
    .await
    .unwrap();
    let quick = CallOptions::default().timeout(Duration::from_millis(300));
    let err = caller
        .call_with("reports.build", &json!({}), quick)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Call(CallError::Timeout)), "{err:?}");
    within("the provider drops the work", dropped.notified()).await;
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the handler was dropped before finishing"
    );
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_complete() {
    let nodes = mesh(2, |b, _| b.open_realm("dev")).await;
    let _echo = nodes[1]
        .realm("dev")
        .unwrap()
        .advertise("echo", |_ctx, args| async move { Ok(args) })
        .await
        .unwrap();
    let caller = nodes[0].realm("dev").unwrap();
    within("provider known", caller.wait_for_providers("echo", 1))
        .await
        .unwrap();
    let calls = (0..1000).map(|i| {
        let caller = caller.clone();
        async move { caller.call("echo", &json!({ "i": i })).await }
    });
    let results = within("1000 calls", futures_join_all(calls)).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), json!({ "i": i }));
    }
    shutdown(&nodes).await;
}

/// `futures::future::join_all` without depending on futures here: spawn and collect in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_succeeding_when_a_provider_dies_between_calls() {
    let fast = BackoffPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        ..Default::default()
    };
    let nodes = mesh(3, |b, _| {
        b.open_realm("dev")
            .reconnect(fast)
            .liveness(Duration::from_secs(1))
    })
    .await;
    let handled: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut registrations = Vec::new();
    for node in &nodes[1..] {
        let handled = handled.clone();
        registrations.push(
            node.realm("dev")
                .unwrap()
                .advertise("orders.get", move |_ctx, args| {
                    let handled = handled.clone();
                    async move {
                        handled.lock().unwrap().push(args["n"].as_u64().unwrap());
                        Ok(args)
                    }
                })
                .await
                .unwrap(),
        );
    }
    let caller = nodes[0].realm("dev").unwrap();
    within("2 providers", caller.wait_for_providers("orders.get", 2))
        .await
        .unwrap();

    let (mut ok, mut lost) = (0u64, 0u64);
    for n in 0..200u64 {
        if n == 100 {
            nodes[2].abort().await;
        }
        let options = CallOptions::default().timeout(Duration::from_secs(3));
        match caller
            .call_with("orders.get", &json!({ "n": n }), options)
            .await
        {
            Ok(v) => {
                assert_eq!(v, json!({ "n": n }));
                ok += 1;
            }
            Err(Error::Call(CallError::Unavailable(_) | CallError::Timeout)) => lost += 1,
            Err(other) => panic!("call {n}: {other:?}"),
        }
    }
    let handled = handled.lock().unwrap().clone();
    let mut seen = std::collections::HashSet::new();
    for n in &handled {
        assert!(seen.insert(*n), "call {n} ran twice");
    }
    assert_eq!(ok + lost, 200);
    assert!(
        ok >= 190,
        "only calls in flight to the killed provider may be lost: ok {ok}, lost {lost}"
    );
    drop(registrations);
    shutdown(&nodes[..2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_rpc_call_is_refused_and_the_handler_never_runs() {
    let owner = Keypair::generate().unwrap();
    let (kp, kc) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let grant = |to: Did, resource: &str, ability: &str| -> Token {
        Builder::new(&owner, to)
            .expires_at(4_000_000_000)
            .claim(resource, ability)
            .build()
            .unwrap()
    };
    let provider = Node::builder()
        .key(kp.clone())
        .realm("io.acme", owner.did())
        .ucan(
            "io.acme",
            Chain::new(grant(kp.did(), "weft://io.acme", "realm/join"), []),
        )
        .ucan(
            "io.acme",
            Chain::new(
                grant(kp.did(), "weft://io.acme/orders.*", "rpc/advertise"),
                [],
            ),
        )
        .start()
        .await
        .unwrap();
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let _get = provider
        .realm("io.acme")
        .unwrap()
        .advertise("orders.get", move |_ctx, _args| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Ok(json!(1)) }
        })
        .await
        .unwrap();
    // The caller may join, and call only billing.*.
    let caller = Node::builder()
        .key(kc.clone())
        .bootstrap(provider.listen_addrs()[0].to_string())
        .realm("io.acme", owner.did())
        .ucan(
            "io.acme",
            Chain::new(grant(kc.did(), "weft://io.acme", "realm/join"), []),
        )
        .ucan(
            "io.acme",
            Chain::new(grant(kc.did(), "weft://io.acme/billing.*", "rpc/call"), []),
        )
        .start()
        .await
        .unwrap();
    let realm = caller.realm("io.acme").unwrap();
    within("provider known", realm.wait_for_providers("orders.get", 1))
        .await
        .unwrap();
    let err = realm.call("orders.get", &json!({})).await.unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Unauthorized(_))),
        "{err:?}"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the handler never ran");

    // A chain given for one call is sent with it, and the provider accepts it.
    let one_call = Chain::new(grant(kc.did(), "weft://io.acme/orders.get", "rpc/call"), []);
    let revocable = one_call.cid().to_owned();
    let result = realm
        .call_with(
            "orders.get",
            &json!({}),
            CallOptions::default().ucan(one_call.clone()),
        )
        .await
        .unwrap();
    assert_eq!(result, json!(1));
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    // The provider's own check: it revokes that token; the caller, unaware, still passes its
    // local check and sends the call, which the provider refuses before the handler runs.
    provider.revoke(revocable);
    let err = realm
        .call_with(
            "orders.get",
            &json!({}),
            CallOptions::default().ucan(one_call),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Call(CallError::Unauthorized(ref m)) if m.contains("revoked")),
        "{err:?}"
    );
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the handler did not run again"
    );
    shutdown(&[provider, caller]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_to_a_provider_that_dies_is_not_run_again_elsewhere() {
    let nodes = mesh(3, |b, _| {
        b.open_realm("dev").liveness(Duration::from_secs(1))
    })
    .await;
    let caller = nodes[0].realm("dev").unwrap();

    // B is announced first, so `first` picks it; its handler starts, then never finishes.
    let started = Arc::new(Notify::new());
    let s = started.clone();
    let _b = nodes[2]
        .realm("dev")
        .unwrap()
        .advertise("jobs.run", move |_ctx, _args| {
            s.notify_one();
            async { std::future::pending::<Result<Value, HandlerError>>().await }
        })
        .await
        .unwrap();
    within("B known", caller.wait_for_providers("jobs.run", 1))
        .await
        .unwrap();
    let runs_on_a = Arc::new(AtomicU64::new(0));
    let r = runs_on_a.clone();
    let _a = nodes[1]
        .realm("dev")
        .unwrap()
        .advertise("jobs.run", move |_ctx, _args| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Ok(json!("a")) }
        })
        .await
        .unwrap();
    within("A known", caller.wait_for_providers("jobs.run", 2))
        .await
        .unwrap();

    let options = CallOptions::default()
        .strategy(Strategy::First)
        .timeout(Duration::from_secs(10));
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call_with("jobs.run", &json!({}), options).await }
    });
    within("B runs the call", started.notified()).await;
    nodes[2].abort().await;

    let outcome = within("the call ends", call).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::Call(CallError::Unavailable(_)))),
        "a call lost in flight is reported, not retried: {outcome:?}"
    );
    assert_eq!(
        runs_on_a.load(Ordering::SeqCst),
        0,
        "the call was not run a second time on A"
    );
    // A still serves new calls.
    assert_eq!(
        caller.call("jobs.run", &json!({})).await.unwrap(),
        json!("a")
    );
    shutdown(&nodes[..2]).await;
}
