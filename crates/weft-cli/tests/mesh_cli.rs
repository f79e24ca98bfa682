//! `weft node`, `weft sub` and `weft pub` as separate processes over QUIC on 127.0.0.1, as a
//! user runs them (contract §5, `docs/contract.md`): addresses on stdout, "ready" on stderr,
//! events as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use common::{Killed, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

fn weft() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .env_remove("WEFT_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Spawns `command` with its stdout and stderr read line by line.
fn watched(command: &mut Command) -> (Killed, Receiver<String>, Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (
        lines(child.stdout.take().unwrap()),
        lines(child.stderr.take().unwrap()),
    );
    (Killed(child), out, err)
}

#[test]
fn sub_receives_what_pub_sends_through_a_node() {
    let mut node = weft()
        .arg("node")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_out = lines(node.stdout.take().unwrap());
    let node = Killed(node);
    let addr = wait_for(&node_out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));
    assert!(addr.contains("/quic-v1/p2p/12D3"), "{addr}");

    let (mut sub, sub_out, sub_err) = watched(weft().args([
        "sub",
        "--connect",
        &addr,
        "--realm",
        "dev",
        "orders.*",
        "--count",
        "2",
    ]));
    wait_for(&sub_err, LIMIT, |l| l == "ready");

    for (topic, body) in [
        ("billing.paid", r#"{"n":0}"#),
        ("orders.placed", r#"{"n":1}"#),
        ("orders.shipped", r#"{"n":2}"#),
    ] {
        let status = weft()
            .args(["pub", "--connect", &addr, "--realm", "dev", topic, body])
            .status()
            .unwrap();
        assert!(status.success(), "pub {topic}: {status}");
    }
    let first: Value = serde_json::from_str(&wait_for(&sub_out, LIMIT, |_| true)).unwrap();
    let second: Value = serde_json::from_str(&wait_for(&sub_out, LIMIT, |_| true)).unwrap();
    assert_eq!(
        (first["topic"].as_str(), first["payload"]["n"].as_u64()),
        (Some("orders.placed"), Some(1))
    );
    assert_eq!(
        (second["topic"].as_str(), second["payload"]["n"].as_u64()),
        (Some("orders.shipped"), Some(2))
    );
    assert!(
        first["publisher"]
            .as_str()
            .unwrap()
            .starts_with("did:key:z6Mk")
    );
    assert!(
        sub.0.wait().unwrap().success(),
        "sub exits 0 after --count events"
    );

    // SIGINT: the node leaves gracefully and exits 0.
    let mut node = node;
    let pid = node.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(node.0.wait().unwrap().success());
}

#[test]
fn bad_payloads_and_patterns_are_one_line_errors() {
    let run = weft()
        .args([
            "pub",
            "--connect",
            "127.0.0.1:1",
            "--realm",
            "dev",
            "t",
            "not json",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not JSON"));
    let run = weft()
        .args(["sub", "--connect", "nowhere", "--realm", "dev", "a.*"])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "an unparsable address is a usage error"
    );
    let run = weft()
        .args(["node", "--realm", "Bad_Realm"])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn call_reaches_a_command_served_on_another_process() {
    let mut node = weft()
        .arg("node")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_out = lines(node.stdout.take().unwrap());
    let _node = Killed(node);
    let addr = wait_for(&node_out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));

    // `cat` answers each call with its arguments.
    let mut serve = weft()
        .args([
            "serve",
            "--connect",
            &addr,
            "--realm",
            "dev",
            "echo.back",
            "--",
            "cat",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve_err = lines(serve.stderr.take().unwrap());
    let _serve = Killed(serve);
    wait_for(&serve_err, LIMIT, |l| l == "ready");

    let out = succeeds(weft().args([
        "call",
        "--connect",
        &addr,
        "--realm",
        "dev",
        "echo.back",
        r#"{"sku":"tea"}"#,
    ]));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, serde_json::json!({"sku": "tea"}));

    let missing = weft()
        .args([
            "call",
            "--connect",
            &addr,
            "--realm",
            "dev",
            "echo.nothing",
            "{}",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3), "not found exits 3");
}

#[test]
fn the_demo_runs_a_mesh_and_exits_0() {
    let out = weft().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("answered by inventory-a") && stdout.contains("answered by inventory-b"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("reserved").count(),
        6,
        "two instances saw three orders: {stdout}"
    );
    assert_eq!(stdout.matches("denied").count(), 2, "{stdout}");
    assert!(stdout.contains("demo complete"));
}

/// One HTTP/1.1 GET over a plain socket: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap();
    (status, body)
}

#[test]
fn node_serves_health_status_and_metrics_over_http_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "listen = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n[tags]\nregion = \"eu\"\n[[realm]]\nname = \"dev\"\n",
    )
    .unwrap();
    let mut node = weft()
        .args(["node", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node_err = lines(node.stderr.take().unwrap());
    let _node = Killed(node);
    let line = wait_for(&node_err, LIMIT, |l| l.starts_with("weft: http on http://"));
    let addr = line
        .trim_start_matches("weft: http on http://")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["realms"], 1);

    let (status, body) = http_get(&addr, "/v1/status");
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["realms"][0]["name"], "dev");

    let (status, body) = http_get(&addr, "/v1/dht");
    assert_eq!(status, 200);
    let dht: Value = serde_json::from_str(&body).unwrap();
    assert!(dht["known_nodes"].is_u64(), "{body}");
    assert!(dht["dials"].is_u64(), "{body}");

    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE weft_dht_queries_total counter"),
        "{body}"
    );
}

/// Runs `weft ARGS` to completion; panics with its stderr unless it exits 0. Returns stdout.
fn run_ok(args: &[&str]) -> String {
    String::from_utf8(succeeds(weft().args(args)).stdout).unwrap()
}

/// Runs `command` to completion; panics with its stderr unless it exits 0.
fn succeeds(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `weft node` with extra arguments; returns it and its first address.
fn node(extra: &[&str]) -> (Killed, String) {
    let mut node = weft()
        .arg("node")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines(node.stdout.take().unwrap());
    let node = Killed(node);
    let addr = wait_for(&out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));
    (node, addr)
}

/// The issue's reproduction: one-shot `weft call` and `weft pub` processes come and go through
/// two nodes while a `weft serve` and a `weft sub` stay. Every call succeeds, the subscriber gets
/// every publication, and the procedure is still reachable afterwards.
#[test]
fn serve_and_sub_keep_working_while_one_shot_clients_come_and_go() {
    let (_a, addr_a) = node(&[]);
    let (_b, addr_b) = node(&["--bootstrap", &addr_a]);

    let mut serve = weft()
        .args([
            "serve",
            "--connect",
            &addr_b,
            "--realm",
            "dev",
            "orders.get",
        ])
        .args(["--", "sh", "-c", r#"cat >/dev/null; echo '{"ok":1}'"#])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve_err = lines(serve.stderr.take().unwrap());
    let _serve = Killed(serve);
    wait_for(&serve_err, LIMIT, |l| l == "ready");

    let mut sub = weft()
        .args(["sub", "--connect", &addr_b, "--realm", "dev", "orders.*"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sub_out = lines(sub.stdout.take().unwrap());
    let sub_err = lines(sub.stderr.take().unwrap());
    let _sub = Killed(sub);
    wait_for(&sub_err, LIMIT, |l| l == "ready");

    // Until A has heard of the subscription through B, a publication through A reaches nobody
    // (as in any pub/sub); probe until one arrives.
    let mut heard = false;
    for _ in 0..100 {
        run_ok(&[
            "pub",
            "--connect",
            &addr_a,
            "--realm",
            "dev",
            "orders.probe",
            "{}",
        ]);
        if sub_out.recv_timeout(Duration::from_millis(200)).is_ok() {
            heard = true;
            break;
        }
    }
    assert!(heard, "the subscription never reached node A");

    for i in 1..=30 {
        let topic = format!("orders.n{i}");
        run_ok(&["pub", "--connect", &addr_a, "--realm", "dev", &topic, "{}"]);
    }
    let mut missing: std::collections::HashSet<String> =
        (1..=30).map(|i| format!("orders.n{i}")).collect();
    while !missing.is_empty() {
        let line = sub_out
            .recv_timeout(LIMIT)
            .expect("every publication arrives");
        let event: Value = serde_json::from_str(&line).unwrap();
        let topic = event["topic"].as_str().unwrap().to_owned();
        assert!(
            missing.remove(&topic) || topic == "orders.probe",
            "{topic} arrived twice"
        );
    }

    for addr in [&addr_b, &addr_a] {
        for _ in 0..16 {
            let out = run_ok(&[
                "call",
                "--connect",
                addr,
                "--realm",
                "dev",
                "orders.get",
                "{}",
            ]);
            assert_eq!(out.trim(), r#"{"ok":1}"#);
        }
    }
    // After all of them: still reachable at once, through either node.
    for addr in [&addr_b, &addr_a] {
        let out = run_ok(&[
            "call",
            "--connect",
            addr,
            "--realm",
            "dev",
            "--timeout",
            "2s",
            "orders.get",
            "{}",
        ]);
        assert_eq!(out.trim(), r#"{"ok":1}"#);
    }
}

/// `weft serve --max-concurrent 2` runs at most two commands at once; the other calls wait
/// their turn and are all answered.
#[test]
fn serve_runs_at_most_max_concurrent_commands_at_once() {
    let mut node = weft()
        .arg("node")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_out = lines(node.stdout.take().unwrap());
    let _node = Killed(node);
    let addr = wait_for(&node_out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));
    let dir = tempfile::tempdir().unwrap();
    let running = dir.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let log = dir.path().join("log");
    // Each command records how many others were running when it started.
    let script = format!(
        r#"cat >/dev/null; ls {r} | wc -l >> {l}; touch {r}/$$; sleep 0.3; rm {r}/$$; echo 0"#,
        r = running.display(),
        l = log.display()
    );
    let mut serve = weft()
        .args([
            "serve",
            "--connect",
            &addr,
            "--realm",
            "dev",
            "--max-concurrent",
            "2",
            "work.slow",
        ])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve_err = lines(serve.stderr.take().unwrap());
    let _serve = Killed(serve);
    wait_for(&serve_err, LIMIT, |l| l == "ready");

    let calls: Vec<Child> = (0..6)
        .map(|_| {
            weft()
                .args([
                    "call",
                    "--connect",
                    &addr,
                    "--realm",
                    "dev",
                    "work.slow",
                    "{}",
                ])
                .args(["--timeout", "20s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for call in calls {
        let out = call.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seen: Vec<usize> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(seen.len(), 6, "every call ran its command: {seen:?}");
    assert!(
        seen.iter().all(|&others| others <= 1),
        "never more than two at once: {seen:?}"
    );
}

/// A handler's error reaches the caller on one line, whatever the handler wrote: control
/// characters (a terminal escape, a newline) are escaped.
#[test]
fn a_remote_error_is_one_printable_line() {
    let mut node = weft()
        .arg("node")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node_out = lines(node.stdout.take().unwrap());
    let _node = Killed(node);
    let addr = wait_for(&node_out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));
    let mut serve = weft()
        .args(["serve", "--connect", &addr, "--realm", "dev", "bad.news"])
        .args([
            "--",
            "sh",
            "-c",
            r#"cat >/dev/null; printf 'red\033[31m\nsecond line' >&2; exit 3"#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve_err = lines(serve.stderr.take().unwrap());
    let _serve = Killed(serve);
    wait_for(&serve_err, LIMIT, |l| l == "ready");
    let out = weft()
        .args([
            "call",
            "--connect",
            &addr,
            "--realm",
            "dev",
            "bad.news",
            "{}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "a remote error");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(
        stderr.contains("red\\u{1b}[31m\\nsecond line"),
        "{stderr:?}"
    );
}

/// Issue 14, client mode: clients that name an owned realm without its owner (`--realm io.acme`)
/// join the realm their `--ucan` chains are rooted in, rather than an open realm of that name
/// that nobody hosts.
#[test]
fn a_client_naming_an_owned_realm_without_its_owner_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let path = dir.path().join(name);
        let did = run_ok(&["id", "new", "--out", path.to_str().unwrap()]);
        (path.to_str().unwrap().to_owned(), did.trim().to_owned())
    };
    let (owner, owner_did) = key("owner.pem");
    let realm = format!("io.acme={owner_did}");
    let (_node, addr) = node(&["--realm", &realm, "--key", &owner]);
    // Two clients, each with its own key and the owner's grant.
    let client = |name: &str, command: &str| {
        let (key, did) = key(name);
        let grant = run_ok(&[
            "ucan",
            "issue",
            "--key",
            &owner,
            "--aud",
            &did,
            "--cap",
            "weft://io.acme=realm/join",
            "--cap",
            "weft://io.acme/orders.**=msg/publish",
            "--cap",
            "weft://io.acme/orders.**=msg/subscribe",
            "--exp",
            "3600",
        ]);
        let mut c = weft();
        c.args([command, "--connect", &addr, "--realm", "io.acme"])
            .args(["--key", &key, "--ucan", grant.trim()]);
        c
    };
    let (mut sub, sub_out, sub_err) =
        watched(client("subscriber.pem", "sub").args(["orders.*", "--count", "1"]));
    let told = wait_for(&sub_err, LIMIT, |l| l.contains("joining"));
    assert_eq!(
        told,
        format!("io.acme: joining {realm}, the root of the --ucan chain")
    );
    wait_for(&sub_err, LIMIT, |l| l == "ready");

    succeeds(client("publisher.pem", "pub").args(["orders.placed", r#"{"n":1}"#]));
    let event: Value = serde_json::from_str(&wait_for(&sub_out, LIMIT, |_| true)).unwrap();
    assert_eq!(
        (event["topic"].as_str(), event["payload"]["n"].as_u64()),
        (Some("orders.placed"), Some(1))
    );
    assert!(sub.0.wait().unwrap().success());
}

/// `weft dht stats` and `weft dht lookup` ask a node about its DHT: a procedure served through
/// one node is found, with that node's address, by asking the other.
#[test]
fn dht_stats_and_lookup_ask_a_node_about_its_dht() {
    let (_a, addr_a) = node(&[]);
    let (_b, addr_b) = node(&["--bootstrap", &addr_a]);
    let (_serve, _, serve_err) = watched(weft().args([
        "serve",
        "--connect",
        &addr_b,
        "--realm",
        "dev",
        "orders.get",
        "--",
        "cat",
    ]));
    wait_for(&serve_err, LIMIT, |l| l == "ready");

    let stats: Value =
        serde_json::from_str(&run_ok(&["dht", "stats", "--connect", &addr_a])).unwrap();
    assert!(stats["known_nodes"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["connected_peers"].as_u64().unwrap() >= 1, "{stats}");
    for field in [
        "buckets",
        "records_stored",
        "keys_provided",
        "queries",
        "dials",
    ] {
        assert!(stats[field].is_u64(), "{field}: {stats}");
    }

    // B's record reaches A's neighbourhood shortly after B provides it.
    let lookup = [
        "dht",
        "lookup",
        "--connect",
        &addr_a,
        "--realm",
        "dev",
        "orders.get",
    ];
    let deadline = std::time::Instant::now() + LIMIT;
    let found = loop {
        let out = weft().args(lookup).output().unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        let said = String::from_utf8_lossy(&out.stderr);
        // Not there yet (3), or lookups asked faster than the node runs them (7, busy).
        assert!(
            out.status.code() == Some(3) || said.contains("busy"),
            "{:?}: {said}",
            out.status
        );
        assert!(std::time::Instant::now() < deadline, "never found");
        std::thread::sleep(Duration::from_millis(200));
    };
    let providers: Vec<Value> = found
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(providers.len(), 1, "{found}");
    let b_listens = addr_b.split("/p2p/").next().unwrap();
    assert!(
        providers[0]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with(b_listens)),
        "{found}"
    );
    assert!(
        providers[0]["did"]
            .as_str()
            .unwrap()
            .starts_with("did:key:z6Mk"),
        "{found}"
    );

    let nothing = weft()
        .args([
            "dht",
            "lookup",
            "--connect",
            &addr_a,
            "--realm",
            "dev",
            "orders.none",
        ])
        .output()
        .unwrap();
    assert_eq!(nothing.status.code(), Some(3));
    let unreachable = weft()
        .args(["dht", "stats", "--connect", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(7));
}
