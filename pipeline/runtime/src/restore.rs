//! Restoring a partition's state when the partition is assigned, as the
//! stage's [`Plan`] says: replay its inputs up to the committed offsets (from
//! another stage's checkpoint where there is one), then fold the stage's own
//! output (from its newest checkpoint, or only its newest records when the
//! state is a window). One read covers every partition taken over at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{self, read_ranges};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use stages::{Plan, Restore, Stage};

use super::Context;
use super::checkpoint;
use super::rebalance::Rebalances;

/// Rebuilds the state of `partitions` by replaying the plan's inputs (up to
/// `resume`: per replayed input, the committed offset of each partition) and
/// folding the stage's own output, in one pass over all of them per topic,
/// so taking over many partitions costs one read rather than one per
/// partition.
pub(super) async fn restore<S: Stage>(
    stage: &Arc<S>,
    plan: &Plan,
    ctx: &Context,
    partitions: Vec<i32>,
    resume: Vec<Vec<(i32, i64)>>,
) -> anyhow::Result<HashMap<i32, S::State>> {
    let mut states: HashMap<i32, S::State> = partitions
        .iter()
        .map(|p| (*p, stage.new_state(*p)))
        .collect();
    let Some(own) = plan.state.own_output else {
        return Ok(states);
    };
    let (stage, ctx, replays, name) = (
        Arc::clone(stage),
        ctx.clone(),
        plan.state.replay,
        plan.id.name(),
    );
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let mut replayed = 0u64;
        let mut from_image = false;
        let timeout = Duration::from_secs(ctx.runtime.restore_timeout_secs);
        for (replay, resume) in replays.iter().zip(&resume) {
            let topic = ctx.topics.name(replay.input);
            let mut ranges = Vec::with_capacity(resume.len());
            let mut from_checkpoint: HashMap<i32, i64> = HashMap::new();
            for (p, end) in resume {
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
            let read = read_ranges(&ctx.kafka, topic, &ranges, timeout, |message| {
                let Some(state) = states.get_mut(&message.partition()) else {
                    return;
                };
                if let Ok(record) = ctx.codec.decode(message.payload().unwrap_or_default()) {
                    // A record never fails to fold; only images can.
                    let _ = stage.restore(state, Restore::Input(&record));
                }
            })?;
            replayed += read;
            from_image |= !from_checkpoint.is_empty();
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
                    from_image = true;
                }
            }
        }
        if let Some(window) = own.window {
            let ends =
                kafka::end_offsets(&ctx.kafka, topic, source.partitions(ctx.kafka.partitions))?;
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
        let read = read_ranges(&ctx.kafka, topic, &ranges, timeout, |message| {
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
        ctx.metrics.restore_read(name, replayed + read, from_image);
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
pub(super) fn checkpoints(plan: &Plan, ctx: &Context) -> bool {
    checkpoints_on(ctx) && plan.state.own_output.is_some_and(|o| o.checkpoints)
}

fn checkpoints_on(ctx: &Context) -> bool {
    ctx.runtime.checkpoint_min_records > 0
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
pub(super) fn committed(
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
pub(super) fn unrestored<St>(
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
