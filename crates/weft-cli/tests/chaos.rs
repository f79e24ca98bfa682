//! Faults between two hosts, as `weft` processes see them: two Linux network namespaces joined by
//! a veth pair, one node in each, clients attached to each node over the namespace's loopback.
//! Partitions and packet loss are nftables rules on the veth ends. Delay is a UDP proxy in
//! namespace `a` that holds each datagram 50 ms each way (the kernels this runs on have no
//! `sch_netem`, so `tc netem` is not used): this test binary runs its own ignored
//! [`delay_proxy`] there.
//!
//! Needs root and `ip` (iproute2) and `nft` (nftables): elsewhere each test prints why it skips.
//! `.ci/run` installs both and sets `WEFT_REQUIRE_NETNS=1`, which turns a skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Killed, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// Two namespaces joined by a veth pair: `a` at 10.77.0.1, `b` at 10.77.0.2.
struct Lab {
    a: String,
    b: String,
    veth_a: String,
    veth_b: String,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    /// A lab named after `tag` (one per test, so tests can run at once), or `None` with the
    /// reason printed when this machine cannot build one.
    fn new(tag: &str) -> Option<Lab> {
        let missing = ["ip", "nft"].into_iter().find(|tool| {
            Command::new(tool)
                .arg("-V")
                .output()
                .map_or(true, |o| !o.status.success())
        });
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let why = match (root, missing) {
            (false, _) => Some("not root: network namespaces need CAP_NET_ADMIN".to_owned()),
            (true, Some(tool)) => Some(format!("`{tool}` is not installed")),
            (true, None) => None,
        };
        if let Some(why) = why {
            assert!(
                std::env::var_os("WEFT_REQUIRE_NETNS").is_none(),
                "WEFT_REQUIRE_NETNS is set, but {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let id = std::process::id() % 100_000;
        let lab = Lab {
            a: format!("weft{id}{tag}a"),
            b: format!("weft{id}{tag}b"),
            veth_a: format!("wv{id}{tag}a"),
            veth_b: format!("wv{id}{tag}b"),
        };
        run(&["ip", "netns", "add", &lab.a]);
        run(&["ip", "netns", "add", &lab.b]);
        run(&[
            "ip",
            "link",
            "add",
            &lab.veth_a,
            "type",
            "veth",
            "peer",
            "name",
            &lab.veth_b,
        ]);
        for (ns, veth, addr) in [
            (&lab.a, &lab.veth_a, "10.77.0.1/24"),
            (&lab.b, &lab.veth_b, "10.77.0.2/24"),
        ] {
            run(&["ip", "link", "set", veth, "netns", ns]);
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", veth]);
            run(&["ip", "-n", ns, "link", "set", veth, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some(lab)
    }

    /// `weft ARGS` inside namespace `ns`.
    fn weft(&self, ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_weft")])
            .args(args)
            .env_remove("WEFT_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Drops every packet arriving on the veth pair (`drop_percent` = 100), some of them, or
    /// none (0), in both namespaces.
    fn drop_on_link(&self, drop_percent: u32) {
        for (ns, veth) in [(&self.a, &self.veth_a), (&self.b, &self.veth_b)] {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "delete", "table", "inet", "chaos",
                ])
                .output();
            if drop_percent == 0 {
                continue;
            }
            let rule = if drop_percent >= 100 {
                format!("iifname {veth} drop")
            } else {
                format!("iifname {veth} numgen random mod 100 < {drop_percent} drop")
            };
            let nft = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", ns, "nft"];
                all.extend_from_slice(args);
                run(&all);
            };
            nft(&["add", "table", "inet", "chaos"]);
            nft(&[
                "add",
                "chain",
                "inet",
                "chaos",
                "input",
                "{ type filter hook input priority 0; policy accept; }",
            ]);
            nft(&["add", "rule", "inet", "chaos", "input", &rule]);
        }
    }

    /// Drops, in `b`, what comes from `a`'s node directly (UDP from port 4001): B hears A only
    /// through the proxy.
    fn only_through_proxy(&self) {
        run(&[
            "ip", "netns", "exec", &self.b, "nft", "add", "table", "inet", "direct",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &self.b,
            "nft",
            "add",
            "chain",
            "inet",
            "direct",
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &self.b,
            "nft",
            "add",
            "rule",
            "inet",
            "direct",
            "input",
            "ip saddr 10.77.0.1 udp sport 4001 drop",
        ]);
    }

    /// A UDP proxy in namespace `a` at `10.77.0.1:PORT` forwarding to `a`'s node on
    /// `127.0.0.1:4001`, holding every datagram `ms` milliseconds each way.
    fn delaying_proxy(&self, port: u16, ms: u64) -> Running {
        let mut proxy = Command::new("ip")
            .args(["netns", "exec", &self.a])
            .arg(std::env::current_exe().unwrap())
            .args(["delay_proxy", "--exact", "--ignored", "--nocapture"])
            .env(PROXY_ENV, format!("10.77.0.1:{port} 127.0.0.1:4001 {ms}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = lines(proxy.stdout.take().unwrap());
        wait_for(&out, LIMIT, |l| l == "ready");
        Running(out, Killed(proxy))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The veth pair goes with its namespaces.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A process and the rest of its output: dropping the reader would close the pipe, and its
/// next line would kill it.
struct Running(#[allow(dead_code)] mpsc::Receiver<String>, Killed);

/// Node A in `a` and node B in `b`, B bootstrapping from A; each listens on every address of
/// its namespace (one socket: libp2p dials from a listener's socket, and one bound to 127.0.0.1
/// cannot reach the veth), and that side's clients attach over loopback.
fn two_nodes(lab: &Lab) -> (Running, Running) {
    two_nodes_via(lab, "10.77.0.1:4001")
}

/// [`two_nodes`], with B bootstrapping from A at `a_addr`.
fn two_nodes_via(lab: &Lab, a_addr: &str) -> (Running, Running) {
    let start = |ns: &str, args: &[&str]| {
        let mut node = lab
            .weft(ns, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = lines(node.stdout.take().unwrap());
        wait_for(&out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/4001"));
        Running(out, Killed(node))
    };
    let a = start(&lab.a, &["node", "--listen", "0.0.0.0:4001"]);
    let b = start(
        &lab.b,
        &["node", "--listen", "0.0.0.0:4001", "--bootstrap", a_addr],
    );
    (a, b)
}

const LOCAL: &str = "127.0.0.1:4001";

/// A `weft serve` in `ns` providing `procedure`: each call appends its arguments (one JSON line)
/// to `record`, waits `pause`, and answers `{"ok":1}`.
fn provider(lab: &Lab, ns: &str, procedure: &str, record: &Path, pause: &str) -> Running {
    let script = format!(
        r#"read -r line; echo "$line" >> {}; sleep {pause}; echo '{{"ok":1}}'"#,
        record.display()
    );
    let mut serve = lab
        .weft(
            ns,
            &["serve", "--connect", LOCAL, "--realm", "dev", procedure],
        )
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines(serve.stderr.take().unwrap());
    wait_for(&err, LIMIT, |l| l == "ready");
    Running(err, Killed(serve))
}

/// A `weft sub` in `ns` to `orders.*`, once it says it is subscribed: its events (one JSON line
/// each), and the process.
fn subscriber(lab: &Lab, ns: &str) -> (mpsc::Receiver<String>, Running) {
    let mut sub = lab
        .weft(
            ns,
            &["sub", "--connect", LOCAL, "--realm", "dev", "orders.*"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let events = lines(sub.stdout.take().unwrap());
    let err = lines(sub.stderr.take().unwrap());
    wait_for(&err, LIMIT, |l| l == "ready");
    (events, Running(err, Killed(sub)))
}

/// `weft call` from `ns`: its exit code and how long it took.
fn call(lab: &Lab, ns: &str, procedure: &str, args: &str, timeout: &str) -> (i32, Duration) {
    let started = Instant::now();
    let out = lab
        .weft(
            ns,
            &[
                "call",
                "--connect",
                LOCAL,
                "--realm",
                "dev",
                procedure,
                args,
            ],
        )
        .args(["--timeout", timeout])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), started.elapsed())
}

fn publish(lab: &Lab, ns: &str, n: u64) {
    let status = lab
        .weft(
            ns,
            &[
                "pub",
                "--connect",
                LOCAL,
                "--realm",
                "dev",
                "orders.placed",
                &format!(r#"{{"n":{n}}}"#),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pub {n}: {status}");
}

/// The ids recorded by providers, one JSON line per executed call.
fn executed(records: &[&Path]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["id"]
                        .as_u64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Retries a call until one succeeds: the mesh (and the provider's advertisement) is up.
fn until_a_call_succeeds(lab: &Lab, ns: &str, procedure: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let mut id = 1_000_000;
    loop {
        id += 1;
        if call(lab, ns, procedure, &format!(r#"{{"id":{id}}}"#), "1s").0 == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "no call succeeded within {within:?}"
        );
    }
}

/// The network between the two hosts goes away for 12 s and comes back: the nodes find each
/// other again by themselves, and the same subscriber and callers work again, with nothing
/// restarted.
#[test]
fn after_a_partition_heals_the_same_subscriber_and_callers_work_again() {
    let Some(lab) = Lab::new("p") else { return };
    let (_a, _b) = two_nodes(&lab);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls");
    let _provider = provider(&lab, &lab.b.clone(), "orders.get", &record, "0");
    let (sub_out, _sub) = subscriber(&lab, &lab.a);
    until_a_call_succeeds(&lab, &lab.a, "orders.get", LIMIT);
    let received = |n: u64| {
        move |line: &str| serde_json::from_str::<Value>(line).unwrap()["payload"]["n"] == n
    };
    // Publications go at most once: until B has the subscription, one can reach nobody.
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        publish(&lab, &lab.b, n);
        if sub_out.recv_timeout(Duration::from_secs(1)).is_ok() {
            break;
        }
        assert!(start.elapsed() < LIMIT, "the subscriber heard nothing");
    }

    lab.drop_on_link(100);
    // Long enough for both nodes to declare the other gone (liveness is 10 s).
    std::thread::sleep(Duration::from_secs(12));
    lab.drop_on_link(0);
    let healed = Instant::now();

    // Redials are at most 10 s apart (plus jitter): the first publication that gets through
    // does so within about that, and every one after it arrives.
    let mut first = None;
    while first.is_none() {
        n += 1;
        publish(&lab, &lab.b, n);
        if wait_for_any(&sub_out, Duration::from_millis(500)) {
            first = Some(healed.elapsed());
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "no publication got through"
        );
    }
    for _ in 0..3 {
        n += 1;
        publish(&lab, &lab.b, n);
        wait_for(&sub_out, Duration::from_secs(5), received(n));
    }
    let mut calls = Vec::new();
    for i in 0..5 {
        let (code, took) = call(
            &lab,
            &lab.a,
            "orders.get",
            &format!(r#"{{"id":{i}}}"#),
            "5s",
        );
        calls.push((code, took));
    }
    eprintln!(
        "partition healed: first publication through after {:?}; calls after it: {calls:?}",
        first.unwrap()
    );
    assert!(calls.iter().all(|(code, _)| *code == 0), "{calls:?}");
}

fn wait_for_any(rx: &mpsc::Receiver<String>, within: Duration) -> bool {
    rx.recv_timeout(within).is_ok()
}

/// A provider killed with SIGKILL in the middle of calls: every call ends with a typed outcome
/// within its timeout, and none is executed twice.
#[test]
fn a_provider_killed_mid_call_leaves_every_call_with_an_outcome_and_none_run_twice() {
    let Some(lab) = Lab::new("k") else { return };
    let (_a, _b) = two_nodes(&lab);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let doomed = provider(&lab, &lab.b.clone(), "work.do", &first, "0.5");
    let _other = provider(&lab, &lab.b.clone(), "work.do", &second, "0.5");
    until_a_call_succeeds(&lab, &lab.a, "work.do", LIMIT);
    let before = executed(&[&first, &second]).len();

    let callers: Vec<_> = (0..12)
        .map(|id| {
            let lab_a = lab.a.clone();
            let command = lab
                .weft(
                    &lab_a,
                    &[
                        "call",
                        "--connect",
                        LOCAL,
                        "--realm",
                        "dev",
                        "work.do",
                        &format!(r#"{{"id":{id}}}"#),
                        "--timeout",
                        "4s",
                    ],
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (Instant::now(), command)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut doomed = doomed;
    doomed.1.0.kill().unwrap();
    let mut outcomes = Vec::new();
    for (started, child) in callers {
        let out = child.wait_with_output().unwrap();
        outcomes.push((
            out.status.code().unwrap_or(-1),
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    eprintln!("outcomes: {outcomes:?}");
    for (code, took, stderr) in &outcomes {
        // 0 ok, 4 timeout, 7 unavailable: each a typed outcome, never a crash or a hang.
        assert!([0, 4, 7].contains(code), "exit {code}: {stderr}");
        assert!(
            *took < Duration::from_secs(4) + Duration::from_secs(3),
            "took {took:?}"
        );
    }
    let ran = executed(&[&first, &second]);
    let unique: HashSet<u64> = ran.iter().copied().collect();
    assert_eq!(unique.len(), ran.len(), "a call ran twice: {ran:?}");
    assert!(ran.len() > before, "some calls ran");
}

/// 5 % of packets lost each way and 50 ms of delay each way: publications and calls still go
/// through, each call once, each within its timeout.
#[test]
fn with_five_percent_loss_and_delay_calls_and_publications_go_through() {
    let Some(lab) = Lab::new("l") else { return };
    // B reaches A only through the proxy, so every packet between them is delayed.
    let _proxy = lab.delaying_proxy(4101, 50);
    lab.only_through_proxy();
    let (_a, _b) = two_nodes_via(&lab, "10.77.0.1:4101");
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls");
    let _provider = provider(&lab, &lab.b.clone(), "orders.get", &record, "0");
    until_a_call_succeeds(&lab, &lab.a, "orders.get", LIMIT);
    let (events, _sub) = subscriber(&lab, &lab.b);
    // The subscription reaches A over the delayed link; a publication that arrives before it
    // has no subscriber to go to, so publish until the first one is delivered.
    let mut n = 0;
    while !wait_for_any(&events, Duration::from_millis(500)) {
        assert!(n < 100, "no publication reached the subscriber");
        publish(&lab, &lab.a, n);
        n += 1;
    }

    lab.drop_on_link(5);
    let mut outcomes = Vec::new();
    for id in 0..20 {
        outcomes.push(call(
            &lab,
            &lab.a,
            "orders.get",
            &format!(r#"{{"id":{id}}}"#),
            "5s",
        ));
    }
    for n in 1000..1009 {
        publish(&lab, &lab.a, n);
    }
    let number = |line: &str| {
        serde_json::from_str::<Value>(line).unwrap()["payload"]["n"]
            .as_u64()
            .unwrap()
    };
    // Late deliveries of the probes above come first, if any.
    let received: Vec<u64> = (0..9)
        .map(|_| number(&wait_for(&events, LIMIT, |l| number(l) >= 1000)))
        .collect();
    eprintln!("5 % loss and 50 ms each way: calls {outcomes:?}; publications {received:?}");
    assert!(
        outcomes
            .iter()
            .all(|(code, took)| *code == 0 && *took < Duration::from_secs(8)),
        "{outcomes:?}"
    );
    let ran: Vec<u64> = executed(&[&record])
        .into_iter()
        .filter(|id| *id < 1_000_000)
        .collect();
    let unique: HashSet<u64> = ran.iter().copied().collect();
    assert_eq!((ran.len(), unique.len()), (20, 20), "{ran:?}");
    assert_eq!(
        received,
        (1000..1009).collect::<Vec<_>>(),
        "every one, in order"
    );
}

/// Where [`delay_proxy`] reads its settings: `LISTEN TARGET MILLISECONDS`.
const PROXY_ENV: &str = "WEFT_CHAOS_DELAY_PROXY";

/// Not a test: the loss test runs this, inside a namespace, as a UDP proxy that forwards
/// between one client at `LISTEN` and `TARGET`, holding each datagram the given milliseconds.
/// It runs until killed.
#[test]
#[ignore = "not a test: the loss test runs it inside a network namespace"]
fn delay_proxy() {
    let settings = std::env::var(PROXY_ENV).expect("run by the loss test, which sets it");
    let [listen, target, ms] = settings.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{PROXY_ENV}: LISTEN TARGET MILLISECONDS, not {settings:?}")
    };
    let delay = Duration::from_millis(ms.parse().unwrap());
    let front = std::net::UdpSocket::bind(listen).unwrap();
    let back = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(target).unwrap();
    let client = std::sync::Arc::new(std::sync::Mutex::new(None));
    let to_target = held({
        let back = back.try_clone().unwrap();
        move |datagram: &[u8]| {
            let _ = back.send(datagram);
        }
    });
    let to_client = held({
        let (front, client) = (front.try_clone().unwrap(), client.clone());
        move |datagram: &[u8]| {
            if let Some(addr) = *client.lock().unwrap() {
                let _ = front.send_to(datagram, addr);
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = vec![0; 65_536];
        while let Ok(len) = back.recv(&mut buf) {
            let _ = to_client.send((Instant::now() + delay, buf[..len].to_vec()));
        }
    });
    println!("ready");
    let mut buf = vec![0; 65_536];
    while let Ok((len, from)) = front.recv_from(&mut buf) {
        *client.lock().unwrap() = Some(from);
        let _ = to_target.send((Instant::now() + delay, buf[..len].to_vec()));
    }
}

/// A thread that sends each datagram it is given with `send`, at its due time, in order.
fn held(send: impl Fn(&[u8]) + Send + 'static) -> mpsc::Sender<(Instant, Vec<u8>)> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        for (due, datagram) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            send(&datagram);
        }
    });
    tx
}
