//! The application's publications on their way to the router, a batch per router wake-up.
//!
//! One actor message per publication cost an envelope, a mailbox node and a wake-up each. The
//! lane instead appends each publication (with its reply slot) to a queue under a short lock, in
//! call order, and sends the router one [`Drain`] whenever the queue goes from empty to
//! non-empty; the router takes everything queued at once. Each publication is answered on its own,
//! once the router has handled it.
//!
//! If the router is gone (or stops with a `Drain` unhandled), everything queued is answered
//! `Stopped`, and so is anything published afterwards.

use std::sync::{Arc, Mutex, MutexGuard};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::oneshot;
use weft_auth::Chain;
use weft_names::Name;

use crate::PublishError;
use crate::sender::PeerSender;

/// A publication from this node, on its way through the lane to the router. Answered with the
/// peers to wait for under `Congestion::Block`: those whose queue this publication left half
/// full or more (always none under `Drop`).
#[derive(Debug)]
pub(crate) struct Publish {
    /// The topic.
    pub(crate) topic: Name,
    /// The payload.
    pub(crate) payload: Bytes,
    /// A chain to publish under instead of the node's own (see `RealmRuntime::publish`).
    pub(crate) chain: Option<Chain>,
}

/// What a publication is answered with: the peers to wait for under `Congestion::Block`.
pub(crate) type Published = Result<Vec<PeerSender>, PublishError>;

/// A publication waiting for the router, and where its answer goes.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) publish: Publish,
    pub(crate) reply: oneshot::Sender<Published>,
}

/// The sending end, shared by every clone of a realm's handle.
#[derive(Debug, Clone)]
pub(crate) struct PublishLane {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The router, as the one message it takes from the lane.
    router: Recipient<Drain>,
}

#[derive(Debug, Default)]
struct State {
    queued: Vec<Queued>,
    /// A `Drain` is on its way to the router.
    scheduled: bool,
    /// The router is gone.
    closed: bool,
}

impl PublishLane {
    pub(crate) fn new(router: Recipient<Drain>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                router,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only plain data is guarded; a panic elsewhere leaves it consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `publish` behind everything published before it; the receiver gets its answer.
    pub(crate) fn push(&self, publish: Publish) -> oneshot::Receiver<Published> {
        let (reply, answer) = oneshot::channel();
        let mut state = self.lock();
        if state.closed {
            drop(state);
            let _ = reply.send(Err(PublishError::Stopped));
            return answer;
        }
        state.queued.push(Queued { publish, reply });
        let schedule = !std::mem::replace(&mut state.scheduled, true);
        drop(state);
        if schedule {
            // Past the mailbox's bound, like any message from the application; a stopped router
            // drops it, and the drop closes the lane.
            self.shared.router.do_send(Drain {
                lane: Some(self.clone()),
            });
        }
        answer
    }

    /// What is queued, in order, up to `max`. `true` with it when more remains: the caller then
    /// drains again (so one flood of publications does not hold the router for its whole length);
    /// otherwise the next publication schedules a new `Drain`.
    pub(crate) fn take(&self, max: usize) -> (Vec<Queued>, bool) {
        let mut state = self.lock();
        if state.queued.len() > max {
            let rest = state.queued.split_off(max);
            return (std::mem::replace(&mut state.queued, rest), true);
        }
        state.scheduled = false;
        (std::mem::take(&mut state.queued), false)
    }

    /// The router is gone: answer what is queued, and everything later, `Stopped`.
    fn close(&self) {
        let queued = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.queued)
        };
        for queued in queued {
            let _ = queued.reply.send(Err(PublishError::Stopped));
        }
    }
}

/// Tells the router to take what the lane holds.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Drain {
    lane: Option<PublishLane>,
}

impl Drain {
    /// Drain `lane` (again: it still holds publications).
    pub(crate) fn again(lane: PublishLane) -> Self {
        Self { lane: Some(lane) }
    }

    /// The lane to drain; taken once, by the router's handler.
    pub(crate) fn take(&mut self) -> Option<PublishLane> {
        self.lane.take()
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        // Never handled: the router is gone.
        if let Some(lane) = self.lane.take() {
            lane.close();
        }
    }
}
