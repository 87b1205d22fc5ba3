//! The sink's loop: consume every topic, batch rows, insert each batch as one
//! statement, then store the batch's offsets.
//!
//! ClickHouse, not the consumer group, says where to resume ([`Cursors`]), so
//! a crash between insert and commit, or a rebalance, neither loses nor
//! repeats a row. While ClickHouse is unavailable the sink pauses its
//! partitions, keeps polling (so it stays in the group and sees
//! rebalances), reports itself unhealthy and retries with backoff; memory
//! stays at one batch plus the consumer's bounded prefetch queue. A batch
//! the server refuses for its data is split in halves until the refused rows
//! are found; each goes to the dead-letter topic and a `poison` row takes
//! its place, so the offset is still held exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connectors::clickhouse::migrate::migrate;
use connectors::clickhouse::store::{Failure, insert_events, record_campaigns, stored_positions};
use connectors::{ClickHouseClient, ClickHouseConfig, ConnectorError, EventRow};
use ledger::campaign::Campaigns;
use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::cursor::{Cursors, Disposition, Resolution};
use super::row::{campaign_rows, row};
use crate::rebalance::Rebalances;
use crate::{Context, DeadLetter, Shutdown, dead_letter, now_ms};
use stages::Topic;

/// The name the sink reports its health and dead letters under.
const PART: &str = "analytics";
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest error text kept in a `poison` row or a dead-letter header.
const MAX_ERROR_CHARS: usize = 500;

/// Testing hooks, read from the environment once. Documented in
/// docs/analytics.md; they only ever make the sink worse.
#[derive(Debug, Default)]
struct Faults {
    /// `CHATCART_FAULT_SINK_ABORT_AFTER_INSERTS=N`: abort the process right
    /// after the Nth batch insert, before its offsets are stored (the
    /// window a crash-consistency test needs to hit every time).
    abort_after_inserts: Option<u64>,
    /// `CHATCART_FAULT_SINK_TRUSTS_KAFKA=1`: resume from the committed
    /// offset instead of what ClickHouse holds, to show the tests notice.
    trusts_kafka: bool,
    /// `CHATCART_FAULT_SINK_RETRIES_BLIND=1`: retry a failed insert with
    /// all its rows, without asking what of it ClickHouse already holds.
    retries_blind: bool,
}

impl Faults {
    fn from_env() -> Self {
        let faults = Self {
            abort_after_inserts: std::env::var("CHATCART_FAULT_SINK_ABORT_AFTER_INSERTS")
                .ok()
                .and_then(|v| v.parse().ok()),
            trusts_kafka: std::env::var("CHATCART_FAULT_SINK_TRUSTS_KAFKA").is_ok_and(|v| v == "1"),
            retries_blind: std::env::var("CHATCART_FAULT_SINK_RETRIES_BLIND")
                .is_ok_and(|v| v == "1"),
        };
        if faults.abort_after_inserts.is_some() || faults.trusts_kafka || faults.retries_blind {
            tracing::warn!(?faults, "analytics sink running with injected faults");
        }
        faults
    }
}

struct Sink {
    ctx: Context,
    client: ClickHouseClient,
    /// `clickhouse.insert_timeout_ms`.
    insert_timeout_ms: u64,
    producer: FutureProducer,
    topics: Vec<String>,
    default_campaign: String,
    /// Send `insert_deduplication_token` (servers from 22.2).
    dedup: bool,
    cursors: Cursors,
    /// At most `clickhouse.batch_rows` rows.
    batch: Vec<EventRow>,
    /// What ClickHouse held at the last lookup, plus what this sink has
    /// written since; dropped when the assignment changes. Kept across
    /// writes, so the partitions of an assignment are resolved with one
    /// lookup, not one per insert in between: each lookup reads every row
    /// of the sink's topics.
    stored: Option<HashMap<(String, i32), i64>>,
    inserts: u64,
    faults: Faults,
}

/// How a wait while ClickHouse is away ended.
enum Waited {
    Elapsed,
    Revoked,
    Shutdown,
}

/// Runs the sink into the ClickHouse `ch` names until `shutdown` fires;
/// then inserts what it holds and commits. `campaigns` are recorded beside
/// the events, for the views.
pub async fn run_sink(
    ctx: Context,
    ch: ClickHouseConfig,
    campaigns: &Campaigns,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let client = ch.client();
    // ClickHouse may come up after the pipeline: keep trying rather than
    // failing the process (and with it every stage running beside the sink).
    let mut backoff = Duration::from_millis(500);
    let migrated = loop {
        match migrate(&ch).await {
            Ok(m) => break m,
            Err(e @ ConnectorError::Migration { .. }) => return Err(e.into()),
            Err(e) => {
                ctx.health
                    .unhealthy(PART, format!("cannot migrate the schema: {e}"));
                if sleep_or_shutdown(backoff, &mut shutdown).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    tracing::info!(server = %migrated.server.text, applied = ?migrated.applied, "ClickHouse schema up to date");
    while let Err(e) = record_campaigns(&client, &campaign_rows(campaigns, now_ms())).await {
        ctx.health
            .unhealthy(PART, format!("cannot record campaigns: {e}"));
        if sleep_or_shutdown(backoff, &mut shutdown).await {
            return Ok(());
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    ctx.health.healthy(PART);

    let consumer: StreamConsumer<Rebalances> = ctx
        .kafka
        .consumer_config(PART)
        .create_with_context(Rebalances::new(PART, Arc::clone(&ctx.ready), None))
        .context("creating consumer")?;
    let topics: Vec<String> = Topic::ANALYTICS
        .iter()
        .map(|t| ctx.topics.name(*t).to_owned())
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).context("subscribing")?;
    tracing::info!(database = %ch.database, "analytics sink running");

    let mut sink = Sink {
        producer: ctx.kafka.producer()?,
        client,
        insert_timeout_ms: ch.insert_timeout_ms,
        topics,
        default_campaign: campaigns.default_id().to_owned(),
        dedup: migrated.dialect.dedup_token,
        cursors: Cursors::default(),
        batch: Vec::with_capacity(ch.batch_rows.min(100_000)),
        stored: None,
        inserts: 0,
        faults: Faults::from_env(),
        ctx,
    };
    let max_wait = Duration::from_millis(ch.batch_max_wait_ms);
    let mut deadline = Instant::now() + max_wait;
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            () = tokio::time::sleep_until(deadline), if !sink.batch.is_empty() => {
                sink.flush(&consumer, &mut shutdown).await;
            }
            received = consumer.recv() => {
                let message = match received {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "consume error; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if !consumer.context().take_revoked().is_empty() {
                    sink.abandon();
                }
                if sink.batch.is_empty() {
                    deadline = Instant::now() + max_wait;
                }
                sink.take(&consumer, &message, &mut shutdown).await;
                if sink.batch.len() >= ch.batch_rows {
                    sink.flush(&consumer, &mut shutdown).await;
                }
            }
        }
    }
    // One last insert so a drain leaves nothing to re-read; `shutdown` has
    // fired, so a refused insert is not retried.
    sink.flush(&consumer, &mut shutdown).await;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit");
    }
    consumer.unsubscribe();
    crate::runner::close(PART, consumer).await;
    tracing::info!("analytics sink stopped");
    Ok(())
}

/// Sleeps for `wait`; true if the drain started meanwhile.
async fn sleep_or_shutdown(wait: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = shutdown.wait() => true,
    }
}

fn seek(consumer: &StreamConsumer<Rebalances>, topic: &str, partition: i32, to: Offset) -> bool {
    match consumer.seek(topic, partition, to, Duration::from_secs(10)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(topic, partition, ?to, error = %e, "seek failed; the partition is resolved again at its next record");
            false
        }
    }
}

impl Sink {
    /// Rows of revoked partitions now belong to another member, which
    /// resumes from what ClickHouse holds: drop them, unwritten.
    fn abandon(&mut self) {
        self.batch.clear();
        self.cursors.forget_all();
        self.stored = None;
    }

    /// Adds the record's row to the batch, unless ClickHouse already holds
    /// it or the consumer has to move first.
    async fn take(
        &mut self,
        consumer: &StreamConsumer<Rebalances>,
        message: &BorrowedMessage<'_>,
        shutdown: &mut Shutdown,
    ) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        match self.cursors.check(topic, partition, offset) {
            Disposition::Keep => {
                let row = row(&self.ctx, &self.default_campaign, message);
                self.batch.push(row);
                return;
            }
            Disposition::Drop => return,
            Disposition::Resolve => {}
        }
        if self.faults.trusts_kafka {
            self.cursors
                .resolve(topic, partition, offset, Some(offset - 1));
            let row = row(&self.ctx, &self.default_campaign, message);
            self.batch.push(row);
            return;
        }
        if self.stored.is_none() {
            let mut backoff = Duration::from_millis(200);
            loop {
                match self.stored_positions().await {
                    Ok(s) => {
                        self.stored = Some(s);
                        break;
                    }
                    Err(e) => {
                        self.ctx.health.unhealthy(PART, e.to_string());
                        if sleep_or_shutdown(backoff, shutdown).await {
                            // Not written and not stored: read again next start.
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            self.ctx.health.healthy(PART);
        }
        let stored = self
            .stored
            .as_ref()
            .and_then(|s| s.get(&(topic.to_owned(), partition)).copied());
        match self.cursors.resolve(topic, partition, offset, stored) {
            Resolution::Keep => {
                let row = row(&self.ctx, &self.default_campaign, message);
                self.batch.push(row);
            }
            Resolution::SeekTo(next) => {
                tracing::info!(
                    topic,
                    partition,
                    from = offset,
                    to = next,
                    "resuming after what ClickHouse holds"
                );
                if !seek(consumer, topic, partition, Offset::Offset(next)) {
                    self.cursors.forget(topic, partition);
                }
            }
            Resolution::SeekToStart => {
                tracing::info!(
                    topic,
                    partition,
                    from = offset,
                    "ClickHouse holds nothing of this partition; reading it from the start"
                );
                if !seek(consumer, topic, partition, Offset::Beginning) {
                    self.cursors.forget(topic, partition);
                }
            }
        }
    }

    /// Inserts the batch, waiting out ClickHouse outages, then stores the
    /// batch's offsets. After a rebalance or during a drain the batch may be
    /// dropped unwritten instead; its offsets are then not stored.
    async fn flush(&mut self, consumer: &StreamConsumer<Rebalances>, shutdown: &mut Shutdown) {
        if self.batch.is_empty() {
            return;
        }
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        for r in &self.batch {
            positions.insert((r.topic.clone(), r.partition), r.offset);
        }
        let mut backoff = Duration::from_millis(200);
        let mut paused = false;
        let mut retry = false;
        let started = Instant::now();
        loop {
            let attempt = if retry && !self.faults.retries_blind {
                self.prune().await
            } else {
                Ok(())
            };
            let result = match attempt {
                Ok(()) => self.write().await,
                Err(e) => Err(e),
            };
            let Err(failure) = result else { break };
            self.ctx.health.unhealthy(PART, failure.to_string());
            if shutdown.is_fired() {
                tracing::warn!(error = %failure, rows = self.batch.len(), "insert failed during drain; rows will be read again");
                self.abandon();
                return;
            }
            if !paused {
                paused = true;
                self.ctx.metrics.sink.paused(true);
                if let Err(e) = consumer.assignment().and_then(|a| consumer.pause(&a)) {
                    tracing::debug!(error = %e, "pause");
                }
            }
            tracing::warn!(error = %failure, rows = self.batch.len(), retry_in_ms = backoff.as_millis() as u64, "insert failed; sink paused");
            match self.wait_polling(consumer, backoff, shutdown).await {
                Waited::Elapsed => {}
                Waited::Revoked => {
                    self.abandon();
                    break;
                }
                Waited::Shutdown => {
                    self.abandon();
                    return;
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            retry = true;
        }
        if paused {
            self.ctx.metrics.sink.paused(false);
            if let Err(e) = consumer.assignment().and_then(|a| consumer.resume(&a)) {
                tracing::debug!(error = %e, "resume");
            }
        }
        if self.batch.is_empty() {
            // Abandoned after a rebalance: nothing of it is ours to store.
            return;
        }
        if let Some(stored) = &mut self.stored {
            for (key, offset) in &positions {
                let held = stored.entry(key.clone()).or_insert(*offset);
                *held = (*held).max(*offset);
            }
        }
        self.ctx.health.healthy(PART);
        self.count_inserted(&positions, started.elapsed());
        self.inserts += 1;
        if self.faults.abort_after_inserts == Some(self.inserts) {
            tracing::warn!(
                inserts = self.inserts,
                "injected fault: aborting between insert and offset commit"
            );
            std::process::abort();
        }
        for ((topic, partition), offset) in positions {
            // librdkafka commits offset + 1: the next record to read.
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                tracing::debug!(topic, partition, error = %e, "offset not stored (partition revoked)");
            }
        }
        tracing::debug!(rows = self.batch.len(), "batch inserted");
        self.batch.clear();
    }

    /// Counts the batch just inserted, and the positions it made durable.
    fn count_inserted(&self, positions: &HashMap<(String, i32), i64>, took: Duration) {
        let base = |topic: &str| self.ctx.topics.topic_of(topic).map(Topic::base_name);
        let mut rows: Vec<(&'static str, u64)> = Vec::new();
        for r in &self.batch {
            let Some(topic) = base(&r.topic) else {
                continue;
            };
            match rows.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, n)) => *n += 1,
                None => rows.push((topic, 1)),
            }
        }
        let sink = &self.ctx.metrics.sink;
        sink.inserted(&rows, took.as_secs_f64());
        for ((topic, partition), offset) in positions {
            if let Some(topic) = base(topic) {
                sink.position(topic, *partition, *offset);
            }
        }
    }

    /// The highest offset ClickHouse holds per (topic, partition).
    async fn stored_positions(&self) -> Result<HashMap<(String, i32), i64>, Failure> {
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        stored_positions(&self.client, &names).await
    }

    /// Before a retry: drops the rows ClickHouse already holds (an insert
    /// that failed on the way back, or the halves of a split that landed).
    async fn prune(&mut self) -> Result<(), Failure> {
        let stored = self.stored_positions().await?;
        let before = self.batch.len();
        self.batch.retain(|r| {
            stored
                .get(&(r.topic.clone(), r.partition))
                .is_none_or(|s| r.offset > *s)
        });
        if self.batch.len() < before {
            tracing::info!(
                rows = before - self.batch.len(),
                "rows already in ClickHouse after a failed insert; not inserting them again"
            );
        }
        Ok(())
    }

    /// Inserts the batch in order, as one statement unless the server
    /// refuses it for its data: then in halves, down to single refused
    /// rows, which become dead letters.
    async fn write(&mut self) -> Result<(), Failure> {
        let timeout = Duration::from_millis(self.insert_timeout_ms);
        // Ranges still to insert, the next one on top; halves keep the
        // batch's order, so ClickHouse always holds a prefix of each
        // partition's rows and the resume position stays exact.
        let mut todo = vec![(0, self.batch.len())];
        while let Some((lo, hi)) = todo.pop() {
            let rows = &self.batch[lo..hi];
            let token = self.dedup.then(|| token(rows));
            match insert_events(&self.client, rows, token.as_deref(), timeout).await {
                Ok(()) => {}
                Err(Failure::Refused(e)) if hi - lo > 1 => {
                    tracing::debug!(error = %e, rows = hi - lo, "insert refused; splitting it");
                    let mid = lo + (hi - lo) / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Err(Failure::Refused(e)) => self.poison(lo, &e, timeout).await?,
                Err(unavailable) => return Err(unavailable),
            }
        }
        Ok(())
    }

    /// Sends the refused row at `index` to the dead-letter topic and puts a
    /// `poison` row in its place. If even that is refused, the fault is the
    /// server's, not the row's.
    async fn poison(
        &mut self,
        index: usize,
        error: &str,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let refused = &self.batch[index];
        tracing::warn!(topic = %refused.topic, partition = refused.partition, offset = refused.offset, %error, "row refused by ClickHouse; sent to the dead-letter topic");
        let payload = serde_json::to_vec(refused).unwrap_or_default();
        let letter = DeadLetter {
            topic: &refused.topic,
            partition: refused.partition,
            offset: refused.offset,
            key: Some(refused.user_id.as_bytes()),
            payload: &payload,
        };
        let delivered = match dead_letter(&self.producer, &self.ctx, PART, &letter, &error).await {
            Ok(delivery) => matches!(delivery.await, Ok(Ok(_))),
            Err(_) => false,
        };
        if !delivered {
            return Err(Failure::Unavailable(
                "the dead-letter topic did not take a refused row".into(),
            ));
        }
        let placeholder = EventRow {
            topic: refused.topic.clone(),
            partition: refused.partition,
            offset: refused.offset,
            event_time_ms: refused.event_time_ms,
            kind: "poison".into(),
            reason: error,
            ..EventRow::default()
        };
        self.batch[index] = placeholder;
        let row = std::slice::from_ref(&self.batch[index]);
        match insert_events(&self.client, row, None, timeout).await {
            Ok(()) => Ok(()),
            Err(Failure::Refused(e)) => Err(Failure::Unavailable(format!(
                "a plain placeholder row was refused too, so the table, not the data, is at fault: {e}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Waits `wait` with the partitions paused, still polling so the group
    /// keeps this member and rebalances are seen. Records that were already
    /// fetched are dropped; their partitions resume from ClickHouse later.
    async fn wait_polling(
        &mut self,
        consumer: &StreamConsumer<Rebalances>,
        wait: Duration,
        shutdown: &mut Shutdown,
    ) -> Waited {
        let deadline = Instant::now() + wait;
        loop {
            tokio::select! {
                () = shutdown.wait() => return Waited::Shutdown,
                () = tokio::time::sleep_until(deadline) => return Waited::Elapsed,
                received = consumer.recv() => {
                    if let Ok(m) = received {
                        self.cursors.forget(m.topic(), m.partition());
                    }
                    if !consumer.context().take_revoked().is_empty() {
                        return Waited::Revoked;
                    }
                }
            }
        }
    }
}

/// A name for one insert: the same rows give the same token, so a server
/// that deduplicates drops a retry of an insert that did land.
fn token(rows: &[EventRow]) -> String {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    format!(
        "chatcart:{}:{}:{}:{}:{}:{}:{}",
        first.topic,
        first.partition,
        first.offset,
        last.topic,
        last.partition,
        last.offset,
        rows.len()
    )
}
