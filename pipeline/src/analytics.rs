//! The analytics sink: its own consumer group over every topic, one row per
//! Kafka record into ClickHouse, batched by size and time.
//!
//! Offsets are stored only after the batch holding their rows is inserted, so
//! a crash between insert and commit re-inserts rather than loses; the rows
//! carry `(topic, partition, offset)` and the table folds duplicates by it.
//! While ClickHouse refuses inserts the sink stops consuming and retries
//! with backoff, so memory stays bounded by one batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connectors::EventRow;
use connectors::clickhouse::{ensure_schema, insert_events};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use schemas::Record;
use tokio::time::Instant;

use crate::runtime::rebalance::Rebalances;
use crate::runtime::{Context, Shutdown};
use crate::topics::Topic;

/// The stage that writes each kind of record.
fn stage_of(record: &Record) -> &'static str {
    match record {
        Record::Prompt(_) => "front-end",
        Record::Intent(_) => "intent",
        Record::Decision(_) | Record::Treasury(_) => "coupon",
        Record::Order(_) => "fulfillment",
        Record::Reply(_) => "reply",
    }
}

fn snake(outcome: impl serde::Serialize) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The row for one Kafka record.
pub fn row(ctx: &Context, message: &BorrowedMessage<'_>) -> EventRow {
    let topic = ctx.topics.topic_of(message.topic());
    let payload = message.payload().unwrap_or_default();
    let mut row = EventRow {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        request_id: String::new(),
        user_id: String::new(),
        campaign_id: String::new(),
        stage: String::new(),
        kind: String::new(),
        outcome: String::new(),
        reason: String::new(),
        total_cents: 0,
        credit_cents: 0,
        event_time_ms: message.timestamp().to_millis().unwrap_or_default(),
        latency_ms: 0,
        trace_id: String::new(),
    };
    if topic == Some(Topic::Dlq) {
        let header = |key: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|hd| hd.key == key)
                    .and_then(|hd| hd.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        row.kind = "dead_letter".into();
        row.stage = header("chatcart.stage").unwrap_or_default();
        row.reason = header("chatcart.error").unwrap_or_default();
        return row;
    }
    let decoded = match topic {
        Some(Topic::Prompts) => ctx.codec.decode_prompt(payload).map(Record::Prompt),
        _ => ctx.codec.decode(payload),
    };
    let record = match decoded {
        Ok(record) => record,
        Err(e) => {
            row.kind = "undecodable".into();
            row.reason = e.to_string();
            return row;
        }
    };
    row.request_id = record.request_id().to_owned();
    row.user_id = record.user_id().to_owned();
    row.stage = stage_of(&record).into();
    row.kind = record.kind().into();
    let (campaign, trace, event_time, prompt_time) = match &record {
        Record::Prompt(r) => (
            &r.campaign_id,
            &r.trace_id,
            r.event_time_ms,
            r.event_time_ms,
        ),
        Record::Intent(r) => {
            row.outcome = snake(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            (
                &r.campaign_id,
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Decision(r) => {
            row.outcome = snake(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            row.credit_cents = r.credit_cents;
            (
                &r.campaign_id,
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Order(r) => {
            row.outcome = snake(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            row.credit_cents = r.credit_cents;
            (
                &r.campaign_id,
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Reply(r) => {
            row.outcome = snake(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.credit_cents = r.credit_cents;
            (
                &r.campaign_id,
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Treasury(r) => {
            row.outcome = snake(r.kind);
            row.credit_cents = r.amount;
            (
                &r.campaign_id,
                &r.trace_id,
                r.event_time_ms,
                r.event_time_ms,
            )
        }
    };
    row.campaign_id = campaign.clone();
    row.trace_id = trace.clone();
    if event_time > 0 {
        row.event_time_ms = event_time;
    }
    row.latency_ms = (row.event_time_ms - prompt_time).max(0);
    row
}

/// Runs the sink until `shutdown` fires; then inserts what it holds and
/// commits.
pub async fn run_sink(ctx: Context, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let ch = &ctx.settings.clickhouse;
    // ClickHouse may come up after the pipeline: keep trying rather than
    // failing the process (and with it every stage running beside the sink).
    let mut backoff = Duration::from_millis(500);
    while let Err(e) = ensure_schema(ch).await {
        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot create ClickHouse tables yet");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    let client = ch.client();
    let consumer: StreamConsumer<Rebalances> = ctx
        .settings
        .kafka
        .consumer_config("analytics")
        .create_with_context(Rebalances::new("analytics", Arc::clone(&ctx.ready), None))
        .context("creating consumer")?;
    let topics: Vec<&str> = Topic::EVENTS.iter().map(|t| ctx.topics.name(*t)).collect();
    consumer.subscribe(&topics).context("subscribing")?;
    tracing::info!(database = %ch.database, "analytics sink running");

    let max_wait = Duration::from_millis(ch.batch_max_wait_ms);
    let mut batch: Vec<EventRow> = Vec::with_capacity(ch.batch_rows.min(100_000));
    // Highest offset per (topic, partition) in the batch.
    let mut positions: HashMap<(String, i32), i64> = HashMap::new();
    let mut deadline = Instant::now() + max_wait;
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            () = tokio::time::sleep_until(deadline), if !batch.is_empty() => {
                flush(&client, &consumer, &mut batch, &mut positions, &mut shutdown).await?;
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
                if batch.is_empty() {
                    deadline = Instant::now() + max_wait;
                }
                batch.push(row(&ctx, &message));
                positions.insert((message.topic().to_owned(), message.partition()), message.offset());
                if batch.len() >= ch.batch_rows {
                    flush(&client, &consumer, &mut batch, &mut positions, &mut shutdown).await?;
                }
            }
        }
    }
    // One last insert so a drain leaves nothing to re-read; `shutdown` has
    // fired, so a refused insert is not retried.
    flush(
        &client,
        &consumer,
        &mut batch,
        &mut positions,
        &mut shutdown,
    )
    .await?;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit");
    }
    consumer.unsubscribe();
    tracing::info!("analytics sink stopped");
    Ok(())
}

/// Inserts the batch, retrying with backoff while ClickHouse refuses it
/// (consumption pauses meanwhile), then stores the batch's offsets.
async fn flush(
    client: &connectors::ClickHouseClient,
    consumer: &StreamConsumer<Rebalances>,
    batch: &mut Vec<EventRow>,
    positions: &mut HashMap<(String, i32), i64>,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match insert_events(client, batch).await {
            Ok(()) => break,
            Err(e) if shutdown.is_fired() => {
                // Offsets stay unstored: the rows are read again next start.
                tracing::warn!(error = %e, rows = batch.len(), "insert failed during drain; rows will be re-read");
                batch.clear();
                positions.clear();
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), retry_in_ms = backoff.as_millis() as u64, "insert failed; sink paused");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    for ((topic, partition), offset) in positions.drain() {
        if let Err(e) = consumer.store_offset(&topic, partition, offset) {
            tracing::debug!(topic, partition, error = %e, "offset not stored (partition revoked)");
        }
    }
    tracing::debug!(rows = batch.len(), "batch inserted");
    batch.clear();
    Ok(())
}
