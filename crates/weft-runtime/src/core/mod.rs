//! The realm's decisions, without I/O: no actix, tokio or libp2p here, and no clock (every
//! input that depends on time takes `now`). Each type says in its doc in what order to drive it;
//! the actors around it turn messages into its inputs and its outputs into sends.

pub(crate) mod absent;
pub(crate) mod authority;
pub(crate) mod backoff;
pub(crate) mod calls;
pub(crate) mod caps;
pub(crate) mod chains;
pub(crate) mod handshake;
pub(crate) mod interest;
pub(crate) mod keys;
pub(crate) mod providers;
pub(crate) mod relay;
pub(crate) mod sequence;
pub(crate) mod silent;
#[cfg(test)]
mod sim;
pub(crate) mod standing;
pub(crate) mod wildcards;
