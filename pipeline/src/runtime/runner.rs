//! The consume → handle → produce → store-offset loop shared by every stage.
//!
//! Offsets are stored only after every output of a record is acknowledged by
//! the broker, in input order, so a crash at any point redelivers rather than
//! loses (the stages recognise redelivered requests by id). Outputs of many
//! records are in flight at once, up to `runtime.max_in_flight`, so the loop
//! never waits on one broker round trip per record.
//!
//! A stage may *park* a record (the coupon stage does while it waits for a
//! lease): the loop goes on with other records, and the parked record's
//! offset (and every later one) is stored only once a later
//! [`Stage::poll`] finishes it and its outputs are acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{self, enqueue, read_ranges};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use stages::progress::{Progress, Ticket, Undelivered};
use stages::{Emit, Output, Plan, Restore, Stage, Step, TICK, Topic};

use super::checkpoint::{self, run_checkpointer};
use super::rebalance::Rebalances;
use super::{Context, Shutdown, now_ms};

/// Runs `stage` until `shutdown` fires, then drains: finishes in-flight
/// outputs, stores and commits their offsets, flushes, and leaves the group.
pub async fn run_stage<S: Stage>(
    stage: S,
    ctx: Context,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stage = Arc::new(stage);
    let plan = stage.plan();
    let name = plan.id.name();
    let kafka = &ctx.settings.kafka;
    let producer: FutureProducer = kafka.producer()?;
    let consumer: StreamConsumer<Rebalances> = kafka
        .consumer_config(name)
        .create_with_context(Rebalances::new(
            name,
            Arc::clone(&ctx.ready),
            Some(producer.clone()),
        ))
        .context("creating consumer")?;
    let inputs: Vec<&str> = plan.inputs.iter().map(|t| ctx.topics.name(*t)).collect();
    consumer.subscribe(&inputs).context("subscribing")?;
    tracing::info!(stage = name, inputs = ?inputs, "stage running");
    // The checkpointer stops on shutdown, or once this is dropped.
    let running = Arc::new(());
    if checkpoints(&plan, &ctx) {
        tokio::spawn(run_checkpointer(
            Arc::clone(&stage),
            ctx.clone(),
            consumer.context().assignment(),
            Arc::downgrade(&running),
            shutdown.clone(),
        ));
    }

    let max_in_flight = ctx.settings.runtime.max_in_flight;
    let mut states: HashMap<i32, S::State> = HashMap::new();
    let mut progress = Progress::default();
    let mut acks: Acks = FuturesUnordered::new();
    let polls = plan.wakeup.is_some();
    let wakeup = plan.wakeup.clone().unwrap_or_default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let run = Run {
        stage: &stage,
        plan: &plan,
        ctx: &ctx,
        consumer: &consumer,
        producer: &producer,
    };

    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            Some((ticket, delivered)) = acks.next(), if !acks.is_empty() => {
                settle(&consumer, &ctx, &mut progress, ticket, delivered)?;
            }
            () = wakeup.notified(), if polls => {
                run.poll(&mut states, &mut progress, &mut acks).await?;
            }
            _ = tick.tick(), if polls => {
                run.poll(&mut states, &mut progress, &mut acks).await?;
            }
            received = consumer.recv(), if progress.in_flight() < max_in_flight => match received {
                Ok(message) => {
                    run.process(&message, &mut states, &mut progress, &mut acks).await?;
                }
                Err(e) => {
                    tracing::warn!(stage = name, error = %e, "consume error; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    tracing::info!(stage = name, in_flight = progress.in_flight(), "draining");
    // Parked records are not finished; they are redelivered after a restart.
    progress.abandon_parked();
    let timeout = Duration::from_secs(ctx.settings.runtime.shutdown_timeout_secs);
    let drained = tokio::time::timeout(timeout, async {
        while let Some((ticket, delivered)) = acks.next().await {
            settle(&consumer, &ctx, &mut progress, ticket, delivered)?;
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
    leave(name, &consumer, &producer, timeout)?;
    close(name, consumer).await;
    tracing::info!(stage = name, "stopped");
    Ok(())
}

/// Closes the group consumer of a drained process, within
/// [`kafka::CLOSE_TIMEOUT`] (see [`kafka::close_within`]).
pub(crate) async fn close<T: Send + 'static>(name: &str, consumer: T) {
    if !kafka::close_within(consumer, kafka::CLOSE_TIMEOUT).await {
        tracing::warn!(
            stage = name,
            timeout_secs = kafka::CLOSE_TIMEOUT.as_secs(),
            "the broker did not let the consumer leave its group in time; exiting anyway (everything is committed; the group expires this member after its session timeout)"
        );
    }
}

/// The end of a drain, once every output in flight is acknowledged and its
/// input offset stored: commits the stored offsets, flushes what else the
/// producer holds, and leaves the consumer group so the partitions move on
/// at once rather than after a session timeout.
pub(crate) fn leave(
    name: &str,
    consumer: &StreamConsumer<Rebalances>,
    producer: &FutureProducer,
    timeout: Duration,
) -> anyhow::Result<()> {
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last commit is reported as an error too.
        tracing::debug!(stage = name, error = %e, "final commit");
    }
    producer.flush(timeout).context("flushing producer")?;
    consumer.unsubscribe();
    Ok(())
}

/// Acknowledgements of outputs on their way to the broker, each with the
/// ticket of the input that caused it.
type Acks = FuturesUnordered<BoxFuture<'static, (Ticket, Result<(), KafkaError>)>>;

/// What processing one record needs, borrowed from [`run_stage`].
struct Run<'a, S: Stage> {
    stage: &'a Arc<S>,
    plan: &'a Plan,
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
        progress: &mut Progress,
        acks: &mut Acks,
    ) -> anyhow::Result<()> {
        let (ctx, name) = (self.ctx, self.plan.id.name());
        drop_revoked(self.consumer, states, progress);
        let (partition, offset) = (message.partition(), message.offset());
        let Some(topic) = ctx.topics.topic_of(message.topic()) else {
            return Ok(());
        };
        if !self.consumer.context().is_assigned(partition) {
            // Fetched before a revoke; the partition's new owner handles it.
            return Ok(());
        }
        if !states.contains_key(&partition) {
            let missing = unrestored(self.consumer, states, partition);
            tracing::debug!(
                stage = name,
                partition,
                offset,
                ?missing,
                "first record of an unrestored partition"
            );
            let resume = match self.plan.state.replay {
                Some(replay) => committed(self.consumer, ctx.topics.name(replay.input), &missing)?,
                None => Vec::new(),
            };
            states.extend(restore(self.stage, self.plan, ctx, missing, resume).await?);
        }
        let Some(state) = states.get_mut(&partition) else {
            anyhow::bail!("{name}: partition {partition} has no state after restore");
        };
        let payload = message.payload().unwrap_or_default();
        let ticket = progress.begin(partition, Some((topic, offset)));
        let deliveries = match self.stage.decode(&ctx.codec, topic, payload) {
            Ok(record) => {
                let Step { emits, parked } = self.stage.handle(state, record, now_ms());
                if parked {
                    progress.park(ticket);
                }
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
                vec![dead_letter(self.producer, ctx, name, &DeadLetter::of(message), &error).await?]
            }
        };
        track(progress, acks, ticket, deliveries);
        store(self.consumer, ctx, progress);
        Ok(())
    }

    /// Polls every partition's state and produces what it emits, finishing
    /// parked records in the order they were parked.
    async fn poll(
        &self,
        states: &mut HashMap<i32, S::State>,
        progress: &mut Progress,
        acks: &mut Acks,
    ) -> anyhow::Result<()> {
        let name = self.plan.id.name();
        drop_revoked(self.consumer, states, progress);
        for (&partition, state) in states.iter_mut() {
            for out in self.stage.poll(state, now_ms()) {
                let (ticket, emits) = match out {
                    Output::Emit(emit) => (progress.begin(partition, None), vec![*emit]),
                    Output::Finished(emits) => {
                        let Some(ticket) = progress.finish_parked(partition) else {
                            anyhow::bail!(
                                "{name}: partition {partition} finished a record it never parked"
                            );
                        };
                        (ticket, emits)
                    }
                };
                let deliveries = produce(self.producer, self.ctx, partition, emits).await?;
                track(progress, acks, ticket, deliveries);
            }
        }
        store(self.consumer, self.ctx, progress);
        Ok(())
    }
}

/// Counts `deliveries` as outputs of `ticket`, and queues their
/// acknowledgements.
fn track(progress: &mut Progress, acks: &mut Acks, ticket: Ticket, deliveries: Vec<Delivery>) {
    progress.expect(ticket, deliveries.len());
    for delivery in deliveries {
        acks.push(
            async move {
                let delivered = match delivery.await {
                    Ok(Ok(d)) => {
                        tracing::trace!(
                            input_partition = ticket.partition(),
                            partition = d.partition,
                            offset = d.offset,
                            "output acknowledged"
                        );
                        Ok(())
                    }
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                };
                (ticket, delivered)
            }
            .boxed(),
        );
    }
}

/// Records an output's acknowledgement and stores the offsets that are
/// then done. A lost output stops the stage: storing later offsets would
/// skip its input.
fn settle(
    consumer: &StreamConsumer<Rebalances>,
    ctx: &Context,
    progress: &mut Progress,
    ticket: Ticket,
    delivered: Result<(), KafkaError>,
) -> anyhow::Result<()> {
    let failure = delivered.as_ref().err().cloned();
    if let Err(Undelivered { partition, input }) = progress.acknowledged(ticket, failure.is_none())
    {
        let error = anyhow::Error::new(failure.unwrap_or(KafkaError::Canceled));
        return Err(match input {
            Some((topic, offset)) => error.context(format!(
                "output of {}[{partition}]@{offset} was not delivered; stopping so it is redelivered",
                ctx.topics.name(topic)
            )),
            None => error.context(format!(
                "an output for partition {partition} was not delivered; stopping so the partition is restored"
            )),
        });
    }
    store(consumer, ctx, progress);
    Ok(())
}

/// Stores, for the next commit, every input offset that is done.
fn store(consumer: &StreamConsumer<Rebalances>, ctx: &Context, progress: &mut Progress) {
    for done in progress.storable() {
        store_offset(
            consumer,
            ctx.topics.name(done.topic),
            done.partition,
            done.offset,
        );
    }
}

/// Stores `offset` of `topic[partition]` (an input whose outputs are all
/// acknowledged) for the next commit.
pub(crate) fn store_offset(
    consumer: &StreamConsumer<Rebalances>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    tracing::trace!(topic, partition, offset, "storing offset");
    if let Err(e) = consumer.store_offset(topic, partition, offset) {
        // The partition was revoked meanwhile; its new owner redoes the record.
        tracing::debug!(topic, partition, error = %e, "offset not stored");
    }
}

/// Drops the state and the progress of revoked partitions. Their outputs
/// already produced were flushed when they were revoked (see
/// [`Rebalances`]), so a new owner's restore sees them.
fn drop_revoked<St>(
    consumer: &StreamConsumer<Rebalances>,
    states: &mut HashMap<i32, St>,
    progress: &mut Progress,
) {
    let revoked = consumer.context().take_revoked();
    if revoked.is_empty() {
        return;
    }
    states.retain(|p, _| !revoked.contains(p));
    for p in revoked {
        progress.abandon(p);
    }
}

/// Rebuilds the state of `partitions` by folding the stage's own output, in
/// one pass over all of them, so taking over many partitions costs one read
/// rather than one per partition.
async fn restore<S: Stage>(
    stage: &Arc<S>,
    plan: &Plan,
    ctx: &Context,
    partitions: Vec<i32>,
    resume: Vec<(i32, i64)>,
) -> anyhow::Result<HashMap<i32, S::State>> {
    let mut states: HashMap<i32, S::State> = partitions
        .iter()
        .map(|p| (*p, stage.new_state(*p)))
        .collect();
    let Some(own) = plan.state.own_output else {
        return Ok(states);
    };
    let (stage, ctx, replay, name) = (
        Arc::clone(stage),
        ctx.clone(),
        plan.state.replay,
        plan.id.name(),
    );
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(ctx.settings.runtime.restore_timeout_secs);
        if let Some(replay) = replay {
            let topic = ctx.topics.name(replay.input);
            let mut ranges = Vec::with_capacity(resume.len());
            let mut from_checkpoint: HashMap<i32, i64> = HashMap::new();
            for (p, end) in &resume {
                let start = match (replay.from_checkpoints_of, states.get_mut(p)) {
                    // Nothing to replay (a group's first start) needs no lookup.
                    (Some(writer), Some(state)) if checkpoints_on(&ctx) && *end > 0 => {
                        let at = ReplayAt {
                            partition: *p,
                            end: *end,
                            timeout,
                        };
                        replay_start(&*stage, name, &ctx, writer.name(), at, state)?
                    }
                    _ => 0,
                };
                if start > 0 {
                    from_checkpoint.insert(*p, start);
                }
                ranges.push((*p, start, *end));
            }
            let read = read_ranges(&ctx.settings.kafka, topic, &ranges, timeout, |message| {
                let Some(state) = states.get_mut(&message.partition()) else {
                    return;
                };
                if let Ok(record) = ctx.codec.decode(message.payload().unwrap_or_default()) {
                    // A record never fails to fold; only images can.
                    let _ = stage.restore(state, Restore::Input(&record));
                }
            })?;
            tracing::info!(
                stage = name,
                topic,
                ?resume,
                ?from_checkpoint,
                records = read,
                "input replayed"
            );
        }
        let (source, topic) = (own.topic, ctx.topics.name(own.topic));
        let mut from: HashMap<i32, i64> = HashMap::new();
        if own.checkpoints && checkpoints_on(&ctx) {
            for (p, state) in &mut states {
                if let Some(manifest) = checkpoint::resume(&*stage, &ctx, *p, state, timeout)? {
                    from.insert(*p, manifest.covers);
                }
            }
        }
        if let Some(window) = own.window {
            let ends = kafka::end_offsets(
                &ctx.settings.kafka,
                topic,
                source.partitions(ctx.settings.kafka.partitions),
            )?;
            for p in &partitions {
                let end = usize::try_from(*p).ok().and_then(|p| ends.get(p)).copied();
                let start = end.unwrap_or(0).saturating_sub(i64::try_from(window)?);
                from.insert(*p, start.max(0));
            }
        }
        let ranges: Vec<(i32, i64, i64)> = partitions
            .iter()
            .map(|p| (*p, from.get(p).copied().unwrap_or(0), i64::MAX))
            .collect();
        let mut undecodable = 0u64;
        let read = read_ranges(&ctx.settings.kafka, topic, &ranges, timeout, |message| {
            let Some(state) = states.get_mut(&message.partition()) else {
                return;
            };
            match ctx.codec.decode(message.payload().unwrap_or_default()) {
                Ok(record) => {
                    let _ = stage.restore(state, Restore::Output(&record));
                }
                Err(_) => undecodable += 1,
            }
        })?;
        if undecodable > 0 {
            tracing::warn!(
                stage = name,
                topic,
                undecodable,
                "skipped undecodable records while restoring"
            );
        }
        tracing::info!(
            stage = name,
            topic,
            ?partitions,
            from_checkpoint = ?from,
            records = read,
            ms = started.elapsed().as_millis() as u64,
            "state restored"
        );
        anyhow::Ok(states)
    })
    .await?
}

/// Whether the stage keeps checkpoints of its own-output fold (it says so,
/// and they are on).
fn checkpoints(plan: &Plan, ctx: &Context) -> bool {
    checkpoints_on(ctx) && plan.state.own_output.is_some_and(|o| o.checkpoints)
}

fn checkpoints_on(ctx: &Context) -> bool {
    ctx.settings.runtime.checkpoint_min_records > 0
}

/// A replay of `partition` up to `end`, read within `timeout`.
#[derive(Debug, Clone, Copy)]
struct ReplayAt {
    partition: i32,
    end: i64,
    timeout: Duration,
}

/// Where the replay of `partition` (up to `end`) starts: after the newest
/// checkpoint of `writer` that covers no more than `end`, loaded into
/// `state`; or at 0 when there is none or its image does not load.
fn replay_start<S: Stage>(
    stage: &S,
    name: &str,
    ctx: &Context,
    writer: &str,
    at: ReplayAt,
    state: &mut S::State,
) -> anyhow::Result<i64> {
    let ReplayAt {
        partition,
        end,
        timeout,
    } = at;
    // The writer may have checkpointed past `end` since; an older
    // checkpoint still spares most of the replay.
    let Some((manifest, image)) =
        checkpoint::latest_covering_at_most(ctx, writer, partition, end, timeout)?
    else {
        return Ok(0);
    };
    match stage.restore(state, Restore::InputImage(&image)) {
        Ok(()) => Ok(manifest.covers),
        Err(error) => {
            tracing::warn!(
                stage = name,
                partition,
                %error,
                "a checkpoint image did not load; replaying from the first record"
            );
            Ok(0)
        }
    }
}

/// The group's committed offset of `topic` for each of `partitions`: where
/// consumption resumes (0 when nothing was committed).
fn committed(
    consumer: &StreamConsumer<Rebalances>,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<(i32, i64)>> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .with_context(|| format!("reading committed offsets of {topic}"))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), o),
            _ => (e.partition(), 0),
        })
        .collect())
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

pub type Delivery = rdkafka::producer::DeliveryFuture;

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

/// A record for the dead-letter topic: where it came from and what to keep.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> DeadLetter<'a> {
    /// A consumed record, unchanged.
    pub fn of(message: &'a impl Message) -> Self {
        Self {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload().unwrap_or_default(),
        }
    }
}

/// Queues `letter` to the dead-letter topic (same partition) with headers
/// saying where it came from, which stage refused it and why.
pub async fn dead_letter(
    producer: &FutureProducer,
    ctx: &Context,
    stage: &str,
    letter: &DeadLetter<'_>,
    error: &str,
) -> anyhow::Result<Delivery> {
    let (partition_s, offset_s) = (letter.partition.to_string(), letter.offset.to_string());
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "chatcart.source.topic",
            value: Some(letter.topic),
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
        .partition(letter.partition)
        .payload(letter.payload)
        .headers(headers);
    if let Some(key) = letter.key {
        record = record.key(key);
    }
    Ok(enqueue(producer, record).await?)
}
