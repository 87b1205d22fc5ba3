//! The analytics sink's figures: rows and inserts, how long an insert
//! takes, whether the sink is paused for ClickHouse, and the position it
//! has made durable per partition (the same position its advisory Kafka
//! commit carries).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A topic of the sink's and one of its partitions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicPartition {
    pub topic: &'static str,
    pub partition: i64,
}

/// A topic of the sink's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: &'static str,
}

/// The sink's counters and gauges.
#[derive(Debug)]
pub struct SinkMetrics {
    rows: Family<TopicLabel, Counter>,
    inserts: Counter,
    insert_seconds: Histogram,
    paused: Gauge,
    position: Family<TopicPartition, Gauge>,
}

impl SinkMetrics {
    /// The sink's series, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self {
            rows: Family::default(),
            inserts: Counter::default(),
            insert_seconds: super::seconds_buckets(),
            paused: Gauge::default(),
            position: Family::default(),
        };
        registry.register(
            "sink_rows",
            "Rows the analytics sink inserted into ClickHouse, by topic",
            me.rows.clone(),
        );
        registry.register(
            "sink_inserts",
            "Batches the analytics sink inserted (each one insert, retries not counted)",
            me.inserts.clone(),
        );
        registry.register(
            "sink_insert_seconds",
            "Time to insert one batch, retries and their waits included",
            me.insert_seconds.clone(),
        );
        registry.register(
            "sink_paused",
            "1 while the sink has paused its partitions because ClickHouse refuses inserts, else 0",
            me.paused.clone(),
        );
        registry.register(
            "sink_position",
            "The offset of the last record ClickHouse durably holds, per topic and partition (where the sink resumes after a crash)",
            me.position.clone(),
        );
        me
    }

    /// One batch landed: `rows` per topic, after `seconds`.
    pub fn inserted(&self, rows: &[(&'static str, u64)], seconds: f64) {
        self.inserts.inc();
        self.insert_seconds.observe(seconds);
        for (topic, n) in rows {
            self.rows.get_or_create(&TopicLabel { topic }).inc_by(*n);
        }
    }

    /// Sets whether the sink is paused.
    pub fn paused(&self, paused: bool) {
        self.paused.set(i64::from(paused));
    }

    /// Sets the durable position of `topic`'s `partition`.
    pub fn position(&self, topic: &'static str, partition: i32, offset: i64) {
        self.position
            .get_or_create(&TopicPartition {
                topic,
                partition: i64::from(partition),
            })
            .set(offset);
    }
}
