//! Introspection: what a node is asked about its DHT and its reachability (NAT), and what it
//! answers, on a stream of its own (`/weft/dht/1`), one question and one answer per stream.
//!
//! ```text
//! +---------+----------------------------------------+
//! | version | body: postcard-encoded question/answer |
//! +---------+----------------------------------------+
//! ```
//!
//! The stream's end delimits the message, so there is no length prefix; readers stop at
//! [`MAX_QUESTION`] and [`MAX_ANSWER`] bytes.

use serde::{Deserialize, Serialize};

use crate::WireError;

/// The introspection format's version, the first byte of every message.
pub const INSPECT_VERSION: u8 = 1;
/// The largest question a node reads.
pub const MAX_QUESTION: usize = 256;
/// The largest answer an asker reads.
pub const MAX_ANSWER: usize = 64 * 1024;
/// The most providers an answer names: a lookup finds at most a few hundred, and the answer
/// must stay under [`MAX_ANSWER`] whatever their addresses.
pub const MAX_ANSWERED_PROVIDERS: usize = 64;
/// The longest DHT key asked about (weft's keys are 33 bytes).
pub const MAX_KEY: usize = 64;
/// Addresses named per provider, and the longest, in bytes.
pub const MAX_ADDRESSES: usize = 4;
/// The longest address named, in bytes as encoded (an IPv6 address through a relay takes 106).
pub const MAX_ADDRESS: usize = 128;
/// Addresses (public, relayed) and relays named in a NAT answer, each.
pub const MAX_NAT_ADDRESSES: usize = 8;
/// Peers whose path a NAT answer names.
pub const MAX_NAT_PEERS: usize = 128;

/// What a node is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhtQuestion {
    /// Its routing table, store and query counts.
    Stats,
    /// The providers of a key, found with one Kademlia lookup that dials none of them.
    Providers {
        /// The DHT key, at most [`MAX_KEY`] bytes.
        key: Vec<u8>,
    },
    /// Its reachability, relays, and the path to each peer.
    Nat,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhtAnswer {
    /// Its DHT's figures.
    Stats(DhtFigures),
    /// The providers found, at most [`MAX_ANSWERED_PROVIDERS`].
    Providers(Vec<FoundProvider>),
    /// Its reachability.
    Nat(NatFigures),
    /// It answers no more questions at once; ask again later.
    Busy,
    /// The question could not be answered (malformed, or the lookup failed).
    Failed(String),
}

/// A node's DHT in figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtFigures {
    /// Peers in its routing table.
    pub known_nodes: u64,
    /// Non-empty k-buckets.
    pub buckets: u64,
    /// Peers with an open connection.
    pub connected_peers: u64,
    /// Other nodes' provider records it stores.
    pub records_stored: u64,
    /// Keys it provides.
    pub keys_provided: u64,
    /// Queries started since it started.
    pub queries: u64,
    /// Of those, how many failed or timed out.
    pub failed_queries: u64,
    /// Connections it dialed since it started.
    pub dials: u64,
}

/// Whether peers outside a node's network can dial it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reachability {
    /// No address tested yet (or tests are off: a node listening on loopback only).
    #[default]
    Unknown,
    /// At least one address was dialed back from outside.
    Public,
    /// Addresses were tested and none could be dialed: behind a NAT or a firewall.
    Private,
}

impl Reachability {
    /// `unknown`, `public` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// A node's reachability, as its NAT answer gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatFigures {
    /// What its AutoNAT tests say.
    pub reachability: Reachability,
    /// Its addresses that other nodes dialed back, as encoded multiaddrs (at most
    /// [`MAX_NAT_ADDRESSES`]).
    pub public_addrs: Vec<Vec<u8>>,
    /// Addresses through relays it holds a slot on (at most [`MAX_NAT_ADDRESSES`]).
    pub relayed_addrs: Vec<Vec<u8>>,
    /// The relays it holds a slot on, as peer ids (at most [`MAX_NAT_ADDRESSES`]).
    pub relays: Vec<Vec<u8>>,
    /// Its connected peers (at most [`MAX_NAT_PEERS`]) and how it reaches each: given only to a
    /// client on the node's own host.
    pub peers: Vec<PeerPath>,
    /// Connected peers it reaches directly.
    pub direct_peers: u64,
    /// Connected peers it reaches only through a relay.
    pub relayed_peers: u64,
}

impl NatFigures {
    /// Cut to the bounds an answer keeps (and a node sends): at most [`MAX_NAT_ADDRESSES`]
    /// addresses of at most [`MAX_ADDRESS`] bytes, relays, and [`MAX_NAT_PEERS`] peers.
    pub fn bound(&mut self) {
        for addrs in [&mut self.public_addrs, &mut self.relayed_addrs] {
            addrs.retain(|a| a.len() <= MAX_ADDRESS);
            addrs.truncate(MAX_NAT_ADDRESSES);
        }
        self.relays.retain(|p| p.len() <= MAX_ADDRESS);
        self.relays.truncate(MAX_NAT_ADDRESSES);
        self.peers.retain(|p| p.peer.len() <= MAX_ADDRESS);
        self.peers.truncate(MAX_NAT_PEERS);
    }
}

/// How a node reaches one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPath {
    /// The peer id, as bytes.
    pub peer: Vec<u8>,
    /// Only through a relay (else over a connection of its own).
    pub relayed: bool,
}

/// A provider a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundProvider {
    /// Its peer id, as bytes.
    pub peer: Vec<u8>,
    /// The addresses the answering node knows for it, as encoded multiaddrs.
    pub addresses: Vec<Vec<u8>>,
}

/// `message` as bytes: the version, then the body.
pub fn encode_inspect<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![INSPECT_VERSION];
    let body = postcard::to_allocvec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// A question from `bytes`, refused if it is too long, of another version, or names a key
/// longer than [`MAX_KEY`].
pub fn decode_question(bytes: &[u8]) -> Result<DhtQuestion, WireError> {
    let question: DhtQuestion = decode(bytes, MAX_QUESTION)?;
    if let DhtQuestion::Providers { key } = &question
        && key.len() > MAX_KEY
    {
        return Err(WireError::TooLarge {
            len: key.len(),
            max: MAX_KEY,
        });
    }
    Ok(question)
}

/// An answer from `bytes`, refused if it is too long or of another version; providers and
/// addresses past the bounds are dropped.
pub fn decode_answer(bytes: &[u8]) -> Result<DhtAnswer, WireError> {
    let mut answer: DhtAnswer = decode(bytes, MAX_ANSWER)?;
    match &mut answer {
        DhtAnswer::Providers(found) => {
            found.truncate(MAX_ANSWERED_PROVIDERS);
            for provider in found.iter_mut() {
                provider.addresses.retain(|a| a.len() <= MAX_ADDRESS);
                provider.addresses.truncate(MAX_ADDRESSES);
            }
        }
        DhtAnswer::Nat(nat) => nat.bound(),
        _ => {}
    }
    Ok(answer)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    match bytes.split_first() {
        None => Err(WireError::Malformed("an empty message".into())),
        Some((&INSPECT_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))
        }
        Some((&version, _)) => Err(WireError::UnsupportedVersion {
            theirs: version,
            ours: INSPECT_VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_answers_round_trip() {
        for question in [
            DhtQuestion::Stats,
            DhtQuestion::Providers { key: vec![7; 33] },
        ] {
            let bytes = encode_inspect(&question).unwrap();
            assert_eq!(decode_question(&bytes).unwrap(), question);
        }
        let answer = DhtAnswer::Providers(vec![FoundProvider {
            peer: vec![1, 2, 3],
            addresses: vec![vec![4; 20]],
        }]);
        let bytes = encode_inspect(&answer).unwrap();
        assert_eq!(decode_answer(&bytes).unwrap(), answer);
        let stats = DhtAnswer::Stats(DhtFigures {
            known_nodes: 5,
            dials: 9,
            ..DhtFigures::default()
        });
        assert_eq!(
            decode_answer(&encode_inspect(&stats).unwrap()).unwrap(),
            stats
        );
    }

    #[test]
    fn hostile_questions_are_refused() {
        assert!(decode_question(&[]).is_err());
        assert!(decode_question(&[INSPECT_VERSION]).is_err());
        assert!(decode_question(&[INSPECT_VERSION, 200]).is_err());
        let other = {
            let mut bytes = encode_inspect(&DhtQuestion::Stats).unwrap();
            bytes[0] = 2;
            bytes
        };
        assert!(matches!(
            decode_question(&other),
            Err(WireError::UnsupportedVersion { theirs: 2, .. })
        ));
        let long_key = encode_inspect(&DhtQuestion::Providers { key: vec![0; 65] }).unwrap();
        assert!(matches!(
            decode_question(&long_key),
            Err(WireError::TooLarge { .. })
        ));
        assert!(decode_question(&vec![INSPECT_VERSION; MAX_QUESTION + 1]).is_err());
    }

    #[test]
    fn an_answer_past_the_bounds_is_cut_to_them() {
        let provider = FoundProvider {
            peer: vec![1; 38],
            addresses: vec![
                vec![2; 10],
                vec![3; 100],
                vec![4; 10],
                vec![5; 10],
                vec![6; 10],
                vec![7; 10],
            ],
        };
        let answer = DhtAnswer::Providers(vec![provider; MAX_ANSWERED_PROVIDERS + 5]);
        let bytes = encode_inspect(&answer).unwrap();
        let DhtAnswer::Providers(found) = decode_answer(&bytes).unwrap() else {
            panic!("not providers");
        };
        assert_eq!(found.len(), MAX_ANSWERED_PROVIDERS);
        assert!(found.iter().all(|p| p.addresses.len() == MAX_ADDRESSES));
        assert!(
            found
                .iter()
                .all(|p| p.addresses.iter().all(|a| a.len() <= MAX_ADDRESS))
        );
        assert!(decode_answer(&vec![INSPECT_VERSION; MAX_ANSWER + 1]).is_err());
    }

    #[test]
    fn a_nat_answer_round_trips_and_is_cut_to_its_bounds() {
        let peer = |relayed| PeerPath {
            peer: vec![9; 38],
            relayed,
        };
        let figures = NatFigures {
            reachability: Reachability::Private,
            public_addrs: vec![],
            relayed_addrs: vec![vec![1; 53]],
            relays: vec![vec![2; 38]],
            peers: vec![peer(false), peer(true)],
            direct_peers: 1,
            relayed_peers: 1,
        };
        let bytes = encode_inspect(&DhtAnswer::Nat(figures.clone())).unwrap();
        assert_eq!(decode_answer(&bytes).unwrap(), DhtAnswer::Nat(figures));
        assert_eq!(
            decode_question(&encode_inspect(&DhtQuestion::Nat).unwrap()).unwrap(),
            DhtQuestion::Nat
        );
        let huge = NatFigures {
            reachability: Reachability::Public,
            public_addrs: vec![vec![1; 20]; 50],
            relayed_addrs: vec![vec![1; 200], vec![1; 20]],
            relays: vec![vec![2; 38]; 50],
            peers: vec![peer(false); 300],
            direct_peers: 300,
            relayed_peers: 0,
        };
        let bytes = encode_inspect(&DhtAnswer::Nat(huge)).unwrap();
        let DhtAnswer::Nat(cut) = decode_answer(&bytes).unwrap() else {
            panic!("not a NAT answer");
        };
        assert_eq!(cut.public_addrs.len(), MAX_NAT_ADDRESSES);
        assert_eq!(cut.relayed_addrs, vec![vec![1; 20]]);
        assert_eq!(cut.relays.len(), MAX_NAT_ADDRESSES);
        assert_eq!(cut.peers.len(), MAX_NAT_PEERS);
        assert_eq!(Reachability::Private.as_str(), "private");
    }
}
