//! `weft`: the command line (contract §5, `docs/contract.md`).
//!
//! Thin by design: parse flags, call the library, print. Results go to stdout, logs to stderr
//! (`WEFT_LOG` or `RUST_LOG` set the level), and every error is one line on stderr with the exit
//! code of its kind, chosen in one place: [`error::CliError::exit_code`].

mod cli;
mod cmd;
mod config;
mod error;
mod input;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {}", printable(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `text` with its control characters escaped. An error can carry a peer's words (a handler's
/// message, a refusal's reason): they must not move the cursor, recolour the terminal or add a
/// line to the one-line error.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = match c.is_control() {
                true => c.escape_default().collect(),
                false => vec![c],
            };
            escaped
        })
        .collect()
}

/// Help and version go to stdout with exit 0; a usage error is one line on stderr and exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        print!("{e}");
        return ExitCode::SUCCESS;
    }
    // clap's message is a paragraph, then usage; keep the paragraph, on one line.
    let rendered = e.to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .collect();
    eprintln!("weft: {} (see 'weft --help')", message.join(" "));
    ExitCode::from(CliError::USAGE)
}

/// Warnings, except libp2p-kad's about a node with no peer yet, which every first node logs.
const DEFAULT_LOG: &str = "warn,libp2p_kad=error";

fn init_logging() {
    let filter = std::env::var("WEFT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_LOG.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
