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
use connectors::kafka;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};
use stages::progress::{Progress, Storable, Ticket, Undelivered};
use stages::{Batch, Collector, Plan, Stage, TICK};
use tracing::Instrument as _;

use super::checkpoint::run_checkpointer;
use super::metrics::StageMetrics;
use super::produce::{DeadLetter, dead_letter, produce};
use super::rebalance::Rebalances;
use super::restore::{checkpoints, committed, restore, unrestored};
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
    let kafka = &ctx.kafka;
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

    let max_in_flight = ctx.runtime.max_in_flight;
    ctx.metrics.in_flight_limit(name, max_in_flight);
    // The last consume error, while it keeps the stage not ready: until a
    // record arrives, or a while passes without another.
    let mut consume_failed: Option<Instant> = None;
    let mut states: HashMap<i32, S::State> = HashMap::new();
    let mut progress = Progress::default();
    let mut acks: Acks = FuturesUnordered::new();
    let polls = plan.wakeup.is_some();
    let wakeup = plan.wakeup.clone().unwrap_or_default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let metrics = ctx.metrics.stage(name);
    let run = Run {
        metrics: &metrics,
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
                metrics.in_flight(progress.in_flight());
            }
            () = wakeup.notified(), if polls => {
                run.poll(&mut states, &mut progress, &mut acks).await?;
            }
            _ = tick.tick() => {
                if consume_failed.is_some_and(|at| at.elapsed() >= CONSUME_RECOVERED) {
                    // librdkafka reports a lost broker once, not for as long
                    // as it stays lost: ready again only if it answers.
                    let topic = ctx.topics.name(plan.inputs[0]);
                    if consumer.fetch_metadata(Some(topic), BROKER_PROBE).is_ok() {
                        consume_failed = None;
                        ctx.health.ready(name);
                    } else {
                        consume_failed = Some(Instant::now());
                    }
                }
                if polls {
                    run.poll(&mut states, &mut progress, &mut acks).await?;
                }
            }
            received = consumer.recv(), if progress.in_flight() < max_in_flight => match received {
                Ok(message) => {
                    if consume_failed.take().is_some() {
                        ctx.health.ready(name);
                    }
                    run.process(&message, &mut states, &mut progress, &mut acks).await?;
                }
                Err(e) => {
                    tracing::warn!(stage = name, error = %e, "consume error; retrying");
                    ctx.metrics.consume_error(name);
                    ctx.health.not_ready(name, format!("consume error: {e}"));
                    consume_failed = Some(Instant::now());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    tracing::info!(stage = name, in_flight = progress.in_flight(), "draining");
    // Parked records are not finished; they are redelivered after a restart.
    progress.abandon_parked();
    let timeout = Duration::from_secs(ctx.runtime.shutdown_timeout_secs);
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

/// An id from a record as a log field: ids are set by front-ends, so one
/// that is long or holds anything but letters, digits and `-_.:` is logged
/// as `invalid` rather than written into the log as it came.
fn loggable(id: &str) -> &str {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if plain && id.len() <= 128 {
        id
    } else {
        "invalid"
    }
}

/// A stage is ready again this long after its last consume error, if no
/// record came in between to show it reads again and the broker answers.
const CONSUME_RECOVERED: Duration = Duration::from_secs(5);
/// How long the runner's loop waits for that answer (it blocks the loop, so
/// briefly, and only after a consume error).
const BROKER_PROBE: Duration = Duration::from_secs(1);

/// Closes the group consumer of a drained process, within
/// [`kafka::CLOSE_TIMEOUT`] (see [`kafka::close_within`]).
pub async fn close<T: Send + 'static>(name: &str, consumer: T) {
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
pub fn leave(
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
pub type Acks = FuturesUnordered<BoxFuture<'static, (Ticket, Result<(), KafkaError>)>>;

/// What processing one record needs, borrowed from [`run_stage`].
struct Run<'a, S: Stage> {
    metrics: &'a StageMetrics,
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
            let resume = self
                .plan
                .state
                .replay
                .iter()
                .map(|r| committed(self.consumer, ctx.topics.name(r.input), &missing))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let started = Instant::now();
            ctx.health
                .not_ready(name, format!("restoring partitions {missing:?}"));
            let restored = restore(self.stage, self.plan, ctx, missing, resume).await;
            ctx.health.ready(name);
            ctx.metrics.restored(name, started.elapsed());
            states.extend(restored?);
        }
        let started = Instant::now();
        self.metrics.consumed(topic);
        let Some(state) = states.get_mut(&partition) else {
            anyhow::bail!("{name}: partition {partition} has no state after restore");
        };
        let payload = message.payload().unwrap_or_default();
        let ticket = progress.begin(partition, Some((topic, offset)));
        let deliveries = match self.stage.decode(&ctx.codec, topic, payload) {
            Ok(record) => {
                // Every line logged while the record is handled carries its
                // trace, so one request can be followed across stages. At
                // debug (RUST_LOG=chatcart_runtime::runner=debug): with the
                // JSON logs a span costs about 1 µs a record, more than all
                // of its metrics (docs/operations.md).
                let span = tracing::debug_span!(
                    "record",
                    stage = name,
                    partition,
                    offset,
                    trace_id = loggable(record.trace_id()),
                );
                let mut out = Collector::new();
                span.in_scope(|| self.stage.handle(state, record, now_ms(), &mut out));
                if out.finished_count() > 0 {
                    anyhow::bail!("{name}: handle finished a parked record; only poll may");
                }
                if out.is_parked() {
                    progress.park(ticket);
                }
                self.metrics.emitted(out.emits(), now_ms());
                produce(self.producer, ctx, partition, out.emits())
                    .instrument(span)
                    .await?
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
                ctx.metrics.dead_letter(name, "undecodable");
                vec![dead_letter(self.producer, ctx, name, &DeadLetter::of(message), &error).await?]
            }
        };
        self.metrics.handled(started.elapsed());
        track(progress, acks, ticket, deliveries);
        self.metrics.in_flight(progress.in_flight());
        store(self.consumer, ctx, progress.storable_in(partition));
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
        let mut out = Collector::new();
        for (&partition, state) in states.iter_mut() {
            out.clear();
            self.stage.poll(state, now_ms(), &mut out);
            if out.is_parked() {
                anyhow::bail!("{name}: poll parked a record; only handle may");
            }
            for batch in out.batches() {
                let (ticket, emits) = match batch {
                    Batch::Own(emit) => {
                        (progress.begin(partition, None), std::slice::from_ref(emit))
                    }
                    Batch::Finished(emits) => {
                        let Some(ticket) = progress.finish_parked(partition) else {
                            anyhow::bail!(
                                "{name}: partition {partition} finished a record it never parked"
                            );
                        };
                        (ticket, emits)
                    }
                };
                self.metrics.emitted(emits, now_ms());
                let deliveries = produce(self.producer, self.ctx, partition, emits).await?;
                track(progress, acks, ticket, deliveries);
            }
        }
        self.metrics.in_flight(progress.in_flight());
        store(self.consumer, self.ctx, progress.storable());
        Ok(())
    }
}

/// Counts `deliveries` as outputs of `ticket`, and queues their
/// acknowledgements.
pub fn track(
    progress: &mut Progress,
    acks: &mut Acks,
    ticket: Ticket,
    deliveries: Vec<DeliveryFuture>,
) {
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
    store(consumer, ctx, progress.storable_in(ticket.partition()));
    Ok(())
}

/// Stores `done` offsets for the next commit.
fn store(consumer: &StreamConsumer<Rebalances>, ctx: &Context, done: Vec<Storable>) {
    for done in done {
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
pub fn store_offset(
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

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn only_plain_short_ids_reach_the_log() {
        assert_eq!(loggable("req-42_a.b:c"), "req-42_a.b:c");
        assert_eq!(loggable("x\ny"), "invalid", "a forged log line");
        assert_eq!(loggable("13800138000 张三"), "invalid");
        assert_eq!(loggable(&"a".repeat(129)), "invalid");
    }
}
