//! The handle to a node's network.

use std::collections::HashSet;
use std::future::Future;

use libp2p::{Multiaddr, PeerId, Stream};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, DhtStats, Driver};
pub use crate::events::{NetEvent, WEFT_PROTOCOL};
use crate::{NetConfig, NetError};

/// The network thread, to wait for its end after [`Network::shutdown`].
#[derive(Debug)]
pub struct NetThread(std::thread::JoinHandle<()>);

impl NetThread {
    /// Blocks until the network thread has ended: its sockets are closed and its tasks gone.
    pub fn join(self) {
        // A panic on the network thread has already been reported by the panic hook.
        let _ = self.0.join();
    }
}

/// Builds the driver on the runtime `runtime` is a handle of, hands the network to `ready`, and
/// runs the driver until it stops, unless `ready` says nobody took the network.
async fn drive(
    config: NetConfig,
    runtime: tokio::runtime::Handle,
    ready: impl FnOnce(Result<(Network, mpsc::Receiver<NetEvent>), NetError>) -> bool,
) {
    match Driver::new(config) {
        Ok((driver, commands, control, peer_id, events)) => {
            // Answers DHT questions for the life of the runtime, as weft streams are accepted.
            match control.clone().accept(crate::inspect::DHT_PROTOCOL) {
                Ok(incoming) => {
                    runtime.spawn(crate::inspect::serve(incoming, commands.downgrade()));
                }
                Err(e) => {
                    let _ = ready(Err(NetError::Start(format!(
                        "accept {}: {e}",
                        crate::inspect::DHT_PROTOCOL
                    ))));
                    return;
                }
            }
            let network = Network {
                commands,
                control,
                peer_id,
                runtime,
                listening: driver.watch_listen_addrs(),
            };
            if ready(Ok((network, events))) {
                driver.run().await;
            }
        }
        Err(e) => {
            let _ = ready(Err(e));
        }
    }
}

/// A cheap, cloneable handle to the network thread.
///
/// Every method sends one command to the driver and awaits its reply; none blocks the caller's
/// thread, and all work from any async runtime (the actors run on actix's).
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    peer_id: PeerId,
    runtime: tokio::runtime::Handle,
    listening: tokio::sync::watch::Receiver<Vec<Multiaddr>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Starts the network on a new thread with its own tokio runtime, and returns once the swarm
    /// is built and listening (listen addresses then arrive as [`NetEvent::Listening`]).
    pub fn start(
        config: NetConfig,
    ) -> Result<(Network, mpsc::Receiver<NetEvent>, NetThread), NetError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("weft-net".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("weft-net")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(NetError::Start(e.to_string())));
                        return;
                    }
                };
                let handle = runtime.handle().clone();
                runtime.block_on(drive(config, handle, |started| {
                    ready_tx.send(started).is_ok()
                }));
                // Dropping the runtime here ends every stream task spawned on it.
            })
            .map_err(|e| NetError::Start(e.to_string()))?;
        let (network, events) = ready_rx
            .recv()
            .map_err(|_| NetError::Start("the network thread died while starting".into()))??;
        Ok((network, events, NetThread(thread)))
    }

    /// Starts the network as a task on `runtime`, shared with other nodes, instead of on a
    /// thread of its own; it ends with [`Network::close`] or [`Network::shutdown`] (or the
    /// runtime). Returns once the swarm is built.
    pub async fn start_on(
        config: NetConfig,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Network, mpsc::Receiver<NetEvent>), NetError> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let handle = runtime.clone();
        runtime.spawn(drive(config, handle, |started| {
            ready_tx.send(started).is_ok()
        }));
        ready_rx
            .await
            .map_err(|_| NetError::Start("the network task ended while starting".into()))?
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Dials `addr` and waits until the connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces in the DHT that this node provides `key` (republished automatically).
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.call(|reply| Command::Provide { key, reply }).await?
    }

    /// Withdraws a provider announcement.
    pub async fn stop_providing(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.call(|reply| Command::StopProviding { key, reply })
            .await
    }

    /// Finds the providers of `key` and dials those not yet connected while the query still
    /// knows their addresses (afterwards only the routing table would).
    pub async fn find_providers(&self, key: Vec<u8>) -> Result<HashSet<PeerId>, NetError> {
        self.find_providers_dialing(key, usize::MAX).await
    }

    /// Finds the providers of `key`, as [`Network::find_providers`], dialing at most `dial` of
    /// those not yet connected: a node that already holds enough of a realm's members dials
    /// none of the others its membership lookups find.
    pub async fn find_providers_dialing(
        &self,
        key: Vec<u8>,
        dial: usize,
    ) -> Result<HashSet<PeerId>, NetError> {
        self.find(key, dial, false).await
    }

    /// Finds the providers of `key` (a realm's members, a procedure's providers), as
    /// [`Network::find_providers_dialing`], but neither dials nor wants peers that released a
    /// session with this node lately ([`Network::released`]): a full node is not asked again
    /// for a session it has just let go, and others found are dialed instead.
    pub async fn find_unreleased_dialing(
        &self,
        key: Vec<u8>,
        dial: usize,
    ) -> Result<HashSet<PeerId>, NetError> {
        self.find(key, dial, true).await
    }

    async fn find(
        &self,
        key: Vec<u8>,
        dial: usize,
        skip_released: bool,
    ) -> Result<HashSet<PeerId>, NetError> {
        self.call(|reply| Command::FindProviders {
            key,
            dial,
            skip_released,
            reply,
        })
        .await?
    }

    /// A session with `peer` was released to make room (by either side): membership lookups
    /// leave it alone for a while.
    pub async fn released(&self, peer: PeerId) {
        // An error means the driver is gone: nothing left to mark.
        let _ = self.commands.send(Command::Released { peer }).await;
    }

    /// The providers of `key` in this node's own store: what it answers others' lookups with,
    /// without asking anyone.
    pub async fn stored_providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::StoredProviders { key, reply })
            .await
    }

    /// Current listen addresses, each ending in `/p2p/<peer-id>`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listening.borrow().clone()
    }

    /// The listen addresses as they change (each ending in `/p2p/<peer-id>`): a wildcard
    /// listener reports its interfaces' addresses one at a time, some after the node started.
    pub fn watch_listen_addrs(&self) -> tokio::sync::watch::Receiver<Vec<Multiaddr>> {
        self.listening.clone()
    }

    /// The DHT's routing table and query counts.
    pub async fn dht_stats(&self) -> Result<DhtStats, NetError> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// Whether this node can be reached from outside, its relays, and the path to each peer.
    pub async fn nat_status(&self) -> Result<crate::NatStatus, NetError> {
        self.call(|reply| Command::Nat { asker: None, reply }).await
    }

    /// Forgets a peer that left on purpose: it leaves the routing table, its provider records
    /// for `keys` are dropped from this node's store, and DHT lookups do not dial it for a while
    /// (until it connects again).
    pub async fn forget(&self, peer: PeerId, keys: Vec<Vec<u8>>) {
        // An error means the driver is gone: nothing left to forget.
        let _ = self.commands.send(Command::Forget { peer, keys }).await;
    }

    /// Tells the connection budget whether `peer` has a weft session: a session's connection is
    /// never closed to make room for another. Queued at once, so that a session's end and the
    /// start of the next one reach the budget in that order (a full queue falls back to
    /// waiting for room, on the network runtime).
    pub fn session(&self, peer: PeerId, open: bool) {
        match self.commands.try_send(Command::Session { peer, open }) {
            Err(mpsc::error::TrySendError::Full(command)) => {
                let commands = self.commands.clone();
                self.runtime.spawn(async move {
                    let _ = commands.send(command).await;
                });
            }
            // Closed: the driver is gone, no budget left to keep.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::Disconnect { peer, reply }).await
    }

    /// Whether at least one connection to `peer` is established.
    pub async fn is_connected(&self, peer: PeerId) -> Result<bool, NetError> {
        self.call(|reply| Command::IsConnected { peer, reply })
            .await
    }

    /// The peer at `addr`: the one connected already if the address names it (`/p2p/…`), else
    /// the one a dial reaches. A second connection to a connected peer would take a slot of
    /// the budget for nothing.
    pub async fn reach(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last()
            && self.is_connected(peer).await?
        {
            return Ok(peer);
        }
        self.dial(addr).await
    }

    /// Asks `peer` a question about its DHT (see [`crate::inspect`]).
    pub async fn ask_dht(
        &self,
        peer: PeerId,
        question: &weft_wire::inspect::DhtQuestion,
    ) -> Result<weft_wire::inspect::DhtAnswer, NetError> {
        crate::inspect::ask(self.control.clone(), peer, question).await
    }

    /// The providers of `key`, found as [`Network::find_providers_dialing`] finds them without
    /// dialing, with the addresses this node knows for each.
    pub async fn locate_providers(
        &self,
        key: Vec<u8>,
    ) -> Result<Vec<(PeerId, Vec<Multiaddr>)>, NetError> {
        let peers: Vec<PeerId> = self
            .find_providers_dialing(key.clone(), 0)
            .await?
            .into_iter()
            .collect();
        self.call(|reply| Command::AddressesOf { key, peers, reply })
            .await
    }

    /// Opens a weft stream to a connected (or dialable) peer.
    pub async fn open_stream(&self, peer: PeerId) -> Result<Stream, NetError> {
        let mut control = self.control.clone();
        control
            .open_stream(peer, WEFT_PROTOCOL)
            .await
            .map_err(|e| NetError::Stream {
                peer: peer.to_string(),
                reason: e.to_string(),
            })
    }

    /// Runs a future on the network runtime: stream I/O belongs next to the swarm, not on an
    /// actor thread.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(future)
    }

    /// Closes every connection, telling each peer, then stops the swarm.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }

    /// Stops the swarm without closing its connections, as a crash would: peers find out at
    /// their idle timeout. The network thread ends once in-flight work is dropped.
    pub async fn shutdown(&self) {
        // An error means the driver is gone already, which is what was asked.
        let _ = self.commands.send(Command::Shutdown).await;
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetError::Shutdown)?;
        response.await.map_err(|_| NetError::Shutdown)
    }
}
