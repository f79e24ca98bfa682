//! What sends to a peer, and what counts a peer's messages in flight: shared by the session
//! that owns a peer's streams and by the realm's actors that send to it or handle its frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use weft_net::outbox::{Outbox, Pushed};
use weft_wire::{DEFAULT_MAX_FRAME, Denial, Frame, RealmIndex};

/// A peer's send queue. Cloned into the realm, router and registry that send to it.
#[derive(Debug, Clone)]
pub struct PeerSender {
    /// The queue itself; the session's writer drains it.
    pub(crate) outbox: Outbox,
    /// Whether the session carried something since the node last looked.
    pub(crate) active: Activity,
}

/// Whether a session carried a publication, call, reply or interest since the node last looked
/// (`core::budget` releases the idle ones first). A flag rather than a time: the path of every
/// publication pays one relaxed load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity(Arc<AtomicBool>);

impl Activity {
    /// Something crossed the session.
    pub(crate) fn touch(&self) {
        if !self.0.load(Ordering::Relaxed) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Whether something crossed it since the last call.
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl PeerSender {
    /// Queues an encoded publication, call or reply; refused when the queue is full (the caller
    /// counts the drop) or the peer is gone.
    pub fn send(&self, frame: &[u8]) -> Pushed {
        self.active.touch();
        self.outbox.push(frame)
    }

    /// Queues an encoded publication of this node's realm `realm` (its index in this node's
    /// hello) as [`send`](Self::send) does; if the session ends before it is written, the
    /// session reports it lost to that realm.
    pub fn send_publication(&self, frame: &[u8], realm: RealmIndex) -> Pushed {
        self.active.touch();
        self.outbox.push_tagged(frame, realm)
    }

    /// Queues an encoded batch passed through this session (`Frame::Forward`) as
    /// [`send_publication`](Self::send_publication) does, without making the session look busy:
    /// batches reach their subscribers through other members too, so carrying them is no reason
    /// to keep a session a direct publication or call needs.
    pub fn send_passing(&self, frame: &[u8], realm: RealmIndex) -> Pushed {
        self.outbox.push_tagged(frame, realm)
    }

    /// Queues an encoded control frame (interest, denial, goodbye): never dropped while the peer
    /// is connected, and written before queued data.
    pub fn send_control(&self, frame: &[u8]) {
        self.outbox.push_control(frame);
    }

    /// Tells the peer it is refused in one realm (`realm` indexes the peer's hello): at
    /// admission, or when a standing grant ends.
    pub fn send_denial(&self, realm: RealmIndex, code: &str, reason: String) {
        let denial = Frame::Denied(Denial {
            realm,
            code: code.to_owned(),
            reason: weft_wire::bounded_reason(reason),
        });
        if let Ok(bytes) = weft_net::framed::encode(&denial, DEFAULT_MAX_FRAME) {
            self.send_control(&bytes);
        }
    }

    /// Resolves once its queue is below half full, or the peer is gone.
    pub async fn drained(&self) {
        self.outbox.drained().await;
    }
}

/// Messages sent and not yet handled, counted by the [`Ticket`]s they carry.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    /// Wakes a sender waiting for the count to fall.
    fell: tokio::sync::Notify,
}

impl InFlight {
    /// Counts one more message until the returned ticket is dropped (with its message, once
    /// handled, or if it is never delivered).
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        self.count.fetch_add(1, Ordering::AcqRel);
        Ticket(self.clone())
    }

    /// Messages in flight.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once fewer than `limit` are in flight.
    pub async fn below(&self, limit: usize) {
        loop {
            let fell = self.fell.notified();
            tokio::pin!(fell);
            fell.as_mut().enable();
            if self.count() < limit {
                return;
            }
            fell.await;
        }
    }
}

/// One message in flight; see [`InFlight`].
#[derive(Debug)]
pub struct Ticket(Arc<InFlight>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.fell.notify_waiters();
    }
}
