//! DHT introspection over its own stream protocol: any connected peer may ask a node for its
//! DHT's figures, or to look up a key's providers for it. A lookup is a Kademlia walk, which
//! connects to the peers it asks (as any lookup does) but dials none of the providers it finds;
//! the connections it opens can push out other peers' connections without a session. So a peer
//! has one question answered at a time, [`MAX_ANSWERING`] are answered at once, and lookups are
//! paced: [`LOOKUPS_PER_SECOND`] after a burst of [`LOOKUP_BURST`], the rest told to come back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::debug;
pub use weft_wire::inspect::{
    DhtAnswer, DhtFigures, DhtQuestion, FoundProvider, NatFigures, PeerPath,
};
use weft_wire::inspect::{
    MAX_ADDRESS, MAX_ADDRESSES, MAX_ANSWER, MAX_ANSWERED_PROVIDERS, MAX_QUESTION, decode_question,
    encode_inspect,
};

use crate::NetError;
use crate::driver::{Command, DhtStats, NatStatus};

/// The introspection protocol.
pub const DHT_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/dht/1");
/// Questions answered at once: each may hold a Kademlia lookup.
pub const MAX_ANSWERING: usize = 4;
/// Questions told [`DhtAnswer::Busy`] at once, past those answered; past both, a question's
/// stream is dropped unread.
const MAX_TURNING_AWAY: usize = 16;
/// Lookups run for askers per second, after a burst of [`LOOKUP_BURST`].
pub const LOOKUPS_PER_SECOND: f64 = 2.0;
/// Lookups run for askers at once before the pace applies.
pub const LOOKUP_BURST: f64 = 4.0;

/// The pace of lookups run for askers: a token bucket, time passed in.
#[derive(Debug)]
pub(crate) struct Pace {
    tokens: f64,
    last: Instant,
}

impl Pace {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            tokens: LOOKUP_BURST,
            last: now,
        }
    }

    /// Whether a lookup may run at `now` (taking its token if so).
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * LOOKUPS_PER_SECOND;
        self.tokens = (self.tokens + earned).min(LOOKUP_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What every question's task shares: the lookup pace and who is being answered.
#[derive(Debug)]
struct Shared {
    pace: Mutex<Pace>,
    asking: Mutex<HashSet<PeerId>>,
}

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
    let shared = Arc::new(Shared {
        pace: Mutex::new(Pace::new(Instant::now())),
        asking: Mutex::new(HashSet::new()),
    });
    while let Some((peer, stream)) = incoming.next().await {
        // One question at a time per peer.
        let first = shared
            .asking
            .lock()
            .map(|mut asking| asking.insert(peer))
            .unwrap_or(false);
        let permit = match first {
            true => answering.clone().try_acquire_owned().ok(),
            false => None,
        };
        if let Some(permit) = permit {
            let (commands, shared) = (commands.clone(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(peer, stream, commands, &shared).await {
                    debug!(%peer, error = %e, "DHT question not answered");
                }
                if let Ok(mut asking) = shared.asking.lock() {
                    asking.remove(&peer);
                }
                drop(permit);
            });
            continue;
        }
        if first && let Ok(mut asking) = shared.asking.lock() {
            asking.remove(&peer);
        }
        if let Ok(permit) = turning_away.clone().try_acquire_owned() {
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

async fn answer(
    peer: PeerId,
    mut stream: Stream,
    commands: mpsc::WeakSender<Command>,
    shared: &Shared,
) -> std::io::Result<()> {
    let bytes = tokio::time::timeout(IO_TIMEOUT, read_bounded(&mut stream, MAX_QUESTION))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let answer = match decode_question(&bytes) {
        Err(e) => DhtAnswer::Failed(format!("malformed question: {e}")),
        Ok(DhtQuestion::Providers { .. })
            if !shared
                .pace
                .lock()
                .is_ok_and(|mut pace| pace.take(Instant::now())) =>
        {
            DhtAnswer::Busy
        }
        Ok(question) => {
            let Some(commands) = commands.upgrade() else {
                return Ok(()); // the node is stopping
            };
            respond(peer, question, commands).await
        }
    };
    // Answered: its next question, sent as soon as this arrives, is not a second at once.
    if let Ok(mut asking) = shared.asking.lock() {
        asking.remove(&peer);
    }
    write_answer(stream, &answer).await
}

/// `asker`'s answer: a NAT answer names the node's peers only to a client on its own host.
async fn respond(
    asker: PeerId,
    question: DhtQuestion,
    commands: mpsc::Sender<Command>,
) -> DhtAnswer {
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
        DhtQuestion::Nat => {
            let (reply, status) = oneshot::channel();
            let command = Command::Nat {
                asker: Some(asker),
                reply,
            };
            if asked(command).await.is_err() {
                return DhtAnswer::Failed("the node is stopping".into());
            }
            match status.await {
                Ok(status) => DhtAnswer::Nat(NatFigures::from(&status)),
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
            // In the set's own order, which differs from node to node: sorted, identities
            // made to sort first would take every place.
            let peers: Vec<PeerId> = peers.into_iter().take(MAX_ANSWERED_PROVIDERS).collect();
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

impl From<&NatStatus> for NatFigures {
    fn from(status: &NatStatus) -> Self {
        let addrs = |list: &[Multiaddr]| list.iter().map(|a| a.to_vec()).collect();
        let mut figures = NatFigures {
            reachability: status.reachability,
            public_addrs: addrs(&status.public_addrs),
            relayed_addrs: addrs(&status.relayed_addrs),
            relays: status.relays.iter().map(|p| p.to_bytes()).collect(),
            peers: status
                .peers
                .iter()
                .map(|(peer, path)| PeerPath {
                    peer: peer.to_bytes(),
                    relayed: *path == crate::Path::Relayed,
                })
                .collect(),
            direct_peers: u64::try_from(status.direct_peers).unwrap_or(u64::MAX),
            relayed_peers: u64::try_from(status.relayed_peers).unwrap_or(u64::MAX),
        };
        figures.bound();
        figures
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_run_in_a_burst_then_at_the_pace() {
        let t = Instant::now();
        let mut pace = Pace::new(t);
        let burst = (0..10).filter(|_| pace.take(t)).count();
        assert_eq!(burst, LOOKUP_BURST as usize);
        assert!(!pace.take(t + Duration::from_millis(100)));
        assert!(
            pace.take(t + Duration::from_millis(600)),
            "one earned in half a second"
        );
        assert!(!pace.take(t + Duration::from_millis(600)));
        let later = t + Duration::from_secs(3600);
        assert_eq!(
            (0..10).filter(|_| pace.take(later)).count(),
            LOOKUP_BURST as usize
        );
    }
}
