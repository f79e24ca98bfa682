//! The realm's decisions, without I/O: no actix, tokio or libp2p here, and no clock (every
//! input that depends on time takes `now`). Each type says in its doc in what order to drive it;
//! the actors around it turn messages into its inputs and its outputs into sends.

pub(crate) mod calls;
#[cfg(test)]
mod sim;
