//! weft's wire format, with no I/O: frames and the codec that turns them into bytes and back.
//!
//! Every weft stream carries a sequence of frames. Each frame on the wire is
//!
//! ```text
//! +----------------+---------+------------------------------+
//! | length: u32 BE | version | body: postcard-encoded Frame |
//! +----------------+---------+------------------------------+
//!                  |<---------------- length --------------->|
//! ```
//!
//! The version byte sits outside the body so that a peer speaking another version is recognised
//! from its first frame, by either side, without decoding anything. Frames are bounded
//! ([`DEFAULT_MAX_FRAME`]) and the bound is checked from the length prefix, before any body is
//! buffered. Names inside frames are validated as they are decoded, so a decoded frame is a valid
//! one.
//!
//! # Layout
//! - [`frame`]: [`Frame`] and the messages it carries ([`Hello`], [`Interest`], [`Publish`], …).
//! - [`codec`]: [`encode`] and [`Decoder`].
//! - [`inspect`]: DHT introspection's questions and answers, on a stream of their own.
//! - [`error`]: why bytes are not a frame, [`WireError`].
#![warn(missing_docs)]

pub mod codec;
pub mod error;
pub mod forward;
pub mod frame;
pub mod inspect;

pub use codec::{
    DEFAULT_MAX_FRAME, Decoder, HEADER_LEN, REFUSED_INDEX, WIRE_VERSION, encode, encode_refusal,
};
pub use error::WireError;
pub use forward::{
    BatchIds, Forward, ForwardBatch, ForwardError, ForwardId, ForwardItem, MAX_BATCH_IDS,
    MAX_FORWARD_ITEMS, forward_id, forward_realm_id, open, seal,
};
pub use frame::{
    Call, Delegation, Denial, Fault, Frame, Hello, Interest, Join, MAX_REVOCATION_LEN, Outcome,
    Publish, RealmDigest, RealmIndex, RealmJoin, Refusal, Reply, RevokeRecord, Welcome, WireChain,
    bounded_outcome, bounded_reason, realm_digest,
};
