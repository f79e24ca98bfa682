//! What deciding pattern containment costs: the delegations people write, the chain the review
//! reported (hours before), and the pairs that make the search work hardest at the name limits.
//!
//! Run: `cargo bench -p weft-names --bench containment`. Results: docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark setup: a panic is a broken bench

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weft_names::Pattern;

fn p(s: &str) -> Pattern {
    Pattern::new(s).unwrap()
}

fn containment(c: &mut Criterion) {
    let mut group = c.benchmark_group("contains");
    let cases = [
        ("typical", p("orders.**"), p("orders.*")),
        ("by_cases", p("**.b.*.**"), p("b.**.a")),
        (
            "reported_k29",
            p("x.**"),
            p(&format!("x.**.a{}", ".*".repeat(29))),
        ),
        (
            "alternating_32",
            p(&format!("**{}", ".a.*".repeat(15))),
            p("a.**.".repeat(16).trim_end_matches('.')),
        ),
        (
            // Hits the state budget: the most work any pair can cost.
            "budget_bound",
            p("**.*.a.*.*.*.*.*.*.*.*.*.*.*.*.*.a.b.a.b.a.*.a.*.*.a.*.b.a.*.a"),
            p("a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.*.**.a.**.a.**.a.**.a.**.a.**.*"),
        ),
    ];
    for (name, outer, inner) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| black_box(outer).contains(black_box(inner)))
        });
    }
    group.finish();
}

criterion_group!(benches, containment);
criterion_main!(benches);
