//! Who is who in weft: Ed25519 keys and their `did:key` names.
//!
//! A principal is an Ed25519 key. Its public name is a [`Did`] (`did:key:z6Mk…`), which UCAN tokens
//! use for issuers and audiences; the same key is the node's transport identity. This crate does
//! no network I/O; the only I/O is reading and writing key files, kept in [`keyfile`].
//!
//! # Layout
//! - [`did`]: [`Did`], a did:key public identity, decoded with bounded input.
//! - [`keypair`]: [`Keypair`], a secret key that signs, generated or loaded from PKCS#8.
//! - [`keyfile`]: PKCS#8 PEM files as `openssl genpkey -algorithm ed25519` writes them, created 0600.
//! - [`error`]: [`DidError`], [`KeyError`], [`SignatureError`].
#![warn(missing_docs)]

pub mod did;
pub mod error;
pub mod keyfile;
pub mod keypair;

pub use did::{Did, MAX_DID_LEN};
pub use error::{DidError, KeyError, SignatureError};
pub use keypair::{Keypair, SIGNATURE_LEN};
