//! What a chatcart process counts, served at `/metrics` in the Prometheus
//! text format ([`crate::ops`]).
//!
//! One [`Metrics`] per process, shared by its stages through the
//! [`crate::Context`]. Names follow Prometheus conventions: the `chatcart_`
//! prefix, seconds, `_total` on counters. Every label value comes from a
//! closed set (stage names, topic base names, reason codes), never from a
//! record: no user id, request id or prompt text can become a series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stages::Topic;

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

/// Buckets from 1 ms doubling to about 65 s: fine enough for a 10 ms
/// handling time and wide enough for a minute-long wait at a surge.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's counters, gauges and histograms.
pub struct Metrics {
    registry: Registry,
    consumed: Family<StageTopic, Counter>,
    produced: Family<StageTopic, Counter>,
    dead_letters: Family<StageReason, Counter>,
    handling: Family<StageLabel, Histogram, fn() -> Histogram>,
    in_flight: Family<StageLabel, Gauge<i64, std::sync::atomic::AtomicI64>>,
    restores: Family<StageLabel, Histogram, fn() -> Histogram>,
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
        let restores = Family::new_with_constructor(seconds_buckets as fn() -> Histogram);
        registry.register(
            "restore_seconds",
            "Time a stage took to restore the state of newly assigned partitions",
            restores.clone(),
        );
        Self {
            registry,
            consumed,
            produced,
            dead_letters,
            handling,
            in_flight,
            restores,
        }
    }
}

impl Metrics {
    /// Counts one input record of `stage` from `topic`.
    pub fn consumed(&self, stage: &'static str, topic: Topic) {
        self.consumed
            .get_or_create(&StageTopic {
                stage,
                topic: topic.base_name(),
            })
            .inc();
    }

    /// Counts one output record of `stage` to `topic`.
    pub fn produced(&self, stage: &'static str, topic: Topic) {
        self.produced
            .get_or_create(&StageTopic {
                stage,
                topic: topic.base_name(),
            })
            .inc();
    }

    /// Counts one dead letter of `stage`; `reason` is a fixed code.
    pub fn dead_letter(&self, stage: &'static str, reason: &'static str) {
        self.dead_letters
            .get_or_create(&StageReason { stage, reason })
            .inc();
    }

    /// Records how long one input record took `stage`.
    pub fn handled(&self, stage: &'static str, took: Duration) {
        self.handling
            .get_or_create(&StageLabel { stage })
            .observe(took.as_secs_f64());
    }

    /// Sets how many records of `stage` wait for their outputs' acks.
    pub fn in_flight(&self, stage: &'static str, records: usize) {
        self.in_flight
            .get_or_create(&StageLabel { stage })
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Records a restore of `stage` that took `took`.
    pub fn restored(&self, stage: &'static str, took: Duration) {
        self.restores
            .get_or_create(&StageLabel { stage })
            .observe(took.as_secs_f64());
    }

    /// Everything, in the Prometheus text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_by_convention_and_labelled_from_closed_sets() {
        let m = Metrics::default();
        m.consumed("intent", Topic::Prompts);
        m.consumed("intent", Topic::Prompts);
        m.produced("intent", Topic::Intents);
        m.dead_letter("intent", "undecodable");
        m.handled("intent", Duration::from_millis(12));
        m.in_flight("intent", 3);
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
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
