//! The greeting with one peer, as plain decisions: what to send at each step, and which realms
//! the peer's steps let it be considered for. No I/O; `PeerConnection` feeds it the peer's frames
//! and sends what it returns.
//!
//! Order (each side, independently): send [`Handshake::hello`] first; on the peer's hello,
//! [`Handshake::on_hello`] gives the [`Join`] to send; on the peer's join,
//! [`Handshake::on_join`] gives the realms to offer for admission; once one of them admitted the
//! peer, [`Handshake::on_admitted`] gives the [`Welcome`] to send (once); the peer's welcome goes
//! through [`Handshake::on_welcome`].
//!
//! What a peer learns: from the hello, how many realms this node hosts; from the join, the name,
//! owner and chains of the realms it named itself in its own hello; from the welcome (only once
//! admitted), the agent and tags.

use std::sync::{Arc, OnceLock};

use weft_identity::Did;
use weft_wire::{
    Hello, Join, RealmDigest, RealmIndex, RealmJoin, Welcome, WireChain, realm_digest,
};

/// What this node tells its peers about itself, the same for every peer.
#[derive(Debug)]
pub struct Greeting {
    /// This node's identity (the digests are bound to it).
    pub own: Did,
    /// `weft/VERSION`.
    pub agent: String,
    /// The operator's labels.
    pub tags: Vec<(String, String)>,
    /// This node is a client of the peers it connects to.
    pub client: bool,
    /// This run of the node: grows from one start to the next (see `core::sequence`).
    pub run: u64,
    /// This node's realms with its chains in each, in the order of its realm links: a realm's
    /// position here is its [`RealmIndex`] in this node's frames.
    pub realms: Vec<RealmJoin>,
}

/// The peer broke the greeting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// A second hello that differs from the first.
    #[error("a second, different hello")]
    SecondHello,
    /// A hello carrying this node's own digests: ours, sent back to learn what they name.
    #[error("our own hello sent back")]
    Reflected,
    /// A join before the hello it refers to.
    #[error("a join before the hello")]
    JoinBeforeHello,
    /// A second join.
    #[error("a second join")]
    SecondJoin,
    /// A welcome before the peer could have admitted us (before its join, or when we named no
    /// realm to it), or a second one.
    #[error("a welcome out of turn")]
    UnexpectedWelcome,
}

/// A realm the peer's join names and this node hosts, to be offered to it for admission.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    /// The realm's index in the peer's hello (how the peer's frames name it).
    pub index: RealmIndex,
    /// The realm's position in this node's [`Greeting::realms`].
    pub link: usize,
    /// The chains the peer acts under there.
    pub chains: Vec<WireChain>,
}

/// The greeting with one peer.
#[derive(Debug)]
pub(crate) struct Handshake {
    greeting: Arc<Greeting>,
    peer: Did,
    /// The peer's hello, once it arrived.
    theirs: Option<Hello>,
    /// Our realms named in the join we sent, by our index.
    named: Vec<RealmIndex>,
    joined: bool,
    welcome_sent: bool,
    welcome_received: bool,
}

impl Handshake {
    /// The greeting of this node with `peer`.
    pub(crate) fn new(greeting: Arc<Greeting>, peer: Did) -> Self {
        Self {
            greeting,
            peer,
            theirs: None,
            named: Vec::new(),
            joined: false,
            welcome_sent: false,
            welcome_received: false,
        }
    }

    /// The peer's hello has arrived.
    pub(crate) fn heard(&self) -> bool {
        self.theirs.is_some()
    }

    /// The peer's join has arrived. A stream the peer opens after it belongs to a new session:
    /// a stream opened again because the first was not acknowledged in time comes before the
    /// join, which the peer writes only on a stream that was.
    pub(crate) fn joined(&self) -> bool {
        self.joined
    }

    /// We named our realm `index` to the peer: it may refuse us there.
    pub(crate) fn named(&self, index: RealmIndex) -> bool {
        self.named.contains(&index)
    }

    /// The first frame to send: this node's realms, as digests from us to the peer.
    pub(crate) fn hello(&self) -> Hello {
        Hello {
            realms: self
                .greeting
                .realms
                .iter()
                .map(|join| self.ours(join))
                .collect(),
            client: self.greeting.client,
            run: self.greeting.run,
        }
    }

    /// The peer's hello arrived: the join to send, naming the realms both host. The same hello
    /// again (the peer reopened its stream, not knowing the first one was accepted) needs no
    /// answer.
    pub(crate) fn on_hello(&mut self, hello: Hello) -> Result<Option<Join>, HandshakeError> {
        if let Some(theirs) = &self.theirs {
            return if *theirs == hello {
                Ok(None)
            } else {
                Err(HandshakeError::SecondHello)
            };
        }
        if self
            .greeting
            .realms
            .iter()
            .any(|join| hello.realms.contains(&self.ours(join)))
        {
            return Err(HandshakeError::Reflected);
        }
        let realms: Vec<RealmJoin> = self
            .greeting
            .realms
            .iter()
            .filter(|join| hello.realms.contains(&self.theirs_for(join)))
            .cloned()
            .collect();
        self.named = realms.iter().map(|join| join.index).collect();
        self.theirs = Some(hello);
        Ok(Some(Join { realms }))
    }

    /// The peer's join arrived: the realms it names that this node hosts, each once, and only
    /// where the realm matches the digest at its index in the peer's hello (a peer cannot make
    /// its frames name one realm here and another in its hello). Other entries are dropped.
    pub(crate) fn on_join(&mut self, join: Join) -> Result<Vec<Claim>, HandshakeError> {
        let Some(theirs) = &self.theirs else {
            return Err(HandshakeError::JoinBeforeHello);
        };
        if std::mem::replace(&mut self.joined, true) {
            return Err(HandshakeError::SecondJoin);
        }
        let mut claims: Vec<Claim> = Vec::new();
        for entry in join.realms {
            let Some(link) = self
                .greeting
                .realms
                .iter()
                .position(|own| own.realm == entry.realm && own.owner == entry.owner)
            else {
                continue;
            };
            let matches =
                theirs.realms.get(usize::from(entry.index)) == Some(&self.theirs_for(&entry));
            let seen = claims
                .iter()
                .any(|c| c.index == entry.index || c.link == link);
            if matches && !seen {
                claims.push(Claim {
                    index: entry.index,
                    link,
                    chains: entry.chains,
                });
            }
        }
        Ok(claims)
    }

    /// The peer's join arrived with `claims`, and neither side named a realm the other hosts:
    /// the session has nothing to carry. The connection may still serve Kademlia, the DHT being
    /// shared by every realm.
    pub(crate) fn shares_nothing(&self, claims: &[Claim]) -> bool {
        self.joined && self.named.is_empty() && claims.is_empty()
    }

    /// A realm admitted the peer: the welcome to send, the first time only.
    pub(crate) fn on_admitted(&mut self) -> Option<Welcome> {
        if std::mem::replace(&mut self.welcome_sent, true) {
            return None;
        }
        Some(Welcome {
            agent: self.greeting.agent.clone(),
            tags: self.greeting.tags.clone(),
        })
    }

    /// The peer's welcome arrived: it admitted this node somewhere, so it must have had our join
    /// with a realm in it, and sent its own join before. What it says about itself.
    pub(crate) fn on_welcome(&mut self, welcome: Welcome) -> Result<Welcome, HandshakeError> {
        if !self.joined || self.named.is_empty() || self.welcome_received {
            return Err(HandshakeError::UnexpectedWelcome);
        }
        self.welcome_received = true;
        Ok(welcome)
    }

    /// Our realm's digest in our hello to the peer.
    fn ours(&self, join: &RealmJoin) -> RealmDigest {
        realm_digest(
            &self.greeting.own,
            &self.peer,
            &join.realm,
            join.owner.as_ref(),
        )
    }

    /// The digest of a realm in the peer's hello to us.
    fn theirs_for(&self, join: &RealmJoin) -> RealmDigest {
        realm_digest(
            &self.peer,
            &self.greeting.own,
            &join.realm,
            join.owner.as_ref(),
        )
    }
}

/// A peer's tags. They arrive in its welcome, after it was admitted, so the tables that hold the
/// peer share this cell and see them once they are known.
#[derive(Debug, Clone, Default)]
pub struct PeerTags(Arc<OnceLock<Arc<Tags>>>);

/// Labels, as `key=value` pairs.
pub(crate) type Tags = Vec<(String, String)>;

impl PeerTags {
    /// The tags; none until the peer's welcome has arrived.
    pub fn get(&self) -> Arc<Tags> {
        self.0.get().cloned().unwrap_or_default()
    }

    /// Records the peer's tags; later calls change nothing (a peer welcomes once).
    pub fn set(&self, tags: Tags) {
        let _ = self.0.set(Arc::new(tags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_names::RealmName;
    use weft_wire::WireChain;

    fn did(byte: u8) -> Did {
        Did::from_public_key([byte; 32])
    }

    fn realm(name: &str, owner: Option<Did>, chain: &str) -> RealmJoin {
        RealmJoin {
            index: 0,
            realm: RealmName::new(name).unwrap(),
            owner,
            chains: vec![WireChain {
                leaf: chain.into(),
                proofs: Vec::new(),
            }],
        }
    }

    fn node(own: Did, realms: Vec<RealmJoin>) -> Arc<Greeting> {
        let realms = realms
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.index = RealmIndex::try_from(i).unwrap();
                r
            })
            .collect();
        Arc::new(Greeting {
            own,
            agent: "weft/test".into(),
            tags: vec![("role".into(), "payments".into())],
            client: false,
            run: 1,
            realms,
        })
    }

    /// Runs both sides' greetings to the end, as two connected peers would.
    fn greet(a: &mut Handshake, b: &mut Handshake) -> (Join, Join, Vec<Claim>, Vec<Claim>) {
        let (hello_a, hello_b) = (a.hello(), b.hello());
        let join_a = a.on_hello(hello_b).unwrap().unwrap();
        let join_b = b.on_hello(hello_a).unwrap().unwrap();
        let claims_at_a = a.on_join(join_b.clone()).unwrap();
        let claims_at_b = b.on_join(join_a.clone()).unwrap();
        (join_a, join_b, claims_at_a, claims_at_b)
    }

    #[test]
    fn only_shared_realms_are_named_and_claimed() {
        let owner = did(9);
        let a = node(
            did(1),
            vec![
                realm("dev", None, "a-dev"),
                realm("io.secret", Some(owner), "a-secret"),
                realm("io.acme", Some(owner), "a-acme"),
            ],
        );
        let b = node(
            did(2),
            vec![
                realm("io.acme", Some(owner), "b-acme"),
                realm("io.secret", Some(did(8)), "b-other-owner"),
            ],
        );
        let (mut at_a, mut at_b) = (Handshake::new(a, did(2)), Handshake::new(b, did(1)));
        let hello = format!("{:?}", at_a.hello());
        assert!(!hello.contains("dev") && !hello.contains("secret"));
        let (join_a, join_b, claims_at_a, claims_at_b) = greet(&mut at_a, &mut at_b);
        // A tells B only of io.acme: not dev, and not its io.secret, whose owner differs.
        assert_eq!(join_a.realms.len(), 1);
        assert_eq!(join_a.realms[0].realm.as_str(), "io.acme");
        assert_eq!(join_a.realms[0].index, 2);
        assert_eq!(join_b.realms.len(), 1);
        assert_eq!(join_b.realms[0].index, 0);
        assert_eq!(
            claims_at_a,
            vec![Claim {
                index: 0,
                link: 2,
                chains: join_b.realms[0].chains.clone()
            }]
        );
        assert_eq!(claims_at_b.len(), 1);
        assert_eq!((claims_at_b[0].index, claims_at_b[0].link), (2, 0));
        assert!(!at_a.shares_nothing(&claims_at_a) && !at_b.shares_nothing(&claims_at_b));
    }

    #[test]
    fn peers_of_different_realms_share_nothing_once_both_joins_are_in() {
        let a = node(did(1), vec![realm("dev", None, "a")]);
        let b = node(did(2), vec![realm("prod", None, "b")]);
        let (mut at_a, mut at_b) = (Handshake::new(a, did(2)), Handshake::new(b, did(1)));
        assert!(!at_a.shares_nothing(&[]), "not before the peer's join");
        let (join_a, join_b, claims_at_a, claims_at_b) = greet(&mut at_a, &mut at_b);
        assert!(join_a.realms.is_empty() && join_b.realms.is_empty());
        assert!(at_a.shares_nothing(&claims_at_a) && at_b.shares_nothing(&claims_at_b));
    }

    #[test]
    fn a_join_entry_must_match_its_digest_and_count_once() {
        let a = node(
            did(1),
            vec![realm("dev", None, "a"), realm("ops", None, "a")],
        );
        let mut at_a = Handshake::new(a, did(2));
        // The peer's hello names dev (at 0) and ops (at 1).
        let b = node(
            did(2),
            vec![realm("dev", None, "b"), realm("ops", None, "b")],
        );
        let at_b = Handshake::new(b, did(1));
        at_a.on_hello(at_b.hello()).unwrap();
        let mut swapped = realm("ops", None, "b");
        swapped.index = 0; // index 0 is dev's digest
        let mut dev = realm("dev", None, "b");
        dev.index = 0;
        let mut dev_again = realm("dev", None, "b");
        dev_again.index = 0;
        let mut unknown = realm("elsewhere", None, "b");
        unknown.index = 1;
        let mut out_of_range = realm("ops", None, "b");
        out_of_range.index = 7;
        let claims = at_a
            .on_join(Join {
                realms: vec![swapped, dev, dev_again, unknown, out_of_range],
            })
            .unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!((claims[0].index, claims[0].link), (0, 0));
    }

    #[test]
    fn the_order_is_enforced_and_the_welcome_comes_once() {
        let a = node(did(1), vec![realm("dev", None, "a")]);
        let b = node(did(2), vec![realm("dev", None, "b")]);
        let (mut at_a, mut at_b) = (Handshake::new(a, did(2)), Handshake::new(b, did(1)));
        assert_eq!(
            at_a.on_join(Join { realms: vec![] }),
            Err(HandshakeError::JoinBeforeHello)
        );
        let (_, join_b, _, _) = greet(&mut at_a, &mut at_b);
        assert_eq!(at_a.on_hello(at_b.hello()), Ok(None), "a reopened stream");
        let mut as_client = at_b.hello();
        as_client.client = true;
        assert_eq!(at_a.on_hello(as_client), Err(HandshakeError::SecondHello));
        assert_eq!(at_a.on_join(join_b), Err(HandshakeError::SecondJoin));
        let welcome = at_a.on_admitted().unwrap();
        assert_eq!(welcome.tags, vec![("role".into(), "payments".into())]);
        assert_eq!(at_a.on_admitted(), None);
        assert!(at_b.on_welcome(welcome.clone()).is_ok());
        assert_eq!(
            at_b.on_welcome(welcome),
            Err(HandshakeError::UnexpectedWelcome)
        );
        assert!(at_a.named(0) && !at_a.named(1));
    }

    #[test]
    fn a_welcome_needs_a_join_that_named_a_realm() {
        let welcome = Welcome {
            agent: "x".into(),
            tags: Vec::new(),
        };
        let a = node(did(1), vec![realm("dev", None, "a")]);
        let stranger = node(did(2), vec![realm("elsewhere", None, "b")]);
        let mut at_a = Handshake::new(a.clone(), did(2));
        assert_eq!(
            at_a.on_welcome(welcome.clone()),
            Err(HandshakeError::UnexpectedWelcome),
            "before anything"
        );
        let mut at_stranger = Handshake::new(stranger, did(1));
        greet(&mut at_a, &mut at_stranger);
        assert_eq!(
            at_a.on_welcome(welcome),
            Err(HandshakeError::UnexpectedWelcome),
            "we named no realm to it, so it cannot have admitted us"
        );
    }

    #[test]
    fn our_own_hello_sent_back_is_refused_and_names_nothing() {
        let a = node(
            did(1),
            vec![
                realm("dev", None, "a"),
                realm("io.secret", Some(did(9)), "a"),
            ],
        );
        let mut at_a = Handshake::new(a.clone(), did(2));
        let reflected = at_a.hello();
        assert_eq!(at_a.on_hello(reflected), Err(HandshakeError::Reflected));
        // The same digests computed by a peer that knows nothing match nothing either way.
        let mut fresh = Handshake::new(a, did(2));
        let none = Hello {
            realms: vec![[0; 16]],
            client: false,
            run: 1,
        };
        assert_eq!(fresh.on_hello(none).unwrap().unwrap().realms, Vec::new());
    }

    #[test]
    fn peer_tags_are_empty_until_set_and_set_once() {
        let tags = PeerTags::default();
        let shared = tags.clone();
        assert!(shared.get().is_empty());
        tags.set(vec![("a".into(), "1".into())]);
        tags.set(vec![("b".into(), "2".into())]);
        assert_eq!(*shared.get(), vec![("a".to_owned(), "1".to_owned())]);
    }
}
