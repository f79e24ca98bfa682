//! What an access node relays for its clients, and what it does not.
//!
//! A client (a process attached with `--connect`) talks only to its access node, which routes for
//! it: the client's publications go to every matching subscriber of the realm, and the realm's
//! publications reach the client's subscriptions; the client's calls reach every provider the
//! access node knows, and other members' calls reach the procedures of its clients.
//!
//! Members are never relayed to members: the mesh between nodes stays one hop, so nothing loops
//! and nothing arrives twice. These rules are the only place that says so; the router and the
//! registry ask them.

/// Which peer a publication or a call came from, as the node relaying it sees it (this node's
/// own go to every peer that asked, and need no rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin<P> {
    /// A member that is not a client: a node of the mesh.
    Member,
    /// One of this node's clients.
    Client(P),
}

/// Does a publication from `origin` go to the peer `target` (a client of this node or not)?
/// A member's only to clients (the member reached the rest itself); a client's to every peer
/// that asked except the client itself (it delivered to its own subscriptions already).
pub(crate) fn publish_to<P: PartialEq>(
    origin: &Origin<P>,
    target: &P,
    target_is_client: bool,
) -> bool {
    match origin {
        Origin::Member => target_is_client,
        Origin::Client(from) => from != target,
    }
}

/// May a call from `origin`, which this node does not serve itself, be passed on to the remote
/// provider `provider` (a client of this node or not)? A client's calls go to any provider but
/// the client itself; a member's only to clients, whose procedures this node advertised for them.
pub(crate) fn call_to<P: PartialEq>(
    origin: &Origin<P>,
    provider: &P,
    provider_is_client: bool,
) -> bool {
    match origin {
        Origin::Member => provider_is_client,
        Origin::Client(from) => from != provider,
    }
}

/// Does a node check the `msg/publish` of the peer that sent it a publication? Not a client:
/// everything reaches it through its access node, which checked each publisher's authority (its
/// own, a member's, another client's) and acts for clients under their delegations, so it may
/// hold no grant to publish of its own. A client trusts its access node as a NATS client trusts
/// its server; every other node checks every peer.
pub(crate) fn checks_publisher(this_node_is_client: bool) -> bool {
    !this_node_is_client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_never_relayed_to_members() {
        assert!(!publish_to(&Origin::Member, &1, false));
        assert!(publish_to(&Origin::Member, &1, true));
        assert!(!call_to(&Origin::Member, &1, false));
        assert!(call_to(&Origin::Member, &1, true));
    }

    #[test]
    fn only_a_client_takes_its_peers_publications_unchecked() {
        assert!(checks_publisher(false));
        assert!(!checks_publisher(true));
    }

    #[test]
    fn a_client_is_not_sent_back_its_own() {
        assert!(!publish_to(&Origin::Client(7), &7, true));
        assert!(publish_to(&Origin::Client(7), &8, true));
        assert!(publish_to(&Origin::Client(7), &8, false));
        assert!(!call_to(&Origin::Client(7), &7, true));
        assert!(call_to(&Origin::Client(7), &8, false));
    }
}
