//! Frames over a libp2p stream: a batching writer and a bounded reader, both run on the network
//! runtime.
//!
//! Frames are encoded once, by whoever sends them (a publication to ten peers is encoded once and
//! its `Bytes` shared), and the writer coalesces whatever is queued into one write: under load,
//! many small publications share a QUIC packet instead of paying one each.

use bytes::{Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Stream;
use tokio::sync::mpsc;
use weft_wire::{Decoder, Frame, WireError};

/// Bytes coalesced into one write at most.
const BATCH_BYTES: usize = 64 * 1024;
/// Read buffer size.
const READ_CHUNK: usize = 64 * 1024;

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
pub async fn write_frames(
    mut stream: Stream,
    mut queue: mpsc::Receiver<Outbound>,
) -> std::io::Result<()> {
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut closing = false;
    while !closing {
        let Some(first) = queue.recv().await else {
            break;
        };
        batch.clear();
        match first {
            Outbound::Frame(bytes) => batch.extend_from_slice(&bytes),
            Outbound::Close => closing = true,
        }
        while !closing && batch.len() < BATCH_BYTES {
            match queue.try_recv() {
                Ok(Outbound::Frame(next)) => batch.extend_from_slice(&next),
                Ok(Outbound::Close) => closing = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            stream.write_all(&batch).await?;
            stream.flush().await?;
        }
    }
    stream.close().await
}

/// Reads frames from `stream` into `sink` until the stream ends cleanly, the sink closes, or a
/// frame is bad. Back-pressure: when `sink` is full the reader waits, so QUIC flow control slows
/// the sender instead of memory growing.
pub async fn read_frames(
    mut stream: Stream,
    sink: mpsc::Sender<Frame>,
    decoder: Decoder,
) -> Result<(), ReadError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
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
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Encodes one frame for [`write_frames`].
pub fn encode(frame: &Frame, max_frame: usize) -> Result<Bytes, WireError> {
    let mut out = Vec::new();
    weft_wire::encode(frame, max_frame, &mut out)?;
    Ok(out.into())
}
