//! Flags and subcommands, as SPEC §5 gives them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// weft: realms, pub/sub and RPC on a peer-to-peer mesh, authorized by UCAN capabilities.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create and show Ed25519 identities (did:key).
    #[command(subcommand)]
    Id(IdCommand),
    /// Issue, verify and examine UCAN 0.10 capability tokens.
    #[command(subcommand)]
    Ucan(UcanCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdCommand {
    /// Write a new PKCS#8 PEM key (mode 0600) and print its did:key.
    New {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the did:key of a key file.
    Show {
        /// The PKCS#8 PEM key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UcanCommand {
    /// Issue a token signed by --key and print it.
    Issue(IssueArgs),
    /// Verify a token and its proofs: exit 0 valid, 1 invalid.
    Verify {
        /// The token, or @FILE.
        token: String,
        /// A proof the token (or a proof of it) cites: TOKEN or @FILE; repeatable.
        #[arg(long = "proof", value_name = "TOKEN|@FILE")]
        proofs: Vec<String>,
        /// Verify as of this Unix time instead of now.
        #[arg(long, value_name = "UNIX")]
        now: Option<u64>,
        /// Print {"valid":bool,"error":CODE|null,"detail":STRING|null} on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a token's proof CID.
    Cid {
        /// The token, or @FILE.
        token: String,
        /// The multihash: sha2-256 (default) or blake3.
        #[arg(long, value_name = "HASH", default_value = "sha2-256")]
        hash: String,
    },
    /// Print a token's header and payload as JSON (without verifying it).
    Inspect {
        /// The token, or @FILE.
        token: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The issuer's PKCS#8 PEM key file.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// The audience's did:key.
    #[arg(long, value_name = "DID")]
    pub(crate) aud: String,
    /// A capability, RESOURCE=ABILITY (e.g. weft://io.acme/orders.*=rpc/call); repeatable.
    #[arg(long = "cap", value_name = "RESOURCE=ABILITY")]
    pub(crate) caps: Vec<String>,
    /// Lifetime in seconds from now, or "never". Default: 86400 (a day), cut to the earliest
    /// expiry among the proofs, since a delegation cannot outlive them.
    #[arg(long, value_name = "SECONDS|never")]
    pub(crate) exp: Option<String>,
    /// Not valid before this Unix time.
    #[arg(long, value_name = "UNIX")]
    pub(crate) nbf: Option<u64>,
    /// A proof this token is delegated under: TOKEN or @FILE; repeatable.
    #[arg(long = "proof", value_name = "TOKEN|@FILE")]
    pub(crate) proofs: Vec<String>,
    /// Facts, as one JSON object.
    #[arg(long, value_name = "JSON")]
    pub(crate) fact: Option<String>,
    /// A nonce, to make otherwise identical tokens distinct.
    #[arg(long, value_name = "S")]
    pub(crate) nonce: Option<String>,
}
