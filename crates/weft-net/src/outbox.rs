//! A peer's outgoing frames as one growing byte buffer, and the task that writes it.
//!
//! Senders (routers, registries, the session) append already-encoded frames under a short lock;
//! the writer swaps the whole buffer out and writes it with one call. Compared with a channel of
//! frames this costs no allocation and no channel operation per frame, and whatever accumulated
//! while the previous write was in flight leaves in one write: under load, many small
//! publications share a QUIC packet instead of paying one each.
//!
//! Two lanes: control frames (subscriptions, refusals, goodbye) are few and never dropped, and are
//! written before data; data frames (publications, calls, replies) are bounded by a frame count
//! and a byte count, and a full outbox refuses them so the caller counts a drop. A sender that
//! would rather wait than drop checks [`Outbox::congested`] (half full) and awaits
//! [`Outbox::drained`].

use std::sync::{Arc, Mutex, MutexGuard};

use futures::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Bytes of queued data frames at most, whatever the frame limit: a slow peer cannot hold more
/// memory than this.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of queued control frames at most. Control frames are never dropped, so a peer that
/// lets this much pile up (it calls and never reads its replies) is not reading at all: the
/// writer then fails, and the session ends the connection.
pub const MAX_CONTROL_BYTES: usize = 64 * 1024 * 1024;
/// A write buffer that grew past this is released after the write instead of kept for reuse.
const KEEP_CAPACITY: usize = 256 * 1024;
/// What a buffer may keep while its peer is idle: a burst does not pin memory on a quiet peer,
/// and steady small traffic does not reallocate on every write.
const IDLE_CAPACITY: usize = 4 * 1024;

/// The sending side of a peer's stream. Cheap to clone; every clone appends to the same buffer.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer when a lane goes from empty to non-empty, or on close.
    ready: Notify,
    /// Wakes senders waiting for room when the writer takes the queued data.
    space: Notify,
    max_frames: usize,
}

#[derive(Debug, Default)]
struct State {
    control: Vec<u8>,
    data: Vec<u8>,
    data_frames: usize,
    /// Flush what is queued, close the stream and stop.
    closing: bool,
    /// The writer stopped: nothing will be written any more.
    gone: bool,
    /// The control lane outgrew [`MAX_CONTROL_BYTES`]: the peer is not reading.
    overflowed: bool,
    /// Queued data frames by tag (see [`Outbox::push_tagged`]).
    tags: Tags,
    /// Tagged data frames that were queued and will never be written.
    lost: Tags,
}

/// Frame counts by tag. A peer's frames carry a handful of tags (its realms), so a list beats a
/// map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tags(Vec<(u16, u64)>);

impl Tags {
    fn add(&mut self, tag: u16, frames: u64) {
        match self.0.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, n)) => *n += frames,
            None => self.0.push((tag, frames)),
        }
    }

    fn absorb(&mut self, other: &mut Tags) {
        for (tag, frames) in other.0.drain(..) {
            self.add(tag, frames);
        }
    }

    /// Each tag with its count.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().copied()
    }

    /// No frame counted.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl State {
    fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// Drops everything queued, memory included. The data frames among it (publications, calls,
    /// replies) are counted: they were accepted for a peer that will never get them.
    fn discard(&mut self) {
        let (frames, mut tags) = (self.data_frames, std::mem::take(&mut self.tags));
        self.lose(frames, &mut tags);
        self.control = Vec::new();
        self.data = Vec::new();
        self.data_frames = 0;
    }

    /// Counts `frames` data frames, `tags` among them, as never to be written.
    fn lose(&mut self, frames: usize, tags: &mut Tags) {
        if frames > 0 {
            metrics::counter!("weft_frames_dropped_total", "reason" => "session_ended")
                .increment(frames as u64);
        }
        self.lost.absorb(tags);
    }
}

impl Outbox {
    /// An outbox holding at most `max_frames` data frames (and [`MAX_QUEUED_BYTES`]) unwritten.
    pub fn new(max_frames: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                space: Notify::new(),
                max_frames: max_frames.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only byte buffers behind, which stay valid.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an encoded data frame. It is refused when the outbox is full (the caller counts the
    /// drop), closing, or its writer is gone; either way the answer says whether the outbox is now
    /// [`congested`](Self::congested), under the same lock.
    pub fn push(&self, frame: &[u8]) -> Pushed {
        self.push_inner(frame, None)
    }

    /// Queues an encoded data frame as [`push`](Self::push) does, and if it is queued but never
    /// written (the session ends first, or the write fails), counts it under `tag` in
    /// [`take_lost`](Self::take_lost).
    pub fn push_tagged(&self, frame: &[u8], tag: u16) -> Pushed {
        self.push_inner(frame, Some(tag))
    }

    fn push_inner(&self, frame: &[u8], tag: Option<u16>) -> Pushed {
        let mut state = self.lock();
        let ended = state.gone || state.closing || state.overflowed;
        if ended
            || state.data_frames >= self.shared.max_frames
            || state.data.len() + frame.len() > MAX_QUEUED_BYTES
        {
            let congested = self.is_congested(&state);
            return Pushed {
                queued: false,
                ended,
                congested,
            };
        }
        let wake = state.is_empty();
        state.data.extend_from_slice(frame);
        state.data_frames += 1;
        if let Some(tag) = tag {
            state.tags.add(tag, 1);
        }
        let congested = self.is_congested(&state);
        drop(state);
        if wake {
            self.shared.ready.notify_one();
        }
        Pushed {
            queued: true,
            ended: false,
            congested,
        }
    }

    fn is_congested(&self, state: &State) -> bool {
        !state.gone
            && (state.data_frames >= self.shared.max_frames.div_ceil(2)
                || state.data.len() >= MAX_QUEUED_BYTES / 2)
    }

    /// Queues an encoded control frame. It is never dropped while the writer runs, and is written
    /// before any data frame queued with it.
    pub fn push_control(&self, frame: &[u8]) {
        let mut state = self.lock();
        if state.gone || state.overflowed {
            return;
        }
        if state.control.len() + frame.len() > MAX_CONTROL_BYTES {
            state.overflowed = true;
            state.discard();
            drop(state);
            self.shared.ready.notify_one();
            return;
        }
        let wake = state.is_empty();
        state.control.extend_from_slice(frame);
        drop(state);
        if wake {
            self.shared.ready.notify_one();
        }
    }

    /// Asks the writer to write what is queued, close the stream's sending side and stop. Data
    /// pushed afterwards is refused; control frames still go out with the final write.
    pub fn close(&self) {
        self.lock().closing = true;
        self.shared.ready.notify_one();
    }

    /// No writer will ever run (the stream could not be opened, or the session ended before it
    /// was): drop what is queued, refuse what comes, and release anyone waiting in
    /// [`drained`](Self::drained).
    pub fn abandon(&self) {
        {
            let mut state = self.lock();
            state.gone = true;
            state.discard();
        }
        self.shared.space.notify_waiters();
    }

    /// The tagged frames lost so far (see [`push_tagged`](Self::push_tagged)), each counted once:
    /// taking them resets the count.
    pub fn take_lost(&self) -> Tags {
        std::mem::take(&mut self.lock().lost)
    }

    /// The peer let more than [`MAX_CONTROL_BYTES`] of control frames pile up.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Data frames queued and not yet handed to the stream.
    #[cfg(test)]
    pub(crate) fn queued_frames(&self) -> usize {
        self.lock().data_frames
    }

    /// Half the frame limit or half [`MAX_QUEUED_BYTES`] or more is queued: a sender that must not
    /// lose frames should wait for [`drained`](Self::drained) before queueing more.
    pub fn congested(&self) -> bool {
        self.is_congested(&self.lock())
    }

    /// Resolves once the outbox is no longer [`congested`](Self::congested) (or its writer is gone).
    pub async fn drained(&self) {
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            // Registered before checking, so a wake between the check and the wait is not lost.
            notified.as_mut().enable();
            if !self.congested() {
                return;
            }
            notified.await;
        }
    }
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a refused frame is a drop the caller should count"]
pub struct Pushed {
    /// The frame was queued; `false`: refused (full, closing, or the writer is gone).
    pub queued: bool,
    /// Refused because the session is ending (closing, or its writer gone), not because the
    /// queue is full: a loss to count as the session's, not as a slow peer's.
    pub ended: bool,
    /// The outbox is now half full or more (see [`Outbox::congested`]).
    pub congested: bool,
}

/// Marks the outbox gone when the writer stops, however it stops, so senders stop queueing.
struct Gone(Outbox);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Writes what `outbox` receives to `stream` until [`Outbox::close`], then closes the stream's
/// sending side.
pub async fn write_outbox<W: AsyncWrite + Unpin>(
    mut stream: W,
    outbox: Outbox,
) -> std::io::Result<()> {
    let guard = Gone(outbox);
    let outbox = &guard.0;
    let sent = metrics::counter!("weft_bytes_sent_total");
    let (mut control, mut data) = (Vec::new(), Vec::new());
    // The tagged frames the write in progress carries: lost, and counted, if it fails.
    let mut writing_tags = Tags::default();
    loop {
        let (closing, writing_frames) = {
            let mut state = outbox.lock();
            if state.overflowed {
                return Err(std::io::Error::other(
                    "the peer is not reading: its queued control frames passed 64 MiB",
                ));
            }
            std::mem::swap(&mut state.control, &mut control);
            std::mem::swap(&mut state.data, &mut data);
            std::mem::swap(&mut state.tags, &mut writing_tags);
            (state.closing, std::mem::take(&mut state.data_frames))
        };
        if !data.is_empty() {
            outbox.shared.space.notify_waiters();
        }
        if control.is_empty() && data.is_empty() {
            if closing {
                break;
            }
            // Idle: give back what the last burst grew, here and in the outbox.
            shrink(&mut control);
            shrink(&mut data);
            {
                let mut state = outbox.lock();
                if state.is_empty() {
                    shrink(&mut state.control);
                    shrink(&mut state.data);
                }
            }
            // A push between the swap and here stored a permit, so this returns at once.
            outbox.shared.ready.notified().await;
            continue;
        }
        if let Err(e) = write_both(&mut stream, [&mut control, &mut data], &sent).await {
            outbox.lock().lose(writing_frames, &mut writing_tags);
            return Err(e);
        }
        // Emptied, not replaced: its room goes back to the outbox at the next swap.
        writing_tags.0.clear();
    }
    stream.close().await
}

/// Writes the control bytes, then the data bytes, and flushes; emptied buffers are kept for
/// reuse unless they grew large.
async fn write_both<W: AsyncWrite + Unpin>(
    stream: &mut W,
    buffers: [&mut Vec<u8>; 2],
    sent: &metrics::Counter,
) -> std::io::Result<()> {
    for bytes in buffers {
        if !bytes.is_empty() {
            stream.write_all(bytes).await?;
            sent.increment(bytes.len() as u64);
            if bytes.capacity() > KEEP_CAPACITY {
                *bytes = Vec::new();
            } else {
                bytes.clear();
            }
        }
    }
    stream.flush().await
}

/// Releases an empty buffer's memory if it holds more than an idle peer needs.
fn shrink(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > IDLE_CAPACITY {
        *buffer = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that records what is written (and whether it was closed), or, if broken, fails
    /// every write as a reset connection does.
    #[derive(Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Arc<Mutex<bool>>, bool);

    impl Sink {
        fn broken() -> Self {
            Sink(Arc::default(), Arc::default(), true)
        }
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if self.2 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            self.0.lock().unwrap().extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            *self.1.lock().unwrap() = true;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// A task waiting for room in `outbox`, checked to be waiting.
    async fn waiting_for_room(outbox: &Outbox) -> tokio::task::JoinHandle<()> {
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        waiting
    }

    #[tokio::test]
    async fn control_goes_first_and_close_flushes_everything() {
        let outbox = Outbox::new(8);
        assert!(outbox.push(b"d1").queued);
        outbox.push_control(b"c1");
        assert!(outbox.push(b"d2").queued);
        outbox.close();
        let late = outbox.push(b"late");
        assert!(!late.queued && late.ended, "closing refuses data");
        outbox.push_control(b"bye");
        let sink = Sink::default();
        let (written, closed) = (sink.0.clone(), sink.1.clone());
        write_outbox(sink, outbox.clone()).await.unwrap();
        assert_eq!(&*written.lock().unwrap(), b"c1byed1d2");
        assert!(*closed.lock().unwrap());
        let after = outbox.push(b"after");
        assert!(
            !after.queued && after.ended,
            "a stopped writer refuses data"
        );
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_data_but_not_control() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(b"1").queued);
        assert!(outbox.push(b"2").queued);
        let full = outbox.push(b"3");
        assert!(!full.queued && !full.ended, "full, not ending");
        assert_eq!(outbox.queued_frames(), 2);
        outbox.push_control(b"c");
        let big = vec![0u8; MAX_QUEUED_BYTES + 1];
        assert!(
            !Outbox::new(8).push(&big).queued,
            "the byte bound holds too"
        );
        let half = Outbox::new(1024);
        assert!(half.push(&big[..MAX_QUEUED_BYTES / 2]).queued);
        assert!(half.congested(), "half the bytes is congested too");
    }

    #[tokio::test]
    async fn a_congested_outbox_drains_when_the_writer_takes_its_frames() {
        let outbox = Outbox::new(4);
        assert!(outbox.push(b"1").queued);
        assert!(!outbox.congested());
        assert!(outbox.push(b"2").queued);
        assert!(outbox.congested(), "half of four");
        let waiting = waiting_for_room(&outbox).await;
        let sink = Sink::default();
        let writer = tokio::spawn(write_outbox(sink, outbox.clone()));
        waiting.await.unwrap();
        outbox.close();
        writer.await.unwrap().unwrap();
        assert!(
            !outbox.congested(),
            "a gone writer never leaves anyone waiting"
        );
    }

    #[tokio::test]
    async fn a_peer_that_lets_control_frames_pile_up_fails_the_writer() {
        let outbox = Outbox::new(8);
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..=MAX_CONTROL_BYTES / chunk.len() {
            outbox.push_control(&chunk);
        }
        assert!(
            !outbox.push(b"data").queued,
            "an overflowed outbox refuses data"
        );
        let failed = write_outbox(Sink::default(), outbox.clone()).await;
        assert!(failed.is_err() && outbox.overflowed(), "{failed:?}");
        assert!(!outbox.congested(), "and leaves nobody waiting");
    }

    fn lost(outbox: &Outbox) -> Vec<(u16, u64)> {
        let mut lost: Vec<_> = outbox.take_lost().iter().collect();
        lost.sort_unstable();
        lost
    }

    #[tokio::test]
    async fn tagged_frames_never_written_are_counted_by_tag() {
        // Queued when the session ends without a writer.
        let outbox = Outbox::new(8);
        for tag in [1, 2, 1] {
            assert!(outbox.push_tagged(b"p", tag).queued);
        }
        assert!(outbox.push(b"untagged").queued);
        outbox.abandon();
        assert_eq!(lost(&outbox), vec![(1, 2), (2, 1)]);
        assert!(outbox.take_lost().is_empty(), "each loss is taken once");

        // Handed to a write that fails.
        let outbox = Outbox::new(8);
        assert!(outbox.push_tagged(b"p", 3).queued);
        assert!(write_outbox(Sink::broken(), outbox.clone()).await.is_err());
        assert_eq!(lost(&outbox), vec![(3, 1)]);

        // Written: nothing lost.
        let outbox = Outbox::new(8);
        assert!(outbox.push_tagged(b"p", 4).queued);
        outbox.close();
        write_outbox(Sink::default(), outbox.clone()).await.unwrap();
        assert_eq!(lost(&outbox), vec![]);
    }

    #[tokio::test]
    async fn abandoning_releases_those_waiting_for_room() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(b"1").queued);
        assert!(outbox.push(b"2").congested);
        let waiting = waiting_for_room(&outbox).await;
        outbox.abandon();
        waiting.await.unwrap();
        assert!(
            !outbox.push(b"3").queued,
            "an abandoned outbox refuses data"
        );
    }

    #[tokio::test]
    async fn an_idle_outbox_gives_back_what_a_burst_grew() {
        let outbox = Outbox::new(1024);
        let writer = tokio::spawn(write_outbox(Sink::default(), outbox.clone()));
        // Let the writer wait first, so the burst wakes it and no stale wake-up is left over.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // 64 KiB: under KEEP_CAPACITY, so without the idle shrink it would stay.
        for _ in 0..64 {
            assert!(outbox.push(&[7u8; 1024]).queued);
        }
        // Wait until the writer has taken everything and gone idle.
        while outbox.queued_frames() > 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let capacity = {
            let state = outbox.lock();
            state.data.capacity() + state.control.capacity()
        };
        assert!(
            capacity <= 2 * IDLE_CAPACITY,
            "{capacity} bytes kept while idle"
        );
        outbox.close();
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_writer_wakes_for_frames_pushed_while_it_waits() {
        let outbox = Outbox::new(1024);
        let sink = Sink::default();
        let written = sink.0.clone();
        let writer = tokio::spawn(write_outbox(sink, outbox.clone()));
        for i in 0..100u8 {
            assert!(outbox.push(&[i]).queued);
            tokio::task::yield_now().await;
        }
        outbox.close();
        writer.await.unwrap().unwrap();
        assert_eq!(*written.lock().unwrap(), (0..100u8).collect::<Vec<_>>());
    }
}
