//! The consume → handle → produce → store-offset loop shared by every stage.
//!
//! Offsets are stored only after every output of a record is acknowledged by
//! the broker, in input order, so a crash at any point redelivers rather than
//! loses (the stages recognise redelivered requests by id). Outputs of many
//! records are in flight at once, up to `runtime.max_in_flight`, so the loop
//! never waits on one broker round trip per record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{enqueue, read_partitions};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::rebalance::Rebalances;
use super::{Context, Emit, Shutdown, Stage, now_ms};
use crate::topics::Topic;

/// An input record whose outputs are on their way to the broker.
struct Pending {
    topic: Topic,
    partition: i32,
    offset: i64,
    acked: Result<(), KafkaError>,
}

/// Runs `stage` until `shutdown` fires, then drains: finishes in-flight
/// outputs, stores and commits their offsets, flushes, and leaves the group.
pub async fn run_stage<S: Stage>(
    stage: S,
    ctx: Context,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stage = Arc::new(stage);
    let name = stage.name();
    let kafka = &ctx.settings.kafka;
    let consumer: StreamConsumer<Rebalances> = kafka
        .consumer_config(name)
        .create_with_context(Rebalances::new(name, Arc::clone(&ctx.ready)))
        .context("creating consumer")?;
    let producer: FutureProducer = kafka.producer()?;
    let inputs: Vec<&str> = stage.inputs().iter().map(|t| ctx.topics.name(*t)).collect();
    consumer.subscribe(&inputs).context("subscribing")?;
    tracing::info!(stage = name, inputs = ?inputs, "stage running");

    let max_in_flight = ctx.settings.runtime.max_in_flight;
    let mut states: HashMap<i32, S::State> = HashMap::new();
    let mut inflight: InFlight = FuturesOrdered::new();
    let run = Run {
        stage: &stage,
        ctx: &ctx,
        consumer: &consumer,
        producer: &producer,
    };

    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                store(&consumer, &ctx, done)?;
            }
            received = consumer.recv(), if inflight.len() < max_in_flight => match received {
                Ok(message) => {
                    run.process(&message, &mut states, &mut inflight).await?;
                }
                Err(e) => {
                    tracing::warn!(stage = name, error = %e, "consume error; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    tracing::info!(stage = name, in_flight = inflight.len(), "draining");
    let timeout = Duration::from_secs(ctx.settings.runtime.shutdown_timeout_secs);
    let drained = tokio::time::timeout(timeout, async {
        while let Some(done) = inflight.next().await {
            store(&consumer, &ctx, done)?;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => anyhow::bail!(
            "{name}: outputs not acknowledged within {}s of shutdown; their inputs will be redelivered",
            timeout.as_secs()
        ),
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is reported as an error too.
        tracing::debug!(stage = name, error = %e, "final commit");
    }
    producer.flush(timeout).context("flushing producer")?;
    consumer.unsubscribe();
    tracing::info!(stage = name, "stopped");
    Ok(())
}

type InFlight = FuturesOrdered<BoxFuture<'static, Pending>>;

/// What processing one record needs, borrowed from [`run_stage`].
struct Run<'a, S: Stage> {
    stage: &'a Arc<S>,
    ctx: &'a Context,
    consumer: &'a StreamConsumer<Rebalances>,
    producer: &'a FutureProducer,
}

impl<S: Stage> Run<'_, S> {
    /// Handles one input record: drops revoked state, restores what is
    /// missing, decodes (or dead-letters), handles, and queues the outputs,
    /// whose acknowledgement later stores the record's offset.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        states: &mut HashMap<i32, S::State>,
        inflight: &mut InFlight,
    ) -> anyhow::Result<()> {
        let (ctx, name) = (self.ctx, self.stage.name());
        drop_revoked(self.consumer, ctx, inflight, states).await?;
        let (partition, offset) = (message.partition(), message.offset());
        let Some(topic) = ctx.topics.topic_of(message.topic()) else {
            return Ok(());
        };
        if !states.contains_key(&partition) {
            let missing = unrestored(self.consumer, states, partition);
            tracing::debug!(
                stage = name,
                partition,
                offset,
                ?missing,
                "first record of an unrestored partition"
            );
            states.extend(restore(self.stage, ctx, missing).await?);
        }
        let Some(state) = states.get_mut(&partition) else {
            anyhow::bail!("{name}: partition {partition} has no state after restore");
        };
        let payload = message.payload().unwrap_or_default();
        let deliveries = match self.stage.decode(&ctx.codec, topic, payload) {
            Ok(record) => {
                let emits = self.stage.handle(state, record, now_ms());
                produce(self.producer, ctx, partition, emits).await?
            }
            Err(error) => {
                tracing::warn!(
                    stage = name,
                    topic = message.topic(),
                    partition,
                    offset,
                    %error,
                    "undecodable record sent to the dead-letter topic"
                );
                let error = error.to_string();
                vec![dead_letter(self.producer, ctx, name, message, &error).await?]
            }
        };
        inflight.push_back(
            async move {
                let mut acked = Ok(());
                for delivery in deliveries {
                    match delivery.await {
                        Ok(Ok(d)) => tracing::trace!(
                            stage = name,
                            input_partition = partition,
                            input_offset = offset,
                            partition = d.partition,
                            offset = d.offset,
                            "output acknowledged"
                        ),
                        Ok(Err((e, _))) => acked = Err(e),
                        Err(_) => acked = Err(KafkaError::Canceled),
                    }
                }
                Pending {
                    topic,
                    partition,
                    offset,
                    acked,
                }
            }
            .boxed(),
        );
        Ok(())
    }
}

/// Stores the offset of an input whose outputs are all acknowledged. A
/// failed delivery stops the stage: storing later offsets would skip it.
fn store(
    consumer: &StreamConsumer<Rebalances>,
    ctx: &Context,
    done: Pending,
) -> anyhow::Result<()> {
    let topic = ctx.topics.name(done.topic);
    done.acked.with_context(|| {
        format!(
            "output of {topic}[{}]@{} was not delivered; stopping so it is redelivered",
            done.partition, done.offset
        )
    })?;
    tracing::trace!(
        topic,
        partition = done.partition,
        offset = done.offset,
        "storing offset"
    );
    if let Err(e) = consumer.store_offset(topic, done.partition, done.offset) {
        // The partition was revoked meanwhile; its new owner redoes the record.
        tracing::debug!(topic, partition = done.partition, error = %e, "offset not stored");
    }
    Ok(())
}

/// Drops the state of revoked partitions, after the outputs already in
/// flight are acknowledged so a later restore of the partition sees them.
async fn drop_revoked<St>(
    consumer: &StreamConsumer<Rebalances>,
    ctx: &Context,
    inflight: &mut InFlight,
    states: &mut HashMap<i32, St>,
) -> anyhow::Result<()> {
    let revoked = consumer.context().take_revoked();
    if revoked.is_empty() {
        return Ok(());
    }
    while let Some(done) = inflight.next().await {
        store(consumer, ctx, done)?;
    }
    states.retain(|p, _| !revoked.contains(p));
    Ok(())
}

/// Rebuilds the state of `partitions` by folding the stage's own output, in
/// one pass over all of them, so taking over many partitions costs one read
/// rather than one per partition.
async fn restore<S: Stage>(
    stage: &Arc<S>,
    ctx: &Context,
    partitions: Vec<i32>,
) -> anyhow::Result<HashMap<i32, S::State>> {
    let mut states: HashMap<i32, S::State> = partitions
        .iter()
        .map(|p| (*p, stage.new_state(*p)))
        .collect();
    let Some(source) = stage.restore_from() else {
        return Ok(states);
    };
    let (stage, ctx) = (Arc::clone(stage), ctx.clone());
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let topic = ctx.topics.name(source);
        let timeout = Duration::from_secs(ctx.settings.runtime.restore_timeout_secs);
        let mut undecodable = 0u64;
        let read = read_partitions(
            &ctx.settings.kafka,
            topic,
            &partitions,
            timeout,
            |message| {
                let Some(state) = states.get_mut(&message.partition()) else {
                    return;
                };
                match ctx.codec.decode(message.payload().unwrap_or_default()) {
                    Ok(record) => stage.restore(state, &record),
                    Err(_) => undecodable += 1,
                }
            },
        )?;
        if undecodable > 0 {
            tracing::warn!(
                stage = stage.name(),
                topic,
                undecodable,
                "skipped undecodable records while restoring"
            );
        }
        tracing::info!(
            stage = stage.name(),
            topic,
            ?partitions,
            records = read,
            ms = started.elapsed().as_millis() as u64,
            "state restored"
        );
        anyhow::Ok(states)
    })
    .await?
}

/// The partitions assigned to `consumer` that have no state yet, and
/// `partition` (whose record is at hand) in any case.
fn unrestored<St>(
    consumer: &StreamConsumer<Rebalances>,
    states: &HashMap<i32, St>,
    partition: i32,
) -> Vec<i32> {
    let mut missing: Vec<i32> = consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    missing.push(partition);
    missing.retain(|p| !states.contains_key(p));
    missing.sort_unstable();
    missing.dedup();
    missing
}

type Delivery = rdkafka::producer::DeliveryFuture;

/// Encodes and queues a stage's outputs to partition `partition` (0 for the
/// one-partition treasury).
async fn produce(
    producer: &FutureProducer,
    ctx: &Context,
    partition: i32,
    emits: Vec<Emit>,
) -> anyhow::Result<Vec<Delivery>> {
    let mut deliveries = Vec::with_capacity(emits.len());
    for emit in emits {
        let bytes = ctx.codec.encode(&emit.record)?;
        let target = if emit.topic == Topic::Treasury {
            0
        } else {
            partition
        };
        let record = FutureRecord::to(ctx.topics.name(emit.topic))
            .partition(target)
            .key(emit.record.user_id())
            .payload(&bytes[..]);
        deliveries.push(enqueue(producer, record).await?);
    }
    Ok(deliveries)
}

/// Sends an undecodable input, unchanged, to the dead-letter topic with
/// headers saying where it came from and why it was refused.
async fn dead_letter(
    producer: &FutureProducer,
    ctx: &Context,
    stage: &str,
    message: &impl Message,
    error: &str,
) -> anyhow::Result<Delivery> {
    let (partition_s, offset_s) = (
        message.partition().to_string(),
        message.offset().to_string(),
    );
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "chatcart.source.topic",
            value: Some(message.topic()),
        })
        .insert(Header {
            key: "chatcart.source.partition",
            value: Some(&partition_s),
        })
        .insert(Header {
            key: "chatcart.source.offset",
            value: Some(&offset_s),
        })
        .insert(Header {
            key: "chatcart.stage",
            value: Some(stage),
        })
        .insert(Header {
            key: "chatcart.error",
            value: Some(error),
        });
    let mut record = FutureRecord::to(ctx.topics.name(Topic::Dlq))
        .partition(message.partition())
        .payload(message.payload().unwrap_or_default())
        .headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    Ok(enqueue(producer, record).await?)
}
