//! What the tests that run `weft` as processes share: reading their output with bounded waits,
//! and killing them when a test ends, however it ends.

// Each test file uses what it needs of this module.
#![allow(dead_code)]

pub(crate) mod clients;
pub(crate) mod delay;
pub(crate) mod netns;

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process and the rest of its output: dropping a reader would close its pipe, and the
/// process's next line there would kill it.
pub(crate) struct Running {
    _output: Vec<mpsc::Receiver<String>>,
    process: Killed,
}

impl Running {
    pub(crate) fn new(process: Child, output: Vec<mpsc::Receiver<String>>) -> Running {
        Running {
            _output: output,
            process: Killed(process),
        }
    }

    /// The process's id.
    pub(crate) fn id(&self) -> u32 {
        self.process.0.id()
    }

    /// Kills the process now (SIGKILL).
    pub(crate) fn kill(&mut self) -> std::io::Result<()> {
        self.process.0.kill()
    }
}

/// Lines of a child's stream, delivered through a channel so waits can be bounded.
pub(crate) fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line `wanted` accepts, within `within`; earlier lines are skipped.
pub(crate) fn wait_for(
    rx: &mpsc::Receiver<String>,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut skipped = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => panic!("expected output in time ({e}); lines before: {skipped:#?}"),
        };
        if wanted(&line) {
            return line;
        }
        skipped.push(line);
    }
}
