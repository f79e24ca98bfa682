//! What the network tests share: a bound on every wait, and a network started on loopback.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;
use weft_identity::Keypair;
use weft_net::{Multiaddr, NetConfig, NetEvent, Network};

/// The longest any single wait may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A loopback configuration with a fresh key.
pub(crate) fn loopback() -> NetConfig {
    NetConfig::loopback(Keypair::generate().expect("a key"))
}

/// Starts a network on `config` and waits for its listening address.
pub(crate) async fn start(config: NetConfig) -> (Network, mpsc::Receiver<NetEvent>, Multiaddr) {
    let (net, mut events, _thread) = Network::start(config).expect("the network starts");
    let addr = loop {
        match timeout(LIMIT, events.recv())
            .await
            .expect("listening within the limit")
            .expect("events")
        {
            NetEvent::Listening { addr } => break addr,
            _ => continue,
        }
    };
    (net, events, addr)
}
