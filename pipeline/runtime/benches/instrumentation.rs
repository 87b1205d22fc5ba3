//! What the runner's instrumentation costs per record, in memory: the
//! metrics one record updates at a stage (input counted, one output counted
//! with its outcome, handling time, outputs in flight twice) and the span
//! it is handled in, with the binary's JSON log subscriber at `info`
//! writing to nowhere: off as the runner makes it (at debug), and on. Compare with a stage's CPU per request in
//! docs/benchmarks.md.
//!
//! ```sh
//! cargo bench -p chatcart-runtime --bench instrumentation
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chatcart_runtime::metrics::Metrics;
use criterion::{Criterion, criterion_group, criterion_main};
use ledger::fixtures::decision;
use schemas::DecisionOutcome;
use stages::{Emit, Topic};

fn per_record(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let coupon = metrics.stage("coupon");
    let out = [Emit {
        topic: Topic::Decisions,
        record: decision("r-1", "u-1", DecisionOutcome::Granted, 500),
        partition: None,
    }];
    let mut group = c.benchmark_group("instrumentation");
    group.bench_function("metrics", |b| {
        b.iter(|| {
            coupon.consumed(black_box(Topic::Intents));
            coupon.emitted(black_box(&out), 1_000);
            coupon.handled(Duration::from_micros(9));
            coupon.in_flight(black_box(3));
            coupon.in_flight(black_box(2));
        });
    });
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // As the runner makes it: at debug, so off at the default `info`.
        group.bench_function("span_off", |b| {
            b.iter(|| {
                let span = tracing::debug_span!(
                    "record",
                    stage = "coupon",
                    partition = black_box(3),
                    offset = black_box(123_456_i64),
                    trace_id = black_box("r-1-trace"),
                );
                span.in_scope(|| black_box(1));
            });
        });
        // Switched on.
        group.bench_function("span_on", |b| {
            b.iter(|| {
                let span = tracing::info_span!(
                    "record",
                    stage = "coupon",
                    partition = black_box(3),
                    offset = black_box(123_456_i64),
                    trace_id = black_box("r-1-trace"),
                );
                span.in_scope(|| black_box(1));
            });
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = per_record
}
criterion_main!(benches);
