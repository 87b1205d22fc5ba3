//! What a chatcart process counts, served at `/metrics` in the Prometheus
//! text format ([`crate::ops`]).
//!
//! One [`Metrics`] per process, shared by its stages through the
//! [`crate::Context`]. Names follow Prometheus conventions: the `chatcart_`
//! prefix, seconds, `_total` on counters. Every label value comes from a
//! closed set (stage names, topic base names, reason codes), never from a
//! record: no user id, request id or prompt text can become a series.
//!
//! # Layout
//!
//! - this file: [`Metrics`], the registry and what every stage counts
//!   (records, dead letters, handling time, restores, lag);
//! - [`outcomes`]: decisions, credit, orders and replies, from the records
//!   the stages emit;
//! - [`sink`]: the analytics sink's inserts and positions;
//! - [`sources`]: figures read from shared state at scrape time (the
//!   campaign ledger, the LLM fallback).

pub mod outcomes;
pub mod sink;
pub mod sources;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use schemas::Record;
use stages::{Emit, Topic};

use crate::lag::{Lags, STAGES};

/// A stage and one of its topics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageTopic {
    pub stage: &'static str,
    pub topic: &'static str,
}

/// A stage and a reason code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageReason {
    pub stage: &'static str,
    pub reason: &'static str,
}

/// A stage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

/// A stage and where a restore started.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageStart {
    pub stage: &'static str,
    /// `checkpoint` when at least one partition started from a checkpoint,
    /// else `log`.
    pub start: &'static str,
}

/// A stage's consumer group and one partition of its inputs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StagePartition {
    pub stage: &'static str,
    pub partition: i64,
}

/// Buckets from 1 ms doubling to about 65 s: fine enough for a 10 ms
/// handling time and wide enough for a minute-long wait at a surge.
pub(crate) fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's counters, gauges and histograms.
pub struct Metrics {
    /// Written only to add a [`Collector`] at start-up.
    registry: RwLock<Registry>,
    /// Decisions, orders and replies.
    pub outcomes: outcomes::Outcomes,
    /// The analytics sink.
    pub sink: sink::SinkMetrics,
    consumed: Family<StageTopic, Counter>,
    produced: Family<StageTopic, Counter>,
    dead_letters: Family<StageReason, Counter>,
    handling: Family<StageLabel, Histogram, fn() -> Histogram>,
    in_flight: Family<StageLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    in_flight_limit: Family<StageLabel, Gauge>,
    restores: Family<StageLabel, Histogram, fn() -> Histogram>,
    restore_records: Family<StageLabel, Counter>,
    restore_starts: Family<StageStart, Counter>,
    checkpoint_written: Family<StageLabel, Gauge<f64, AtomicU64>>,
    consume_errors: Family<StageLabel, Counter>,
    answered: Histogram,
    lag_records: Family<StagePartition, Gauge>,
    lag_seconds: Family<StagePartition, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chatcart");
        let consumed = Family::<StageTopic, Counter>::default();
        registry.register(
            "records_consumed",
            "Input records a stage received, by stage and topic",
            consumed.clone(),
        );
        let produced = Family::<StageTopic, Counter>::default();
        registry.register(
            "records_produced",
            "Output records a stage queued for the broker, by stage and topic",
            produced.clone(),
        );
        let dead_letters = Family::<StageReason, Counter>::default();
        registry.register(
            "dead_letters",
            "Input records a stage sent to the dead-letter topic, by reason",
            dead_letters.clone(),
        );
        let handling = Family::new_with_constructor(seconds_buckets as fn() -> Histogram);
        registry.register(
            "handling_seconds",
            "Time from receiving an input record to queueing its outputs (decode, handle, encode)",
            handling.clone(),
        );
        let in_flight = Family::default();
        registry.register(
            "outputs_in_flight",
            "Records whose outputs the broker has not acknowledged yet (limit: runtime.max_in_flight)",
            in_flight.clone(),
        );
        let in_flight_limit = Family::default();
        registry.register(
            "outputs_in_flight_limit",
            "The most records a stage lets wait for their outputs' acks before it stops reading (runtime.max_in_flight)",
            in_flight_limit.clone(),
        );
        let restores = Family::new_with_constructor(seconds_buckets as fn() -> Histogram);
        registry.register(
            "restore_seconds",
            "Time a stage took to restore the state of newly assigned partitions",
            restores.clone(),
        );
        let restore_records = Family::default();
        registry.register(
            "restore_records",
            "Records a stage read back to restore partitions' state (its own output and replayed input)",
            restore_records.clone(),
        );
        let restore_starts = Family::default();
        registry.register(
            "restores",
            "Restores, by whether a checkpoint shortened at least one partition's read (start=checkpoint) or not (start=log)",
            restore_starts.clone(),
        );
        let checkpoint_written = Family::default();
        registry.register(
            "checkpoint_written_timestamp_seconds",
            "When a stage last wrote a checkpoint, in Unix seconds; time() minus it is the checkpoint's age",
            checkpoint_written.clone(),
        );
        let consume_errors = Family::default();
        registry.register(
            "consume_errors",
            "Errors a stage's consumer reported (the stage retries; the stage is not ready until it reads again)",
            consume_errors.clone(),
        );
        let outcomes = outcomes::Outcomes::register(&mut registry);
        let sink = sink::SinkMetrics::register(&mut registry);
        let answered = seconds_buckets();
        registry.register(
            "end_to_end_seconds",
            "From a prompt's send time (its prompt_time_ms, set by the front-end) to its reply being queued, at the reply stage",
            answered.clone(),
        );
        let lag_records = Family::default();
        registry.register(
            "consumer_lag_records",
            "Records not yet committed by a stage's group on one partition (summed over the stage's inputs), read when scraped",
            lag_records.clone(),
        );
        let lag_seconds = Family::default();
        registry.register(
            "consumer_lag_seconds",
            "consumer_lag_records divided by the rate the group committed at since the last scrape at least 5 s earlier (within the last minute); absent while it committed nothing",
            lag_seconds.clone(),
        );
        Self {
            registry: RwLock::new(registry),
            outcomes,
            sink,
            consumed,
            produced,
            dead_letters,
            handling,
            in_flight,
            in_flight_limit,
            restores,
            restore_records,
            restore_starts,
            checkpoint_written,
            consume_errors,
            answered,
            lag_records,
            lag_seconds,
        }
    }
}

impl Metrics {
    /// Adds figures read at each scrape (see [`sources`]).
    pub fn register(&self, collector: impl Collector) {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(collector));
    }

    /// Adds series counted elsewhere (the gateway's) to the registry.
    pub fn extend(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner));
    }

    /// Sets the lag series from `lags` (every partition of every stage).
    pub fn set_lag(&self, lags: &Lags) {
        self.lag_records.clear();
        self.lag_seconds.clear();
        for (s, (stage, _)) in STAGES.iter().enumerate() {
            for p in 0..lags.partitions() {
                let label = StagePartition {
                    stage: stage.name(),
                    partition: p as i64,
                };
                let lag = lags.lag(s, p);
                self.lag_records.get_or_create(&label).set(lag);
                let rate = lags.progress(s, p).map_or(0.0, |x| x.rate);
                if lag == 0 {
                    self.lag_seconds.get_or_create(&label).set(0.0);
                } else if rate > 0.0 {
                    self.lag_seconds
                        .get_or_create(&label)
                        .set(lag as f64 / rate);
                }
            }
        }
    }

    /// Counts one dead letter of `stage`; `reason` is a fixed code.
    pub fn dead_letter(&self, stage: &'static str, reason: &'static str) {
        self.dead_letters
            .get_or_create(&StageReason { stage, reason })
            .inc();
    }

    /// Records a restore of `stage` that took `took`.
    pub fn restored(&self, stage: &'static str, took: Duration) {
        self.restores
            .get_or_create(&StageLabel { stage })
            .observe(took.as_secs_f64());
    }

    /// Records what a restore of `stage` read: `records`, and whether a
    /// checkpoint shortened it.
    pub fn restore_read(&self, stage: &'static str, records: u64, from_checkpoint: bool) {
        self.restore_records
            .get_or_create(&StageLabel { stage })
            .inc_by(records);
        let start = if from_checkpoint { "checkpoint" } else { "log" };
        self.restore_starts
            .get_or_create(&StageStart { stage, start })
            .inc();
    }

    /// Records that `stage` wrote a checkpoint at `unix_ms`.
    pub fn checkpoint_written(&self, stage: &'static str, unix_ms: i64) {
        self.checkpoint_written
            .get_or_create(&StageLabel { stage })
            .set(unix_ms as f64 / 1_000.0);
    }

    /// Counts a consume error of `stage`.
    pub fn consume_error(&self, stage: &'static str) {
        self.consume_errors
            .get_or_create(&StageLabel { stage })
            .inc();
    }

    /// Sets the in-flight limit of `stage`.
    pub fn in_flight_limit(&self, stage: &'static str, limit: usize) {
        self.in_flight_limit
            .get_or_create(&StageLabel { stage })
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Everything, in the Prometheus text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let registry = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// One stage's per-record series, looked up once: recording a record is
/// then a few atomic adds rather than a label lookup each.
#[derive(Debug)]
pub struct StageMetrics {
    stage: &'static str,
    metrics: Arc<Metrics>,
    /// By [`Topic`] (its discriminant), made on first use so a stage shows
    /// series only for the topics it touches.
    consumed: [OnceLock<Counter>; Topic::ALL.len()],
    produced: [OnceLock<Counter>; Topic::ALL.len()],
    handling: Histogram,
    in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl StageMetrics {
    fn counter<'a>(
        cells: &'a [OnceLock<Counter>; Topic::ALL.len()],
        family: &Family<StageTopic, Counter>,
        stage: &'static str,
        topic: Topic,
    ) -> &'a Counter {
        cells[topic as usize].get_or_init(|| {
            family
                .get_or_create(&StageTopic {
                    stage,
                    topic: topic.base_name(),
                })
                .clone()
        })
    }

    /// Counts one input record from `topic`.
    pub fn consumed(&self, topic: Topic) {
        Self::counter(&self.consumed, &self.metrics.consumed, self.stage, topic).inc();
    }

    /// Counts the outputs queued at `now_ms`, and how long after its
    /// prompt each reply to a person came.
    pub fn emitted(&self, emits: &[Emit], now_ms: i64) {
        for emit in emits {
            Self::counter(
                &self.produced,
                &self.metrics.produced,
                self.stage,
                emit.topic,
            )
            .inc();
            self.metrics.outcomes.count(&emit.record, emit.topic);
            // The person's reply, not the gateway's copy of it.
            if let (Topic::Replies, Record::Reply(reply)) = (emit.topic, &emit.record) {
                let waited = (now_ms - reply.prompt_time_ms).max(0);
                self.metrics.answered.observe(waited as f64 / 1_000.0);
            }
        }
    }

    /// Records how long one input record took.
    pub fn handled(&self, took: Duration) {
        self.handling.observe(took.as_secs_f64());
    }

    /// Sets how many records wait for their outputs' acks.
    pub fn in_flight(&self, records: usize) {
        self.in_flight
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// The process's metrics, for what is not per record.
    pub fn all(&self) -> &Metrics {
        &self.metrics
    }
}

impl Metrics {
    /// The per-record series of `stage`.
    pub fn stage(self: &Arc<Self>, stage: &'static str) -> StageMetrics {
        // At zero from the start, so rate() and increase() see the first
        // error rather than a series appearing.
        drop(self.consume_errors.get_or_create(&StageLabel { stage }));
        StageMetrics {
            stage,
            metrics: Arc::clone(self),
            consumed: std::array::from_fn(|_| OnceLock::new()),
            produced: std::array::from_fn(|_| OnceLock::new()),
            handling: self.handling.get_or_create(&StageLabel { stage }).clone(),
            in_flight: self.in_flight.get_or_create(&StageLabel { stage }).clone(),
        }
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_by_convention_and_labelled_from_closed_sets() {
        let m = Arc::new(Metrics::default());
        let (intent, replies) = (m.stage("intent"), m.stage("reply"));
        intent.consumed(Topic::Prompts);
        intent.consumed(Topic::Prompts);
        let reply = |topic| Emit {
            topic,
            record: Record::Reply(schemas::Reply {
                request_id: "r".into(),
                session_id: String::new(),
                user_id: "u".into(),
                campaign_id: String::new(),
                trace_id: String::new(),
                event_time_ms: 0,
                prompt_time_ms: 1_000,
                locale: "zh".into(),
                outcome: schemas::ReplyOutcome::OrderPlaced,
                reason: None,
                text: String::new(),
                order_id: None,
                credit_cents: 0,
                to_pay_cents: 0,
                latency_ms: 0,
            }),
            partition: None,
        };
        // Counted by topic; the person's reply timed, the gateway's copy not.
        intent.emitted(&[reply(Topic::Intents)], 0);
        replies.emitted(
            &[reply(Topic::Replies), reply(Topic::GatewayReplies)],
            1_250,
        );
        m.dead_letter("intent", "undecodable");
        intent.handled(Duration::from_millis(12));
        intent.in_flight(3);
        m.restored("coupon", Duration::from_millis(250));
        let text = m.encode();
        for line in [
            "chatcart_records_consumed_total{stage=\"intent\",topic=\"chat.prompts\"} 2",
            "chatcart_records_produced_total{stage=\"intent\",topic=\"commerce.intents\"} 1",
            "chatcart_dead_letters_total{stage=\"intent\",reason=\"undecodable\"} 1",
            "chatcart_handling_seconds_count{stage=\"intent\"} 1",
            "chatcart_handling_seconds_bucket{le=\"0.016\",stage=\"intent\"} 1",
            "chatcart_outputs_in_flight{stage=\"intent\"} 3",
            "chatcart_restore_seconds_count{stage=\"coupon\"} 1",
            "chatcart_end_to_end_seconds_count 1",
            "chatcart_end_to_end_seconds_sum 0.25",
            "chatcart_records_produced_total{stage=\"reply\",topic=\"chat.gateway.replies\"} 1",
            // One reply to a person: not the gateway's copy, nor a record
            // on another topic.
            "chatcart_replies_total{outcome=\"order_placed\",reason=\"none\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn lag_is_in_records_and_in_seconds_of_the_rate_committed_at() {
        use crate::lag::{LagSample, Position};
        let t0 = std::time::Instant::now();
        let mut lags = Lags::new(Duration::from_secs(60));
        for s in 0..=10u64 {
            // Intent commits 10/s and keeps 50 behind; the others idle.
            let mut stages = vec![vec![Position::default(); 1]; STAGES.len()];
            let committed = 10 * s as i64;
            stages[0][0] = Position {
                committed,
                end: committed + 50,
            };
            stages[1][0] = Position {
                committed: 0,
                end: 7,
            };
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s),
                stages,
            });
        }
        let m = Metrics::default();
        m.set_lag(&lags);
        let text = m.encode();
        for line in [
            "chatcart_consumer_lag_records{stage=\"intent\",partition=\"0\"} 50",
            "chatcart_consumer_lag_seconds{stage=\"intent\",partition=\"0\"} 5.0",
            "chatcart_consumer_lag_records{stage=\"coupon\",partition=\"0\"} 7",
            "chatcart_consumer_lag_seconds{stage=\"reply\",partition=\"0\"} 0.0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // Seven queued and nothing committed: no rate, no seconds.
        assert!(
            !text.contains("chatcart_consumer_lag_seconds{stage=\"coupon\""),
            "{text}"
        );
    }
}
