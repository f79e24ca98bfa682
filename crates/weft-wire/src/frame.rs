//! The messages weft nodes exchange.
//!
//! A connection carries one stream each way; each side writes only on the stream it opened,
//! except for the single [`Frame::Accepted`] its acceptor sends back.
//!
//! The greeting tells a peer about a realm only once it has shown it is in it. Each way, in order:
//! 1. [`Hello`]: the sender's realms as digests bound to the sender and receiver ([`realm_digest`]),
//!    which reveal nothing to a peer that does not already know a realm's name and owner;
//! 2. [`Join`], once the peer's hello has arrived: name, owner and chains of the realms both sides
//!    host (the digests that matched), and nothing of the others;
//! 3. [`Welcome`], once the sender has admitted the peer to a realm: its agent and tags.
//!
//! After the join come [`Interest`], [`Publish`], [`Call`] and the other frames, in the order
//! they were sent.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use weft_identity::Did;
use weft_names::{Name, Pattern, RealmName};

use crate::WireError;

/// Position of a realm in the sender's [`Hello::realms`] (the same position as in its [`Join`]):
/// frames name realms by index, not by string, because the index costs one or two bytes per
/// publication.
pub type RealmIndex = u16;

/// Most tags in a hello.
pub const MAX_TAGS: usize = 32;
/// Longest tag key, in bytes.
pub const MAX_TAG_KEY: usize = 64;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE: usize = 256;
/// Most realms one hello may join.
pub const MAX_REALMS: usize = 256;
/// Longest agent string, in bytes.
pub const MAX_AGENT: usize = 64;
/// Longest error code in a `Denied` or `Refused`, in bytes.
pub const MAX_CODE: usize = 32;
/// Longest reason in a `Denied` or `Refused`, in bytes: a sender cuts longer ones.
pub const MAX_REASON: usize = 512;
/// Longest error code in a call's outcome, in bytes.
pub const MAX_OUTCOME_CODE: usize = 64;
/// Longest error message in a call's outcome, in bytes: a sender cuts longer ones.
pub const MAX_OUTCOME_MESSAGE: usize = 4096;
/// Most capability chains presented for one realm.
pub const MAX_CHAINS: usize = 16;
/// Most proofs in one presented chain.
pub const MAX_PROOFS: usize = 32;

/// Everything sent on a weft stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Opens a stream: the sender's realms, as digests only.
    Hello(Hello),
    /// The handshake was refused; the sender closes the connection after this frame.
    Refused(Refusal),
    /// The sender's subscriptions changed.
    Interest(Interest),
    /// A publication to a topic.
    Publish(Publish),
    /// The sender refused to admit us to one realm; other realms are unaffected.
    Denied(Denial),
    /// The sender is leaving on purpose: do not try to reconnect to it.
    Bye,
    /// A call to a procedure.
    Call(Call),
    /// The outcome of a call.
    Reply(Reply),
    /// The only frame sent *back* on a stream: its acceptor took it. The opener writes nothing
    /// but its hello until this arrives, and opens the stream again if it does not (streams can be
    /// dropped by a busy acceptor).
    Accepted,
    /// A UCAN revocation record (JSON) the sender applied and passes on to the realm's members.
    Revoke(RevokeRecord),
    /// The realms both sides host, with the sender's credentials in each: the greeting's second
    /// step.
    Join(Join),
    /// The sender admitted us to at least one realm, and now says who it is: the greeting's
    /// last step.
    Welcome(Welcome),
    /// The sender closes this idle session to make room for others, within its connection
    /// budget. Unlike [`Frame::Bye`] it stays up and in its realms: reconnect when there is
    /// something to send it, not at once.
    Release,
    /// Publications signed by their publisher, passed on by members for subscribers the
    /// publisher holds no session with.
    Forward(crate::forward::Forward),
    /// Batches the sender took lately that the receiver may have missed: it asks for those it
    /// lacks with a [`Frame::Want`].
    Have(crate::forward::BatchIds),
    /// Batches of a [`Frame::Have`] the sender lacks: the receiver sends them, once each.
    Want(crate::forward::BatchIds),
    /// The sender ends this session to start a new one on the same connection at once (a
    /// stream of it was lost): the receiver ends its own as well and takes the sender's next
    /// stream as the new session's. Unlike [`Frame::Release`], it says nothing about room.
    Restart,
    /// A client hands its access node what it may do in a realm, delegated to the access node,
    /// which acts for it under these chains.
    Delegate(Delegation),
}

/// What a client (a sender whose hello says `client`) delegates to its access node (the
/// receiver) in one realm: each chain's leaf is issued by the sender to the receiver, for a
/// short while, over the sender's own chain. It replaces the sender's earlier delegation in
/// that realm; the sender sends a new one before the last runs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    /// Realm, as an index into the sender's hello.
    pub realm: RealmIndex,
    /// At most [`MAX_CHAINS`], each of at most [`MAX_PROOFS`] proofs.
    pub chains: Vec<WireChain>,
}

/// Longest revocation record carried, in bytes.
pub const MAX_REVOCATION_LEN: usize = 1024;

/// A revocation record on its way through a realm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeRecord {
    /// Realm, as an index into the sender's hello: the record travels among its members.
    pub realm: RealmIndex,
    /// The record, `{"iss","revoke","challenge"}`: checked by every node that applies it.
    pub record: String,
}

/// Why the sender refused us in one realm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denial {
    /// The realm, as an index into *our* hello (the receiver's).
    pub realm: RealmIndex,
    /// A contract error code (`unauthorized`, `expired`, …).
    pub code: String,
    /// A human-readable explanation.
    pub reason: String,
}

/// The first frame each way on a connection. It names no realm: a peer learns which realms the
/// sender hosts only for the realms it names itself (see [`realm_digest`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's realms, as [`realm_digest`]s from the sender to the receiver; a frame's
    /// [`RealmIndex`] is a position in this list.
    pub realms: Vec<RealmDigest>,
    /// The sender is a client of the receiver (a process attached with `--connect`): it listens
    /// nowhere, provides no DHT records, is never redialed, and relies on the receiver to route
    /// its publications, subscriptions, calls and procedures to the rest of the realm.
    pub client: bool,
    /// This run of the sender (a number that grows from one start to the next): its
    /// publications are numbered anew each run, and receivers keep its numbers per run.
    pub run: u64,
}

/// A realm as it appears in a [`Hello`]: see [`realm_digest`].
pub type RealmDigest = [u8; 16];

/// A realm's digest in a hello from `sender` to `receiver`: SHA-256 over a fixed label, the
/// sender's and the receiver's Ed25519 keys (in that order), the realm's name and its owner's
/// DID (empty for an open realm), truncated to 16 bytes.
///
/// Only a peer that already knows a realm's name and owner can recognise it, a digest seen on
/// one connection says nothing about the same realm on another, and the order of the keys makes
/// a hello useless to send back to its sender (it would name realms *from* the sender, which the
/// sender does not look for).
pub fn realm_digest(
    sender: &Did,
    receiver: &Did,
    realm: &RealmName,
    owner: Option<&Did>,
) -> RealmDigest {
    let mut hash = Sha256::new();
    hash.update(b"weft realm digest v1\0");
    hash.update(sender.public_key());
    hash.update(receiver.public_key());
    hash.update(realm.as_str().as_bytes());
    hash.update([0]);
    if let Some(owner) = owner {
        hash.update(owner.to_string().as_bytes());
    }
    let full = hash.finalize();
    let mut digest = [0; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

/// The greeting's second step: the realms of the peer's hello that the sender hosts too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Each shared realm, with its position in the sender's hello.
    pub realms: Vec<RealmJoin>,
}

/// A realm both sides host, with the sender's credentials in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealmJoin {
    /// Its position in the sender's [`Hello::realms`], whose digest it must match.
    pub index: RealmIndex,
    /// The realm's name.
    pub realm: RealmName,
    /// Its owner; `None` for an open realm. Part of the realm's identity: same name, different
    /// owner, different realm.
    pub owner: Option<Did>,
    /// Capability chains the sender acts under in this realm (`realm/join`, `msg/publish`, …).
    pub chains: Vec<WireChain>,
}

/// The greeting's last step, sent once the sender has admitted the receiver to a realm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The sender's software, e.g. `weft/0.1.0`, for logs and peer info.
    pub agent: String,
    /// Operator-chosen labels (`region=eu`), visible to applications as peer info.
    pub tags: Vec<(String, String)>,
}

/// A UCAN chain as sent: the token acted under, and the proofs it needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WireChain {
    /// The leaf token (JWT).
    pub leaf: String,
    /// Proof tokens (JWTs), in any order.
    pub proofs: Vec<String>,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// A contract error code (`unauthorized`, `incompatibleVersion`, …).
    pub code: String,
    /// A human-readable explanation.
    pub reason: String,
}

/// A change in the sender's subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Interest {
    /// The sender wants publications matching `pattern` in `realm`, under subscription `id`.
    Subscribe {
        /// Realm, as an index into the sender's hello.
        realm: RealmIndex,
        /// The sender's identifier for this subscription, unique within the realm on the sender.
        id: u32,
        /// Which topics.
        pattern: Pattern,
        /// A chain the subscriber acts under for this subscription only (a gateway subscribing
        /// for a client that delegated to it), instead of those of its hello.
        chain: Option<WireChain>,
    },
    /// Subscription `id` in `realm` ended.
    Unsubscribe {
        /// Realm, as an index into the sender's hello.
        realm: RealmIndex,
        /// The subscription that ended.
        id: u32,
    },
    /// The sender provides `procedure` in `realm`.
    Advertise {
        /// Realm, as an index into the sender's hello.
        realm: RealmIndex,
        /// The procedure (an exact name).
        procedure: Name,
    },
    /// The sender no longer provides `procedure` in `realm`.
    Unadvertise {
        /// Realm, as an index into the sender's hello.
        realm: RealmIndex,
        /// The procedure.
        procedure: Name,
    },
}

impl Interest {
    /// The realm the declaration is about.
    pub fn realm(&self) -> RealmIndex {
        match self {
            Interest::Subscribe { realm, .. }
            | Interest::Unsubscribe { realm, .. }
            | Interest::Advertise { realm, .. }
            | Interest::Unadvertise { realm, .. } => *realm,
        }
    }
}

/// A call to a procedure the receiver advertised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Realm, as an index into the sender's hello.
    pub realm: RealmIndex,
    /// The caller's identifier, echoed in the [`Reply`]; unique per caller session.
    pub id: u64,
    /// The procedure.
    pub procedure: Name,
    /// Milliseconds the caller will wait: the provider drops the work once they have passed.
    pub timeout_ms: u32,
    /// The arguments, opaque to weft.
    pub payload: Bytes,
    /// A chain the caller acts under for this call only, in addition to those of its hello.
    pub chain: Option<WireChain>,
}

/// The outcome of a [`Call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The realm of the call, echoed from [`Call::realm`]: an index into the *receiver's* (the
    /// caller's) hello, like [`Denial::realm`].
    pub realm: RealmIndex,
    /// The call's identifier.
    pub id: u64,
    /// What the handler returned, or why there is no result.
    pub outcome: Outcome,
}

/// A call's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler's result.
    Ok(Bytes),
    /// The handler's error (or panic, code `panic`): whatever its code, the caller sees a remote
    /// error, so a handler can never pass itself off as the runtime.
    Err {
        /// The handler's code.
        code: String,
        /// A human-readable explanation.
        message: String,
    },
    /// The provider's runtime did not (or could not) run the handler.
    Fault {
        /// Why.
        code: Fault,
        /// A human-readable explanation.
        message: String,
    },
}

/// Why a provider's runtime did not run a handler, or did not finish it. On the wire it is its
/// contract code, a string, so that a code this version does not know still decodes: as
/// [`Fault::Unavailable`], which is what a caller can do least wrong with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Fault {
    /// The provider does not serve the procedure (any more): the call never ran, and another
    /// provider may take it.
    NotFound,
    /// The caller may not call the procedure there.
    Unauthorized,
    /// The caller's deadline passed first.
    Timeout,
    /// The provider could not run it or finish it.
    Unavailable,
    /// One of the provider's per-caller limits refused it.
    Limit,
}

impl Fault {
    /// The contract code.
    pub fn code(self) -> &'static str {
        match self {
            Fault::NotFound => "notFound",
            Fault::Unauthorized => "unauthorized",
            Fault::Timeout => "timeout",
            Fault::Unavailable => "unavailable",
            Fault::Limit => "limit",
        }
    }

    /// The fault a code names; unknown codes are [`Fault::Unavailable`].
    pub fn from_code(code: &str) -> Self {
        match code {
            "notFound" => Fault::NotFound,
            "unauthorized" => Fault::Unauthorized,
            "timeout" => Fault::Timeout,
            "limit" => Fault::Limit,
            _ => Fault::Unavailable,
        }
    }
}

impl From<String> for Fault {
    fn from(code: String) -> Self {
        Fault::from_code(&code)
    }
}

impl From<Fault> for String {
    fn from(fault: Fault) -> Self {
        fault.code().to_owned()
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A publication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    /// Realm, as an index into the sender's hello.
    pub realm: RealmIndex,
    /// The topic.
    pub topic: Name,
    /// The publisher's sequence number in this realm: receivers drop duplicates and detect gaps.
    pub seq: u64,
    /// The payload, opaque to weft.
    pub payload: Bytes,
    /// A chain the publisher acts under for this publication only (a gateway publishing for a
    /// client that delegated to it), instead of those of its hello.
    pub chain: Option<WireChain>,
}

impl Frame {
    /// Checks the limits the type system cannot express; the decoder applies it to every frame.
    pub fn check_limits(&self) -> Result<(), WireError> {
        match self {
            Frame::Hello(hello) if hello.realms.len() > MAX_REALMS => Err(WireError::Limit(
                format!("{} realms (at most {MAX_REALMS})", hello.realms.len()),
            )),
            Frame::Join(join) => join.check_limits(),
            Frame::Welcome(welcome) => welcome.check_limits(),
            Frame::Interest(Interest::Subscribe { chain, .. })
            | Frame::Publish(Publish { chain, .. })
            | Frame::Call(Call { chain, .. }) => check_chain(chain.as_ref()),
            Frame::Revoke(RevokeRecord { record, .. }) if record.len() > MAX_REVOCATION_LEN => {
                Err(WireError::Limit(format!(
                    "a revocation record of {} bytes (at most {MAX_REVOCATION_LEN})",
                    record.len()
                )))
            }
            Frame::Denied(Denial { code, reason, .. })
            | Frame::Refused(Refusal { code, reason }) => check_explanation(code, reason),
            Frame::Reply(Reply {
                outcome: Outcome::Err { code, message },
                ..
            }) if code.len() > MAX_OUTCOME_CODE || message.len() > MAX_OUTCOME_MESSAGE => {
                Err(WireError::Limit(format!(
                    "an outcome with a code of {} bytes or a message of {} (at most {MAX_OUTCOME_CODE} and {MAX_OUTCOME_MESSAGE})",
                    code.len(),
                    message.len()
                )))
            }
            Frame::Reply(Reply {
                outcome: Outcome::Fault { message, .. },
                ..
            }) if message.len() > MAX_OUTCOME_MESSAGE => Err(WireError::Limit(format!(
                "a fault with a message of {} bytes (at most {MAX_OUTCOME_MESSAGE})",
                message.len()
            ))),
            Frame::Forward(forward) if forward.signature.len() != 64 => Err(WireError::Limit(
                format!("a signature of {} bytes (64)", forward.signature.len()),
            )),
            Frame::Have(batches) | Frame::Want(batches)
                if batches.ids.len() > crate::forward::MAX_BATCH_IDS =>
            {
                Err(WireError::Limit(format!(
                    "{} batch ids (at most {})",
                    batches.ids.len(),
                    crate::forward::MAX_BATCH_IDS
                )))
            }
            Frame::Delegate(delegation) if delegation.chains.len() > MAX_CHAINS => {
                Err(WireError::Limit(format!(
                    "a delegation of {} chains (at most {MAX_CHAINS})",
                    delegation.chains.len()
                )))
            }
            Frame::Delegate(delegation) => delegation
                .chains
                .iter()
                .try_for_each(|chain| check_chain(Some(chain))),
            Frame::Revoke(_)
            | Frame::Forward(_)
            | Frame::Hello(_)
            | Frame::Accepted
            | Frame::Interest(_)
            | Frame::Reply(_)
            | Frame::Bye
            | Frame::Release
            | Frame::Restart
            | Frame::Have(_)
            | Frame::Want(_) => Ok(()),
        }
    }
}

fn check_explanation(code: &str, reason: &str) -> Result<(), WireError> {
    if code.len() > MAX_CODE || reason.len() > MAX_REASON {
        return Err(WireError::Limit(format!(
            "an error code of {} bytes or a reason of {} (at most {MAX_CODE} and {MAX_REASON})",
            code.len(),
            reason.len()
        )));
    }
    Ok(())
}

/// `reason`, cut to at most [`MAX_REASON`] bytes at a character boundary, for sending.
pub fn bounded_reason(reason: String) -> String {
    cut(reason, MAX_REASON)
}

/// `outcome` with its code and message cut to what a receiver accepts, for sending.
pub fn bounded_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Err { code, message } => Outcome::Err {
            code: cut(code, MAX_OUTCOME_CODE),
            message: cut(message, MAX_OUTCOME_MESSAGE),
        },
        Outcome::Fault { code, message } => Outcome::Fault {
            code,
            message: cut(message, MAX_OUTCOME_MESSAGE),
        },
        ok => ok,
    }
}

/// `text`, cut to at most `max` bytes at a character boundary, ending with `…` when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn check_chain(chain: Option<&WireChain>) -> Result<(), WireError> {
    match chain {
        Some(chain) if chain.proofs.len() > MAX_PROOFS => Err(WireError::Limit(format!(
            "a chain with {} proofs (at most {MAX_PROOFS})",
            chain.proofs.len()
        ))),
        _ => Ok(()),
    }
}

impl Welcome {
    fn check_limits(&self) -> Result<(), WireError> {
        let limit = |what: String| Err(WireError::Limit(what));
        if self.agent.len() > MAX_AGENT {
            return limit(format!(
                "an agent of {} bytes (at most {MAX_AGENT})",
                self.agent.len()
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return limit(format!("{} tags (at most {MAX_TAGS})", self.tags.len()));
        }
        if let Some((k, _)) = self
            .tags
            .iter()
            .find(|(k, v)| k.len() > MAX_TAG_KEY || v.len() > MAX_TAG_VALUE)
        {
            return limit(format!(
                "tag {k:.32?} too long (key ≤ {MAX_TAG_KEY}, value ≤ {MAX_TAG_VALUE} bytes)"
            ));
        }
        Ok(())
    }
}

impl Join {
    fn check_limits(&self) -> Result<(), WireError> {
        let limit = |what: String| Err(WireError::Limit(what));
        if self.realms.len() > MAX_REALMS {
            return limit(format!(
                "{} realms (at most {MAX_REALMS})",
                self.realms.len()
            ));
        }
        for join in &self.realms {
            if join.chains.len() > MAX_CHAINS {
                return limit(format!(
                    "{} chains for {} (at most {MAX_CHAINS})",
                    join.chains.len(),
                    join.realm
                ));
            }
            if join.chains.iter().any(|c| c.proofs.len() > MAX_PROOFS) {
                return limit(format!(
                    "a chain for {} has more than {MAX_PROOFS} proofs",
                    join.realm
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did(byte: u8) -> Did {
        Did::from_public_key([byte; 32])
    }

    #[test]
    fn a_fault_travels_as_its_code_and_an_unknown_code_as_unavailable() {
        for fault in [
            Fault::NotFound,
            Fault::Unauthorized,
            Fault::Timeout,
            Fault::Unavailable,
            Fault::Limit,
        ] {
            let as_enum = postcard::to_allocvec(&fault).unwrap();
            let as_string = postcard::to_allocvec(fault.code()).unwrap();
            assert_eq!(as_enum, as_string, "the wire carries the code");
            assert_eq!(postcard::from_bytes::<Fault>(&as_string).unwrap(), fault);
            assert_eq!(Fault::from_code(fault.code()), fault);
        }
        let newer = postcard::to_allocvec("overloaded").unwrap();
        assert_eq!(
            postcard::from_bytes::<Fault>(&newer).unwrap(),
            Fault::Unavailable
        );
    }

    #[test]
    fn a_delegation_is_held_to_the_limits_of_a_join() {
        let chain = |proofs: usize| WireChain {
            leaf: "leaf".into(),
            proofs: vec!["proof".into(); proofs],
        };
        let delegate = |chains: Vec<WireChain>| {
            Frame::Delegate(Delegation { realm: 0, chains }).check_limits()
        };
        assert!(delegate(vec![chain(MAX_PROOFS); MAX_CHAINS]).is_ok());
        assert!(delegate(vec![chain(0); MAX_CHAINS + 1]).is_err());
        assert!(delegate(vec![chain(0), chain(MAX_PROOFS + 1)]).is_err());
        let frame = Frame::Delegate(Delegation {
            realm: 3,
            chains: vec![chain(2)],
        });
        let mut encoded = Vec::new();
        crate::encode(&frame, crate::DEFAULT_MAX_FRAME, &mut encoded).unwrap();
        let mut buf = bytes::BytesMut::from(&encoded[..]);
        let decoded = crate::Decoder::new(crate::DEFAULT_MAX_FRAME).decode(&mut buf);
        assert_eq!(decoded.unwrap(), Some(frame));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary_and_long_ones_refused() {
        let cut = bounded_reason("é".repeat(MAX_REASON));
        assert!(
            cut.len() <= MAX_REASON && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(bounded_reason("short".into()), "short");
        let denied = |reason: String| {
            Frame::Denied(Denial {
                realm: 0,
                code: "limit".into(),
                reason,
            })
            .check_limits()
        };
        assert!(denied(cut).is_ok());
        assert!(denied("x".repeat(MAX_REASON + 1)).is_err());
        let reply = |outcome: Outcome| {
            Frame::Reply(Reply {
                realm: 0,
                id: 1,
                outcome,
            })
            .check_limits()
        };
        let long = Outcome::Err {
            code: "x".repeat(100),
            message: "é".repeat(MAX_OUTCOME_MESSAGE),
        };
        assert!(reply(long.clone()).is_err());
        let Outcome::Err { code, message } = bounded_outcome(long) else {
            unreachable!()
        };
        assert!(code.len() <= MAX_OUTCOME_CODE && message.len() <= MAX_OUTCOME_MESSAGE);
        assert!(reply(Outcome::Err { code, message }).is_ok());
    }

    #[test]
    fn a_realm_digest_differs_per_direction_pair_and_realm() {
        let acme = RealmName::new("io.acme").unwrap();
        let owner = did(9);
        let ab = realm_digest(&did(1), &did(2), &acme, Some(&owner));
        assert_eq!(ab, realm_digest(&did(1), &did(2), &acme, Some(&owner)));
        assert_ne!(ab, realm_digest(&did(2), &did(1), &acme, Some(&owner)));
        assert_ne!(ab, realm_digest(&did(1), &did(3), &acme, Some(&owner)));
        assert_ne!(ab, realm_digest(&did(1), &did(2), &acme, None));
        assert_ne!(ab, realm_digest(&did(1), &did(2), &acme, Some(&did(8))));
        let other = RealmName::new("io.acmf").unwrap();
        assert_ne!(ab, realm_digest(&did(1), &did(2), &other, Some(&owner)));
    }
}
