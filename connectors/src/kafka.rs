//! Kafka clients as chatcart uses them: one place that decides the client
//! settings every stage relies on (manual offset storage, range assignment
//! for co-partitioned topics, acks from all replicas), topic administration,
//! and reading one partition back from the start, which is how stages restore
//! their state from their own output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, ToBytes};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// How to reach the Kafka cluster and how chatcart names things in it.
/// Its `Debug` shows secret properties as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Prepended to every topic name, so several pipelines (or test runs) can
    /// share one cluster. Empty in production.
    pub topic_prefix: String,
    /// Consumer groups are named `<group_prefix>.<stage>`.
    pub group_prefix: String,
    /// Partitions of every pipeline topic (they must all be equal: partition
    /// `p` of every topic is one shard of the pipeline).
    pub partitions: i32,
    /// Replication factor used by `topics create`.
    pub replication_factor: i32,
    /// How long a command waits at start for the broker to answer,
    /// retrying with backoff and saying where it tries, before it gives up.
    pub connect_timeout_secs: u64,
    /// Extra librdkafka properties applied to every client (e.g. security).
    /// librdkafka's names have dots and no underscores, so an underscore
    /// is read as a dot: `CHATCART__KAFKA__PROPERTIES__SASL_PASSWORD` sets
    /// `sasl.password` (see [`KafkaConfig::normalize`]).
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.redacted();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &shown.bootstrap_servers)
            .field("topic_prefix", &shown.topic_prefix)
            .field("group_prefix", &shown.group_prefix)
            .field("partitions", &shown.partitions)
            .field("replication_factor", &shown.replication_factor)
            .field("connect_timeout_secs", &shown.connect_timeout_secs)
            .field("properties", &shown.properties)
            .finish()
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".to_owned(),
            topic_prefix: String::new(),
            group_prefix: "chatcart".to_owned(),
            partitions: 12,
            replication_factor: 1,
            connect_timeout_secs: 60,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties chatcart sets itself; overriding them would break its guarantees.
const RESERVED: &[&str] = &[
    "enable.auto.offset.store",
    "enable.auto.commit",
    "group.id",
    "partition.assignment.strategy",
];

impl KafkaConfig {
    /// Reads an underscore in a property's name as a dot, so properties
    /// can come from the environment (whose names cannot hold dots). When
    /// both spellings are set, the underscore one, from the environment,
    /// wins, as the environment wins over the file.
    pub fn normalize(&mut self) {
        let (from_env, dotted): (Vec<_>, Vec<_>) = std::mem::take(&mut self.properties)
            .into_iter()
            .partition(|(k, _)| k.contains('_'));
        self.properties = dotted.into_iter().collect();
        for (k, v) in from_env {
            self.properties.insert(k.replace('_', "."), v);
        }
    }

    /// A copy to show: secret properties' values replaced.
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        for (k, v) in &mut shown.properties {
            if crate::secret::is_secret_property(k) {
                *v = crate::secret::REDACTED.to_owned();
            }
        }
        shown
    }

    /// Checks the values; each error names the key and what is allowed.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConnectorError::config(
                "kafka.bootstrap_servers",
                "must list at least one host:port",
            ));
        }
        if !(1..=10_000).contains(&self.partitions) {
            return Err(ConnectorError::config(
                "kafka.partitions",
                "must be between 1 and 10000",
            ));
        }
        if !(1..=3_600).contains(&self.connect_timeout_secs) {
            return Err(ConnectorError::config(
                "kafka.connect_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=32).contains(&self.replication_factor) {
            return Err(ConnectorError::config(
                "kafka.replication_factor",
                "must be between 1 and 32",
            ));
        }
        let name_ok = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !name_ok(&self.topic_prefix) || self.topic_prefix.len() > 100 {
            return Err(ConnectorError::config(
                "kafka.topic_prefix",
                "may only contain ASCII letters, digits, '.', '_' and '-' (at most 100)",
            ));
        }
        if self.group_prefix.is_empty() || !name_ok(&self.group_prefix) {
            return Err(ConnectorError::config(
                "kafka.group_prefix",
                "must be non-empty and contain only ASCII letters, digits, '.', '_' and '-'",
            ));
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return Err(ConnectorError::config(
                "kafka.properties",
                format!("`{key}` is managed by chatcart and cannot be overridden"),
            ));
        }
        // librdkafka checks names and values only when a client is made;
        // checking here fails at start-up, once, without the value.
        self.producer_config().create_native_config().map_err(|e| {
            ConnectorError::config("kafka.properties", crate::secret::show_kafka_error(&e))
        })?;
        Ok(())
    }

    /// The full name of a topic, with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{}", self.topic_prefix, base)
    }

    /// Settings shared by every client.
    pub fn client_config(&self) -> ClientConfig {
        self.client_config_with(&[])
    }

    /// `defaults`, then the user's `kafka.properties` over them.
    fn client_config_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in defaults {
            cfg.set(*k, *v);
        }
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// A consumer in group `<group_prefix>.<stage>`, storing offsets only when
    /// told to: a stage stores an input offset after its outputs are acknowledged,
    /// and the periodic auto-commit then commits only what was stored.
    pub fn consumer_config(&self, stage: &str) -> ClientConfig {
        let mut cfg = self.client_config_with(&[
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("queued.max.messages.kbytes", "16384"),
            ("auto.commit.interval.ms", "1000"),
            // Some brokers (librdkafka's mock cluster, measured) answer an
            // empty fetch only when this expires, not when data arrives; at
            // librdkafka's 500 ms default that added ~0.8 s to the demo's
            // median reply. Idle consumers pay ~20 small fetches a second.
            ("fetch.wait.max.ms", "50"),
        ]);
        cfg.set("group.id", format!("{}.{}", self.group_prefix, stage))
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Range assignment gives one consumer partition p of every input
            // topic, which co-partitioned stages rely on.
            .set("partition.assignment.strategy", "range");
        cfg
    }

    /// A producer that waits for all in-sync replicas and batches briefly.
    pub fn producer_config(&self) -> ClientConfig {
        self.client_config_with(&[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("queue.buffering.max.messages", "100000"),
            ("message.timeout.ms", "60000"),
        ])
    }

    /// Builds a producer with [`KafkaConfig::producer_config`].
    pub fn producer(&self) -> Result<FutureProducer, ConnectorError> {
        Ok(self.producer_config().create()?)
    }
}

/// Queues a record for delivery, waiting while the producer's (bounded)
/// queue is full instead of failing, so a burst slows the stage down rather
/// than losing output.
pub async fn enqueue<K: ToBytes + ?Sized>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, [u8]>,
) -> Result<DeliveryFuture, ConnectorError> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// How long a drained process waits for its group consumer to close.
/// Closing normally takes milliseconds. A close that takes longer is
/// waiting for the broker to finish a rebalance.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes a group consumer (leaves the group and serves the last revoke)
/// on a thread of its own, waiting at most `within`. True if it closed.
///
/// rust-rdkafka closes a consumer when it is dropped and polls until the
/// close completes, with no bound. If the broker is slow to answer the
/// group requests of a rebalance, the close waits that long. This was seen
/// once on Tansu 0.6, in the SIGKILL test: the last coupon process logged
/// that it had stopped, never served its last revoke, and had not exited
/// after 40 s. Everything owed is committed and flushed before the
/// close, so a process that gives up waiting loses nothing. The group
/// expires the member after its session timeout, as it would after a
/// crash.
pub async fn close_within<T: Send + 'static>(consumer: T, within: Duration) -> bool {
    let (closed, wait) = tokio::sync::oneshot::channel();
    // Not `spawn_blocking`: the runtime waits for those when it shuts
    // down, and this thread must not hold the exit.
    let spawned = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    if spawned.is_err() {
        return false;
    }
    matches!(tokio::time::timeout(within, wait).await, Ok(Ok(())))
}

/// Creates the given topics; topics that already exist are left as they are.
pub async fn create_topics(
    config: &KafkaConfig,
    topics: &[(String, i32)],
) -> Result<(), ConnectorError> {
    let admin: AdminClient<DefaultClientContext> = config.client_config().create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(ConnectorError::Topic {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// How many partitions `topic` has, or `None` when it does not exist.
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<Option<i32>, ConnectorError> {
    let consumer: BaseConsumer = config.client_config().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0))
}

/// A consumer that reads assigned partitions without joining a group or
/// committing: the reader behind [`read_partitions`] and [`scan`].
fn reader(
    config: &KafkaConfig,
    purpose: &str,
    eof: bool,
) -> Result<BaseConsumer<Reader>, ConnectorError> {
    Ok(config
        .client_config_with(&[("fetch.wait.max.ms", "10")])
        .set("group.id", format!("{}.{purpose}", config.group_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .set("auto.offset.reset", "earliest")
        .create_with_context(Reader)?)
}

/// Assigns `(topic, partition, offset)`s to `consumer`. The topics' metadata
/// is fetched first: knowing the leaders before assigning saves librdkafka's
/// 500 ms offset-query retry, which would otherwise delay every read. (An
/// offset a broker no longer holds falls back to the earliest one.)
fn assign_from(
    consumer: &BaseConsumer<Reader>,
    from: &[(&str, i32, i64)],
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let topics: HashSet<&str> = from.iter().map(|(t, _, _)| *t).collect();
    for topic in topics {
        consumer.fetch_metadata(Some(topic), timeout)?;
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in from {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// Context of the readers: [`read_partitions`] asks for end-of-partition
/// events, which librdkafka would otherwise also log as errors.
struct Reader;

impl ClientContext for Reader {
    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka reports the event both as `PartitionEOF` and as a
        // global error carrying that code.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!(reason, "end of partition");
        } else {
            tracing::error!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for Reader {}

/// Reads partitions `partitions` of `topic` from their first to their last
/// record (as of the call), handing each record to `f`. Blocking: call it
/// from a blocking thread. Fails if the end is not reached within `timeout`,
/// so a stuck broker cannot hang a restore forever.
///
/// The end is found through librdkafka's end-of-partition event, which
/// follows the high watermark of fetch responses, not through a ListOffsets
/// query: Tansu 0.6 answers ListOffsets(latest) with the first offset of the
/// last batch, which would silently cut a restore short by up to a batch.
pub fn read_partitions(
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, ConnectorError> {
    let ends: Vec<(i32, i64)> = partitions.iter().map(|p| (*p, i64::MAX)).collect();
    read_partitions_until(config, topic, &ends, timeout, f)
}

/// As [`read_partitions`], but each `(partition, end)` only up to offset
/// `end` (exclusive), or its last record if that comes first.
pub fn read_partitions_until(
    config: &KafkaConfig,
    topic: &str,
    ends: &[(i32, i64)],
    timeout: Duration,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, ConnectorError> {
    let ranges: Vec<(i32, i64, i64)> = ends.iter().map(|(p, end)| (*p, 0, *end)).collect();
    read_ranges(config, topic, &ranges, timeout, f)
}

/// As [`read_partitions_until`], but each `(partition, from, end)` starts
/// at offset `from`.
pub fn read_ranges(
    config: &KafkaConfig,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    timeout: Duration,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, ConnectorError> {
    let ranges: HashMap<i32, (i64, i64)> = ranges
        .iter()
        .filter(|(_, from, end)| *end > *from)
        .map(|(p, from, end)| (*p, (*from, *end)))
        .collect();
    if ranges.is_empty() {
        return Ok(0);
    }
    let consumer = reader(config, "restore", true)?;
    let from: Vec<(&str, i32, i64)> = ranges
        .iter()
        .map(|(p, (from, _))| (topic, *p, *from))
        .collect();
    assign_from(&consumer, &from, timeout)?;
    let mut open: HashSet<i32> = ranges.keys().copied().collect();
    let end_of = |p: i32| ranges.get(&p).map_or(0, |(_, end)| *end);
    let deadline = Instant::now() + timeout;
    let mut read = 0u64;
    while !open.is_empty() {
        if Instant::now() > deadline {
            return Err(ConnectorError::RestoreTimeout {
                topic: topic.to_owned(),
                partitions: open.len(),
                read,
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) if crate::broker::is_transient(&e) => {
                crate::broker::note_transient(topic, &e)
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                let p = message.partition();
                if !open.contains(&p) {
                    continue;
                }
                if message.offset() >= end_of(p) {
                    open.remove(&p);
                    continue;
                }
                f(&message);
                read += 1;
                if message.offset() + 1 >= end_of(p) {
                    open.remove(&p);
                }
            }
        }
    }
    Ok(read)
}

/// Follows a changing set of partitions of one topic without a consumer
/// group: the reader of a process's background folds. Blocking: use it from
/// a blocking thread.
pub struct Tail {
    consumer: BaseConsumer<Reader>,
    topic: String,
    /// The next offset of each assigned partition. Tansu 0.6 (with record
    /// batches of more than one record) hands a tailing consumer the last
    /// records of a partition again and again while nothing new arrives;
    /// a fold that took them twice would count them twice.
    next: std::sync::Mutex<HashMap<i32, i64>>,
}

impl Tail {
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self, ConnectorError> {
        Ok(Self {
            consumer: reader(config, "tail", false)?,
            topic: topic.to_owned(),
            next: std::sync::Mutex::default(),
        })
    }

    /// Reads `(partition, next offset)`s from now on, and nothing else.
    pub fn assign(&self, from: &[(i32, i64)]) -> Result<(), ConnectorError> {
        *self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = from.iter().copied().collect();
        if from.is_empty() {
            self.consumer.unassign()?;
            return Ok(());
        }
        let from: Vec<(&str, i32, i64)> = from
            .iter()
            .map(|(p, o)| (self.topic.as_str(), *p, *o))
            .collect();
        assign_from(&self.consumer, &from, Duration::from_secs(30))
    }

    /// The next record, if one arrives within `timeout`; each offset once.
    pub fn poll(&self, timeout: Duration) -> Option<Result<BorrowedMessage<'_>, ConnectorError>> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = match self
                .consumer
                .poll(deadline.saturating_duration_since(Instant::now()))?
            {
                Ok(m) => m,
                Err(e) if crate::broker::is_transient(&e) => {
                    crate::broker::note_transient(&self.topic, &e);
                    continue;
                }
                Err(e) => return Some(Err(e.into())),
            };
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let expected = next.entry(message.partition()).or_insert(0);
            if message.offset() >= *expected {
                *expected = message.offset() + 1;
                return Some(Ok(message));
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }
}

/// Reads the given `(topic, partition, start offset)`s without a consumer
/// group, handing each record to `f` until `f` says stop or `timeout`
/// passes. Returns whether `f` stopped it. Blocking: call it from a blocking
/// thread.
pub fn scan(
    config: &KafkaConfig,
    from: &[(String, i32, i64)],
    timeout: Duration,
    mut f: impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
) -> Result<bool, ConnectorError> {
    let consumer = reader(config, "scan", false)?;
    let from: Vec<(&str, i32, i64)> = from.iter().map(|(t, p, o)| (t.as_str(), *p, *o)).collect();
    assign_from(&consumer, &from, timeout)?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            if f(&message?).is_break() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Follows `topic`'s `partition` from `offset` without a consumer group,
/// handing each record to `f`, until `stop` says so (asked at least every
/// 100 ms). Blocking: call it from a blocking thread.
pub fn follow(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    offset: i64,
    mut stop: impl FnMut() -> bool,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ConnectorError> {
    let consumer = reader(config, "follow", false)?;
    assign_from(
        &consumer,
        &[(topic, partition, offset)],
        Duration::from_secs(30),
    )?;
    while !stop() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(e)) if crate::broker::is_transient(&e) => {
                crate::broker::note_transient(topic, &e)
            }
            Some(message) => f(&message?),
            None => {}
        }
    }
    Ok(())
}

/// Where `partition` of `topic` ends, as [`end_offsets`] reports it.
pub fn end_offset(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<i64, ConnectorError> {
    let consumer: BaseConsumer = config.client_config().create()?;
    let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    Ok(high)
}

/// Where each partition of `topic` ends, as ListOffsets reports it: a lower
/// bound on Tansu 0.6 (see [`read_partitions`]), exact on Kafka.
pub fn end_offsets(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i64>, ConnectorError> {
    Ok(watermarks(config, topic, partitions)?
        .into_iter()
        .map(|(_, high)| high)
        .collect())
}

/// Where each partition of `topic` starts and ends (its low and high
/// watermarks; the end as [`end_offsets`] says).
pub fn watermarks(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(i64, i64)>, ConnectorError> {
    let consumer: BaseConsumer = config.client_config().create()?;
    (0..partitions)
        .map(|p| Ok(consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for a consumer whose close waits on the broker.
    struct SlowClose(Duration);

    impl Drop for SlowClose {
        fn drop(&mut self) {
            std::thread::sleep(self.0);
        }
    }

    #[tokio::test]
    async fn a_close_that_hangs_is_given_up_on_within_the_bound() {
        let started = Instant::now();
        assert!(
            !close_within(
                SlowClose(Duration::from_secs(30)),
                Duration::from_millis(200)
            )
            .await
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(close_within(SlowClose(Duration::from_millis(10)), Duration::from_secs(5)).await);
    }
}
