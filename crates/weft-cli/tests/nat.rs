//! Nodes behind NATs, in a lab of Linux network namespaces (`common::netns`):
//!
//! ```text
//!   relay 198.18.0.10 (--relay)   boot 198.18.0.11
//!          \                        /
//!           +------ br0 in `pub` --+------------------+-----------------+
//!                   |                                 |                 |
//!           home1 198.18.0.21                 home2 198.18.0.22   sym 198.18.0.23
//!           (endpoint-independent)            (endpoint-indep.)   (endpoint-dependent)
//!                   |                                 |                 |
//!           h1 192.168.1.2                    h2 192.168.2.2      h3 192.168.3.2
//! ```
//!
//! The routers translate with nftables. A home router maps each inside address and port to the
//! same outside port whatever the destination (`snat` keeps the port when it is free), and lets
//! in only what answers a flow from inside: a "port-restricted cone", the NAT most homes have,
//! which hole punching can open. Unsolicited packets are dropped before conntrack confirms
//! them, so they cannot take the port a flow from inside would keep. The symmetric router
//! picks an outside port per flow from a range (`snat ip to ADDR:20000-60000 random`): hole
//! punching cannot guess it, and its node works through the relay. Each router holds every
//! packet it forwards [`ROUTER_DELAY`] each way, as `tc netem delay` would (the kernels this
//! runs on have no `sch_netem`: the delay is an NFQUEUE read by this test, `common::delay`), so
//! a path through two routers has 80 ms of round trip and one through the relay more.
//!
//! Needs root, `ip`, `nft` and `iptables`: elsewhere the test prints why it skips, and
//! `.ci/run` sets `WEFT_REQUIRE_NETNS=1`, which turns a skip into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::netns::Netlab;
use common::{Running, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(90);
/// What each router adds to a packet, each way.
const ROUTER_DELAY: Duration = Duration::from_millis(20);
const LOCAL: &str = "127.0.0.1:4001";

/// The lab: its namespaces, by role.
struct Lab {
    net: Netlab,
    relay: String,
    boot: String,
    h1: String,
    h2: String,
    h3: String,
    routers: Vec<String>,
}

impl Lab {
    fn new() -> Option<Lab> {
        let mut net = Netlab::new("nat", &["nft", "iptables"])?;
        let public = net.host("pub");
        let relay = net.host("relay");
        let boot = net.host("boot");
        net.link(
            (&relay, "eth0", Some("198.18.0.10/24")),
            (&public, "prelay", None),
        );
        net.link(
            (&boot, "eth0", Some("198.18.0.11/24")),
            (&public, "pboot", None),
        );
        let mut ports = vec!["prelay".to_owned(), "pboot".to_owned()];
        let mut homes = Vec::new();
        let mut routers = Vec::new();
        for (i, symmetric) in [(1, false), (2, false), (3, true)] {
            let router = net.host(&format!("r{i}"));
            let host = net.host(&format!("h{i}"));
            let port = format!("pr{i}");
            net.link(
                (&router, "wan0", Some(&format!("198.18.0.2{i}/24"))),
                (&public, &port, None),
            );
            net.link(
                (&router, "lan0", Some(&format!("192.168.{i}.1/24"))),
                (&host, "eth0", Some(&format!("192.168.{i}.2/24"))),
            );
            net.exec(
                &host,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("192.168.{i}.1"),
                ],
            );
            net.exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
            nat(&net, &router, &format!("198.18.0.2{i}"), symmetric);
            net.delay_forwarded(&router, ROUTER_DELAY);
            routers.push(router);
            ports.push(port);
            homes.push(host);
        }
        let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
        net.bridge(&public, "br0", &ports);
        let h3 = homes.pop().unwrap();
        let h2 = homes.pop().unwrap();
        let h1 = homes.pop().unwrap();
        Some(Lab {
            net,
            relay,
            boot,
            h1,
            h2,
            h3,
            routers,
        })
    }

    /// `weft node ARGS` in `ns`, listening on every address at port 4001; returns it and its DID.
    fn node(&self, ns: &str, args: &[&str]) -> (Running, String) {
        let mut node = self
            .net
            .weft(ns, &[&["node", "--listen", "0.0.0.0:4001"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines(node.stdout.take().unwrap());
        let err = lines(node.stderr.take().unwrap());
        let up = wait_for(&err, LIMIT, |l| l.starts_with("weft: node did:key:"));
        let did = up.split_whitespace().nth(2).unwrap().to_owned();
        (Running::new(node, vec![out, err]), did)
    }

    /// What `weft nat` says of the node in `ns`.
    fn nat(&self, ns: &str) -> Value {
        let out = self
            .net
            .weft(ns, &["nat", "--connect", LOCAL])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "weft nat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Asks `weft nat` in `ns` once a second until `done` accepts its answer; returns that.
    fn nat_until(&self, ns: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let report = self.nat(ns);
            if done(&report) {
                return report;
            }
            assert!(
                started.elapsed() < LIMIT,
                "{what}: not within {LIMIT:?}; last said {report}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Address translation on `router`, whose outside address is `outside`: a home NAT
/// (endpoint-independent mapping, replies only), or a symmetric one (a random port per flow).
fn nat(net: &Netlab, router: &str, outside: &str, symmetric: bool) {
    let snat = if symmetric {
        // A port range: without one, `random` still keeps a free source port.
        format!("oifname \"wan0\" meta l4proto udp snat ip to {outside}:20000-60000 random")
    } else {
        format!("oifname \"wan0\" snat ip to {outside}")
    };
    // One statement a line: nft takes a port range followed by `;` and `}` on one line badly.
    let rules = format!(
        "table ip weftnat {{
            chain post {{
                type nat hook postrouting priority srcnat; policy accept;
                {snat}
            }}
        }}
        table inet weftfw {{
            chain input {{
                type filter hook input priority filter; policy accept;
                iifname \"wan0\" ct state new drop
            }}
            chain forward {{
                type filter hook forward priority filter; policy accept;
                iifname \"wan0\" ct state new drop
            }}
        }}
"
    );
    net.nft(router, &rules);
}

fn peer_path<'a>(report: &'a Value, did: &str) -> Option<&'a str> {
    report["peers"]
        .as_array()?
        .iter()
        .find(|p| p["did"] == did)?["path"]
        .as_str()
}

/// Two nodes behind two home NATs find out they are private, reserve slots on the relay, meet
/// through it, and end up on a direct (hole-punched) path; publications and calls go between
/// them. A node behind a symmetric NAT cannot be punched to: it stays relayed, and still
/// publishes and calls.
#[test]
fn nodes_behind_nats_punch_through_or_stay_relayed() {
    let Some(lab) = Lab::new() else {
        return;
    };
    let boot_addr = "198.18.0.11:4001";
    // The relay dials the bootstrap node: AutoNAT asks for dial-backs over connections a node
    // opened itself, so a node that never dialed anyone is never tested.
    let (_boot, _) = lab.node(&lab.boot, &[]);
    let (_relay, relay_did) = lab.node(&lab.relay, &["--relay", "--bootstrap", boot_addr]);
    let (_n1, _h1_did) = lab.node(&lab.h1, &["--bootstrap", boot_addr]);
    let (_n2, h2_did) = lab.node(&lab.h2, &["--bootstrap", boot_addr]);

    // Each home node learns it is behind a NAT and takes a slot on the relay.
    for home in [&lab.h1, &lab.h2] {
        let report = lab.nat_until(home, "a relay slot", |r| {
            let some = |key: &str| r[key].as_array().is_some_and(|a| !a.is_empty());
            r["reachability"] == "private" && some("relays") && some("relayed_addrs")
        });
        assert_eq!(report["relays"][0], relay_did.as_str());
        let relayed = report["relayed_addrs"][0].as_str().unwrap();
        assert!(
            relayed.starts_with("/ip4/198.18.0.10/udp/4001/quic-v1/p2p/")
                && relayed.contains("/p2p-circuit"),
            "{relayed}"
        );
    }
    let relay_report = lab.nat_until(&lab.relay, "the relay tested", |r| {
        r["reachability"] == "public"
    });
    assert!(
        relay_report["public_addrs"]
            .to_string()
            .contains("198.18.0.10")
    );

    // h1 and h2 meet through the relay and punch a direct path.
    let net = &lab.net;
    let _provider = net.provider(&lab.h2, LOCAL, "orders.get", r#"{"from":"h2"}"#, LIMIT);
    let (events, _sub) = net.subscriber(&lab.h1, LOCAL, LIMIT);
    net.until_heard(&lab.h2, LOCAL, &events, LIMIT);
    let answer = net.until_answered(&lab.h1, LOCAL, "orders.get", LIMIT);
    assert_eq!(answer["from"], "h2");
    lab.nat_until(&lab.h1, "a direct path to h2", |r| {
        peer_path(r, &h2_did) == Some("direct")
    });

    // h3, behind the symmetric NAT, reaches them through the relay.
    let (_n3, h3_did) = lab.node(&lab.h3, &["--bootstrap", boot_addr]);
    net.until_heard(&lab.h3, LOCAL, &events, LIMIT);
    let answer = net.until_answered(&lab.h3, LOCAL, "orders.get", LIMIT);
    assert_eq!(answer["from"], "h2");
    let report = lab.nat(&lab.h2);
    assert_eq!(
        peer_path(&report, &h3_did),
        Some("relayed"),
        "h2 reaches h3 only through the relay: {report}"
    );
    for router in &lab.routers {
        assert!(lab.net.delayed(router) > 0, "{router} delayed nothing");
    }
}
