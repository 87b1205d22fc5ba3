//! The raw hop: one produce and one consume of the same records with the
//! pipeline's client settings and nothing else, the broker's own limit for
//! one hop of the pipeline on this machine. The relay and the stages are
//! compared with it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{create_topics, enqueue, partition_count};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tokio::task::JoinSet;

use runtime::config::Settings;
use runtime::rebalance::{Ready, Rebalances};
use runtime::runner::store_offset;

/// Distinct keys of the records, so every partition gets its share.
const USERS: u64 = 100_000;

/// How long the consumer may take to join its group.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one raw hop measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hop {
    pub records: u64,
    /// From the first send to the last acknowledgement.
    pub produce_secs: f64,
    /// From the first send until the consumer has read every record.
    pub hop_secs: f64,
    pub produce_per_sec: f64,
    pub hop_per_sec: f64,
}

impl Hop {
    fn new(records: u64, produce: Duration, hop: Duration) -> Self {
        let per_sec = |d: Duration| {
            let secs = d.as_secs_f64();
            if secs > 0.0 {
                records as f64 / secs
            } else {
                0.0
            }
        };
        Self {
            records,
            produce_secs: produce.as_secs_f64(),
            hop_secs: hop.as_secs_f64(),
            produce_per_sec: per_sec(produce),
            hop_per_sec: per_sec(hop),
        }
    }
}

/// How long the consumer may take to read `records` records back.
fn read_timeout(records: u64) -> Duration {
    Duration::from_secs(60 + records / 10_000)
}

/// Produces `records` copies of `payload` to `topic` (a full name, created
/// here with `kafka.partitions` partitions; it must not exist yet, so that
/// only this run's records are counted) with the stages' producer settings,
/// keyed by `user-0` … `user-99999`, while a consumer in a fresh group reads
/// them back, storing offsets as a stage does. The consumer joins before
/// the first send, so the group join is not measured.
pub async fn raw_hop(
    settings: &Settings,
    topic: &str,
    records: u64,
    payload: &[u8],
) -> anyhow::Result<Hop> {
    if records == 0 {
        anyhow::bail!("a raw hop needs at least one record");
    }
    let kafka = &settings.kafka;
    let exists = {
        let (kafka, topic) = (kafka.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || partition_count(&kafka, &topic)).await??
    };
    if exists.is_some() {
        anyhow::bail!(
            "topic {topic} already exists: a raw hop counts every record it reads back, so give it a topic name of its own (a fresh one per run)"
        );
    }
    create_topics(kafka, &[(topic.to_owned(), kafka.partitions)])
        .await
        .with_context(|| format!("creating {topic}"))?;

    let group = format!("bench-raw-{}-{}", std::process::id(), runtime::now_ms());
    let ready = Arc::new(Ready::default());
    let consumer: StreamConsumer<Rebalances> = kafka
        .consumer_config(&group)
        .create_with_context(Rebalances::new("bench-raw", Arc::clone(&ready), None))
        .context("creating the raw hop's consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    let read = Arc::new(AtomicU64::new(0));
    // A set, so an early return (an error, a timeout) also stops the reader.
    let mut reader = JoinSet::new();
    reader.spawn(read_back(consumer, records, Arc::clone(&read)));
    if !ready.wait_for(1, JOIN_TIMEOUT).await {
        anyhow::bail!(
            "the raw hop's consumer got no partitions of {topic} within {}s: is the broker up and the topic created?",
            JOIN_TIMEOUT.as_secs()
        );
    }

    let producer = kafka.producer()?;
    let started = Instant::now();
    let mut deliveries = FuturesUnordered::new();
    let mut key = String::new();
    for i in 0..records {
        key.clear();
        let _ = write!(key, "user-{}", i % USERS);
        let record = FutureRecord::to(topic).key(key.as_str()).payload(payload);
        deliveries.push(enqueue(&producer, record).await?);
        // Settle what is acknowledged already, so failures surface early
        // and the set stays small.
        while let Some(Some(delivered)) = deliveries.next().now_or_never() {
            acknowledged(delivered, topic)?;
        }
        if i % 1_000 == 999 {
            // The loop rarely waits; on a single-threaded runtime the
            // reader would otherwise only run once everything is sent.
            tokio::task::yield_now().await;
        }
    }
    while let Some(delivered) = deliveries.next().await {
        acknowledged(delivered, topic)?;
    }
    let produced = started.elapsed();

    let timeout = read_timeout(records);
    let done = match tokio::time::timeout(timeout.saturating_sub(produced), reader.join_next())
        .await
    {
        Ok(Some(joined)) => joined.context("the raw hop's consumer task")??,
        Ok(None) => anyhow::bail!("the raw hop's consumer task is gone"),
        Err(_) => anyhow::bail!(
            "only {} of {records} records came back from {topic} within {}s: is the broker overloaded? (read errors are logged)",
            read.load(Ordering::Relaxed),
            timeout.as_secs()
        ),
    };
    Ok(Hop::new(records, produced, done.duration_since(started)))
}

fn acknowledged(
    delivered: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
    topic: &str,
) -> anyhow::Result<()> {
    match delivered {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(anyhow::Error::new(e).context(format!(
            "a record for {topic} was not delivered; check the broker's log"
        ))),
        Err(_) => {
            anyhow::bail!("the producer was dropped before a record for {topic} was delivered")
        }
    }
}

/// Reads until `records` records have arrived; returns when the last did.
async fn read_back(
    consumer: StreamConsumer<Rebalances>,
    records: u64,
    read: Arc<AtomicU64>,
) -> anyhow::Result<Instant> {
    let mut count = 0u64;
    while count < records {
        match consumer.recv().await {
            Ok(message) => {
                store_offset(
                    &consumer,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                );
                count += 1;
                read.store(count, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "raw hop: consume error; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let done = Instant::now();
    consumer.unsubscribe();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_timeouts() {
        let hop = Hop::new(10_000, Duration::from_secs(2), Duration::from_millis(2_500));
        assert_eq!(hop.produce_per_sec, 5_000.0);
        assert_eq!(hop.hop_per_sec, 4_000.0);
        assert_eq!(Hop::new(1, Duration::ZERO, Duration::ZERO).hop_per_sec, 0.0);
        assert_eq!(read_timeout(10_000), Duration::from_secs(61));
        assert_eq!(read_timeout(1_000_000), Duration::from_secs(160));
    }
}
