//! DHT introspection over its own stream protocol: any connected peer may ask a node for its
//! DHT's figures, or to look up a key's providers for it. A question costs the node at most one
//! Kademlia lookup that dials nobody, and only [`MAX_ANSWERING`] are answered at once.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;
pub use weft_wire::inspect::{DhtAnswer, DhtFigures, DhtQuestion, FoundProvider};
use weft_wire::inspect::{
    MAX_ADDRESS, MAX_ADDRESSES, MAX_ANSWER, MAX_ANSWERED_PROVIDERS, MAX_QUESTION, decode_question,
    encode_inspect,
};

use crate::NetError;
use crate::driver::{Command, DhtStats};

/// The introspection protocol.
pub const DHT_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/dht/1");
/// Questions answered at once: each may hold a Kademlia lookup.
pub const MAX_ANSWERING: usize = 4;
/// Questions told [`DhtAnswer::Busy`] at once, past those answered; past both, a question's
/// stream is dropped unread.
const MAX_TURNING_AWAY: usize = 16;
/// How long a question may take to arrive, and an answer to be written.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an asker waits for an answer: a lookup ends within the query timeout.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers the questions arriving on `incoming` until it ends. `commands` is weak: a node
/// that dropped its network stops its driver even while this runs.
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    commands: mpsc::WeakSender<Command>,
) {
    let answering = Arc::new(Semaphore::new(MAX_ANSWERING));
    let turning_away = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
    while let Some((peer, stream)) = incoming.next().await {
        if let Ok(permit) = answering.clone().try_acquire_owned() {
            let commands = commands.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, commands).await {
                    debug!(%peer, error = %e, "DHT question not answered");
                }
                drop(permit);
            });
        } else if let Ok(permit) = turning_away.clone().try_acquire_owned() {
            metrics::counter!("weft_dht_questions_refused_total").increment(1);
            tokio::spawn(async move {
                let _ = write_answer(stream, &DhtAnswer::Busy).await;
                drop(permit);
            });
        } else {
            metrics::counter!("weft_dht_questions_refused_total").increment(1);
        }
    }
}

async fn answer(mut stream: Stream, commands: mpsc::WeakSender<Command>) -> std::io::Result<()> {
    let bytes = tokio::time::timeout(IO_TIMEOUT, read_bounded(&mut stream, MAX_QUESTION))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let answer = match decode_question(&bytes) {
        Err(e) => DhtAnswer::Failed(format!("malformed question: {e}")),
        Ok(question) => {
            let Some(commands) = commands.upgrade() else {
                return Ok(()); // the node is stopping
            };
            respond(question, commands).await
        }
    };
    write_answer(stream, &answer).await
}

async fn respond(question: DhtQuestion, commands: mpsc::Sender<Command>) -> DhtAnswer {
    let asked = |command| async { commands.send(command).await.map_err(|_| NetError::Shutdown) };
    match question {
        DhtQuestion::Stats => {
            let (reply, stats) = oneshot::channel();
            if asked(Command::Stats { reply }).await.is_err() {
                return DhtAnswer::Failed("the node is stopping".into());
            }
            match stats.await {
                Ok(stats) => DhtAnswer::Stats(figures(&stats)),
                Err(_) => DhtAnswer::Failed("the node is stopping".into()),
            }
        }
        DhtQuestion::Providers { key } => {
            let (reply, found) = oneshot::channel();
            let find = Command::FindProviders {
                key: key.clone(),
                dial: 0,
                skip_released: false,
                reply,
            };
            if asked(find).await.is_err() {
                return DhtAnswer::Failed("the node is stopping".into());
            }
            let peers = match found.await {
                Ok(Ok(peers)) => peers,
                Ok(Err(e)) => return DhtAnswer::Failed(e.to_string()),
                Err(_) => return DhtAnswer::Failed("the node is stopping".into()),
            };
            let mut peers: Vec<PeerId> = peers.into_iter().collect();
            peers.sort();
            peers.truncate(MAX_ANSWERED_PROVIDERS);
            let (reply, located) = oneshot::channel();
            if asked(Command::AddressesOf { key, peers, reply })
                .await
                .is_err()
            {
                return DhtAnswer::Failed("the node is stopping".into());
            }
            match located.await {
                Ok(located) => {
                    DhtAnswer::Providers(located.into_iter().map(found_provider).collect())
                }
                Err(_) => DhtAnswer::Failed("the node is stopping".into()),
            }
        }
    }
}

fn found_provider((peer, addresses): (PeerId, Vec<Multiaddr>)) -> FoundProvider {
    FoundProvider {
        peer: peer.to_bytes(),
        addresses: addresses
            .into_iter()
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= MAX_ADDRESS)
            .take(MAX_ADDRESSES)
            .collect(),
    }
}

impl From<&DhtStats> for DhtFigures {
    fn from(stats: &DhtStats) -> Self {
        figures(stats)
    }
}

/// The node's statistics as the protocol carries them.
fn figures(stats: &DhtStats) -> DhtFigures {
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    DhtFigures {
        known_nodes: wide(stats.routing_table),
        buckets: wide(stats.buckets),
        connected_peers: wide(stats.connected_peers),
        records_stored: wide(stats.records_stored),
        keys_provided: wide(stats.provided_keys),
        queries: stats.queries,
        failed_queries: stats.failed_queries,
        dials: stats.dials,
    }
}

async fn write_answer(mut stream: Stream, answer: &DhtAnswer) -> std::io::Result<()> {
    let bytes = encode_inspect(answer).map_err(std::io::Error::other)?;
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.close().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads `stream` to its end, failing past `max` bytes.
async fn read_bounded(stream: &mut Stream, max: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    stream.take(limit).read_to_end(&mut bytes).await?;
    if bytes.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message over {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Asks `question` of `peer` on a stream of its own, waiting at most [`ASK_TIMEOUT`].
pub(crate) async fn ask(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    question: &DhtQuestion,
) -> Result<DhtAnswer, NetError> {
    let failed = |reason: String| NetError::Stream {
        peer: peer.to_string(),
        reason,
    };
    let bytes = encode_inspect(question).map_err(|e| failed(e.to_string()))?;
    let exchange = async {
        let mut stream = control
            .open_stream(peer, DHT_PROTOCOL)
            .await
            .map_err(|e| failed(e.to_string()))?;
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| failed(e.to_string()))?;
        stream.close().await.map_err(|e| failed(e.to_string()))?;
        let answer = read_bounded(&mut stream, MAX_ANSWER)
            .await
            .map_err(|e| failed(format!("no answer: {e}")))?;
        weft_wire::inspect::decode_answer(&answer).map_err(|e| failed(e.to_string()))
    };
    tokio::time::timeout(ASK_TIMEOUT, exchange)
        .await
        .map_err(|_| failed(format!("no answer within {ASK_TIMEOUT:?}")))?
}
