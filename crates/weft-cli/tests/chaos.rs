//! Faults between two hosts, as `weft` processes see them: two Linux network namespaces joined by
//! a veth pair, one node in each, clients attached to each node over the namespace's loopback.
//! Partitions and packet loss are nftables rules on the veth ends. Delay holds every packet on
//! `a`'s end of the link (`common::delay`: the kernels this runs on have no `sch_netem`, so
//! `tc netem` is not used).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables), and `iptables` for the delay: elsewhere
//! each test prints why it skips. `.ci/run` installs them and sets `WEFT_REQUIRE_NETNS=1`,
//! which turns a skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::netns::Netlab;
use common::{Running, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// Two namespaces joined by a veth pair (`eth0` in each): `a` at 10.77.0.1, `b` at 10.77.0.2.
struct Lab {
    net: Netlab,
    a: String,
    b: String,
}

impl Lab {
    /// A lab named after `tag` (one per test, so tests can run at once), or `None` with the
    /// reason printed when this machine cannot build one (`tools`: what the test needs besides
    /// `ip` and `nft`).
    fn new(tag: &str, tools: &[&str]) -> Option<Lab> {
        let mut net = Netlab::new(tag, &[&["nft"], tools].concat())?;
        let a = net.host("a");
        let b = net.host("b");
        net.link(
            (&a, "eth0", Some("10.77.0.1/24")),
            (&b, "eth0", Some("10.77.0.2/24")),
        );
        Some(Lab { net, a, b })
    }

    /// `weft ARGS` inside namespace `ns`.
    fn weft(&self, ns: &str, args: &[&str]) -> Command {
        self.net.weft(ns, args)
    }

    /// Drops every packet arriving on the veth pair (`drop_percent` = 100), some of them, or
    /// none (0), in both namespaces.
    fn drop_on_link(&self, drop_percent: u32) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "delete", "table", "inet", "chaos",
                ])
                .output();
            if drop_percent == 0 {
                continue;
            }
            let rule = if drop_percent >= 100 {
                "iifname eth0 drop".to_owned()
            } else {
                format!("iifname eth0 numgen random mod 100 < {drop_percent} drop")
            };
            self.net.nft(
                ns,
                &format!(
                    "table inet chaos {{
                        chain input {{
                            type filter hook input priority 0; policy accept;
                            {rule}
                        }}
                    }}
"
                ),
            );
        }
    }
}

/// Node A in `a` and node B in `b`, B bootstrapping from A; each listens on every address of
/// its namespace (one socket: libp2p dials from a listener's socket, and one bound to 127.0.0.1
/// cannot reach the veth), and that side's clients attach over loopback.
fn two_nodes(lab: &Lab) -> (Running, Running) {
    let start = |ns: &str, args: &[&str]| {
        let mut node = lab
            .weft(ns, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = lines(node.stdout.take().unwrap());
        wait_for(&out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/4001"));
        Running::new(node, vec![out])
    };
    let a = start(&lab.a, &["node", "--listen", "0.0.0.0:4001"]);
    let b = start(
        &lab.b,
        &[
            "node",
            "--listen",
            "0.0.0.0:4001",
            "--bootstrap",
            "10.77.0.1:4001",
        ],
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
    lab.net.serve(ns, LOCAL, procedure, &script, LIMIT)
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
    let Some(lab) = Lab::new("p", &[]) else {
        return;
    };
    let (_a, _b) = two_nodes(&lab);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls");
    let _provider = provider(&lab, &lab.b.clone(), "orders.get", &record, "0");
    let (sub_out, _sub) = lab.net.subscriber(&lab.a, LOCAL, LIMIT);
    until_a_call_succeeds(&lab, &lab.a, "orders.get", LIMIT);
    let received = |n: u64| {
        move |line: &str| serde_json::from_str::<Value>(line).unwrap()["payload"]["n"] == n
    };
    // Publications go at most once: until B has the subscription, one can reach nobody.
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        lab.net.publish(&lab.b, LOCAL, n);
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
        lab.net.publish(&lab.b, LOCAL, n);
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
        lab.net.publish(&lab.b, LOCAL, n);
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
    let Some(lab) = Lab::new("k", &[]) else {
        return;
    };
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
    doomed.kill().unwrap();
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
    let Some(mut lab) = Lab::new("l", &["iptables"]) else {
        return;
    };
    lab.net
        .delay_link(&lab.a, "eth0", Duration::from_millis(50));
    let (_a, _b) = two_nodes(&lab);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("calls");
    let _provider = provider(&lab, &lab.b.clone(), "orders.get", &record, "0");
    until_a_call_succeeds(&lab, &lab.a, "orders.get", LIMIT);
    let (events, _sub) = lab.net.subscriber(&lab.b, LOCAL, LIMIT);
    // The subscription reaches A over the delayed link; a publication that arrives before it
    // has no subscriber to go to, so publish until the first one is delivered.
    let mut n = 0;
    while !wait_for_any(&events, Duration::from_millis(500)) {
        assert!(n < 100, "no publication reached the subscriber");
        lab.net.publish(&lab.a, LOCAL, n);
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
        lab.net.publish(&lab.a, LOCAL, n);
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
    assert!(
        lab.net.delayed(&lab.a) > 0,
        "nothing went through the delay"
    );
}
