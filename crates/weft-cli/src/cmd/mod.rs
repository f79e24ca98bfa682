//! One module per command group; this one only dispatches.

mod id;
mod ucan;

use crate::cli::{Cli, Command};
use crate::error::CliError;

pub(crate) fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Id(cmd) => id::run(cmd),
        Command::Ucan(cmd) => ucan::run(cmd),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> Result<u64, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| CliError::Failed("the system clock is before 1970".into()))
}
