//! The Kademlia store: libp2p's memory store, except that a key's providers are handed out from
//! a different place in the list each time. Kademlia answers a lookup with the first
//! `replication` providers the store gives (20, or fewer under a small connection budget); from
//! a list kept in arrival order, the same earliest ones would be named every time, and
//! identities that provided a key early would hide every later provider of it. Turning the list
//! by that many each time, successive answers name every provider.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use libp2p::PeerId;
use libp2p::kad::store::{MemoryStore, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// Providers an answer names at Kademlia's default replication factor (the tests').
#[cfg(test)]
const ANSWER: usize = 20;

/// libp2p's [`MemoryStore`], handing out each key's providers in turns.
pub(crate) struct Store {
    inner: MemoryStore,
    turn: AtomicUsize,
    /// Providers an answer names: Kademlia takes the first `replication` of what the store
    /// gives, so the turns step by that many.
    answer: usize,
}

impl Store {
    /// `local`'s store. Its turns start at a place its identity picks: every lookup asks all
    /// of a key's holders, so holders starting together would stay in step and all name the
    /// same providers, and a lookup would hear of one answer's worth.
    pub(crate) fn new(inner: MemoryStore, local: &PeerId, answer: usize) -> Self {
        let bytes = local.to_bytes();
        let start = bytes
            .iter()
            .rev()
            .take(8)
            .fold(0usize, |turn, b| turn.wrapping_mul(256) | usize::from(*b));
        Self {
            inner,
            turn: AtomicUsize::new(start),
            answer: answer.max(1),
        }
    }
}

impl RecordStore for Store {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        self.inner.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        self.inner.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut providers = self.inner.providers(key);
        if providers.len() > self.answer {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed);
            let len = providers.len();
            providers.rotate_left(turn.wrapping_mul(self.answer) % len);
        }
        providers
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use libp2p::kad::store::MemoryStoreConfig;

    use super::*;

    #[test]
    fn successive_answers_name_every_provider_of_a_crowded_key() {
        let local = PeerId::random();
        let config = MemoryStoreConfig {
            max_providers_per_key: 200,
            ..Default::default()
        };
        let mut store = Store::new(MemoryStore::with_config(local, config), &local, ANSWER);
        let key = RecordKey::new(&[7u8; 32]);
        let providers: Vec<PeerId> = (0..50).map(|_| PeerId::random()).collect();
        for provider in &providers {
            let record = ProviderRecord::new(key.clone(), *provider, vec![]);
            store.add_provider(record).unwrap();
        }
        let mut named = HashSet::new();
        for _ in 0..3 {
            let answer: Vec<PeerId> = store
                .providers(&key)
                .into_iter()
                .take(ANSWER)
                .map(|r| r.provider)
                .collect();
            assert_eq!(answer.len(), ANSWER);
            named.extend(answer);
        }
        assert_eq!(
            named,
            providers.into_iter().collect(),
            "50 named in three answers"
        );

        let few = RecordKey::new(&[8u8; 32]);
        let record = ProviderRecord::new(few.clone(), local, vec![]);
        store.add_provider(record).unwrap();
        assert_eq!(store.providers(&few).len(), 1);
        assert_eq!(
            store.provided().count(),
            1,
            "this node's own, as libp2p's store keeps them"
        );
    }

    #[test]
    fn holders_of_one_key_asked_together_name_different_providers() {
        let holder = |seed: u8| {
            let key = libp2p::identity::Keypair::ed25519_from_bytes([seed; 32]).unwrap();
            let local = key.public().to_peer_id();
            let config = MemoryStoreConfig {
                max_providers_per_key: 200,
                ..Default::default()
            };
            Store::new(MemoryStore::with_config(local, config), &local, ANSWER)
        };
        let key = RecordKey::new(&[7u8; 32]);
        let providers: Vec<PeerId> = (0..200).map(|_| PeerId::random()).collect();
        let mut named = HashSet::new();
        for seed in 1..=8 {
            let mut store = holder(seed);
            for provider in &providers {
                let record = ProviderRecord::new(key.clone(), *provider, vec![]);
                store.add_provider(record).unwrap();
            }
            named.extend(
                store
                    .providers(&key)
                    .into_iter()
                    .take(ANSWER)
                    .map(|r| r.provider),
            );
        }
        // In step from the same turn, eight holders would name the same 20.
        assert!(named.len() >= 4 * ANSWER, "{} named", named.len());
    }
}
