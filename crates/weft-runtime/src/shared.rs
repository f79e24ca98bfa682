//! Threads that several nodes of one process share ([`NodeConfig::shared`]): one network
//! runtime of two workers, and one actor system with an arbiter per core. A node started on
//! them adds no thread of its own, so one process can run hundreds (`weft bench mesh`) where a
//! node with its own threads costs six.
//!
//! A node on a shared runtime stops its network when shut down (with its goodbyes, as any
//! node); its actors, left without a network, stay until the runtime is dropped. So a shared
//! runtime is for nodes that live as long as it does: a benchmark or a simulation, not a
//! process that starts and stops nodes for ever. Each node holds a handle to it, so the threads
//! outlive every node on them; dropping the last handle stops them without waiting.
//!
//! [`NodeConfig::shared`]: crate::NodeConfig::shared

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use tokio::sync::oneshot;

use crate::StartError;

/// The shared threads; cloning gives another handle to the same threads, which end once the
/// last handle is dropped.
#[derive(Clone)]
pub struct SharedRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    net: Option<tokio::runtime::Runtime>,
    /// The actor system's own arbiter: where each node's actors are built and its supervisor,
    /// DHT front, memberships and sessions run.
    system: ArbiterHandle,
    /// Where routers and registries run, realm by realm.
    arbiters: Vec<ArbiterHandle>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SharedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRuntime")
            .field("arbiters", &self.inner.arbiters.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SharedRuntime {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl SharedRuntime {
    /// Starts the threads: a network runtime of two workers, an actor system thread, and an
    /// arbiter per core.
    pub fn new() -> Result<Self, StartError> {
        let net = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weft-net")
            .enable_all()
            .build()
            .map_err(|e| StartError::Actors(e.to_string()))?;
        let actors = match ActorThreads::spawn() {
            Ok(actors) => actors,
            Err(e) => {
                // Dropped from async code too, where a runtime may not block to end its tasks.
                net.shutdown_background();
                return Err(e);
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                net: Some(net),
                system: actors.system,
                arbiters: actors.arbiters,
                stop: Mutex::new(Some(actors.stop)),
                thread: Mutex::new(Some(actors.thread)),
            }),
        })
    }

    /// The network runtime.
    pub(crate) fn net(&self) -> Option<&tokio::runtime::Handle> {
        self.inner.net.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// The arbiter nodes' actors are built on.
    pub(crate) fn system(&self) -> &ArbiterHandle {
        &self.inner.system
    }

    /// The arbiters routers and registries are spread over.
    pub(crate) fn arbiters(&self) -> &[ArbiterHandle] {
        &self.inner.arbiters
    }
}

/// An actix system on a thread of its own (`weft-actors`), with an arbiter per core: a node's
/// own, or a shared runtime's. Sending on `stop` (or dropping it) stops the arbiters and the
/// system; `thread` ends once they have.
pub(crate) struct ActorThreads {
    /// The system's own arbiter.
    pub(crate) system: ArbiterHandle,
    /// One per core.
    pub(crate) arbiters: Vec<ArbiterHandle>,
    pub(crate) stop: oneshot::Sender<()>,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

impl ActorThreads {
    pub(crate) fn spawn() -> Result<Self, StartError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weft-actors".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                let arbiters = system.block_on(async move {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
                    let handles = arbiters.iter().map(Arbiter::handle).collect();
                    if ready_tx.send((Arbiter::current(), handles)).is_ok() {
                        let _ = stop_rx.await;
                    }
                    for arbiter in &arbiters {
                        arbiter.stop();
                    }
                    System::current().stop();
                    arbiters
                });
                // Routers and registries live on the arbiters: once their threads are joined,
                // nothing built on them handles a message any more.
                for arbiter in arbiters {
                    let _ = arbiter.join();
                }
            })
            .map_err(|e| StartError::Actors(e.to_string()))?;
        let (system, arbiters) = ready_rx
            .recv()
            .map_err(|_| StartError::Actors("the actor thread died while starting".into()))?;
        Ok(Self {
            system,
            arbiters,
            stop,
            thread,
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = stop.send(());
        }
        // Joined on a thread of its own: the last handle may go on a runtime's worker, or on
        // the actor thread itself.
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = std::thread::Builder::new()
                .name("weft-actors-join".into())
                .spawn(move || thread.join());
        }
        // Dropped from async code too, where a runtime may not block to end its tasks.
        if let Some(net) = self.net.take() {
            net.shutdown_background();
        }
    }
}
