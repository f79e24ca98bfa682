//! What matching a publication's topic against the subscription table costs when one peer holds
//! many wildcard patterns that never match (a flood up to the per-peer cap), against testing each
//! pattern in turn, as the table did before it held wildcards in a trie.
//!
//! Run: `cargo bench -p weft-runtime --bench matching`. Results: docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark setup: a panic is a broken bench

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weft_names::{Name, Pattern};
use weft_runtime::Interests;

fn matching(c: &mut Criterion) {
    let topic = Name::new("orders.placed").unwrap();
    let mut group = c.benchmark_group("match_topic");
    for held in [1usize, 1_000, 10_000] {
        let patterns: Vec<Pattern> = (0..held)
            .map(|i| Pattern::new(&format!("*.flood{i}.**")).unwrap())
            .collect();
        let mut table = Interests::new();
        table.insert("member", 0, Pattern::new("orders.*").unwrap());
        for (id, pattern) in patterns.iter().enumerate() {
            table.insert("flooder", u32::try_from(id).unwrap(), pattern.clone());
        }
        let mut out = Vec::new();
        group.bench_with_input(BenchmarkId::new("trie", held), &held, |b, _| {
            b.iter(|| {
                table.targets_into(black_box(&topic), &mut out);
                black_box(out.len())
            })
        });
        let member = Pattern::new("orders.*").unwrap();
        group.bench_with_input(BenchmarkId::new("each_pattern", held), &held, |b, _| {
            b.iter(|| {
                let topic = black_box(&topic);
                let mut hits = usize::from(member.matches(topic));
                hits += usize::from(patterns.iter().any(|p| p.matches(topic)));
                black_box(hits)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
