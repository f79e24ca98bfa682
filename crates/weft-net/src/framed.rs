//! Frames over a libp2p stream: a batching writer and a bounded reader, both run on the network
//! runtime.
//!
//! Opening is acknowledged: libp2p-stream hands inbound streams to the application through a
//! one-slot channel filled from the connections' own tasks, so a stream arriving while another is
//! being handed over is dropped. The opener therefore writes its hello, waits for the acceptor's
//! [`Frame::Accepted`], and opens again if it does not come ([`open_acknowledged`]); queued frames
//! wait until then, so nothing is lost or needs replaying.
//!
//! Frames are encoded once, by whoever sends them (a publication to ten peers is encoded once and
//! its `Bytes` shared), and the writer coalesces whatever is queued into one write: under load,
//! many small publications share a QUIC packet instead of paying one each.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use tokio::sync::mpsc;
use tracing::debug;
use weft_wire::{DEFAULT_MAX_FRAME, Decoder, Frame, WireError};

use crate::{NetError, Network};

/// Attempts at opening an acknowledged stream before giving up on the peer.
const OPEN_ATTEMPTS: u32 = 6;
/// How long one attempt waits for the stream and its acknowledgement.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause between attempts; doubles each time.
const OPEN_BACKOFF: Duration = Duration::from_millis(20);

/// Bytes coalesced into one write at most.
const BATCH_BYTES: usize = 64 * 1024;
/// Bytes read from the stream at a time. Buffers start empty and grow with the traffic: an idle
/// peer costs no buffer memory, a busy one up to a batch.
const READ_CHUNK: usize = 8 * 1024;

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// What a writer is asked to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Write this encoded frame.
    Frame(Bytes),
    /// Flush what came before, close the stream's sending side and stop. Explicit, because
    /// several owners hold the queue's sender and it never closes while one of them lives.
    Close,
}

/// Writes queued, already-encoded frames to `stream` until [`Outbound::Close`] or until every
/// sender is gone, then closes the stream's sending side.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    stream: W,
    queue: mpsc::Receiver<Outbound>,
) -> std::io::Result<()> {
    let (_none, control) = mpsc::unbounded_channel();
    write_session(stream, control, queue).await
}

/// Like [`write_frames`], with a second, priority lane for control frames (subscriptions,
/// refusals, goodbye). Control frames are few and must never be dropped, so their lane is
/// unbounded and always drained first; data frames (publications) stay on the bounded queue,
/// where a full queue means a counted drop. A [`Outbound::Close`] on the data queue flushes what
/// the control lane holds, then closes.
pub async fn write_session<W: AsyncWrite + Unpin>(
    mut stream: W,
    mut control: mpsc::UnboundedReceiver<Bytes>,
    mut data: mpsc::Receiver<Outbound>,
) -> std::io::Result<()> {
    let sent = metrics::counter!("weft_bytes_sent_total");
    let mut batch: Vec<u8> = Vec::new();
    let mut closing = false;
    while !closing {
        batch.clear();
        tokio::select! {
            biased;
            Some(frame) = control.recv() => batch.extend_from_slice(&frame),
            next = data.recv() => match next {
                Some(Outbound::Frame(frame)) => batch.extend_from_slice(&frame),
                Some(Outbound::Close) | None => closing = true,
            },
        }
        while let Ok(frame) = control.try_recv() {
            batch.extend_from_slice(&frame);
        }
        while !closing && batch.len() < BATCH_BYTES {
            match data.try_recv() {
                Ok(Outbound::Frame(next)) => batch.extend_from_slice(&next),
                Ok(Outbound::Close) => closing = true,
                Err(_) => break,
            }
        }
        if closing {
            while let Ok(frame) = control.try_recv() {
                batch.extend_from_slice(&frame);
            }
        }
        if !batch.is_empty() {
            stream.write_all(&batch).await?;
            stream.flush().await?;
            sent.increment(batch.len() as u64);
        }
    }
    stream.close().await
}

/// Reads frames from `stream` into `sink` until the stream ends cleanly, the sink closes, or a
/// frame is bad. Back-pressure: when `sink` is full the reader waits, so QUIC flow control slows
/// the sender instead of memory growing.
pub async fn read_frames<R: AsyncRead + Unpin>(
    mut stream: R,
    sink: mpsc::Sender<Frame>,
    decoder: Decoder,
) -> Result<(), ReadError> {
    let received = metrics::counter!("weft_bytes_received_total");
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            if sink.send(frame).await.is_err() {
                return Ok(());
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(ReadError::Truncated)
            };
        }
        received.increment(n as u64);
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An acknowledged outbound stream: write on `writer`; keep `_reader` alive with it (dropping
/// both halves resets the stream).
#[derive(Debug)]
pub struct Opened {
    /// Where frames go.
    pub writer: WriteHalf<Stream>,
    /// The unused return direction, held so the stream lives.
    pub reader: ReadHalf<Stream>,
}

/// Opens a weft stream to `peer`, writes `hello` (an encoded frame) and waits for the acceptor's
/// [`Frame::Accepted`]; on a failure or timeout, opens a new stream, with growing pauses, a
/// bounded number of times.
pub async fn open_acknowledged(
    network: &Network,
    peer: PeerId,
    hello: &Bytes,
) -> Result<Opened, NetError> {
    let mut pause = OPEN_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=OPEN_ATTEMPTS {
        let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
            let stream = network.open_stream(peer).await?;
            let (mut reader, mut writer) = stream.split();
            let io = |e: std::io::Error| NetError::Stream {
                peer: peer.to_string(),
                reason: e.to_string(),
            };
            writer.write_all(hello).await.map_err(io)?;
            writer.flush().await.map_err(io)?;
            metrics::counter!("weft_bytes_sent_total").increment(hello.len() as u64);
            match read_one(&mut reader).await {
                Ok(Frame::Accepted) => Ok(Opened { writer, reader }),
                Ok(other) => Err(NetError::Stream {
                    peer: peer.to_string(),
                    reason: format!("expected Accepted, got {other:?}"),
                }),
                Err(e) => Err(NetError::Stream {
                    peer: peer.to_string(),
                    reason: e.to_string(),
                }),
            }
        })
        .await;
        match opened {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        debug!(%peer, attempt, reason = %last, "stream not acknowledged; opening again");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    Err(NetError::Stream {
        peer: peer.to_string(),
        reason: format!("not acknowledged after {OPEN_ATTEMPTS} attempts: {last}"),
    })
}

/// Takes an inbound stream: acknowledges it with [`Frame::Accepted`] and returns the half to read.
pub async fn accept(stream: Stream) -> std::io::Result<ReadHalf<Stream>> {
    let (reader, mut writer) = stream.split();
    let accepted = encode(&Frame::Accepted, DEFAULT_MAX_FRAME).map_err(std::io::Error::other)?;
    writer.write_all(&accepted).await?;
    metrics::counter!("weft_bytes_sent_total").increment(accepted.len() as u64);
    // Nothing else is ever written back: finish this direction.
    writer.close().await?;
    Ok(reader)
}

/// Reads exactly one frame.
async fn read_one<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Frame, ReadError> {
    let decoder = Decoder::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 64];
    loop {
        if let Some(frame) = decoder.decode(&mut buf)? {
            return Ok(frame);
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(ReadError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Encodes one frame for [`write_frames`].
pub fn encode(frame: &Frame, max_frame: usize) -> Result<Bytes, WireError> {
    let mut out = Vec::new();
    weft_wire::encode(frame, max_frame, &mut out)?;
    Ok(out.into())
}
