//! One module per command group; this one only dispatches.

mod bench;
mod bench_mesh;
mod demo;
mod dht;
mod id;
mod mesh;
mod nat;
mod ucan;

use crate::cli::{Cli, Command};
use crate::error::CliError;

pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Id(cmd) => id::run(cmd),
        Command::Ucan(cmd) => ucan::run(cmd),
        Command::Demo => block_on(demo::run()),
        Command::Node(args) => block_on_threads(mesh::node(*args)),
        Command::Pub(args) => block_on(mesh::publish(args)),
        Command::Sub(args) => block_on(mesh::subscribe(args)),
        Command::Call(args) => block_on(mesh::call(args)),
        Command::Serve(args) => block_on(mesh::serve(args)),
        Command::Revoke(args) => block_on(mesh::revoke(args)),
        Command::Dht(cmd) => block_on(dht::run(cmd)),
        Command::Nat(args) => block_on(nat::run(args)),
        Command::Bench(cmd) => block_on(bench::run(cmd)),
        Command::BenchPeer(cmd) => block_on(bench::peer(cmd)),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> Result<u64, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| CliError::Failed("the system clock is before 1970".into()))
}

/// Runs an async command on a small runtime of its own (the node has its own threads).
fn block_on<F: std::future::Future<Output = Result<(), CliError>>>(
    future: F,
) -> Result<(), CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?
        .block_on(future)
}

/// Runs `weft node` on a runtime of two threads: its HTTP surface answers (`/health` above all)
/// while another request is being served.
fn block_on_threads<F: std::future::Future<Output = Result<(), CliError>>>(
    future: F,
) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?
        .block_on(future)
}
