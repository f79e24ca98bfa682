//! Frames over a libp2p stream: opening and accepting a stream, and a bounded, batching reader,
//! run on the network runtime.
//!
//! Opening is acknowledged: libp2p-stream hands inbound streams to the application through a
//! one-slot channel filled from the connections' own tasks, so a stream arriving while another is
//! being handed over is dropped. The opener therefore writes its hello, waits for the acceptor's
//! [`Frame::Accepted`], and opens again if it does not come ([`open_acknowledged`]); queued frames
//! wait until then, so nothing is lost or needs replaying.
//!
//! Writing is the [`Outbox`](crate::outbox::Outbox)'s; reading decodes every whole frame a read
//! completed and hands them on as one batch, so the hops behind the reader cost one message per
//! read rather than one per frame.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use tokio::sync::mpsc;
use tracing::debug;
use weft_wire::{DEFAULT_MAX_FRAME, Decoder, Frame, HEADER_LEN, Refusal, WIRE_VERSION, WireError};

use crate::{NetError, Network};

/// Attempts at opening an acknowledged stream before giving up on the peer.
const OPEN_ATTEMPTS: u32 = 6;
/// How long one attempt waits for the stream and its acknowledgement.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause between attempts; doubles each time.
const OPEN_BACKOFF: Duration = Duration::from_millis(20);

/// Read sizes: a reader starts small and doubles while reads fill its buffer, so an idle peer
/// holds little and a busy one reads up to the maximum at a time.
const READ_MIN: usize = 1024;
const READ_MAX: usize = 64 * 1024;
/// Frames in one batch at most: with the reader's queue bound, what one peer can have decoded
/// and waiting stays small even when it sends nothing but minimal frames.
pub const MAX_BATCH_FRAMES: usize = 1024;

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

/// Reads frames from `stream`, after the bytes `read` from it already, into `sink`, a batch per read (every whole frame the read
/// completed), until the stream ends cleanly, the sink closes, or a frame is bad. Back-pressure:
/// when `sink` is full the reader waits, so QUIC flow control slows the sender instead of memory
/// growing.
pub async fn read_frames<R: AsyncRead + Unpin>(
    mut stream: R,
    read: BytesMut,
    sink: mpsc::Sender<Vec<Frame>>,
    decoder: Decoder,
) -> Result<(), ReadError> {
    let received = metrics::counter!("weft_bytes_received_total");
    let mut buf = read;
    let mut want = READ_MIN;
    loop {
        let mut batch = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf)? {
            batch.push(frame);
            // A read of tiny frames would otherwise make one huge batch: bound what a queued
            // batch can hold, whatever the peer sends.
            if batch.len() == MAX_BATCH_FRAMES
                && sink.send(std::mem::take(&mut batch)).await.is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() && sink.send(batch).await.is_err() {
            return Ok(());
        }
        if buf.is_empty() && buf.capacity() > 2 * want {
            buf = BytesMut::new(); // a burst is over: give its buffer back
        }
        let start = buf.len();
        buf.resize(start + want, 0);
        let n = stream.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
        if n == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(ReadError::Truncated)
            };
        }
        received.increment(n as u64);
        // Grow while reads fill the buffer; after a short one (a burst ended), drop straight to
        // what it needed, so a peer that goes quiet does not keep a burst's buffer.
        want = if n == want {
            (want * 2).min(READ_MAX)
        } else if n < want / 4 {
            (n * 2).next_power_of_two().clamp(READ_MIN, READ_MAX)
        } else {
            want
        };
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
///
/// Once `ended` resolves (the session the stream is for is over), no further attempt is made:
/// it gives up with [`NetError::Abandoned`]. Made later, an attempt would reach the peer as a
/// new session's stream, carrying the old session's frames (its join, a second one to the
/// peer's new session), and one made after the connection closed would dial the peer again.
/// The attempt under way is seen through: the peer may be reading its hello already, and the
/// frames queued behind it (a join that shares no realm, say) end the session there as they
/// should.
pub async fn open_acknowledged(
    network: &Network,
    peer: PeerId,
    hello: &Bytes,
    ended: impl Future<Output = ()>,
) -> Result<Opened, NetError> {
    tokio::pin!(ended);
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
            // A peer without room answers as the stream arrives, without reading the hello,
            // and stops reading: the hello's write can fail after the answer is on its way. The
            // answer decides; a failed write matters only when none comes.
            let written = async {
                writer.write_all(hello).await?;
                writer.flush().await
            }
            .await;
            if written.is_ok() {
                metrics::counter!("weft_bytes_sent_total").increment(hello.len() as u64);
            }
            match read_one(&mut reader).await {
                Ok(Frame::Accepted) => written.map(|()| Opened { writer, reader }).map_err(io),
                Ok(Frame::Release) => Err(NetError::Released),
                Ok(Frame::Refused(refusal)) => Err(NetError::Refused {
                    code: refusal.code,
                    reason: refusal.reason,
                }),
                Ok(other) => Err(NetError::Stream {
                    peer: peer.to_string(),
                    reason: format!("expected Accepted, got {other:?}"),
                }),
                Err(e) => Err(match written {
                    Err(write) => io(write),
                    Ok(()) => NetError::Stream {
                        peer: peer.to_string(),
                        reason: e.to_string(),
                    },
                }),
            }
        })
        .await;
        match opened {
            Ok(Ok(opened)) => return Ok(opened),
            // No room at the peer, or another wire version: opening again would only be
            // refused again.
            Ok(Err(NetError::Released)) => return Err(NetError::Released),
            Ok(Err(refused @ NetError::Refused { .. })) => return Err(refused),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        debug!(%peer, attempt, reason = %last, "stream not acknowledged; opening again");
        tokio::select! {
            biased;
            () = &mut ended => return Err(NetError::Abandoned),
            () = tokio::time::sleep(pause) => {}
        }
        pause *= 2;
    }
    Err(NetError::Stream {
        peer: peer.to_string(),
        reason: format!("not acknowledged after {OPEN_ATTEMPTS} attempts: {last}"),
    })
}

/// Why an inbound stream was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer speaks another wire version: it was told so with a `Refused` it can read.
    #[error("the peer speaks wire version {theirs}, this node {ours}")]
    Version {
        /// The peer's.
        theirs: u8,
        /// This node's.
        ours: u8,
    },
    /// The peer sent no frame header in time.
    #[error("no frame within {0:?}")]
    Silent(Duration),
}

/// An inbound stream taken: the half to read, and what was read from it already.
#[derive(Debug)]
pub struct Inbound {
    /// The stream's reading half.
    pub reader: ReadHalf<Stream>,
    /// The first frame's header, read to learn the peer's version: give it to [`read_frames`].
    pub read: BytesMut,
}

/// Takes an inbound stream once its first frame's header shows the peer speaks this node's
/// wire version: acknowledges it with [`Frame::Accepted`]. A peer of another version gets a
/// `Refused` naming both versions, encoded in its own (`weft_wire::encode_refusal`), instead of
/// an acknowledgement it could not read and would wait for.
pub async fn accept(stream: Stream) -> Result<Inbound, AcceptError> {
    let (mut reader, mut writer) = stream.split();
    let mut header = [0u8; HEADER_LEN];
    tokio::time::timeout(OPEN_TIMEOUT, reader.read_exact(&mut header))
        .await
        .map_err(|_| AcceptError::Silent(OPEN_TIMEOUT))??;
    let version = header[HEADER_LEN - 1];
    if version != WIRE_VERSION {
        let refusal = Refusal {
            code: "incompatibleVersion".into(),
            reason: format!("this node speaks wire version {WIRE_VERSION}, the peer {version}"),
        };
        let refused =
            weft_wire::encode_refusal(&refusal, version).map_err(std::io::Error::other)?;
        writer.write_all(&refused).await?;
        writer.close().await?;
        // Until the peer has read it and let the stream go: the session ends once this
        // returns, and its connection with it, which would cut the refusal off.
        let mut rest = [0u8; 256];
        let _ = tokio::time::timeout(OPEN_TIMEOUT, async {
            while matches!(reader.read(&mut rest).await, Ok(n) if n > 0) {}
        })
        .await;
        return Err(AcceptError::Version {
            theirs: version,
            ours: WIRE_VERSION,
        });
    }
    let accepted = encode(&Frame::Accepted, DEFAULT_MAX_FRAME).map_err(std::io::Error::other)?;
    writer.write_all(&accepted).await?;
    metrics::counter!("weft_bytes_sent_total").increment(accepted.len() as u64);
    // Nothing else is ever written back: finish this direction.
    writer.close().await?;
    Ok(Inbound {
        reader,
        read: BytesMut::from(&header[..]),
    })
}

/// Refuses an inbound stream for want of room: answers [`Frame::Release`] instead of
/// [`Frame::Accepted`], and drops the stream.
pub async fn refuse_released(stream: Stream) -> std::io::Result<()> {
    let (_reader, mut writer) = stream.split();
    let release = encode(&Frame::Release, DEFAULT_MAX_FRAME).map_err(std::io::Error::other)?;
    writer.write_all(&release).await?;
    metrics::counter!("weft_bytes_sent_total").increment(release.len() as u64);
    writer.close().await
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

/// Encodes one frame, for an [`Outbox`](crate::outbox::Outbox) or a raw write.
pub fn encode(frame: &Frame, max_frame: usize) -> Result<Bytes, WireError> {
    let mut out = Vec::new();
    weft_wire::encode(frame, max_frame, &mut out)?;
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_names::Name;
    use weft_wire::Publish;

    fn publish(seq: u64) -> Frame {
        Frame::Publish(Publish {
            realm: 0,
            topic: Name::new("t").unwrap(),
            seq,
            payload: Bytes::new(),
            chain: None,
        })
    }

    #[tokio::test]
    async fn minimal_frames_come_in_bounded_batches_and_in_order() {
        let mut wire = Vec::new();
        for seq in 0..1000 {
            weft_wire::encode(&publish(seq), DEFAULT_MAX_FRAME, &mut wire).unwrap();
        }
        let (sink, mut batches) = mpsc::channel(64);
        let reader = tokio::spawn(read_frames(
            futures::io::Cursor::new(wire),
            BytesMut::new(),
            sink,
            Decoder::default(),
        ));
        let mut frames = Vec::new();
        while let Some(batch) = batches.recv().await {
            assert!(
                !batch.is_empty() && batch.len() <= MAX_BATCH_FRAMES,
                "{}",
                batch.len()
            );
            frames.extend(batch);
        }
        reader.await.unwrap().unwrap();
        assert_eq!(frames, (0..1000).map(publish).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        let mut wire = Vec::new();
        weft_wire::encode(&publish(1), DEFAULT_MAX_FRAME, &mut wire).unwrap();
        wire.pop();
        let (sink, _batches) = mpsc::channel(4);
        let ended = read_frames(
            futures::io::Cursor::new(wire),
            BytesMut::new(),
            sink,
            Decoder::default(),
        )
        .await;
        assert!(matches!(ended, Err(ReadError::Truncated)), "{ended:?}");
    }
}
