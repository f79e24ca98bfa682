//! Helpers for end-to-end tests of weft over real QUIC on 127.0.0.1; the tests live in `tests/`.
//!
//! Every wait is on an event (a subscription's next event, a router learning of a subscriber),
//! bounded by [`LIMIT`], so a broken build fails in seconds instead of hanging CI.

#![allow(clippy::expect_used)] // test support: a panic is a failed test

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use weft::{Event, Keypair, Node, NodeBuilder, Subscription};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{NetConfig, NetEvent, NetThread, Network, PeerId};
use weft_wire::{DEFAULT_MAX_FRAME, Decoder, Frame};

/// The longest any single wait may take.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Logs to stderr when `WEFT_TEST_LOG` is set (e.g. `WEFT_TEST_LOG=weft_runtime=debug`).
pub fn logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("WEFT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    logs();
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Starts `n` nodes: the first alone, the others bootstrapping from it. `configure` adds realms,
/// keys and tokens to each builder (it gets the node's position).
pub async fn mesh(n: usize, configure: impl Fn(NodeBuilder, usize) -> NodeBuilder) -> Vec<Node> {
    let first = configure(Node::builder(), 0)
        .start()
        .await
        .expect("first node starts");
    let seed = first.listen_addrs()[0].to_string();
    let mut nodes = vec![first];
    for i in 1..n {
        let node = configure(Node::builder().bootstrap(seed.clone()), i)
            .start()
            .await
            .expect("node starts");
        nodes.push(node);
    }
    nodes
}

/// The next event of a subscription, within [`LIMIT`].
pub async fn next_event(subscription: &mut Subscription) -> Event {
    within("next event", subscription.next())
        .await
        .expect("subscription open")
}

/// Shuts every node down gracefully.
pub async fn shutdown(nodes: &[Node]) {
    for node in nodes {
        node.shutdown().await;
    }
}

/// A peer speaking raw frames to one node, below the runtime: it sends what a test makes up,
/// and reads everything the node sends back.
#[allow(missing_debug_implementations)] // holds the network's channels, which say nothing useful
pub struct RawPeer {
    network: Network,
    thread: Option<NetThread>,
    events: mpsc::Receiver<NetEvent>,
    outbox: Outbox,
    /// The node's peer ID.
    pub peer: PeerId,
    received: Option<mpsc::Receiver<Vec<Frame>>>,
    /// The node hung up on this peer at some point (seen while waiting for its stream).
    hung_up: bool,
}

impl RawPeer {
    /// Connects to `target` under `key` and opens a weft stream towards it.
    pub async fn connect(target: &Node, key: Keypair) -> Self {
        let (network, events, thread) =
            Network::start(NetConfig::loopback(key)).expect("raw network starts");
        let peer = within("dial", network.dial(target.listen_addrs()[0].clone()))
            .await
            .expect("dial");
        let stream = within("open stream", network.open_stream(peer))
            .await
            .expect("stream");
        let outbox = Outbox::new(64);
        let writer = outbox.clone();
        network.spawn(async move {
            let _ = write_outbox(stream, writer).await;
        });
        Self {
            network,
            thread: Some(thread),
            events,
            outbox,
            peer,
            received: None,
            hung_up: false,
        }
    }

    /// Connects to `target` under a fresh key and joins its open realm `realm` (the only realm
    /// it names, at index 0): returns once the node has welcomed it.
    pub async fn join_open(target: &Node, realm: &str) -> Self {
        Self::join_open_as(target, realm, Keypair::generate().expect("a key")).await
    }

    /// [`join_open`](Self::join_open) under `key`.
    pub async fn join_open_as(target: &Node, realm: &str, key: Keypair) -> Self {
        Self::join_as(target, realm, None, Vec::new(), key).await
    }

    /// Connects to `target` under `key` and joins its realm `realm` of `owner` presenting
    /// `chains` (the only realm it names, at index 0): returns once the node has welcomed it.
    pub async fn join_as(
        target: &Node,
        realm: &str,
        owner: Option<weft::Did>,
        chains: Vec<weft_wire::WireChain>,
        key: Keypair,
    ) -> Self {
        let did = key.did();
        let mut raw = Self::connect(target, key).await;
        raw.greet(target, realm, owner, chains, &did).await;
        raw.read_until(|f| matches!(f, Frame::Welcome(_))).await;
        raw
    }

    /// Sends `frame`, waiting for room when the stream is behind (back-pressure from the node).
    pub async fn send(&self, frame: &Frame) {
        let bytes = weft_net::framed::encode(frame, DEFAULT_MAX_FRAME).expect("encodes");
        while !self.outbox.push(&bytes).queued {
            self.outbox.drained().await;
        }
    }

    /// The next batch of frames the node sent (its stream is accepted on first use); `None` once
    /// the node has ended it.
    pub async fn next_frames(&mut self) -> Option<Vec<Frame>> {
        if self.received.is_none() {
            let peer = self.peer;
            let stream = within("the node's stream", async {
                loop {
                    match self.events.recv().await {
                        Some(NetEvent::InboundStream { peer: p, stream }) if p == peer => {
                            break stream;
                        }
                        Some(NetEvent::PeerDisconnected { peer: p }) if p == peer => {
                            self.hung_up = true;
                        }
                        Some(_) => {}
                        None => panic!("the raw network stopped"),
                    }
                }
            })
            .await;
            let (sink, frames) = mpsc::channel(16);
            self.network.spawn(async move {
                if let Ok(inbound) = weft_net::framed::accept(stream).await {
                    let _ = weft_net::framed::read_frames(
                        inbound.reader,
                        inbound.read,
                        sink,
                        Decoder::new(DEFAULT_MAX_FRAME),
                    )
                    .await;
                }
            });
            self.received = Some(frames);
        }
        let frames = self.received.as_mut()?;
        within("frames from the node", frames.recv()).await
    }

    /// Reads the node's frames until one satisfies `wanted`; returns everything read, or
    /// everything up to the end of the node's stream.
    pub async fn read_until(&mut self, wanted: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut read = Vec::new();
        while let Some(batch) = self.next_frames().await {
            let done = batch.iter().any(&wanted);
            read.extend(batch);
            if done {
                break;
            }
        }
        read
    }

    /// Whether the node closed the connection at some point while this peer waited for a
    /// stream from it.
    pub fn hung_up(&self) -> bool {
        self.hung_up
    }

    /// Stops reading the node's stream: once the node writes to it, the stream's reader is
    /// dropped, and the node's next write fails. The next [`next_frames`](Self::next_frames)
    /// waits for a new stream from the node.
    pub fn stop_reading(&mut self) {
        self.received = None;
    }

    /// Opens a new stream to the node on the same connection, as a peer starting a new session
    /// does, and sends from now on on it; the old stream stays open.
    pub async fn open_again(&mut self) {
        let stream = within("open another stream", self.network.open_stream(self.peer))
            .await
            .expect("stream");
        let outbox = Outbox::new(64);
        let writer = outbox.clone();
        self.network.spawn(async move {
            let _ = write_outbox(stream, writer).await;
        });
        self.outbox = outbox;
    }

    /// Sends the hello and the join of [`join_open`](Self::join_open) under `key` (the key this
    /// raw peer connected with) on the current stream.
    pub async fn greet_open(&self, target: &Node, realm: &str, key: &Keypair) {
        self.greet(target, realm, None, Vec::new(), &key.did())
            .await;
    }

    /// Sends, as `did`, a hello naming `realm` of `owner` (the only realm, at index 0) and a
    /// join presenting `chains`, on the current stream.
    async fn greet(
        &self,
        target: &Node,
        realm: &str,
        owner: Option<weft::Did>,
        chains: Vec<weft_wire::WireChain>,
        did: &weft::Did,
    ) {
        let realm = weft::RealmName::new(realm).expect("a realm name");
        self.send(&Frame::Hello(weft_wire::Hello {
            realms: vec![weft_wire::realm_digest(
                did,
                &target.did(),
                &realm,
                owner.as_ref(),
            )],
            client: false,
            run: 1,
        }))
        .await;
        self.send(&Frame::Join(weft_wire::Join {
            realms: vec![weft_wire::RealmJoin {
                index: 0,
                realm,
                owner,
                chains,
            }],
        }))
        .await;
    }

    /// Waits until the node is connected to this raw peer no more.
    pub async fn disconnected(&mut self) {
        let peer = self.peer;
        within("the node hangs up", async {
            loop {
                match self.events.recv().await {
                    Some(NetEvent::PeerDisconnected { peer: p }) if p == peer => return,
                    Some(_) => {}
                    None => panic!("the raw network stopped"),
                }
            }
        })
        .await;
    }

    /// Closes the connection and stops the raw network.
    pub async fn close(mut self) {
        self.network.shutdown().await;
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}
