//! Reach on one network: a node bound to one interface (`--interface`), and nodes of one LAN
//! that find each other by mDNS (`--mdns`) with no bootstrap address. Hosts are Linux network
//! namespaces (see `common::netns`); each node's clients attach to it from its own host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::netns::Netlab;
use common::{Killed, Running, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(60);
/// What the procedure these tests serve answers.
const OK: &str = r#"{"ok":1}"#;

/// `weft node ARGS` in `ns`, once it prints a listen address `first` accepts.
fn node(lab: &Netlab, ns: &str, args: &[&str], first: impl Fn(&str) -> bool) -> Running {
    let mut node = lab
        .weft(ns, &[&["node"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(node.stdout.take().unwrap());
    let err = lines(node.stderr.take().unwrap());
    wait_for(&out, LIMIT, first);
    Running::new(node, vec![out, err])
}

/// The local addresses of the UDP sockets process `pid` holds in `ns`.
fn udp_sockets(lab: &Netlab, ns: &str, pid: u32) -> Vec<String> {
    let out = lab.exec(ns, &["ss", "-Huanp"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .map(|l| l.split_whitespace().nth(3).unwrap_or_default().to_owned())
        .collect()
}

/// A node bound to `eth0` listens on that interface's address alone, and dials from it: it
/// joins a node on the other end of the link, and publications and calls go both ways. It
/// refuses to start on an interface that is missing or has no address, and does not dial a
/// loopback address it could only reach from another interface.
#[test]
fn a_node_bound_to_an_interface_listens_and_dials_only_there() {
    let Some(mut lab) = Netlab::new("if", &["ss"]) else {
        return;
    };
    let a = lab.host("a");
    let b = lab.host("b");
    lab.link(
        (&a, "eth0", Some("10.80.0.1/24")),
        (&b, "eth0", Some("10.80.0.2/24")),
    );
    // An interface with no address of its own (an IPv6 link-local one at most).
    lab.link((&b, "idle0", None), (&a, "idle1", None));

    for (interface, says) in [
        ("nosuch0", "no network interface named \"nosuch0\""),
        ("idle0", "interface idle0 has no IP address"),
    ] {
        let out = lab
            .weft(&b, &["node", "--interface", interface])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{interface}: started");
        assert!(stderr.contains(says), "{interface}: {stderr}");
    }
    let out = lab
        .weft(
            &b,
            &["node", "--interface", "eth0", "--listen", "127.0.0.1:0"],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("127.0.0.1 is not an address of interface eth0")
    );

    let _a = node(&lab, &a, &["--listen", "0.0.0.0:4001"], |l| {
        l.starts_with("/ip4/10.80.0.1/udp/4001")
    });
    let b_node = node(
        &lab,
        &b,
        &[
            "--interface",
            "eth0",
            "--listen",
            "0.0.0.0:4001",
            "--bootstrap",
            "10.80.0.1:4001",
        ],
        |l| l.starts_with("/ip4/10.80.0.2/udp/4001"),
    );
    let b_pid = b_node.id();

    let (events, _sub) = lab.subscriber(&a, "127.0.0.1:4001", LIMIT);
    lab.until_heard(&b, "10.80.0.2:4001", &events, LIMIT);
    let _provider = lab.provider(&b, "10.80.0.2:4001", "orders.get", OK, LIMIT);
    let answer = lab.until_answered(&a, "127.0.0.1:4001", "orders.get", LIMIT);
    assert_eq!(answer["ok"], 1);

    // Everything B sent and received went through the one socket on eth0's address.
    assert_eq!(udp_sockets(&lab, &b, b_pid), ["10.80.0.2:4001"]);

    // A loopback bootstrap address cannot be reached from eth0: not dialed, and said so.
    let mut stray = lab
        .weft(
            &b,
            &[
                "node",
                "--interface",
                "eth0",
                "--bootstrap",
                "127.0.0.1:4001",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines(stray.stderr.take().unwrap());
    let _stray = Killed(stray);
    let line = wait_for(&err, LIMIT, |l| l.contains("bootstrap peer"));
    assert!(line.contains("127.0.0.1"), "{line}");
}

/// Three hosts on one LAN (a bridge), each with a node started with `--mdns` and no bootstrap
/// address: they find each other, and a publication and a call go through.
#[test]
fn nodes_on_one_lan_find_each_other_by_mdns() {
    let Some(mut lab) = Netlab::new("md", &[]) else {
        return;
    };
    let lan = lab.host("lan");
    let hosts: Vec<String> = (1..=3).map(|i| lab.host(&format!("h{i}"))).collect();
    for (i, host) in hosts.iter().enumerate() {
        let addr = format!("10.81.0.{}/24", i + 1);
        let port = format!("p{}", i + 1);
        lab.link((host, "eth0", Some(&addr)), (&lan, &port, None));
    }
    lab.bridge(&lan, "br0", &["p1", "p2", "p3"]);

    let nodes: Vec<Running> = hosts
        .iter()
        .map(|host| {
            node(&lab, host, &["--mdns", "--listen", "0.0.0.0:4001"], |l| {
                l.starts_with("/ip4/10.81.0.")
            })
        })
        .collect();
    let local = "127.0.0.1:4001";
    let (events, _sub) = lab.subscriber(&hosts[0], local, LIMIT);
    let _provider = lab.provider(&hosts[2], local, "orders.get", OK, LIMIT);
    lab.until_heard(&hosts[1], local, &events, LIMIT);
    let answer = lab.until_answered(&hosts[0], local, "orders.get", LIMIT);
    assert_eq!(answer["ok"], 1);
    drop(nodes);
}
