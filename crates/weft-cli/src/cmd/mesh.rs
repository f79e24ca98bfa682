//! `weft node`, `weft pub` and `weft sub`: processes on the mesh.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use weft::{
    CallOptions, Chain, Did, HandlerError, Keypair, Multiaddr, Node, NodeBuilder, Resource,
    Strategy, Token,
};

use crate::cli::{CallArgs, ClientArgs, NodeArgs, PubArgs, RevokeArgs, ServeArgs, SubArgs};
use crate::config::{NodeSettings, RealmSetting};
use crate::error::CliError;
use crate::input::parse_duration;
use crate::input::token_arg;

/// How long a client waits to be admitted by the node it connects to.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a node until SIGINT or SIGTERM, then leaves gracefully. Its settings are the
/// configuration file, then `WEFT_*` variables, then the flags (see [`crate::config`]).
pub(crate) async fn node(args: NodeArgs) -> Result<(), CliError> {
    let settings = NodeSettings::from_process(&args)?;
    let key = load_key(settings.key.as_deref())?;
    let did = key.did();
    let realms: Vec<String> = settings.realms.iter().map(RealmSetting::arg).collect();
    let mut builder = Node::builder().key(key).reconnect(settings.reconnect);
    for addr in &settings.listen {
        builder = builder.listen(addr.clone());
    }
    for addr in &settings.bootstrap {
        builder = builder.bootstrap(addr.clone());
    }
    if let Some(name) = &settings.interface {
        builder = builder.interface(name.clone());
    }
    builder = builder.mdns(settings.mdns).relay(settings.relay);
    for (k, v) in &settings.tags {
        builder = builder.tag(k, v);
    }
    if let Some(events) = settings.limits.subscriber_queue {
        builder = builder.subscriber_queue(events);
    }
    if let Some(bytes) = settings.limits.subscriber_queue_bytes {
        builder = builder.subscriber_queue_bytes(bytes);
    }
    if let Some(frames) = settings.limits.peer_queue {
        builder = builder.peer_queue(frames);
    }
    if let Some(congestion) = settings.limits.congestion {
        builder = builder.congestion(congestion);
    }
    if let Some(timeout) = settings.limits.idle_timeout {
        builder = builder.idle_timeout(timeout);
    }
    if let Some(timeout) = settings.limits.liveness {
        builder = builder.liveness(timeout);
    }
    builder = builder.limits(node_limits(&settings.limits));
    builder = with_realms(builder, &realms, &settings.ucans, did)?;
    // Metrics are registered as the node starts: the recorder must exist before.
    let metrics = match settings.http {
        Some(_) => Some(weft_http::install_metrics().map_err(|e| CliError::Failed(e.to_string()))?),
        None => None,
    };
    if let Some(path) = &settings.revocations {
        // Read back at start, and where the records the realm sends later are kept.
        builder = builder
            .revocations(read_revocations(path)?)
            .revocations_file(path.clone());
    }
    let node = std::sync::Arc::new(builder.start().await?);
    let http = match settings.http {
        Some(addr) => {
            let defaults = weft_http::HttpConfig::default();
            let config = weft_http::HttpConfig {
                metrics,
                require_peers: !settings.bootstrap.is_empty(),
                max_streams: settings
                    .limits
                    .max_event_streams
                    .unwrap_or(defaults.max_streams),
                replay_journal: settings.replay_journal.clone(),
                ..defaults
            };
            match weft_http::HttpServer::bind(addr, node.clone(), config).await {
                Ok(server) => Some(server),
                Err(e) => {
                    node.shutdown().await;
                    return Err(CliError::Failed(e.to_string()));
                }
            }
        }
        None => None,
    };
    // Every address known now, then each one added later: a 0.0.0.0 listener learns its
    // interfaces' addresses one at a time, some after start.
    let mut listening = node.watch_listen_addrs();
    let mut addrs = listening.borrow_and_update().clone();
    if addrs.is_empty() {
        addrs = node.listen_addrs().to_vec();
    }
    let mut printed = HashSet::new();
    print_new_addrs(&addrs, &mut printed);
    tokio::spawn(async move {
        while listening.changed().await.is_ok() {
            let addrs = listening.borrow_and_update().clone();
            print_new_addrs(&addrs, &mut printed);
        }
    });
    let first = node
        .listen_addrs()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    eprintln!("weft: node {did} is up in {}", realms.join(", "));
    if let Some(http) = &http {
        eprintln!(
            "weft: http on http://{} (/health, /metrics, /v1/status, /v1/realms/…)",
            http.local_addr()
        );
    }
    eprintln!(
        "weft: try: weft sub --connect {first} --realm {} '**'",
        realms[0]
    );
    shutdown_signal().await;
    eprintln!("weft: shutting down");
    if let Some(http) = http {
        http.shutdown().await;
    }
    node.shutdown().await;
    Ok(())
}

/// Reads revocation records, one JSON record per line (blank lines and `#` comments skipped; no
/// file: none); the first that does not parse is an error naming its line.
fn read_revocations(path: &std::path::Path) -> Result<Vec<weft::ucan::Revocation>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // Nothing revoked yet: the node creates the file with the first record it learns.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::Config(format!(
                "revocations {}: {e}",
                path.display()
            )));
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(i, line)| {
            weft::ucan::Revocation::parse(line.trim()).map_err(|e| {
                CliError::Config(format!(
                    "revocations {} line {}: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Publishes one event through the node it connects to, which routes it to every matching
/// subscriber of the realm. The goodbye that ends the process leaves only once the event has
/// been handed to that node's connection, and the node reads it before it hangs up.
pub(crate) async fn publish(args: PubArgs) -> Result<(), CliError> {
    let payload: Value = serde_json::from_str(&args.json)
        .map_err(|e| CliError::Failed(format!("the payload is not JSON: {e}")))?;
    let node = client(&args.client).await?;
    let realm = client_realm(&node, &args.client)?;
    let result = realm.publish(&args.topic, &payload).await;
    node.shutdown().await;
    Ok(result?)
}

/// Subscribes and prints events as JSON lines; "ready" goes to stderr once the subscription is
/// announced to the mesh.
pub(crate) async fn subscribe(args: SubArgs) -> Result<(), CliError> {
    let node = client(&args.client).await?;
    let realm = client_realm(&node, &args.client)?;
    let outcome = async {
        let mut events = realm.subscribe(&args.pattern).await?;
        eprintln!("ready");
        let mut seen = 0u64;
        let mut stdout = std::io::stdout();
        loop {
            if args.count.is_some_and(|n| seen >= n) {
                break;
            }
            let event = tokio::select! {
                event = events.next() => event,
                () = shutdown_signal() => None,
            };
            let Some(event) = event else { break };
            let payload = event.json::<Value>().unwrap_or_else(|_| {
                json!({ "base64": data_encoding::BASE64.encode(&event.payload) })
            });
            let line = json!({ "topic": event.topic.as_str(), "payload": payload, "publisher": event.publisher.to_string() });
            if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
                break; // stdout closed (e.g. `| head`): nothing left to do
            }
            seen += 1;
        }
        Ok::<(), CliError>(())
    }
    .await;
    node.shutdown().await;
    outcome
}

/// Calls a procedure and prints its result.
pub(crate) async fn call(args: CallArgs) -> Result<(), CliError> {
    let arguments: Value = serde_json::from_str(&args.json)
        .map_err(|e| CliError::Failed(format!("the arguments are not JSON: {e}")))?;
    let options = CallOptions::default()
        .timeout(parse_duration(&args.timeout)?)
        .strategy(args.strategy.parse::<Strategy>().map_err(CliError::Usage)?);
    let node = client(&args.client).await?;
    let realm = client_realm(&node, &args.client)?;
    // The node connected to finds the provider, waiting for one within the call's timeout.
    let result = realm.call_with(&args.procedure, &arguments, options).await;
    node.shutdown().await;
    println!("{}", result?);
    Ok(())
}

/// Hands a revocation record to the realm: the node connected to applies it and passes it on to
/// every member. Prints the revoked token's CID.
pub(crate) async fn revoke(args: RevokeArgs) -> Result<(), CliError> {
    let text = token_arg(&args.record)?;
    let record = weft::ucan::Revocation::parse(text.trim())?;
    record.verify()?;
    let node = client(&args.client).await?;
    let applied = node.apply_revocation(&record);
    // The goodbye leaves after the record, and the node answers it once it has read both.
    node.shutdown().await;
    applied?;
    println!("{}", record.revoked());
    Ok(())
}

/// Provides a procedure by running a command per call, until SIGINT or SIGTERM.
pub(crate) async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let node = client(&args.client).await?;
    let realm = client_realm(&node, &args.client)?;
    let command = std::sync::Arc::new(args.command.clone());
    let running = std::sync::Arc::new(tokio::sync::Semaphore::new(args.max_concurrent as usize));
    let registration = realm
        .advertise(&args.procedure, move |_ctx, arguments| {
            let (command, running) = (command.clone(), running.clone());
            async move {
                // One process per call, but no more than --max-concurrent at once: the others
                // wait here, and are dropped with their handler if their caller stops waiting.
                let _slot = running
                    .acquire_owned()
                    .await
                    .map_err(|_| HandlerError::new("unavailable", "shutting down"))?;
                run_command(&command, &arguments).await
            }
        })
        .await;
    let registration = match registration {
        Ok(registration) => registration,
        Err(e) => {
            node.shutdown().await;
            return Err(e.into());
        }
    };
    eprintln!("ready");
    shutdown_signal().await;
    drop(registration);
    node.shutdown().await;
    Ok(())
}

/// Runs `command` with `arguments` on stdin; its stdout is the JSON result, a failure its error.
async fn run_command(command: &[String], arguments: &Value) -> Result<Value, HandlerError> {
    use tokio::io::AsyncWriteExt;
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| HandlerError::new("command_failed", "no command"))?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HandlerError::new("command_failed", format!("cannot run {program}: {e}")))?;
    // Written concurrently with reading the output: a command that writes as it reads (`cat`)
    // would otherwise fill one pipe while we block on the other.
    let input = arguments.to_string();
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input is not an error.
            let _ = stdin.write_all(input.as_bytes()).await;
        }
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| HandlerError::new("command_failed", e.to_string()))?;
    let _ = writer.await;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(HandlerError::new(
            "command_failed",
            format!("{program} exited with {}: {}", output.status, stderr.trim()),
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| HandlerError::new("bad_result", format!("{program} did not print JSON: {e}")))
}

/// Attaches to `--connect` as its client, and waits until the realm admits it. A realm named
/// without its owner is the owned realm of the chains' root when `--ucan` roots them all at one
/// key (an owned realm's chains must be rooted at its owner), and an open realm otherwise.
async fn client(args: &ClientArgs) -> Result<Node, CliError> {
    let realm = match args.realm.contains('=') {
        true => args.realm.clone(),
        false => match root_of(&args.realm, &args.ucan)? {
            Some(owner) => {
                let realm = format!("{}={owner}", args.realm);
                eprintln!(
                    "{}: joining {realm}, the root of the --ucan chain",
                    args.realm
                );
                realm
            }
            None => args.realm.clone(),
        },
    };
    attach(args, &realm).await
}

/// The one key every root token among `ucans` that names `realm` was issued by: its owner. None
/// if no token names it; an error if roots name it under different keys.
fn root_of(realm: &str, ucans: &[String]) -> Result<Option<Did>, CliError> {
    let mut owners = std::collections::BTreeSet::new();
    for ucan in ucans {
        let token = Token::parse(&token_arg(ucan)?)?;
        let names_it = token
            .capabilities()
            .iter()
            .any(|c| Resource::parse(&c.resource).is_ok_and(|r| r.realm().as_str() == realm));
        if names_it && token.proofs().is_empty() {
            owners.insert(token.issuer().to_string());
        }
    }
    let mut owners = owners.into_iter();
    match (owners.next(), owners.next()) {
        (None, _) => Ok(None),
        (Some(owner), None) => {
            Ok(Some(Did::parse(&owner).map_err(|e| {
                CliError::Usage(format!("--ucan issuer: {e}"))
            })?))
        }
        (Some(a), Some(b)) => Err(CliError::Usage(format!(
            "--ucan roots {realm} at {a} and at {b}: name its owner (--realm {realm}=OWNER)"
        ))),
    }
}

/// Attaches to `--connect` in `realm` (`NAME` or `NAME=OWNER`).
async fn attach(args: &ClientArgs, realm: &str) -> Result<Node, CliError> {
    let key = load_key(args.key.as_deref())?;
    let did = key.did();
    let builder = Node::builder().key(key).connect(args.connect.clone());
    let builder = with_realms(builder, &[realm.to_owned()], &args.ucan, did)?;
    let node = builder.start().await?;
    let mut events = node.peer_events();
    let handle = client_realm(&node, args)?;
    // Admitted by us is not enough: the node may refuse us, and says so with a denial.
    let admitted = tokio::select! {
        joined = tokio::time::timeout(CONNECT_TIMEOUT, handle.wait_for_members(1)) => joined.is_ok(),
        told = next_notice(&mut events) => {
            node.shutdown().await;
            return match told {
                Notice::Denied(denial) => Err(CliError::Unauthorized(denial)),
                Notice::Refused(refusal) => Err(CliError::Unavailable(format!(
                    "the node at {} refused this client: {refusal}",
                    args.connect
                ))),
            };
        }
    };
    while let Ok(event) = events.try_recv() {
        if let weft::PeerEvent::Denied {
            code,
            reason,
            realm: denied_in,
            ..
        } = event
        {
            node.shutdown().await;
            return Err(CliError::Unauthorized(refusal(&code, &denied_in, &reason)));
        }
    }
    if !admitted {
        node.shutdown().await;
        return Err(unanswered(args));
    }
    Ok(node)
}

fn unanswered(args: &ClientArgs) -> CliError {
    CliError::Unavailable(format!(
        "no node of realm {} answered at {} within {}s (is it running, and does this client hold realm/join?)",
        args.realm,
        args.connect,
        CONNECT_TIMEOUT.as_secs()
    ))
}

/// A peer's refusal as one line: `unauthorized in io.acme=did:…: chain … grants no …`, without
/// the code twice (the reason is the error's own text, which starts with it).
fn refusal(code: &str, realm: &str, reason: &str) -> String {
    let reason = reason
        .strip_prefix(code)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(reason);
    format!("{code} in {realm}: {reason}")
}

/// What the access node told a client before admitting it.
enum Notice {
    /// A refusal, as text.
    Denied(String),
    /// A refusal of any session (another wire version), as text.
    Refused(String),
}

/// The next refusal by a peer; pending forever if none comes.
async fn next_notice(events: &mut weft::PeerEvents) -> Notice {
    loop {
        match events.recv().await {
            Ok(weft::PeerEvent::Denied {
                realm,
                code,
                reason,
                ..
            }) => return Notice::Denied(refusal(&code, &realm, &reason)),
            Ok(weft::PeerEvent::Refused { code, reason, .. }) => {
                return Notice::Refused(format!("{code}: {reason}"));
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await
            }
        }
    }
}

fn client_realm(node: &Node, args: &ClientArgs) -> Result<weft::RealmHandle, CliError> {
    let name = args
        .realm
        .split_once('=')
        .map_or(args.realm.as_str(), |(n, _)| n);
    node.realm(name)
        .ok_or_else(|| CliError::Failed(format!("realm {name} is not configured")))
}

/// Adds realms (`NAME` or `NAME=OWNER`) and the chains from `--ucan` to a builder. Tokens
/// addressed to this node are leaves; every other token is available as a proof. A leaf is used
/// in each configured realm its `weft://` capabilities name.
fn with_realms(
    mut builder: NodeBuilder,
    realms: &[String],
    ucans: &[String],
    me: Did,
) -> Result<NodeBuilder, CliError> {
    let mut names = Vec::new();
    for realm in realms {
        match realm.split_once('=') {
            Some((name, owner)) => {
                let owner = Did::parse(owner)
                    .map_err(|e| CliError::Usage(format!("--realm {realm:?}: owner: {e}")))?;
                builder = builder.realm(name, owner);
                names.push(name.to_owned());
            }
            None => {
                builder = builder.open_realm(realm.clone());
                names.push(realm.clone());
            }
        }
    }
    let tokens = ucans
        .iter()
        .map(|u| Token::parse(&token_arg(u)?).map_err(CliError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let (leaves, proofs): (Vec<&Token>, Vec<&Token>) =
        tokens.iter().partition(|t| *t.audience() == me);
    if !tokens.is_empty() && leaves.is_empty() {
        return Err(CliError::Usage(format!(
            "no --ucan is addressed to this key ({me})"
        )));
    }
    for leaf in leaves {
        let chain = Chain::new(leaf.clone(), proofs.iter().map(|p| (*p).clone()));
        let mut used = false;
        for name in &names {
            let names_it = leaf
                .capabilities()
                .iter()
                .any(|c| Resource::parse(&c.resource).is_ok_and(|r| r.realm().as_str() == name));
            if names_it {
                builder = builder.ucan(name.clone(), chain.clone());
                used = true;
            }
        }
        if !used {
            return Err(CliError::Usage(format!(
                "--ucan {} grants nothing in {}",
                leaf.cid(),
                names.join(", ")
            )));
        }
    }
    Ok(builder)
}

fn load_key(path: Option<&std::path::Path>) -> Result<Keypair, CliError> {
    Ok(match path {
        Some(path) => Keypair::load(path)?,
        None => Keypair::generate()?,
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The node's limits: its defaults, with what the settings say instead.
fn node_limits(settings: &crate::config::Limits) -> weft::Limits {
    let mut limits = weft::Limits::default();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    if let Some(n) = settings.max_connections {
        limits.max_connections = count(n);
    }
    if let Some(n) = settings.max_incoming_handshakes {
        limits.max_incoming_handshakes = count(n);
    }
    if let Some(n) = settings.max_silent_peers {
        limits.max_silent_peers = n;
    }
    if let Some(timeout) = settings.hello_timeout {
        limits.hello_timeout = timeout;
    }
    if let Some(n) = settings.max_subscriptions_per_peer {
        limits.max_subscriptions_per_peer = n;
    }
    if let Some(n) = settings.max_procedures_per_peer {
        limits.max_procedures_per_peer = n;
    }
    if let Some(n) = settings.max_calls_per_peer {
        limits.max_calls_per_peer = n;
    }
    if let Some(duration) = settings.max_call_duration {
        limits.max_call_duration = duration;
    }
    if let Some(n) = settings.mesh_members {
        limits.mesh_members = n;
    }
    if let Some(idle) = settings.idle_session {
        limits.idle_session = idle;
    }
    limits
}

/// Prints each of `addrs` not printed yet, one a line.
fn print_new_addrs(addrs: &[Multiaddr], printed: &mut HashSet<Multiaddr>) {
    let mut stdout = std::io::stdout().lock();
    for addr in addrs {
        if printed.insert(addr.clone()) {
            let _ = writeln!(stdout, "{addr}");
        }
    }
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(
        issuer: &Keypair,
        audience: &Keypair,
        resource: &str,
        proof: Option<&Token>,
    ) -> String {
        let mut builder = weft::Builder::new(issuer, audience.did())
            .expires_at(4_000_000_000)
            .claim(resource, "realm/join");
        if let Some(proof) = proof {
            builder = builder.proof(*proof.cid());
        }
        builder.build().unwrap().as_str().to_owned()
    }

    #[test]
    fn a_realm_named_without_its_owner_is_the_one_its_chains_are_rooted_in() {
        let (owner, team, client) = (
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
        );
        let root = token(&owner, &team, "weft://io.acme", None);
        let root_token = Token::parse(&root).unwrap();
        let leaf = token(&team, &client, "weft://io.acme", Some(&root_token));
        let chain = [leaf.clone(), root.clone()];
        assert_eq!(root_of("io.acme", &chain).unwrap(), Some(owner.did()));
        // A chain for another realm says nothing about this one.
        assert_eq!(root_of("io.other", &chain).unwrap(), None);
        assert_eq!(root_of("io.acme", &[]).unwrap(), None);
        // Roots under two keys: the owner must be named.
        let elsewhere = token(&team, &client, "weft://io.acme", None);
        assert!(matches!(
            root_of("io.acme", &[leaf, root, elsewhere]),
            Err(CliError::Usage(_))
        ));
    }
}
