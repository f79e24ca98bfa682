//! Flags and subcommands, as the contract's §5 (`docs/contract.md`) gives them.

use std::net::SocketAddr;
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
    /// Run a small mesh on 127.0.0.1 and show weft at work: capabilities, pub/sub, RPC,
    /// refusals. No configuration.
    Demo,
    /// Run a node: print its listen addresses, then serve until SIGINT/SIGTERM.
    Node(Box<NodeArgs>),
    /// Publish one JSON event.
    Pub(PubArgs),
    /// Subscribe to a pattern and print each event as a JSON line.
    Sub(SubArgs),
    /// Call a procedure and print its JSON result.
    Call(CallArgs),
    /// Provide a procedure by running a command per call (JSON arguments on stdin, result on stdout).
    Serve(ServeArgs),
    /// Hand a revocation record (from `weft ucan revoke`) to a realm through one of its nodes.
    Revoke(RevokeArgs),
    /// Ask a node about its DHT: its figures, or the providers of a procedure.
    #[command(subcommand)]
    Dht(DhtCommand),
    /// Ask a node whether it can be reached from outside, which relays it uses, and whether it
    /// reaches each peer directly or through a relay (one JSON object).
    Nat(NatArgs),
    /// Measure pub/sub throughput between two processes over QUIC on loopback.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The second process of a benchmark (started by `weft bench`).
    #[command(hide = true, subcommand)]
    BenchPeer(BenchPeerCommand),
}

// Settings come from a TOML file, then WEFT_* variables, then these flags, each overriding the
// one before (see crate::config).
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// A TOML configuration file (also WEFT_CONFIG); WEFT_* variables (WEFT_LISTEN, WEFT_HTTP, ...)
    /// override it, and flags override both.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Serve HTTP (health, metrics, status, gateway) on this address; default: off.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) http: Option<SocketAddr>,
    /// The node's PKCS#8 PEM key; default: a fresh key for this run.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// UCAN revocation records to apply at start (`weft ucan revoke` output, one per line).
    #[arg(long, value_name = "FILE")]
    pub(crate) revocations: Option<PathBuf>,
    /// Where the gateway writes down the Bearer tokens it accepted, so a restart does not let
    /// them be used again; default: remembered in memory for this run only.
    #[arg(long, value_name = "FILE")]
    pub(crate) replay_journal: Option<PathBuf>,
    /// Listen address (multiaddr or IP:PORT); repeatable. Default: 127.0.0.1:0.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// A peer to join the mesh through (multiaddr or IP:PORT); repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Listen on, and dial from, only this network interface's addresses (e.g. wg0).
    #[arg(long, value_name = "NAME")]
    pub(crate) interface: Option<String>,
    /// Find peers on the local network by multicast DNS (no bootstrap address needed).
    #[arg(long)]
    pub(crate) mdns: bool,
    /// Lend relayed circuits to nodes behind NATs (bounded: see docs/operations.md).
    #[arg(long)]
    pub(crate) relay: bool,
    /// A realm to take part in: NAME (open) or NAME=OWNER_DID; repeatable. Default: open "dev".
    #[arg(long, value_name = "NAME[=OWNER_DID]")]
    pub(crate) realm: Vec<String>,
    /// A UCAN this node acts under (TOKEN or @FILE), or a proof one needs; repeatable.
    #[arg(long, value_name = "TOKEN|@FILE")]
    pub(crate) ucan: Vec<String>,
    /// A label shown to peers, KEY=VALUE; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) tag: Vec<String>,
    /// First delay before redialing a lost peer (e.g. 100ms).
    #[arg(long, value_name = "DURATION")]
    pub(crate) reconnect_initial: Option<String>,
    /// Longest delay between redials (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) reconnect_max: Option<String>,
    /// Growth of the delay per attempt (≥ 1).
    #[arg(long, value_name = "X")]
    pub(crate) reconnect_multiplier: Option<String>,
    /// Randomised fraction of each delay, in [0, 1].
    #[arg(long, value_name = "X")]
    pub(crate) reconnect_jitter: Option<String>,
    /// Redials before giving up; 0 retries forever.
    #[arg(long, value_name = "N")]
    pub(crate) reconnect_attempts: Option<String>,
    /// Events buffered per subscription before drops.
    #[arg(long, value_name = "N")]
    pub(crate) subscriber_queue: Option<String>,
    /// Frames (publications, calls, replies) queued per peer before drops.
    #[arg(long, value_name = "N")]
    pub(crate) peer_queue: Option<String>,
    /// When a peer cannot keep up: `drop` (and count) or `block` (slow the publisher down).
    #[arg(long, value_name = "drop|block")]
    pub(crate) congestion: Option<String>,
    /// How long an idle connection stays open (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) idle_timeout: Option<String>,
    /// How fast a silent peer is declared gone (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) liveness: Option<String>,
    /// Connections held at once, inbound and outbound (default 64).
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<String>,
    /// Inbound QUIC handshakes in progress at once (default 128).
    #[arg(long, value_name = "N")]
    pub(crate) max_incoming_handshakes: Option<String>,
    /// Sessions whose peer has not said hello yet; one more lets the oldest go (default 256).
    #[arg(long, value_name = "N")]
    pub(crate) max_silent_peers: Option<String>,
    /// How long a peer has to say hello before its connection closes (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) hello_timeout: Option<String>,
    /// Subscriptions one peer may hold in a realm (default 10000).
    #[arg(long, value_name = "N")]
    pub(crate) max_subscriptions_per_peer: Option<String>,
    /// Procedures one peer may advertise in a realm (default 1024).
    #[arg(long, value_name = "N")]
    pub(crate) max_procedures_per_peer: Option<String>,
    /// Calls of one peer run or relayed at once, in a realm (default 128).
    #[arg(long, value_name = "N")]
    pub(crate) max_calls_per_peer: Option<String>,
    /// Longest a call is served, whatever its caller's timeout (default 5m).
    #[arg(long, value_name = "DURATION")]
    pub(crate) max_call_duration: Option<String>,
    /// Members of a realm connected to from its membership records (default 32); past it,
    /// only those the node's subscriptions, publications and calls need, found in the DHT.
    #[arg(long, value_name = "N")]
    pub(crate) mesh_members: Option<String>,
    /// How long a session carries nothing before it may be released to make room for a new
    /// one, once the node holds as many as --max-connections allows (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) idle_session: Option<String>,
    /// Bytes queued per local subscription before drops (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub(crate) subscriber_queue_bytes: Option<String>,
    /// Event streams the HTTP gateway serves at once; beyond, 503 (default 1024).
    #[arg(long, value_name = "N")]
    pub(crate) max_event_streams: Option<String>,
}

/// How a short-lived client joins the mesh.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The node to connect to (multiaddr or IP:PORT).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) connect: String,
    /// The realm: NAME (open) or NAME=OWNER_DID.
    #[arg(long, value_name = "NAME[=OWNER_DID]")]
    pub(crate) realm: String,
    /// The client's PKCS#8 PEM key; default: a fresh key for this run.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// A UCAN the client acts under (TOKEN or @FILE), or a proof one needs; repeatable.
    #[arg(long, value_name = "TOKEN|@FILE")]
    pub(crate) ucan: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The topic, e.g. orders.placed.
    pub(crate) topic: String,
    /// The payload, as JSON.
    pub(crate) json: String,
}

#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The pattern, e.g. orders.* or orders.**.
    pub(crate) pattern: String,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The procedure, e.g. orders.get.
    pub(crate) procedure: String,
    /// The arguments, as JSON.
    pub(crate) json: String,
    /// How long to wait for the result (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub(crate) timeout: String,
    /// How to pick among providers: round_robin, random, first, local_first.
    #[arg(long, value_name = "S", default_value = "round_robin")]
    pub(crate) strategy: String,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The procedure to provide.
    pub(crate) procedure: String,
    /// Commands running at once; further calls wait for one to end (within their timeout).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_concurrent: u32,
    /// The command run for each call, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct NatArgs {
    /// The node to ask (multiaddr or IP:PORT).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) connect: String,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The record (JSON), or @FILE.
    pub(crate) record: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DhtCommand {
    /// The node's routing table, store, query and dial counts, as one JSON object.
    Stats {
        /// The node to ask (multiaddr or IP:PORT).
        #[arg(long, value_name = "MULTIADDR")]
        connect: String,
    },
    /// The providers of a procedure the node finds with one lookup, one JSON line each
    /// (`{"did":…,"addresses":[…]}`); exit 3 if there is none.
    Lookup {
        /// The node to ask (multiaddr or IP:PORT).
        #[arg(long, value_name = "MULTIADDR")]
        connect: String,
        /// The realm: NAME (open) or NAME=OWNER_DID. The node need not host it.
        #[arg(long, value_name = "NAME[=OWNER_DID]")]
        realm: String,
        /// The procedure, e.g. orders.get.
        procedure: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Publications per second from one process to a subscriber in another.
    Pubsub {
        /// Payload size in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 128)]
        payload: usize,
        /// How many publications.
        #[arg(long, value_name = "N", default_value_t = 100_000)]
        messages: u64,
        /// Print one JSON object (see docs/contract.md §6).
        #[arg(long)]
        json: bool,
    },
    /// Round-trip latency and throughput of calls from one process to a provider in another.
    Rpc {
        /// Payload size in bytes (arguments and result).
        #[arg(long, value_name = "BYTES", default_value_t = 128)]
        payload: usize,
        /// How many calls.
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        calls: u64,
        /// Calls in flight at once.
        #[arg(long, value_name = "C", default_value_t = 1)]
        concurrency: usize,
        /// Print one JSON object (see docs/contract.md §6).
        #[arg(long)]
        json: bool,
    },
    /// N nodes in this process, one realm: how they converge, what they hold, and whether
    /// publications and calls from random nodes arrive.
    Mesh {
        /// How many nodes.
        #[arg(long, value_name = "N", default_value_t = 20)]
        nodes: usize,
        /// Each node's connection limit (`limits.max_connections`; default: the node's own).
        #[arg(long, value_name = "C")]
        connections: Option<u32>,
        /// Members each node connects to from the realm's membership records
        /// (`limits.mesh_members`, at most half the sessions C allows; default: the node's own). Past it, nodes
        /// connect to the subscribers and providers they need, found in the DHT.
        #[arg(long, value_name = "M")]
        mesh_members: Option<usize>,
        /// Publications, each from a random node to one of 8 topics.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        publications: u64,
        /// Calls, each from a random node.
        #[arg(long, value_name = "N", default_value_t = 100)]
        calls: u64,
        /// How long to wait for the nodes to converge before measuring anyway.
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        converge_within: u64,
        /// How long to leave the converged mesh alone before measuring its idle CPU use.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        settle: u64,
        /// Print one JSON object (see docs/contract.md §6).
        #[arg(long)]
        json: bool,
    },
    /// `bench mesh`'s workload over N simulated nodes: weft's decisions over a model of
    /// Kademlia and the network, in simulated time (docs/scale.md).
    Sim {
        /// How many nodes.
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        nodes: usize,
        /// Each node's connection budget.
        #[arg(long, value_name = "C", default_value_t = 16)]
        connections: u32,
        /// Publications per round, each from a random node.
        #[arg(long, value_name = "N", default_value_t = 100)]
        publications: usize,
        /// Calls per round, each from a random node.
        #[arg(long, value_name = "N", default_value_t = 100)]
        calls: usize,
        /// One-way latency of every link, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 20)]
        latency_ms: u64,
        /// The chance that a packet is lost (and sent again).
        #[arg(long, value_name = "P", default_value_t = 0.01)]
        loss: f64,
        /// The share of the nodes that crash after the first round.
        #[arg(long, value_name = "P", default_value_t = 0.1)]
        churn: f64,
        /// Seeds every random choice.
        #[arg(long, value_name = "N", default_value_t = 1)]
        seed: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchPeerCommand {
    /// Subscribe, count, report.
    Pubsub {
        /// The publishing process's address.
        #[arg(long)]
        connect: String,
        /// How many publications to expect.
        #[arg(long)]
        messages: u64,
    },
    /// Provide an echo procedure until stdin closes.
    Rpc {
        /// The calling process's address.
        #[arg(long)]
        connect: String,
    },
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
    /// Print a signed revocation record for a token (UCAN 0.10): nodes that apply it refuse
    /// every chain in which the token sits below (or is) one the key issued.
    Revoke {
        /// The revoker's PKCS#8 PEM key: the issuer of the token or of one above it.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The token to revoke, or @FILE.
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
