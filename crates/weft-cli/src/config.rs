//! `weft node` settings: a TOML file, then `WEFT_*` environment variables, then flags; each
//! layer overrides the one before it, key by key (a list given at a higher layer replaces the
//! lower layer's list).
//!
//! ```toml
//! key = "node.pem"                              # WEFT_KEY        --key
//! listen = ["/ip4/0.0.0.0/udp/4001/quic-v1"]    # WEFT_LISTEN     --listen (a,b)
//! bootstrap = ["10.0.0.2:4001"]                 # WEFT_BOOTSTRAP  --bootstrap (a,b)
//! interface = "wg0"                             # WEFT_INTERFACE  --interface
//! mdns = true                                   # WEFT_MDNS       --mdns (true|false)
//! relay = true                                  # WEFT_RELAY      --relay (true|false)
//! http = "127.0.0.1:8080"                       # WEFT_HTTP       --http
//! ucan = ["@node.jwt"]                          # WEFT_UCAN       --ucan (a,b)
//! revocations = "revoked.jsonl"                 # WEFT_REVOCATIONS --revocations
//! replay_journal = "replay.log"                 # WEFT_REPLAY_JOURNAL --replay-journal
//! [tags]                                        # WEFT_TAGS       --tag (k=v,k2=v2)
//! region = "eu"
//! [[realm]]                                     # WEFT_REALMS     --realm (name=owner,name2)
//! name = "io.acme"
//! owner = "did:key:z6Mk..."                     # omit for an open realm
//! [reconnect]
//! initial = "100ms"                             # WEFT_RECONNECT_INITIAL     --reconnect-initial
//! max = "10s"                                   # WEFT_RECONNECT_MAX         --reconnect-max
//! multiplier = 2.0                              # WEFT_RECONNECT_MULTIPLIER  --reconnect-multiplier
//! jitter = 0.5                                  # WEFT_RECONNECT_JITTER      --reconnect-jitter
//! attempts = 0                                  # WEFT_RECONNECT_ATTEMPTS    --reconnect-attempts (0 = forever)
//! [limits]
//! subscriber_queue = 4096                       # WEFT_LIMITS_SUBSCRIBER_QUEUE  --subscriber-queue
//! peer_queue = 16384                            # WEFT_LIMITS_PEER_QUEUE     --peer-queue
//! congestion = "drop"                           # WEFT_LIMITS_CONGESTION     --congestion (drop|block)
//! idle_timeout = "10s"                          # WEFT_LIMITS_IDLE_TIMEOUT   --idle-timeout
//! liveness = "10s"                              # WEFT_LIMITS_LIVENESS       --liveness
//! max_connections = 64                        # WEFT_LIMITS_MAX_CONNECTIONS  --max-connections
//! max_incoming_handshakes = 128               # WEFT_LIMITS_MAX_INCOMING_HANDSHAKES  --max-incoming-handshakes
//! max_silent_peers = 256                      # WEFT_LIMITS_MAX_SILENT_PEERS  --max-silent-peers
//! hello_timeout = "5s"                        # WEFT_LIMITS_HELLO_TIMEOUT  --hello-timeout
//! max_subscriptions_per_peer = 10000          # WEFT_LIMITS_MAX_SUBSCRIPTIONS_PER_PEER  --max-subscriptions-per-peer
//! max_procedures_per_peer = 1024              # WEFT_LIMITS_MAX_PROCEDURES_PER_PEER  --max-procedures-per-peer
//! max_calls_per_peer = 128                    # WEFT_LIMITS_MAX_CALLS_PER_PEER  --max-calls-per-peer
//! max_call_duration = "5m"                    # WEFT_LIMITS_MAX_CALL_DURATION  --max-call-duration
//! mesh_members = 32                           # WEFT_LIMITS_MESH_MEMBERS  --mesh-members
//! idle_session = "30s"                       # WEFT_LIMITS_IDLE_SESSION  --idle-session
//! subscriber_queue_bytes = 16777216           # WEFT_LIMITS_SUBSCRIBER_QUEUE_BYTES  --subscriber-queue-bytes
//! max_event_streams = 1024                    # WEFT_LIMITS_MAX_EVENT_STREAMS  --max-event-streams
//! ```
//!
//! The file is `--config FILE` or `WEFT_CONFIG`. Relative paths in it (`key`, `@FILE` tokens)
//! are relative to the file's directory; in variables and flags, to the working directory.
//! An empty variable counts as unset. Other `WEFT_*` variables are not settings and are ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};
use weft::{BackoffPolicy, Congestion, Did, RealmName};

use crate::cli::NodeArgs;
use crate::error::CliError;
use crate::input::parse_duration;

/// What `weft node` runs with, once the file, the environment and the flags are merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeSettings {
    /// The PKCS#8 key file; `None`: a fresh key for this run.
    pub(crate) key: Option<PathBuf>,
    /// Revocation records to apply at start, one JSON record per line.
    pub(crate) revocations: Option<PathBuf>,
    /// Where the gateway writes down the Bearer tokens it accepted; `None`: memory only.
    pub(crate) replay_journal: Option<PathBuf>,
    /// Listen addresses (multiaddr or IP:PORT); empty: the node's default, 127.0.0.1:0.
    pub(crate) listen: Vec<String>,
    /// Peers to join the mesh through.
    pub(crate) bootstrap: Vec<String>,
    /// The one network interface to listen on and dial from; `None`: all of them.
    pub(crate) interface: Option<String>,
    /// Find peers on the LAN by mDNS.
    pub(crate) mdns: bool,
    /// Lend relayed circuits to nodes behind NATs.
    pub(crate) relay: bool,
    /// Where the HTTP surface (health, metrics, status, gateway) listens; `None`: off.
    pub(crate) http: Option<SocketAddr>,
    /// The realms to take part in; never empty (default: the open realm `dev`).
    pub(crate) realms: Vec<RealmSetting>,
    /// Tokens (`TOKEN` or `@FILE`, paths already resolved) this node acts under, and proofs.
    pub(crate) ucans: Vec<String>,
    /// Labels shown to peers.
    pub(crate) tags: Vec<(String, String)>,
    /// How lost peers are redialed.
    pub(crate) reconnect: BackoffPolicy,
    /// Queue and timeout limits; `None` keeps the node's default.
    pub(crate) limits: Limits,
}

/// One realm: open (no owner) or owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RealmSetting {
    pub(crate) name: String,
    pub(crate) owner: Option<Did>,
}

impl RealmSetting {
    /// `NAME` or `NAME=OWNER_DID`, as `--realm` takes it.
    pub(crate) fn arg(&self) -> String {
        match &self.owner {
            Some(owner) => format!("{}={owner}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `[limits]`; `None` keeps the node's default (see the module's example).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub(crate) subscriber_queue: Option<usize>,
    pub(crate) peer_queue: Option<usize>,
    pub(crate) congestion: Option<Congestion>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) liveness: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_incoming_handshakes: Option<usize>,
    pub(crate) max_silent_peers: Option<usize>,
    pub(crate) hello_timeout: Option<Duration>,
    pub(crate) max_subscriptions_per_peer: Option<usize>,
    pub(crate) max_procedures_per_peer: Option<usize>,
    pub(crate) max_calls_per_peer: Option<usize>,
    pub(crate) max_call_duration: Option<Duration>,
    pub(crate) mesh_members: Option<usize>,
    pub(crate) idle_session: Option<Duration>,
    pub(crate) subscriber_queue_bytes: Option<usize>,
    pub(crate) max_event_streams: Option<usize>,
}

/// The environment variables read as settings (besides `WEFT_CONFIG`).
const ENV_KEY: &str = "WEFT_KEY";
const ENV_REVOCATIONS: &str = "WEFT_REVOCATIONS";
const ENV_REPLAY_JOURNAL: &str = "WEFT_REPLAY_JOURNAL";
const ENV_LISTEN: &str = "WEFT_LISTEN";
const ENV_BOOTSTRAP: &str = "WEFT_BOOTSTRAP";
const ENV_INTERFACE: &str = "WEFT_INTERFACE";
const ENV_MDNS: &str = "WEFT_MDNS";
const ENV_RELAY: &str = "WEFT_RELAY";
const ENV_HTTP: &str = "WEFT_HTTP";
const ENV_UCAN: &str = "WEFT_UCAN";
const ENV_TAGS: &str = "WEFT_TAGS";
const ENV_REALMS: &str = "WEFT_REALMS";
const ENV_INITIAL: &str = "WEFT_RECONNECT_INITIAL";
const ENV_MAX: &str = "WEFT_RECONNECT_MAX";
const ENV_MULTIPLIER: &str = "WEFT_RECONNECT_MULTIPLIER";
const ENV_JITTER: &str = "WEFT_RECONNECT_JITTER";
const ENV_ATTEMPTS: &str = "WEFT_RECONNECT_ATTEMPTS";
const ENV_QUEUE: &str = "WEFT_LIMITS_SUBSCRIBER_QUEUE";
const ENV_PEER_QUEUE: &str = "WEFT_LIMITS_PEER_QUEUE";
const ENV_CONGESTION: &str = "WEFT_LIMITS_CONGESTION";
const ENV_IDLE: &str = "WEFT_LIMITS_IDLE_TIMEOUT";
const ENV_LIVENESS: &str = "WEFT_LIMITS_LIVENESS";
const ENV_MAX_CONNECTIONS: &str = "WEFT_LIMITS_MAX_CONNECTIONS";
const ENV_MAX_HANDSHAKES: &str = "WEFT_LIMITS_MAX_INCOMING_HANDSHAKES";
const ENV_MAX_SILENT: &str = "WEFT_LIMITS_MAX_SILENT_PEERS";
const ENV_HELLO_TIMEOUT: &str = "WEFT_LIMITS_HELLO_TIMEOUT";
const ENV_MAX_SUBSCRIPTIONS: &str = "WEFT_LIMITS_MAX_SUBSCRIPTIONS_PER_PEER";
const ENV_MAX_PROCEDURES: &str = "WEFT_LIMITS_MAX_PROCEDURES_PER_PEER";
const ENV_MAX_CALLS: &str = "WEFT_LIMITS_MAX_CALLS_PER_PEER";
const ENV_MAX_CALL_DURATION: &str = "WEFT_LIMITS_MAX_CALL_DURATION";
const ENV_MESH_MEMBERS: &str = "WEFT_LIMITS_MESH_MEMBERS";
const ENV_IDLE_SESSION: &str = "WEFT_LIMITS_IDLE_SESSION";
const ENV_QUEUE_BYTES: &str = "WEFT_LIMITS_SUBSCRIBER_QUEUE_BYTES";
const ENV_EVENT_STREAMS: &str = "WEFT_LIMITS_MAX_EVENT_STREAMS";
/// The configuration file, when `--config` is not given.
const ENV_CONFIG: &str = "WEFT_CONFIG";

impl NodeSettings {
    /// Resolves the settings from `args` and the process environment.
    pub(crate) fn from_process(args: &NodeArgs) -> Result<Self, CliError> {
        Self::resolve(args, |name| std::env::var(name).ok())
    }

    /// Resolves the settings: the file (`--config`, else `WEFT_CONFIG`), overridden by the
    /// variables `env` returns, overridden by the flags in `args`.
    pub(crate) fn resolve(
        args: &NodeArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CliError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let file = args
            .config
            .clone()
            .or_else(|| env(ENV_CONFIG).map(PathBuf::from));
        let file = match &file {
            Some(path) => Layer::from_file(path)?,
            None => Layer::default(),
        };
        let env = Layer::from_env(env)?;
        let flags = Layer::from_flags(args)?;
        Ok(flags.over(env).over(file).settings())
    }
}

/// One layer's settings: `None` where that layer says nothing.
#[derive(Debug, Default)]
struct Layer {
    key: Option<PathBuf>,
    revocations: Option<PathBuf>,
    replay_journal: Option<PathBuf>,
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    interface: Option<String>,
    mdns: Option<bool>,
    relay: Option<bool>,
    http: Option<SocketAddr>,
    ucans: Option<Vec<String>>,
    tags: Option<Vec<(String, String)>>,
    realms: Option<Vec<RealmSetting>>,
    initial: Option<Duration>,
    max: Option<Duration>,
    multiplier: Option<f64>,
    jitter: Option<f64>,
    attempts: Option<u32>,
    subscriber_queue: Option<usize>,
    peer_queue: Option<usize>,
    congestion: Option<Congestion>,
    idle_timeout: Option<Duration>,
    liveness: Option<Duration>,
    max_connections: Option<usize>,
    max_incoming_handshakes: Option<usize>,
    max_silent_peers: Option<usize>,
    hello_timeout: Option<Duration>,
    max_subscriptions_per_peer: Option<usize>,
    max_procedures_per_peer: Option<usize>,
    max_calls_per_peer: Option<usize>,
    max_call_duration: Option<Duration>,
    mesh_members: Option<usize>,
    idle_session: Option<Duration>,
    subscriber_queue_bytes: Option<usize>,
    max_event_streams: Option<usize>,
}

impl Layer {
    /// This layer, with `lower` filling in what it leaves unsaid.
    fn over(self, lower: Layer) -> Layer {
        Layer {
            key: self.key.or(lower.key),
            revocations: self.revocations.or(lower.revocations),
            replay_journal: self.replay_journal.or(lower.replay_journal),
            listen: self.listen.or(lower.listen),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            interface: self.interface.or(lower.interface),
            mdns: self.mdns.or(lower.mdns),
            relay: self.relay.or(lower.relay),
            http: self.http.or(lower.http),
            ucans: self.ucans.or(lower.ucans),
            tags: self.tags.or(lower.tags),
            realms: self.realms.or(lower.realms),
            initial: self.initial.or(lower.initial),
            max: self.max.or(lower.max),
            multiplier: self.multiplier.or(lower.multiplier),
            jitter: self.jitter.or(lower.jitter),
            attempts: self.attempts.or(lower.attempts),
            subscriber_queue: self.subscriber_queue.or(lower.subscriber_queue),
            peer_queue: self.peer_queue.or(lower.peer_queue),
            congestion: self.congestion.or(lower.congestion),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            liveness: self.liveness.or(lower.liveness),
            max_connections: self.max_connections.or(lower.max_connections),
            max_incoming_handshakes: self
                .max_incoming_handshakes
                .or(lower.max_incoming_handshakes),
            max_silent_peers: self.max_silent_peers.or(lower.max_silent_peers),
            hello_timeout: self.hello_timeout.or(lower.hello_timeout),
            max_subscriptions_per_peer: self
                .max_subscriptions_per_peer
                .or(lower.max_subscriptions_per_peer),
            max_procedures_per_peer: self
                .max_procedures_per_peer
                .or(lower.max_procedures_per_peer),
            max_calls_per_peer: self.max_calls_per_peer.or(lower.max_calls_per_peer),
            max_call_duration: self.max_call_duration.or(lower.max_call_duration),
            mesh_members: self.mesh_members.or(lower.mesh_members),
            idle_session: self.idle_session.or(lower.idle_session),
            subscriber_queue_bytes: self.subscriber_queue_bytes.or(lower.subscriber_queue_bytes),
            max_event_streams: self.max_event_streams.or(lower.max_event_streams),
        }
    }

    /// The merged layers, with defaults for what none of them says.
    fn settings(self) -> NodeSettings {
        let defaults = BackoffPolicy::default();
        let realms = match self.realms {
            Some(realms) if !realms.is_empty() => realms,
            _ => vec![RealmSetting {
                name: "dev".to_owned(),
                owner: None,
            }],
        };
        NodeSettings {
            key: self.key,
            revocations: self.revocations,
            replay_journal: self.replay_journal,
            listen: self.listen.unwrap_or_default(),
            bootstrap: self.bootstrap.unwrap_or_default(),
            interface: self.interface,
            mdns: self.mdns.unwrap_or(false),
            relay: self.relay.unwrap_or(false),
            http: self.http,
            realms,
            ucans: self.ucans.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            reconnect: BackoffPolicy {
                initial: self.initial.unwrap_or(defaults.initial),
                max: self.max.unwrap_or(defaults.max),
                multiplier: self.multiplier.unwrap_or(defaults.multiplier),
                jitter: self.jitter.unwrap_or(defaults.jitter),
                max_attempts: match self.attempts {
                    Some(0) => None,
                    Some(n) => Some(n),
                    None => defaults.max_attempts,
                },
            },
            limits: Limits {
                subscriber_queue: self.subscriber_queue,
                peer_queue: self.peer_queue,
                congestion: self.congestion,
                idle_timeout: self.idle_timeout,
                liveness: self.liveness,
                max_connections: self.max_connections,
                max_incoming_handshakes: self.max_incoming_handshakes,
                max_silent_peers: self.max_silent_peers,
                hello_timeout: self.hello_timeout,
                max_subscriptions_per_peer: self.max_subscriptions_per_peer,
                max_procedures_per_peer: self.max_procedures_per_peer,
                max_calls_per_peer: self.max_calls_per_peer,
                max_call_duration: self.max_call_duration,
                mesh_members: self.mesh_members,
                idle_session: self.idle_session,
                subscriber_queue_bytes: self.subscriber_queue_bytes,
                max_event_streams: self.max_event_streams,
            },
        }
    }

    /// The configuration file; its relative paths are resolved against its directory.
    fn from_file(path: &Path) -> Result<Layer, CliError> {
        let fail =
            |message: String| CliError::Config(format!("config {}: {message}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| fail(toml_error(&text, e)))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let reconnect = file.reconnect.unwrap_or_default();
        let limits = file.limits.unwrap_or_default();
        Ok(Layer {
            key: file.key.map(|key| dir.join(key)),
            revocations: file.revocations.map(|path| dir.join(path)),
            replay_journal: file.replay_journal.map(|path| dir.join(path)),
            listen: file.listen,
            bootstrap: file.bootstrap,
            interface: file.interface,
            mdns: file.mdns,
            relay: file.relay,
            http: file.http,
            ucans: file.ucan.map(|ucans| {
                ucans
                    .into_iter()
                    .map(|u| match u.trim().strip_prefix('@') {
                        Some(token_file) => format!("@{}", dir.join(token_file).display()),
                        None => u,
                    })
                    .collect()
            }),
            tags: file.tags.map(|tags| tags.into_iter().collect()),
            realms: file.realm.map(|realms| {
                realms
                    .into_iter()
                    .map(|r| RealmSetting {
                        name: r.name,
                        owner: r.owner,
                    })
                    .collect()
            }),
            initial: reconnect.initial,
            max: reconnect.max,
            multiplier: reconnect.multiplier,
            jitter: reconnect.jitter,
            attempts: reconnect.attempts,
            subscriber_queue: limits.subscriber_queue,
            peer_queue: limits.peer_queue,
            congestion: limits.congestion,
            idle_timeout: limits.idle_timeout,
            liveness: limits.liveness,
            max_connections: limits.max_connections,
            max_incoming_handshakes: limits.max_incoming_handshakes,
            max_silent_peers: limits.max_silent_peers,
            hello_timeout: limits.hello_timeout,
            max_subscriptions_per_peer: limits.max_subscriptions_per_peer,
            max_procedures_per_peer: limits.max_procedures_per_peer,
            max_calls_per_peer: limits.max_calls_per_peer,
            max_call_duration: limits.max_call_duration,
            mesh_members: limits.mesh_members,
            idle_session: limits.idle_session,
            subscriber_queue_bytes: limits.subscriber_queue_bytes,
            max_event_streams: limits.max_event_streams,
        })
    }

    /// The `WEFT_*` variables `env` returns (empty ones already removed).
    fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Layer, CliError> {
        let list = |name: &str| env(name).map(|v| split_list(&v));
        let tags = env(ENV_TAGS)
            .map(|v| {
                split_list(&v)
                    .iter()
                    .map(|tag| {
                        tag_pair(tag)
                            .map_err(|e| CliError::Config(format!("{ENV_TAGS}: {tag:?}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let realms = env(ENV_REALMS)
            .map(|v| {
                split_list(&v)
                    .iter()
                    .map(|realm| {
                        realm_setting(realm)
                            .map_err(|e| CliError::Config(format!("{ENV_REALMS}: {realm:?}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Layer {
            key: env(ENV_KEY).map(PathBuf::from),
            revocations: env(ENV_REVOCATIONS).map(PathBuf::from),
            replay_journal: env(ENV_REPLAY_JOURNAL).map(PathBuf::from),
            listen: list(ENV_LISTEN),
            bootstrap: list(ENV_BOOTSTRAP),
            interface: env(ENV_INTERFACE).map(|v| v.trim().to_owned()),
            mdns: env_value(&env, ENV_MDNS, boolean)?,
            relay: env_value(&env, ENV_RELAY, boolean)?,
            http: env_value(&env, ENV_HTTP, socket_addr)?,
            ucans: list(ENV_UCAN),
            tags,
            realms,
            initial: env_value(&env, ENV_INITIAL, duration)?,
            max: env_value(&env, ENV_MAX, duration)?,
            multiplier: env_value(&env, ENV_MULTIPLIER, |s| {
                number(s, MULTIPLIER).and_then(multiplier)
            })?,
            jitter: env_value(&env, ENV_JITTER, |s| number(s, JITTER).and_then(jitter))?,
            attempts: env_value(&env, ENV_ATTEMPTS, attempts)?,
            subscriber_queue: env_value(&env, ENV_QUEUE, queue_len)?,
            peer_queue: env_value(&env, ENV_PEER_QUEUE, queue_len)?,
            congestion: env_value(&env, ENV_CONGESTION, congestion)?,
            idle_timeout: env_value(&env, ENV_IDLE, duration)?,
            liveness: env_value(&env, ENV_LIVENESS, duration)?,
            max_connections: env_value(&env, ENV_MAX_CONNECTIONS, queue_len)?,
            max_incoming_handshakes: env_value(&env, ENV_MAX_HANDSHAKES, queue_len)?,
            max_silent_peers: env_value(&env, ENV_MAX_SILENT, queue_len)?,
            hello_timeout: env_value(&env, ENV_HELLO_TIMEOUT, duration)?,
            max_subscriptions_per_peer: env_value(&env, ENV_MAX_SUBSCRIPTIONS, queue_len)?,
            max_procedures_per_peer: env_value(&env, ENV_MAX_PROCEDURES, queue_len)?,
            max_calls_per_peer: env_value(&env, ENV_MAX_CALLS, queue_len)?,
            max_call_duration: env_value(&env, ENV_MAX_CALL_DURATION, duration)?,
            mesh_members: env_value(&env, ENV_MESH_MEMBERS, queue_len)?,
            idle_session: env_value(&env, ENV_IDLE_SESSION, duration)?,
            subscriber_queue_bytes: env_value(&env, ENV_QUEUE_BYTES, queue_len)?,
            max_event_streams: env_value(&env, ENV_EVENT_STREAMS, queue_len)?,
        })
    }

    /// The flags; an absent (or empty) repeatable flag says nothing.
    fn from_flags(args: &NodeArgs) -> Result<Layer, CliError> {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let tags = args
            .tag
            .iter()
            .map(|tag| tag_pair(tag).map_err(|e| CliError::Usage(format!("--tag {tag:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let realms = args
            .realm
            .iter()
            .map(|realm| {
                realm_setting(realm).map_err(|e| CliError::Usage(format!("--realm {realm:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        fn flag<T>(
            value: &Option<String>,
            name: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, CliError> {
            value
                .as_deref()
                .map(|v| parse(v).map_err(|e| CliError::Usage(format!("--{name}: {e}"))))
                .transpose()
        }
        Ok(Layer {
            key: args.key.clone(),
            revocations: args.revocations.clone(),
            replay_journal: args.replay_journal.clone(),
            listen: list(&args.listen),
            bootstrap: list(&args.bootstrap),
            interface: args.interface.clone(),
            mdns: args.mdns.then_some(true),
            relay: args.relay.then_some(true),
            http: args.http,
            ucans: list(&args.ucan),
            tags: (!tags.is_empty()).then_some(tags),
            realms: (!realms.is_empty()).then_some(realms),
            initial: flag(&args.reconnect_initial, "reconnect-initial", duration)?,
            max: flag(&args.reconnect_max, "reconnect-max", duration)?,
            multiplier: flag(&args.reconnect_multiplier, "reconnect-multiplier", |s| {
                number(s, MULTIPLIER).and_then(multiplier)
            })?,
            jitter: flag(&args.reconnect_jitter, "reconnect-jitter", |s| {
                number(s, JITTER).and_then(jitter)
            })?,
            attempts: flag(&args.reconnect_attempts, "reconnect-attempts", attempts)?,
            subscriber_queue: flag(&args.subscriber_queue, "subscriber-queue", queue_len)?,
            peer_queue: flag(&args.peer_queue, "peer-queue", queue_len)?,
            congestion: flag(&args.congestion, "congestion", congestion)?,
            idle_timeout: flag(&args.idle_timeout, "idle-timeout", duration)?,
            liveness: flag(&args.liveness, "liveness", duration)?,
            max_connections: flag(&args.max_connections, "max-connections", queue_len)?,
            max_incoming_handshakes: flag(
                &args.max_incoming_handshakes,
                "max-incoming-handshakes",
                queue_len,
            )?,
            max_silent_peers: flag(&args.max_silent_peers, "max-silent-peers", queue_len)?,
            hello_timeout: flag(&args.hello_timeout, "hello-timeout", duration)?,
            max_subscriptions_per_peer: flag(
                &args.max_subscriptions_per_peer,
                "max-subscriptions-per-peer",
                queue_len,
            )?,
            max_procedures_per_peer: flag(
                &args.max_procedures_per_peer,
                "max-procedures-per-peer",
                queue_len,
            )?,
            max_calls_per_peer: flag(&args.max_calls_per_peer, "max-calls-per-peer", queue_len)?,
            max_call_duration: flag(&args.max_call_duration, "max-call-duration", duration)?,
            mesh_members: flag(&args.mesh_members, "mesh-members", queue_len)?,
            idle_session: flag(&args.idle_session, "idle-session", duration)?,
            subscriber_queue_bytes: flag(
                &args.subscriber_queue_bytes,
                "subscriber-queue-bytes",
                queue_len,
            )?,
            max_event_streams: flag(&args.max_event_streams, "max-event-streams", queue_len)?,
        })
    }
}

/// The file's schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    key: Option<PathBuf>,
    revocations: Option<PathBuf>,
    replay_journal: Option<PathBuf>,
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    interface: Option<String>,
    mdns: Option<bool>,
    relay: Option<bool>,
    #[serde(default, deserialize_with = "de_socket_addr")]
    http: Option<SocketAddr>,
    ucan: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
    realm: Option<Vec<FileRealm>>,
    reconnect: Option<FileReconnect>,
    limits: Option<FileLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRealm {
    #[serde(deserialize_with = "de_realm_name")]
    name: String,
    #[serde(default, deserialize_with = "de_owner")]
    owner: Option<Did>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReconnect {
    #[serde(default, deserialize_with = "de_duration")]
    initial: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    max: Option<Duration>,
    #[serde(default, deserialize_with = "de_multiplier")]
    multiplier: Option<f64>,
    #[serde(default, deserialize_with = "de_jitter")]
    jitter: Option<f64>,
    attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    #[serde(default, deserialize_with = "de_queue_len")]
    subscriber_queue: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    peer_queue: Option<usize>,
    #[serde(default, deserialize_with = "de_congestion")]
    congestion: Option<Congestion>,
    #[serde(default, deserialize_with = "de_duration")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    liveness: Option<Duration>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_connections: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_incoming_handshakes: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_silent_peers: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    hello_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_subscriptions_per_peer: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_procedures_per_peer: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_calls_per_peer: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    max_call_duration: Option<Duration>,
    #[serde(default, deserialize_with = "de_queue_len")]
    mesh_members: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    idle_session: Option<Duration>,
    #[serde(default, deserialize_with = "de_queue_len")]
    subscriber_queue_bytes: Option<usize>,
    #[serde(default, deserialize_with = "de_queue_len")]
    max_event_streams: Option<usize>,
}

// Each value is checked while it is deserialized, so that toml reports the key and the line.

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(&String::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(&String::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

fn de_multiplier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    multiplier(f64::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

fn de_jitter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    jitter(f64::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

fn de_congestion<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Congestion>, D::Error> {
    congestion(&String::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

fn de_queue_len<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(D::Error::custom("expected a whole number > 0, got 0")),
        n => Ok(Some(n)),
    }
}

fn de_realm_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    RealmName::new(&name).map_err(|e| D::Error::custom(format!("{name:?}: {e}")))?;
    Ok(name)
}

fn de_owner<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Did>, D::Error> {
    owner(&String::deserialize(d)?)
        .map(Some)
        .map_err(D::Error::custom)
}

/// The variable `name`, checked by `check`; an error names the variable.
fn env_value<T>(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
    check: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, CliError> {
    env(name)
        .map(|v| check(v.trim()).map_err(|e| CliError::Config(format!("{name}: {e}"))))
        .transpose()
}

// The checks, shared by the file and the environment.

fn duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s.trim()).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("{s:?}: a duration must be more than 0"));
    }
    Ok(d)
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("expected HOST:PORT with an IP address (e.g. 127.0.0.1:8080), got {s:?}")
    })
}

/// A number, or "expected {what}, got ..." (what a check of it would also say).
fn number(s: &str, what: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("expected {what}, got {s:?}"))
}

const MULTIPLIER: &str = "a number ≥ 1";
const JITTER: &str = "a number in [0, 1]";

fn multiplier(x: f64) -> Result<f64, String> {
    if x.is_finite() && x >= 1.0 {
        Ok(x)
    } else {
        Err(format!("expected {MULTIPLIER}, got {x}"))
    }
}

fn jitter(x: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("expected {JITTER}, got {x}"))
    }
}

fn attempts(s: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("expected a whole number ≥ 0 (0 = forever), got {s:?}"))
}

fn congestion(s: &str) -> Result<Congestion, String> {
    s.parse()
}

fn queue_len(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a whole number > 0, got {s:?}")),
    }
}

fn owner(s: &str) -> Result<Did, String> {
    Did::parse(s.trim()).map_err(|e| format!("{s:?}: {e}"))
}

/// `KEY=VALUE`.
fn tag_pair(tag: &str) -> Result<(String, String), String> {
    tag.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected KEY=VALUE".to_owned())
}

/// `NAME` or `NAME=OWNER_DID`.
fn realm_setting(realm: &str) -> Result<RealmSetting, String> {
    let (name, owner) = match realm.split_once('=') {
        Some((name, did)) => (
            name,
            Some(Did::parse(did).map_err(|e| format!("owner: {e}"))?),
        ),
        None => (realm, None),
    };
    RealmName::new(name).map_err(|e| e.to_string())?;
    Ok(RealmSetting {
        name: name.to_owned(),
        owner,
    })
}

/// `a, b,c` → `["a", "b", "c"]`; empty items are dropped.
fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// toml's error on one line: `line N: KEY.PATH: message`.
fn toml_error(text: &str, mut e: toml::de::Error) -> String {
    let line = e.span().map(|span| {
        1 + text.as_bytes()[..span.start.min(text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    });
    let message = e.message().trim().replace('\n', " ");
    // Without the input, toml's Display is the message, then "in `a.b`" when it knows the key.
    e.set_input(None);
    let rendered = e.to_string();
    let keys = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .unwrap_or("");
    let located = |rest: String| match line {
        Some(line) => format!("line {line}: {rest}"),
        None => rest,
    };
    if let Some(unknown) = message.strip_prefix("unknown field `") {
        let (field, rest) = unknown.split_once('`').unwrap_or((unknown, ""));
        let key = if keys.is_empty() {
            field.to_owned()
        } else {
            format!("{keys}.{field}")
        };
        let rest = rest.strip_prefix(", ").unwrap_or(rest);
        return located(if rest.is_empty() {
            format!("unknown key `{key}`")
        } else {
            format!("unknown key `{key}` ({rest})")
        });
    }
    if keys.is_empty() {
        located(message)
    } else {
        located(format!("{keys}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> NodeArgs {
        let argv = ["weft", "node"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Node(args) => *args,
            other => panic!("not node: {other:?}"),
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn no_env() -> impl Fn(&str) -> Option<String> {
        env(&[])
    }

    /// Writes `text` as `weft.toml` in a new directory.
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn config_error(text: &str) -> String {
        let (_dir, path) = file(text);
        let err = NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env())
            .unwrap_err();
        assert!(matches!(err, CliError::Config(_)), "{err:?}");
        assert_eq!(err.exit_code(), CliError::USAGE);
        let message = err.to_string();
        assert_eq!(message.lines().count(), 1, "one line: {message}");
        assert!(message.contains("weft.toml"), "{message}");
        message
    }

    fn did() -> Did {
        weft::Keypair::generate().unwrap().did()
    }

    #[test]
    fn nothing_given_is_todays_default() {
        let settings = NodeSettings::resolve(&args(&[]), no_env()).unwrap();
        assert_eq!(
            settings,
            NodeSettings {
                key: None,
                revocations: None,
                replay_journal: None,
                listen: vec![],
                bootstrap: vec![],
                interface: None,
                mdns: false,
                relay: false,
                http: None,
                realms: vec![RealmSetting {
                    name: "dev".into(),
                    owner: None
                }],
                ucans: vec![],
                tags: vec![],
                reconnect: BackoffPolicy::default(),
                limits: Limits::default(),
            }
        );
    }

    #[test]
    fn a_full_file_parses() {
        let owner = did();
        let (dir, path) = file(&format!(
            r#"
key = "node.pem"
listen = ["/ip4/0.0.0.0/udp/4001/quic-v1", "0.0.0.0:4002"]
bootstrap = ["10.0.0.2:4001"]
interface = "wg0"
mdns = true
relay = true
http = "127.0.0.1:8080"
ucan = ["@node.jwt", "@/abs/proof.jwt", "eyJ.inline.token"]

[tags]
region = "eu"
zone = "a"

[[realm]]
name = "io.acme"
owner = "{owner}"

[[realm]]
name = "dev"

[reconnect]
initial = "250ms"
max = "1m"
multiplier = 3
jitter = 0.25
attempts = 7

[limits]
subscriber_queue = 128
peer_queue = 512
congestion = "block"
idle_timeout = "90s"
liveness = "5s"
max_connections = 300
max_incoming_handshakes = 40
max_silent_peers = 50
hello_timeout = "2s"
max_subscriptions_per_peer = 20
max_procedures_per_peer = 21
max_calls_per_peer = 22
max_call_duration = "23s"
mesh_members = 26
idle_session = "17s"
subscriber_queue_bytes = 24
max_event_streams = 25
"#
        ));
        let settings =
            NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env()).unwrap();
        let d = dir.path();
        assert_eq!(
            settings,
            NodeSettings {
                key: Some(d.join("node.pem")),
                revocations: None,
                replay_journal: None,
                listen: vec![
                    "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
                    "0.0.0.0:4002".into()
                ],
                bootstrap: vec!["10.0.0.2:4001".into()],
                interface: Some("wg0".into()),
                mdns: true,
                relay: true,
                http: Some("127.0.0.1:8080".parse().unwrap()),
                realms: vec![
                    RealmSetting {
                        name: "io.acme".into(),
                        owner: Some(owner)
                    },
                    RealmSetting {
                        name: "dev".into(),
                        owner: None
                    },
                ],
                ucans: vec![
                    format!("@{}", d.join("node.jwt").display()),
                    "@/abs/proof.jwt".into(),
                    "eyJ.inline.token".into(),
                ],
                tags: vec![("region".into(), "eu".into()), ("zone".into(), "a".into())],
                reconnect: BackoffPolicy {
                    initial: Duration::from_millis(250),
                    max: Duration::from_secs(60),
                    multiplier: 3.0,
                    jitter: 0.25,
                    max_attempts: Some(7),
                },
                limits: Limits {
                    subscriber_queue: Some(128),
                    peer_queue: Some(512),
                    congestion: Some(Congestion::Block),
                    idle_timeout: Some(Duration::from_secs(90)),
                    liveness: Some(Duration::from_secs(5)),
                    max_connections: Some(300),
                    max_incoming_handshakes: Some(40),
                    max_silent_peers: Some(50),
                    hello_timeout: Some(Duration::from_secs(2)),
                    max_subscriptions_per_peer: Some(20),
                    max_procedures_per_peer: Some(21),
                    max_calls_per_peer: Some(22),
                    max_call_duration: Some(Duration::from_secs(23)),
                    mesh_members: Some(26),
                    idle_session: Some(Duration::from_secs(17)),
                    subscriber_queue_bytes: Some(24),
                    max_event_streams: Some(25),
                },
            }
        );
        assert_eq!(settings.realms[0].arg(), format!("io.acme={owner}"));
        assert_eq!(settings.realms[1].arg(), "dev");
    }

    #[test]
    fn attempts_zero_is_forever_and_an_empty_file_is_the_default() {
        let (_dir, path) = file("[reconnect]\nattempts = 0\n");
        let settings =
            NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env()).unwrap();
        assert_eq!(settings.reconnect.max_attempts, None);
        let (_dir, path) = file("");
        let settings =
            NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env()).unwrap();
        assert_eq!(
            settings,
            NodeSettings::resolve(&args(&[]), no_env()).unwrap()
        );
    }

    #[test]
    fn every_reconnect_and_limit_key_has_a_flag_that_wins_over_env() {
        let vars = [
            ("WEFT_RECONNECT_INITIAL", "2s"),
            ("WEFT_RECONNECT_MAX", "20s"),
            ("WEFT_RECONNECT_MULTIPLIER", "3"),
            ("WEFT_RECONNECT_JITTER", "0.1"),
            ("WEFT_RECONNECT_ATTEMPTS", "4"),
            ("WEFT_LIMITS_SUBSCRIBER_QUEUE", "10"),
            ("WEFT_LIMITS_PEER_QUEUE", "11"),
            ("WEFT_LIMITS_CONGESTION", "block"),
            ("WEFT_LIMITS_IDLE_TIMEOUT", "20s"),
            ("WEFT_LIMITS_LIVENESS", "2s"),
            ("WEFT_LIMITS_MAX_CONNECTIONS", "12"),
            ("WEFT_LIMITS_MAX_INCOMING_HANDSHAKES", "13"),
            ("WEFT_LIMITS_MAX_SILENT_PEERS", "14"),
            ("WEFT_LIMITS_HELLO_TIMEOUT", "15s"),
            ("WEFT_LIMITS_MAX_SUBSCRIPTIONS_PER_PEER", "16"),
            ("WEFT_LIMITS_MAX_PROCEDURES_PER_PEER", "17"),
            ("WEFT_LIMITS_MAX_CALLS_PER_PEER", "18"),
            ("WEFT_LIMITS_MAX_CALL_DURATION", "19s"),
            ("WEFT_LIMITS_MESH_MEMBERS", "20"),
            ("WEFT_LIMITS_IDLE_SESSION", "21s"),
        ];
        let flags = [
            "--reconnect-initial",
            "50ms",
            "--reconnect-max",
            "5s",
            "--reconnect-multiplier",
            "1.5",
            "--reconnect-jitter",
            "0",
            "--reconnect-attempts",
            "0",
            "--subscriber-queue",
            "99",
            "--peer-queue",
            "98",
            "--congestion",
            "drop",
            "--idle-timeout",
            "90s",
            "--liveness",
            "3s",
            "--max-connections",
            "97",
            "--max-incoming-handshakes",
            "96",
            "--max-silent-peers",
            "95",
            "--hello-timeout",
            "4s",
            "--max-subscriptions-per-peer",
            "94",
            "--max-procedures-per-peer",
            "93",
            "--max-calls-per-peer",
            "92",
            "--max-call-duration",
            "91s",
            "--mesh-members",
            "90",
            "--idle-session",
            "91s",
        ];
        let settings = NodeSettings::resolve(&args(&flags), env(&vars)).unwrap();
        let limits = &settings.limits;
        assert_eq!(
            (
                limits.max_connections,
                limits.max_incoming_handshakes,
                limits.max_silent_peers,
                limits.hello_timeout
            ),
            (Some(97), Some(96), Some(95), Some(Duration::from_secs(4)))
        );
        assert_eq!(
            (
                limits.max_subscriptions_per_peer,
                limits.max_procedures_per_peer,
                limits.max_calls_per_peer,
                limits.max_call_duration
            ),
            (Some(94), Some(93), Some(92), Some(Duration::from_secs(91)))
        );
        assert_eq!(settings.limits.mesh_members, Some(90));
        assert_eq!(settings.limits.idle_session, Some(Duration::from_secs(91)));
        assert_eq!(settings.limits.peer_queue, Some(98));
        assert_eq!(settings.limits.congestion, Some(Congestion::Drop));
        let from_env = NodeSettings::resolve(&args(&[]), env(&vars)).unwrap();
        assert_eq!(from_env.limits.peer_queue, Some(11));
        assert_eq!(from_env.limits.mesh_members, Some(20));
        assert_eq!(from_env.limits.idle_session, Some(Duration::from_secs(21)));
        assert_eq!(from_env.limits.congestion, Some(Congestion::Block));
        let limits = &from_env.limits;
        assert_eq!(
            (
                limits.max_connections,
                limits.max_incoming_handshakes,
                limits.max_silent_peers,
                limits.hello_timeout
            ),
            (Some(12), Some(13), Some(14), Some(Duration::from_secs(15)))
        );
        assert_eq!(
            (
                limits.max_subscriptions_per_peer,
                limits.max_procedures_per_peer,
                limits.max_calls_per_peer,
                limits.max_call_duration
            ),
            (Some(16), Some(17), Some(18), Some(Duration::from_secs(19)))
        );
        assert_eq!(settings.reconnect.initial, Duration::from_millis(50));
        assert_eq!(settings.reconnect.max, Duration::from_secs(5));
        assert_eq!(settings.reconnect.multiplier, 1.5);
        assert_eq!(settings.reconnect.jitter, 0.0);
        assert_eq!(settings.reconnect.max_attempts, None);
        assert_eq!(settings.limits.subscriber_queue, Some(99));
        assert_eq!(settings.limits.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(settings.limits.liveness, Some(Duration::from_secs(3)));

        let e = NodeSettings::resolve(&args(&["--reconnect-jitter", "2"]), no_env()).unwrap_err();
        assert!(e.to_string().starts_with("--reconnect-jitter: "), "{e}");
        assert!(matches!(e, CliError::Usage(_)));
        let e = NodeSettings::resolve(&args(&["--liveness", "soon"]), no_env()).unwrap_err();
        assert!(e.to_string().starts_with("--liveness: "), "{e}");
    }

    #[test]
    fn flags_override_env_which_overrides_the_file() {
        let (dir, path) = file(
            r#"
key = "file.pem"
listen = ["10.0.0.1:1", "10.0.0.1:2"]
http = "127.0.0.1:1"
tags = { layer = "file" }
realm = [{ name = "file" }]
[reconnect]
initial = "1s"
multiplier = 1.5
[limits]
liveness = "1s"
"#,
        );
        let config = path.to_str().unwrap();
        let file_only = NodeSettings::resolve(&args(&["--config", config]), no_env()).unwrap();
        assert_eq!(file_only.key, Some(dir.path().join("file.pem")));
        assert_eq!(file_only.listen, ["10.0.0.1:1", "10.0.0.1:2"]);
        assert_eq!(file_only.http, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(file_only.tags, [("layer".into(), "file".into())]);
        assert_eq!(file_only.realms[0].name, "file");
        assert_eq!(file_only.reconnect.initial, Duration::from_secs(1));

        let vars = [
            ("WEFT_KEY", "env.pem"),
            ("WEFT_LISTEN", "10.0.0.2:1"),
            ("WEFT_HTTP", "127.0.0.1:2"),
            ("WEFT_TAGS", "layer=env,other=x"),
            ("WEFT_REALMS", "env,env2"),
            ("WEFT_RECONNECT_INITIAL", "2s"),
            ("WEFT_LIMITS_LIVENESS", "2s"),
            // Not settings: ignored.
            ("WEFT_LOG", "debug"),
            ("WEFT_FIXTURES", "/nowhere"),
            ("WEFT_TEST_LOG", "1"),
        ];
        let with_env = NodeSettings::resolve(&args(&["--config", config]), env(&vars)).unwrap();
        assert_eq!(with_env.key, Some(PathBuf::from("env.pem")));
        assert_eq!(
            with_env.listen,
            ["10.0.0.2:1"],
            "a list replaces, never appends"
        );
        assert_eq!(with_env.http, Some("127.0.0.1:2".parse().unwrap()));
        assert_eq!(
            with_env.tags,
            [("layer".into(), "env".into()), ("other".into(), "x".into())]
        );
        let names: Vec<_> = with_env.realms.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["env", "env2"]);
        assert_eq!(with_env.reconnect.initial, Duration::from_secs(2));
        assert_eq!(with_env.limits.liveness, Some(Duration::from_secs(2)));
        // What env does not say still comes from the file.
        assert_eq!(with_env.reconnect.multiplier, 1.5);

        let with_flags = NodeSettings::resolve(
            &args(&[
                "--config",
                config,
                "--key",
                "flag.pem",
                "--listen",
                "10.0.0.3:1",
                "--http",
                "127.0.0.1:3",
                "--tag",
                "layer=flag",
                "--realm",
                "flag",
            ]),
            env(&vars),
        )
        .unwrap();
        assert_eq!(with_flags.key, Some(PathBuf::from("flag.pem")));
        assert_eq!(with_flags.listen, ["10.0.0.3:1"]);
        assert_eq!(with_flags.http, Some("127.0.0.1:3".parse().unwrap()));
        assert_eq!(with_flags.tags, [("layer".into(), "flag".into())]);
        assert_eq!(with_flags.realms[0].name, "flag");
        assert_eq!(with_flags.realms.len(), 1);
        // No flag for these: env still wins over the file.
        assert_eq!(with_flags.reconnect.initial, Duration::from_secs(2));
        assert_eq!(with_flags.reconnect.multiplier, 1.5);
    }

    #[test]
    fn weft_config_names_the_file_and_config_overrides_it() {
        let (_dir, path) = file("listen = [\"10.0.0.9:9\"]\n");
        let vars = [("WEFT_CONFIG", path.to_str().unwrap())];
        let settings = NodeSettings::resolve(&args(&[]), env(&vars)).unwrap();
        assert_eq!(settings.listen, ["10.0.0.9:9"]);
        let (_other, other) = file("listen = [\"10.0.0.8:8\"]\n");
        let settings =
            NodeSettings::resolve(&args(&["--config", other.to_str().unwrap()]), env(&vars))
                .unwrap();
        assert_eq!(settings.listen, ["10.0.0.8:8"]);
    }

    #[test]
    fn env_values_are_parsed() {
        let owner = did();
        let realms = format!("io.acme={owner}, dev");
        let vars = [
            ("WEFT_BOOTSTRAP", "10.0.0.1:1, 10.0.0.2:2,"),
            ("WEFT_UCAN", "@a.jwt,tok.en.x"),
            ("WEFT_REALMS", realms.as_str()),
            ("WEFT_RECONNECT_MAX", "1m"),
            ("WEFT_RECONNECT_MULTIPLIER", "1"),
            ("WEFT_RECONNECT_JITTER", "0"),
            ("WEFT_RECONNECT_ATTEMPTS", "3"),
            ("WEFT_LIMITS_SUBSCRIBER_QUEUE", "10"),
            ("WEFT_LIMITS_IDLE_TIMEOUT", "500ms"),
            ("WEFT_KEY", ""),
            ("WEFT_INTERFACE", "wg0"),
            ("WEFT_MDNS", "true"),
            ("WEFT_RELAY", "off"),
        ];
        let settings = NodeSettings::resolve(&args(&[]), env(&vars)).unwrap();
        assert_eq!(settings.interface.as_deref(), Some("wg0"));
        assert!(settings.mdns);
        assert!(!settings.relay);
        assert_eq!(settings.bootstrap, ["10.0.0.1:1", "10.0.0.2:2"]);
        assert_eq!(settings.ucans, ["@a.jwt", "tok.en.x"]);
        assert_eq!(settings.realms[0].owner, Some(owner));
        assert_eq!(settings.realms[1].arg(), "dev");
        assert_eq!(settings.reconnect.max, Duration::from_secs(60));
        assert_eq!(settings.reconnect.multiplier, 1.0);
        assert_eq!(settings.reconnect.jitter, 0.0);
        assert_eq!(settings.reconnect.max_attempts, Some(3));
        assert_eq!(settings.limits.subscriber_queue, Some(10));
        assert_eq!(
            settings.limits.idle_timeout,
            Some(Duration::from_millis(500))
        );
        assert_eq!(settings.key, None, "an empty variable is unset");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let message = config_error("listn = [\"0.0.0.0:1\"]\n");
        assert!(message.contains("unknown key `listn`"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        assert!(message.contains("listen"), "the expected keys: {message}");
        let message = config_error("[reconnect]\ninitial = \"1s\"\nintial = \"2s\"\n");
        assert!(
            message.contains("unknown key `reconnect.intial`"),
            "{message}"
        );
        assert!(message.contains("line 3"), "{message}");
        let message = config_error("[[realm]]\nname = \"a\"\nowners = \"x\"\n");
        assert!(message.contains("`realm.owners`"), "{message}");
    }

    #[test]
    fn a_bad_duration_names_its_key() {
        let message = config_error("[reconnect]\ninitial = \"fast\"\n");
        assert!(message.contains("reconnect.initial"), "{message}");
        assert!(message.contains("\"fast\""), "{message}");
        assert!(message.contains("line 2"), "{message}");
        let message = config_error("[limits]\nliveness = \"0s\"\n");
        assert!(message.contains("limits.liveness"), "{message}");
        let message = config_error("[limits]\ncongestion = \"wait\"\n");
        assert!(message.contains("limits.congestion"), "{message}");
        assert!(message.contains("`drop` or `block`"), "{message}");
    }

    #[test]
    fn bad_file_values_are_named() {
        for (text, key) in [
            ("http = \"localhost\"\n", "http"),
            ("[reconnect]\nmultiplier = 0.5\n", "reconnect.multiplier"),
            ("[reconnect]\njitter = 1.5\n", "reconnect.jitter"),
            ("[reconnect]\nattempts = -1\n", "reconnect.attempts"),
            ("[reconnect]\ninitial = 5\n", "reconnect.initial"),
            (
                "[limits]\nsubscriber_queue = 0\n",
                "limits.subscriber_queue",
            ),
            (
                "[[realm]]\nname = \"io.acme\"\nowner = \"did:web:x\"\n",
                "realm.owner",
            ),
            ("[[realm]]\nname = \"\"\n", "realm.name"),
            ("[tags]\nregion = 1\n", "tags.region"),
            ("listen = \"0.0.0.0:1\"\n", "listen"),
        ] {
            let message = config_error(text);
            assert!(message.contains(key), "{text:?}: {message}");
        }
        let message = config_error("key = \n");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn a_bad_env_var_is_named() {
        for (var, value) in [
            ("WEFT_RECONNECT_MULTIPLIER", "x"),
            ("WEFT_RECONNECT_MULTIPLIER", "0.9"),
            ("WEFT_RECONNECT_JITTER", "2"),
            ("WEFT_RECONNECT_ATTEMPTS", "-1"),
            ("WEFT_RECONNECT_INITIAL", "fast"),
            ("WEFT_RECONNECT_MAX", "0"),
            ("WEFT_LIMITS_SUBSCRIBER_QUEUE", "0"),
            ("WEFT_LIMITS_IDLE_TIMEOUT", "1h"),
            ("WEFT_LIMITS_LIVENESS", "-1s"),
            ("WEFT_HTTP", "nowhere"),
            ("WEFT_TAGS", "region"),
            ("WEFT_REALMS", "io.acme=did:key:nope"),
            ("WEFT_REALMS", "Bad Name"),
        ] {
            let err = NodeSettings::resolve(&args(&[]), env(&[(var, value)])).unwrap_err();
            assert!(matches!(err, CliError::Config(_)), "{err:?}");
            let message = err.to_string();
            assert!(message.starts_with(&format!("{var}: ")), "{message}");
            assert!(message.contains(value), "{message}");
        }
        let err = NodeSettings::resolve(&args(&[]), env(&[("WEFT_RECONNECT_MULTIPLIER", "x")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "WEFT_RECONNECT_MULTIPLIER: expected a number ≥ 1, got \"x\""
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for flags in [
            &["--tag", "region"][..],
            &["--realm", "io.acme=did:key:nope"],
            &["--realm", "Bad Name"],
        ] {
            let err = NodeSettings::resolve(&args(flags), no_env()).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{err:?}");
            assert!(err.to_string().starts_with(flags[0]), "{err}");
        }
        let err = Cli::try_parse_from(["weft", "node", "--http", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--http"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let path = dir.path().join("etc").join("weft.toml");
        std::fs::write(
            &path,
            "key = \"keys/node.pem\"\nucan = [\"@node.jwt\", \"@../up.jwt\"]\n",
        )
        .unwrap();
        let settings =
            NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env()).unwrap();
        let etc = dir.path().join("etc");
        assert_eq!(settings.key, Some(etc.join("keys/node.pem")));
        assert_eq!(
            settings.ucans,
            [
                format!("@{}", etc.join("node.jwt").display()),
                format!("@{}", etc.join("../up.jwt").display()),
            ]
        );
        // Variables and flags are relative to the working directory, as they always were.
        let settings = NodeSettings::resolve(
            &args(&["--config", path.to_str().unwrap(), "--key", "k.pem"]),
            env(&[("WEFT_UCAN", "@t.jwt")]),
        )
        .unwrap();
        assert_eq!(settings.key, Some(PathBuf::from("k.pem")));
        assert_eq!(settings.ucans, ["@t.jwt"]);
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let err = NodeSettings::resolve(&args(&["--config", path.to_str().unwrap()]), no_env())
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, CliError::Config(_)), "{err:?}");
        assert!(
            message.starts_with(&format!("config {}: cannot read: ", path.display())),
            "{message}"
        );
        let err =
            NodeSettings::resolve(&args(&[]), env(&[("WEFT_CONFIG", path.to_str().unwrap())]))
                .unwrap_err();
        assert!(err.to_string().contains("absent.toml"), "{err}");
    }
}
