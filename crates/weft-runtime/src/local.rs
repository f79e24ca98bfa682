//! A local subscription's queue: the router hands events over a batch at a time.
//!
//! One channel operation per event cost the router a send and the application a receive (with a
//! lock to give the permit back) for every publication. The router instead gathers what one
//! message (a peer's batch, a stretch of the application's own publications) brings a
//! subscription and sends it as one `Vec`; the subscription hands the events out one by one.
//!
//! The bound is in events and in bytes: the router admits a batch's events while fewer than
//! `capacity` events and `max_bytes` bytes (payload, topic and a fixed overhead each) are queued,
//! and drops (and counts) the rest, newest first. Events the application has already taken a
//! batch of are not counted, so at most one batch more
//! than `capacity` is buffered. A batch cut short is copied to its own size, so the memory
//! held follows the events held.
//!
//! Events reach the subscription when the router has handled the whole message that brought
//! them (up to 1,024 publications), not one by one as it goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::Event;

/// What an event is counted as against the byte bound: its payload and topic, and the rest of
/// it (the publisher, the vector slot, the allocations' headers) as a fixed amount.
fn footprint(event: &Event) -> usize {
    event.payload.len() + event.topic.as_str().len() + 96
}

/// Creates a subscription's queue holding up to `capacity` events and `max_bytes` bytes (one event
/// is always let into an empty queue, however large).
pub(crate) fn local_queue(capacity: usize, max_bytes: usize) -> (LocalSink, LocalEvents) {
    let (batches, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let sink = LocalSink {
        batches,
        queued: queued.clone(),
        queued_bytes: queued_bytes.clone(),
        max_bytes,
        capacity: capacity.max(1),
        dropped: dropped.clone(),
        gathering: Vec::new(),
    };
    let events = LocalEvents {
        batches: receiver,
        current: Vec::new().into_iter(),
        queued,
        queued_bytes,
        dropped,
    };
    (sink, events)
}

/// The router's end: gathers a batch, then sends it.
#[derive(Debug)]
pub struct LocalSink {
    batches: mpsc::UnboundedSender<(Vec<Event>, usize)>,
    /// Events sent and not yet taken by the application: what the bound counts.
    queued: Arc<AtomicUsize>,
    /// Their bytes, by [`footprint`].
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    capacity: usize,
    /// Shared with the application's handle, so drops are visible there.
    dropped: Arc<AtomicU64>,
    gathering: Vec<Event>,
}

/// What a flush did with the gathered events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flushed {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

impl LocalSink {
    /// Adds an event to the batch being gathered; it leaves with the next [`flush`](Self::flush).
    /// Returns `true` if it is the batch's first.
    pub(crate) fn push(&mut self, event: Event) -> bool {
        self.gathering.push(event);
        self.gathering.len() == 1
    }

    /// Sends what was gathered, as much as the bound admits; the rest is dropped and counted.
    pub(crate) fn flush(&mut self) -> Flushed {
        if self.gathering.is_empty() {
            return Flushed::default();
        }
        if self.batches.is_closed() {
            // The application dropped its handle and the `RemoveLocal` is on its way: nothing is
            // delivered, and nothing counts as dropped for a slow subscriber either.
            self.gathering.clear();
            return Flushed::default();
        }
        // Only the application lowers `queued` and `queued_bytes` meanwhile, so the room read here
        // is never more than there is.
        let room = self
            .capacity
            .saturating_sub(self.queued.load(Ordering::Acquire));
        let mut bytes_room = self
            .max_bytes
            .saturating_sub(self.queued_bytes.load(Ordering::Acquire));
        let empty = self.queued.load(Ordering::Acquire) == 0;
        let gathered = self.gathering.len();
        let mut fits = 0;
        let mut bytes = 0;
        for event in self.gathering.iter().take(room) {
            let size = footprint(event);
            if size > bytes_room && !(empty && fits == 0) {
                break;
            }
            bytes_room = bytes_room.saturating_sub(size);
            bytes += size;
            fits += 1;
        }
        let batch = if fits == gathered {
            std::mem::take(&mut self.gathering)
        } else {
            // A right-sized copy of what fits: the bound is on memory as well as on events, and
            // a queue refilled a few events at a time must not hold a whole read's allocation
            // per batch. The gathering vector keeps its room for the next message.
            let admitted: Vec<Event> = self.gathering.drain(..fits).collect();
            self.gathering.clear();
            admitted
        };
        let dropped = gathered - batch.len();
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        let admitted = batch.len();
        if admitted > 0 {
            self.queued.fetch_add(admitted, Ordering::AcqRel);
            self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
            if self.batches.send((batch, bytes)).is_err() {
                // Closed since the check above.
                return Flushed::default();
            }
        }
        Flushed {
            delivered: admitted as u64,
            dropped: dropped as u64,
        }
    }
}

/// The application's end, inside a [`Subscription`](crate::Subscription).
#[derive(Debug)]
pub(crate) struct LocalEvents {
    batches: mpsc::UnboundedReceiver<(Vec<Event>, usize)>,
    /// The batch being handed out.
    current: std::vec::IntoIter<Event>,
    queued: Arc<AtomicUsize>,
    queued_bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl LocalEvents {
    fn take(&mut self, (batch, bytes): (Vec<Event>, usize)) {
        self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.current = batch.into_iter();
    }

    /// The next event, waiting for one; `None` once the router is gone and all is taken.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if let Some(event) = self.current.next() {
                return Poll::Ready(Some(event));
            }
            match self.batches.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.take(batch),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The next event if one is already here.
    pub(crate) fn try_next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(event);
            }
            let batch = self.batches.try_recv().ok()?;
            self.take(batch);
        }
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use weft_identity::Keypair;
    use weft_names::Name;

    use super::*;

    fn event(n: u8) -> Event {
        Event {
            topic: Name::new("t").unwrap(),
            payload: Bytes::from(vec![n]),
            publisher: Keypair::generate().unwrap().did(),
        }
    }

    fn payloads(events: &mut LocalEvents) -> Vec<u8> {
        std::iter::from_fn(|| events.try_next())
            .map(|e| e.payload[0])
            .collect()
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let big = |n: u8| Event {
            topic: Name::new("t").unwrap(),
            payload: Bytes::from(vec![n; 1000]),
            publisher: Keypair::generate().unwrap().did(),
        };
        // Room for two such events (1,097 bytes each by footprint), not three.
        let (mut sink, mut events) = local_queue(100, 2500);
        for n in 0..5 {
            sink.push(big(n));
        }
        assert_eq!(
            sink.flush(),
            Flushed {
                delivered: 2,
                dropped: 3
            }
        );
        // Taking a batch gives its bytes back.
        assert_eq!(payloads(&mut events), [0, 1]);
        sink.push(big(9));
        assert_eq!(sink.flush().delivered, 1);
        // One event larger than the whole bound still gets into an empty queue.
        let _ = payloads(&mut events);
        let (mut sink, mut events) = local_queue(100, 10);
        sink.push(big(7));
        sink.push(big(8));
        assert_eq!(
            sink.flush(),
            Flushed {
                delivered: 1,
                dropped: 1
            }
        );
        assert_eq!(payloads(&mut events), [7]);
    }

    #[test]
    fn batches_arrive_whole_and_in_order() {
        let (mut sink, mut events) = local_queue(16, usize::MAX);
        assert!(sink.push(event(1)));
        assert!(!sink.push(event(2)));
        assert_eq!(events.try_next(), None, "nothing leaves before the flush");
        assert_eq!(sink.flush().delivered, 2);
        sink.push(event(3));
        sink.flush();
        assert_eq!(payloads(&mut events), [1, 2, 3]);
        assert_eq!(
            sink.flush(),
            Flushed::default(),
            "an empty flush sends nothing"
        );
    }

    #[test]
    fn the_bound_is_in_events_and_drops_the_newest() {
        let (mut sink, mut events) = local_queue(3, usize::MAX);
        for n in 0..5 {
            sink.push(event(n));
        }
        assert_eq!(
            sink.flush(),
            Flushed {
                delivered: 3,
                dropped: 2
            }
        );
        sink.push(event(5));
        assert_eq!(sink.flush().dropped, 1, "still full");
        assert_eq!(events.dropped(), 3);
        // Taking a batch makes room again.
        assert_eq!(events.try_next().map(|e| e.payload[0]), Some(0));
        sink.push(event(6));
        assert_eq!(sink.flush().delivered, 1);
        assert_eq!(payloads(&mut events), [1, 2, 6]);
        // Taking a batch frees all of it at once: three fit again.
        for n in 7..10 {
            sink.push(event(n));
        }
        assert_eq!(sink.flush().delivered, 3);
        assert_eq!(payloads(&mut events), [7, 8, 9]);
    }

    #[test]
    fn a_truncated_batch_does_not_keep_the_gathered_allocation() {
        let (mut sink, mut events) = local_queue(2, usize::MAX);
        for n in 0..100 {
            sink.push(event(n));
        }
        assert_eq!(sink.flush().dropped, 98);
        let (batch, _) = events.batches.try_recv().unwrap();
        assert_eq!(batch.len(), 2);
        assert!(batch.capacity() < 8, "capacity {}", batch.capacity());
    }

    #[test]
    fn the_stream_ends_after_the_last_event_once_the_sink_is_gone() {
        let (mut sink, mut events) = local_queue(8, usize::MAX);
        sink.push(event(7));
        sink.flush();
        drop(sink);
        let mut next =
            || futures::executor::block_on(std::future::poll_fn(|cx| events.poll_next(cx)));
        assert_eq!(next().map(|e| e.payload[0]), Some(7));
        assert_eq!(next(), None);
    }

    #[test]
    fn a_dropped_receiver_counts_nothing() {
        let (mut sink, events) = local_queue(2, usize::MAX);
        for n in 0..2 {
            sink.push(event(n));
        }
        assert_eq!(sink.flush().delivered, 2, "the queue is full");
        drop(events);
        // Neither delivered nor dropped for a slow subscriber: nobody is subscribed any more.
        sink.push(event(2));
        assert_eq!(sink.flush(), Flushed::default());
        assert!(sink.gathering.is_empty());
    }
}
