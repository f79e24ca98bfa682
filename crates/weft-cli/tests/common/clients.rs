//! Clients in a lab's hosts: `weft sub`, `serve`, `pub` and `call` processes attached to a node,
//! in realm `dev`, with bounded waits.

use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::Netlab;
use super::{Running, lines, wait_for};

impl Netlab {
    /// A `weft sub` to `orders.*` in `ns` through the node at `connect`, once subscribed: its
    /// events.
    pub(crate) fn subscriber(
        &self,
        ns: &str,
        connect: &str,
        within: Duration,
    ) -> (mpsc::Receiver<String>, Running) {
        let mut sub = self
            .weft(
                ns,
                &["sub", "--connect", connect, "--realm", "dev", "orders.*"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = lines(sub.stdout.take().unwrap());
        let err = lines(sub.stderr.take().unwrap());
        wait_for(&err, within, |l| l == "ready");
        (events, Running::new(sub, vec![err]))
    }

    /// A `weft serve` of `procedure` in `ns` through the node at `connect`, answering each call
    /// with `answer` (one line of JSON), once it serves.
    pub(crate) fn provider(
        &self,
        ns: &str,
        connect: &str,
        procedure: &str,
        answer: &str,
        within: Duration,
    ) -> Running {
        let script = format!("read -r line; echo '{answer}'");
        self.serve(ns, connect, procedure, &script, within)
    }

    /// A `weft serve` of `procedure` in `ns` through the node at `connect`, running `sh -c
    /// SCRIPT` for each call (the arguments on its stdin, the answer on its stdout), once it
    /// serves.
    pub(crate) fn serve(
        &self,
        ns: &str,
        connect: &str,
        procedure: &str,
        script: &str,
        within: Duration,
    ) -> Running {
        let mut serve = self
            .weft(
                ns,
                &["serve", "--connect", connect, "--realm", "dev", procedure],
            )
            .args(["--", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = lines(serve.stderr.take().unwrap());
        wait_for(&err, within, |l| l == "ready");
        Running::new(serve, vec![err])
    }

    /// Publishes `{"n":N}` on `orders.placed` from `ns` through `connect` until `events` (a
    /// subscriber's) has one: until the mesh has formed, a publication can reach nobody.
    pub(crate) fn until_heard(
        &self,
        ns: &str,
        connect: &str,
        events: &mpsc::Receiver<String>,
        within: Duration,
    ) {
        let started = Instant::now();
        for n in 0.. {
            self.publish(ns, connect, n);
            if let Ok(line) = events.recv_timeout(Duration::from_secs(1)) {
                let event: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(event["topic"], "orders.placed");
                return;
            }
            assert!(started.elapsed() < within, "the subscriber heard nothing");
        }
    }

    /// Publishes `{"n":N}` on `orders.placed` from `ns` through `connect`, once.
    pub(crate) fn publish(&self, ns: &str, connect: &str, n: u64) {
        let status = self
            .weft(
                ns,
                &[
                    "pub",
                    "--connect",
                    connect,
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

    /// Calls `procedure` from `ns` through `connect` until a call is answered; returns the
    /// answer.
    pub(crate) fn until_answered(
        &self,
        ns: &str,
        connect: &str,
        procedure: &str,
        within: Duration,
    ) -> Value {
        let started = Instant::now();
        loop {
            let out = self
                .weft(
                    ns,
                    &[
                        "call",
                        "--connect",
                        connect,
                        "--realm",
                        "dev",
                        procedure,
                        "{}",
                        "--timeout",
                        "3s",
                    ],
                )
                .output()
                .unwrap();
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).unwrap();
            }
            assert!(
                started.elapsed() < within,
                "no call of {procedure} answered: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
