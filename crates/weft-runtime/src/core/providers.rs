//! Who provides which procedure, and which provider a call goes to.
//!
//! Providers of a procedure are kept in the order they advertised. A call picks one by
//! [`Strategy`]; providers a call already failed to reach are excluded from its next pick, so a
//! retry goes elsewhere.

use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;

use weft_names::Name;

/// How a call picks among several providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Each provider in turn (the default).
    #[default]
    RoundRobin,
    /// Any provider, uniformly.
    Random,
    /// The provider that advertised first, while it lasts.
    First,
    /// This node's own provider when it has one, otherwise round robin.
    LocalFirst,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round_robin" => Ok(Strategy::RoundRobin),
            "random" => Ok(Strategy::Random),
            "first" => Ok(Strategy::First),
            "local_first" => Ok(Strategy::LocalFirst),
            other => Err(format!(
                "unknown strategy {other:?} (round_robin, random, first, local_first)"
            )),
        }
    }
}

/// A provider: this node, or a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Provider<P> {
    /// This node's own handler.
    Local,
    /// A peer that advertised the procedure (and was authorized to).
    Remote(P),
}

/// Providers by procedure, with a round-robin cursor each.
#[derive(Debug, Clone)]
pub(crate) struct Providers<P> {
    by_procedure: HashMap<Name, Vec<Provider<P>>>,
    cursor: HashMap<Name, usize>,
    /// How many procedures each peer provides.
    per_peer: HashMap<P, usize>,
}

impl<P> Default for Providers<P> {
    fn default() -> Self {
        Self {
            by_procedure: HashMap::new(),
            cursor: HashMap::new(),
            per_peer: HashMap::new(),
        }
    }
}

impl<P: Clone + Eq + Hash> Providers<P> {
    /// No providers.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// `provider` provides `procedure` (a repeat is ignored).
    pub(crate) fn add(&mut self, procedure: Name, provider: Provider<P>) {
        let list = self.by_procedure.entry(procedure).or_default();
        if !list.contains(&provider) {
            if let Provider::Remote(peer) = &provider {
                *self.per_peer.entry(peer.clone()).or_default() += 1;
            }
            list.push(provider);
        }
    }

    /// How many procedures `peer` provides.
    pub(crate) fn count_of(&self, peer: &P) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    /// `provider` stopped providing `procedure`.
    pub(crate) fn remove(&mut self, procedure: &Name, provider: &Provider<P>) {
        if let Some(list) = self.by_procedure.get_mut(procedure) {
            let before = list.len();
            list.retain(|p| p != provider);
            if let Provider::Remote(peer) = provider
                && list.len() < before
                && let Some(count) = self.per_peer.get_mut(peer)
            {
                *count -= 1;
                if *count == 0 {
                    self.per_peer.remove(peer);
                }
            }
            if list.is_empty() {
                self.by_procedure.remove(procedure);
                self.cursor.remove(procedure);
            }
        }
    }

    /// A peer left: it provides nothing any more.
    pub(crate) fn remove_peer(&mut self, peer: &P) {
        let gone = Provider::Remote(peer.clone());
        let procedures: Vec<Name> = self.by_procedure.keys().cloned().collect();
        for procedure in procedures {
            self.remove(&procedure, &gone);
        }
    }

    /// The procedures `peer` provides.
    pub(crate) fn procedures_of(&self, peer: &P) -> Vec<Name> {
        let remote = Provider::Remote(peer.clone());
        self.by_procedure
            .iter()
            .filter(|(_, list)| list.contains(&remote))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every procedure with a provider.
    pub(crate) fn procedures(&self) -> impl Iterator<Item = &Name> {
        self.by_procedure.keys()
    }

    /// Providers of `procedure`, in advertisement order.
    pub(crate) fn of(&self, procedure: &Name) -> &[Provider<P>] {
        self.by_procedure.get(procedure).map_or(&[], Vec::as_slice)
    }

    /// Picks a provider of `procedure` other than those in `exclude`. `random` is any uniform
    /// sample (used by [`Strategy::Random`]).
    pub(crate) fn choose(
        &mut self,
        procedure: &Name,
        strategy: Strategy,
        random: u64,
        exclude: &[Provider<P>],
    ) -> Option<Provider<P>> {
        let candidates: Vec<Provider<P>> = self
            .of(procedure)
            .iter()
            .filter(|p| !exclude.contains(p))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let n = candidates.len();
        let index = match strategy {
            Strategy::First => 0,
            Strategy::Random => usize::try_from(random % n as u64).unwrap_or(0),
            Strategy::LocalFirst if candidates.contains(&Provider::Local) => {
                return Some(Provider::Local);
            }
            Strategy::RoundRobin | Strategy::LocalFirst => {
                let cursor = self.cursor.entry(procedure.clone()).or_insert(0);
                let index = *cursor % n;
                *cursor = cursor.wrapping_add(1);
                index
            }
        };
        candidates.into_iter().nth(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn round_robin_visits_each_provider_in_turn() {
        let mut p = Providers::new();
        for peer in ["a", "b", "c"] {
            p.add(n("get"), Provider::Remote(peer));
        }
        let picks: Vec<_> = (0..6)
            .map(|_| p.choose(&n("get"), Strategy::RoundRobin, 0, &[]).unwrap())
            .collect();
        let r = Provider::Remote;
        assert_eq!(picks, [r("a"), r("b"), r("c"), r("a"), r("b"), r("c")]);
    }

    #[test]
    fn local_first_first_and_random() {
        let mut p = Providers::new();
        p.add(n("get"), Provider::Remote("a"));
        p.add(n("get"), Provider::Local);
        p.add(n("get"), Provider::Remote("b"));
        for _ in 0..3 {
            assert_eq!(
                p.choose(&n("get"), Strategy::LocalFirst, 0, &[]),
                Some(Provider::Local)
            );
            assert_eq!(
                p.choose(&n("get"), Strategy::First, 0, &[]),
                Some(Provider::Remote("a"))
            );
        }
        assert_eq!(
            p.choose(&n("get"), Strategy::Random, 5, &[]),
            Some(Provider::Remote("b"))
        );
        // Without the local provider, local_first falls back to round robin.
        let picks: Vec<_> = (0..2)
            .map(|_| {
                p.choose(&n("get"), Strategy::LocalFirst, 0, &[Provider::Local])
                    .unwrap()
            })
            .collect();
        assert_eq!(picks.len(), 2);
        assert_ne!(picks[0], picks[1]);
    }

    #[test]
    fn exclusions_departures_and_withdrawals() {
        let mut p = Providers::new();
        p.add(n("get"), Provider::Remote("a"));
        p.add(n("get"), Provider::Remote("b"));
        p.add(n("put"), Provider::Remote("a"));
        assert_eq!(
            p.choose(&n("get"), Strategy::First, 0, &[Provider::Remote("a")]),
            Some(Provider::Remote("b"))
        );
        p.remove_peer(&"a");
        assert_eq!(p.of(&n("get")), &[Provider::Remote("b")]);
        assert!(p.of(&n("put")).is_empty());
        p.remove(&n("get"), &Provider::Remote("b"));
        assert_eq!(p.choose(&n("get"), Strategy::RoundRobin, 0, &[]), None);
        assert_eq!("local_first".parse(), Ok(Strategy::LocalFirst));
        assert!("fastest".parse::<Strategy>().is_err());
    }

    #[test]
    fn what_a_peer_provides() {
        let mut p = Providers::new();
        p.add(n("get"), Provider::Remote("a"));
        p.add(n("put"), Provider::Remote("a"));
        p.add(n("put"), Provider::Remote("b"));
        p.add(n("del"), Provider::Local);
        let mut of_a = p.procedures_of(&"a");
        of_a.sort_by(|x, y| x.as_str().cmp(y.as_str()));
        assert_eq!(of_a, [n("get"), n("put")]);
        assert_eq!(p.procedures_of(&"b"), [n("put")]);
        p.add(n("put"), Provider::Remote("a"));
        assert_eq!(
            (p.count_of(&"a"), p.count_of(&"b")),
            (2, 1),
            "a repeat counts once"
        );
        p.remove(&n("get"), &Provider::Remote("b"));
        assert_eq!(
            p.count_of(&"b"),
            1,
            "removing what b never provided changes nothing"
        );
        p.remove(&n("get"), &Provider::Remote("a"));
        assert_eq!(p.count_of(&"a"), 1);
        p.remove_peer(&"a");
        assert!(p.procedures_of(&"a").is_empty());
        assert_eq!(p.count_of(&"a"), 0);
        let mut all: Vec<&str> = p.procedures().map(Name::as_str).collect();
        all.sort_unstable();
        assert_eq!(all, ["del", "put"], "get went with its only provider");
    }
}
