//! Hosts, links and bridges in Linux network namespaces that a test makes and removes, for
//! tests of what crosses a network (interfaces, LAN discovery, NAT).
//!
//! Needs root and `ip` (iproute2), and `nft` (nftables) or `iptables` for tests that say so:
//! elsewhere a lab is not made and the reason is printed. `.ci/run` installs them and sets
//! `WEFT_REQUIRE_NETNS=1`, which turns a skip into a failure.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::delay::Delay;

/// Runs `args`, failing the test with its stderr if it fails.
pub(crate) fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Namespaces named after the test process and a tag (so tests can run at once), removed with
/// the lab. Interfaces are named within their namespace, so every host can have its `eth0`.
pub(crate) struct Netlab {
    prefix: String,
    namespaces: Vec<String>,
    delays: Vec<(String, Delay)>,
}

impl Netlab {
    /// A lab for `tag`, or `None` with the reason printed when this machine cannot make one
    /// (`tools`: the commands the test needs besides `ip`).
    pub(crate) fn new(tag: &str, tools: &[&str]) -> Option<Netlab> {
        let missing = std::iter::once("ip")
            .chain(tools.iter().copied())
            .find(|tool| {
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
        Some(Netlab {
            prefix: format!("w{}{tag}", std::process::id() % 100_000),
            namespaces: Vec::new(),
            delays: Vec::new(),
        })
    }

    /// A new host: a namespace with its loopback up. Returns the namespace's name.
    pub(crate) fn host(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.prefix);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair: `if_a` in `a`, `if_b` in `b`, both up, each with its address (`10.1.0.1/24`)
    /// if given.
    pub(crate) fn link(
        &self,
        (a, if_a, addr_a): (&str, &str, Option<&str>),
        (b, if_b, addr_b): (&str, &str, Option<&str>),
    ) {
        run(&[
            "ip", "link", "add", if_a, "netns", a, "type", "veth", "peer", "name", if_b, "netns", b,
        ]);
        for (ns, name, addr) in [(a, if_a, addr_a), (b, if_b, addr_b)] {
            if let Some(addr) = addr {
                run(&["ip", "-n", ns, "addr", "add", addr, "dev", name]);
            }
            run(&["ip", "-n", ns, "link", "set", name, "up"]);
        }
    }

    /// A bridge named `name` in `ns`, up, with `ports` (interfaces of `ns`) attached.
    pub(crate) fn bridge(&self, ns: &str, name: &str, ports: &[&str]) {
        run(&["ip", "-n", ns, "link", "add", name, "type", "bridge"]);
        run(&["ip", "-n", ns, "link", "set", name, "up"]);
        for port in ports {
            run(&["ip", "-n", ns, "link", "set", port, "master", name]);
        }
    }

    /// `args` run inside `ns`, which must succeed.
    pub(crate) fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Loads an nftables ruleset (`nft -f -` syntax) in `ns`, which must succeed.
    pub(crate) fn nft(&self, ns: &str, rules: &str) {
        use std::io::Write;
        let mut nft = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        let out = nft.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft in {ns}: {}\n{rules}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Delays every packet `ns` forwards by `by`, each way, as `tc netem delay` on a router
    /// would. Needs `iptables`.
    pub(crate) fn delay_forwarded(&mut self, ns: &str, by: Duration) {
        self.delay(ns, &[&["FORWARD"]], by);
    }

    /// Delays every packet `ns` sends or receives on `interface` by `by`. Needs `iptables`.
    pub(crate) fn delay_link(&mut self, ns: &str, interface: &str, by: Duration) {
        self.delay(
            ns,
            &[&["INPUT", "-i", interface], &["OUTPUT", "-o", interface]],
            by,
        );
    }

    /// Packets delayed so far in `ns`: a test checks its traffic went through the delay.
    pub(crate) fn delayed(&self, ns: &str) -> u64 {
        self.delays
            .iter()
            .filter(|(name, _)| name == ns)
            .map(|(_, delay)| delay.held())
            .sum()
    }

    /// Queues what the iptables `rules` (chain and matches) select, to a [`Delay`] in `ns`.
    /// nftables has no queue statement on these kernels; iptables' NFQUEUE target does it.
    fn delay(&mut self, ns: &str, rules: &[&[&str]], by: Duration) {
        let queue = self.delays.iter().filter(|(name, _)| name == ns).count() as u16;
        self.delays
            .push((ns.to_owned(), Delay::start(ns, queue, by)));
        let queue = queue.to_string();
        for rule in rules {
            let mut args = vec!["iptables", "-t", "mangle", "-A"];
            args.extend_from_slice(rule);
            args.extend_from_slice(&["-j", "NFQUEUE", "--queue-num", &queue, "--queue-bypass"]);
            self.exec(ns, &args);
        }
    }

    /// `weft ARGS` inside `ns` (the process is weft itself: `ip netns exec` execs it).
    pub(crate) fn weft(&self, ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_weft")])
            .args(args)
            .env_remove("WEFT_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for Netlab {
    fn drop(&mut self) {
        // A delay's reader holds its namespace open.
        self.delays.clear();
        // Links and bridges go with their namespaces.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
