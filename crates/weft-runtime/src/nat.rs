//! A node's reachability as applications see it: named by identities rather than peer ids,
//! whether it was read locally or asked of another node.

use weft_identity::Did;
use weft_net::{Multiaddr, NatStatus, Path, PeerId, Reachability};
use weft_wire::inspect::NatFigures;

/// Whether a node can be reached from outside its network, how, and how it reaches its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatReport {
    /// What its AutoNAT tests say.
    pub reachability: Reachability,
    /// Addresses other nodes dialed it back at.
    pub public_addrs: Vec<Multiaddr>,
    /// Its addresses through the relays it holds a slot on.
    pub relayed_addrs: Vec<Multiaddr>,
    /// Those relays.
    pub relays: Vec<Did>,
    /// Its connected peers (those with an Ed25519 identity) and the path to each: only from
    /// the node itself or a client on its own host; empty for other askers.
    pub peers: Vec<(Did, Path)>,
    /// Connected peers reached directly.
    pub direct_peers: u64,
    /// Connected peers reached only through a relay.
    pub relayed_peers: u64,
}

/// As JSON (`weft nat`, `/v1/status`): `{"reachability":"private","public_addrs":[…],
/// "relayed_addrs":[…],"relays":[DID…],"peers":[{"did":…,"path":"direct"|"relayed"}…]}`.
impl serde::Serialize for NatReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct PeerJson {
            did: String,
            path: &'static str,
        }
        #[derive(serde::Serialize)]
        struct ReportJson {
            reachability: &'static str,
            public_addrs: Vec<String>,
            relayed_addrs: Vec<String>,
            relays: Vec<String>,
            peers: Vec<PeerJson>,
            direct_peers: u64,
            relayed_peers: u64,
        }
        let addrs = |list: &[Multiaddr]| list.iter().map(ToString::to_string).collect();
        ReportJson {
            reachability: self.reachability.as_str(),
            public_addrs: addrs(&self.public_addrs),
            relayed_addrs: addrs(&self.relayed_addrs),
            relays: self.relays.iter().map(ToString::to_string).collect(),
            peers: self
                .peers
                .iter()
                .map(|(did, path)| PeerJson {
                    did: did.to_string(),
                    path: path.as_str(),
                })
                .collect(),
            direct_peers: self.direct_peers,
            relayed_peers: self.relayed_peers,
        }
        .serialize(serializer)
    }
}

impl From<NatStatus> for NatReport {
    fn from(status: NatStatus) -> Self {
        NatReport {
            reachability: status.reachability,
            public_addrs: status.public_addrs,
            relayed_addrs: status.relayed_addrs,
            relays: status
                .relays
                .iter()
                .filter_map(weft_net::peer_did)
                .collect(),
            peers: named_paths(status.peers),
            direct_peers: u64::try_from(status.direct_peers).unwrap_or(u64::MAX),
            relayed_peers: u64::try_from(status.relayed_peers).unwrap_or(u64::MAX),
        }
    }
}

impl From<NatFigures> for NatReport {
    fn from(figures: NatFigures) -> Self {
        let addrs = |list: Vec<Vec<u8>>| {
            list.into_iter()
                .filter_map(|a| Multiaddr::try_from(a).ok())
                .collect()
        };
        let did = |bytes: &[u8]| {
            PeerId::from_bytes(bytes)
                .ok()
                .and_then(|p| weft_net::peer_did(&p))
        };
        NatReport {
            reachability: figures.reachability,
            public_addrs: addrs(figures.public_addrs),
            relayed_addrs: addrs(figures.relayed_addrs),
            relays: figures.relays.iter().filter_map(|p| did(p)).collect(),
            peers: figures
                .peers
                .iter()
                .filter_map(|p| {
                    let path = if p.relayed {
                        Path::Relayed
                    } else {
                        Path::Direct
                    };
                    Some((did(&p.peer)?, path))
                })
                .collect(),
            direct_peers: figures.direct_peers,
            relayed_peers: figures.relayed_peers,
        }
    }
}

fn named_paths(peers: Vec<(PeerId, Path)>) -> Vec<(Did, Path)> {
    let mut named: Vec<(Did, Path)> = peers
        .into_iter()
        .filter_map(|(peer, path)| Some((weft_net::peer_did(&peer)?, path)))
        .collect();
    named.sort_by_key(|(did, _)| *did);
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_answer_reads_as_the_local_status_does() {
        let key = weft_identity::Keypair::generate().unwrap();
        let peer = weft_net::did_peer(&key.did()).unwrap();
        let status = NatStatus {
            reachability: Reachability::Private,
            public_addrs: vec![],
            relayed_addrs: vec![
                format!("/ip4/198.18.0.10/udp/4001/quic-v1/p2p/{peer}/p2p-circuit")
                    .parse()
                    .unwrap(),
            ],
            relays: vec![peer],
            peers: vec![(peer, Path::Relayed), (PeerId::random(), Path::Direct)],
            direct_peers: 1,
            relayed_peers: 1,
        };
        let local = NatReport::from(status.clone());
        assert_eq!(local.relays, [key.did()]);
        assert_eq!(
            local.peers,
            [(key.did(), Path::Relayed)],
            "only Ed25519 peers are named"
        );
        let remote = NatReport::from(NatFigures::from(&status));
        assert_eq!(remote, local);
        let json = serde_json::to_value(&local).unwrap();
        assert_eq!(json["reachability"], "private");
        assert_eq!(json["peers"][0]["path"], "relayed");
        assert_eq!(json["relays"][0], key.did().to_string());
    }
}
