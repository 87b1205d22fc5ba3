//! Checkpoints: images of a stage's restored state at a position of its own
//! output, so a restore reads the newest checkpoint and the records after
//! it, not the partition from its first record.
//!
//! **Who writes them.** Each process runs a checkpointer beside a stage
//! that has images ([`Stage::image`]). For every partition the stage is
//! assigned, it folds the stage's own output partition exactly as a restore
//! does (a *reader's* fold of a log prefix), and writes an image of it. So
//! a checkpoint is the fold of the records before its `covers` offset,
//! whoever wrote them and whoever writes the checkpoint: a zombie instance,
//! or two instances at once during a rebalance, only write equal images.
//! The stage's live state is never imaged: a zombie's records may
//! interleave with it in the log.
//!
//! **When.** A partition is checkpointed once the records after its last
//! checkpoint number at least `runtime.checkpoint_min_records`, and at least
//! the last image's size in bytes over [`BYTES_PER_RECORD`]. So a restore
//! reads an image and a tail about as long as the image, whatever the
//! campaign's length, and imaging costs at most about one record written
//! per record folded.
//!
//! **Layout.** On `chatcart.checkpoints` partition `p` (the stage's output
//! partition `p`), a checkpoint is its image in chunks of raw bytes followed
//! by a JSON [`Manifest`] naming the chunks' offsets. Chunks of two writers
//! may interleave; each manifest names exactly its own. A restore takes the
//! manifest with the highest `covers` among the last ones of the partition;
//! a missing, partial or unreadable checkpoint only means restoring from
//! further back, never a wrong state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use anyhow::Context as _;
use connectors::kafka::{Tail, enqueue, read_ranges};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use stages::{Restore, Stage, Topic};

use super::{Context, Shutdown, now_ms};

/// Roughly the size of one encoded output record: sets how much longer
/// than `checkpoint_min_records` the interval grows for large images.
pub const BYTES_PER_RECORD: u64 = 128;

/// The manifest format this build writes and reads.
const MANIFEST_VERSION: u32 = 1;

/// Header that tells chunks from manifests.
const KIND: &str = "chatcart.checkpoint";

/// How the checkpoint topic records a checkpoint; its chunks come first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// The stage whose state this is.
    pub stage: String,
    /// The partition of the stage's output topic the image folds.
    pub partition: i32,
    /// The image folds every record of that partition before this offset.
    pub covers: i64,
    /// Offsets of the image's chunks on the checkpoint topic, in order.
    pub chunks: Vec<i64>,
    /// Length of the whole image.
    pub bytes: u64,
    pub written_ms: i64,
}

/// The newest checkpoint of `stage`'s `partition`: its manifest and image.
/// `None` when there is none (or none that reads back whole). Blocking.
pub fn latest(
    ctx: &Context,
    stage: &str,
    partition: i32,
    timeout: Duration,
) -> anyhow::Result<Option<(Manifest, Vec<u8>)>> {
    latest_covering_at_most(ctx, stage, partition, i64::MAX, timeout)
}

/// As [`latest`], passing over checkpoints that cover more than `at_most`
/// records. A replay up to a committed offset needs one at or before it,
/// and the writer may have checkpointed further since.
pub fn latest_covering_at_most(
    ctx: &Context,
    stage: &str,
    partition: i32,
    at_most: i64,
    timeout: Duration,
) -> anyhow::Result<Option<(Manifest, Vec<u8>)>> {
    let kafka = &ctx.kafka;
    let topic = ctx.topics.name(Topic::Checkpoints);
    let high = connectors::kafka::end_offset(kafka, topic, partition)?;
    // Read back from the end in growing windows until a manifest turns up.
    // (The high watermark may lag the real end on some brokers; reading runs
    // to the end of the partition in any case.)
    let mut back = 16i64;
    let mut tried: HashSet<i64> = HashSet::new();
    loop {
        let from = (high - back).max(0);
        let mut manifests = Vec::new();
        read_ranges(kafka, topic, &[(partition, from, i64::MAX)], timeout, |m| {
            if let Some(manifest) = manifest_of(m)
                && manifest.stage == stage
                && manifest.partition == partition
                && manifest.covers <= at_most
                && !tried.contains(&m.offset())
            {
                manifests.push((m.offset(), manifest));
            }
        })?;
        manifests.sort_by_key(|(_, m)| std::cmp::Reverse(m.covers));
        for (at, manifest) in manifests {
            tried.insert(at);
            match read_image(ctx, partition, &manifest, timeout)? {
                Some(image) => return Ok(Some((manifest, image))),
                None => tracing::warn!(
                    stage,
                    partition,
                    manifest_offset = at,
                    "checkpoint does not read back whole; trying an older one"
                ),
            }
        }
        if from == 0 {
            return Ok(None);
        }
        back = back.saturating_mul(8);
    }
}

fn manifest_of(message: &BorrowedMessage<'_>) -> Option<Manifest> {
    let headers = message.headers()?;
    let is_manifest = headers
        .iter()
        .any(|h| h.key == KIND && h.value == Some(b"manifest".as_slice()));
    if !is_manifest {
        return None;
    }
    let manifest: Manifest = serde_json::from_slice(message.payload()?).ok()?;
    (manifest.version == MANIFEST_VERSION).then_some(manifest)
}

/// Loads the newest checkpoint of `stage`'s `partition` into the fresh
/// `state` and returns its manifest: the state then folds every record
/// before `covers`. `None` leaves `state` fresh (no checkpoint, or one whose
/// image does not load). Blocking.
pub fn resume<S: Stage>(
    stage: &S,
    ctx: &Context,
    partition: i32,
    state: &mut S::State,
    timeout: Duration,
) -> anyhow::Result<Option<Manifest>> {
    let name = stage.plan().id.name();
    let Some((manifest, image)) = latest(ctx, name, partition, timeout)? else {
        return Ok(None);
    };
    match stage.restore(state, Restore::OutputImage(&image)) {
        Ok(()) => Ok(Some(manifest)),
        Err(error) => {
            tracing::warn!(stage = name, partition, %error, "checkpoint skipped");
            *state = stage.new_state(partition);
            Ok(None)
        }
    }
}

/// The image `manifest` names, if every chunk is there and the length adds up.
fn read_image(
    ctx: &Context,
    partition: i32,
    manifest: &Manifest,
    timeout: Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    let (Some(first), Some(last)) = (manifest.chunks.iter().min(), manifest.chunks.iter().max())
    else {
        return Ok(None);
    };
    let wanted: HashMap<i64, usize> = manifest
        .chunks
        .iter()
        .enumerate()
        .map(|(i, o)| (*o, i))
        .collect();
    let mut chunks: Vec<Option<Vec<u8>>> = vec![None; manifest.chunks.len()];
    let topic = ctx.topics.name(Topic::Checkpoints);
    read_ranges(
        &ctx.kafka,
        topic,
        &[(partition, *first, last + 1)],
        timeout,
        |m| {
            if let Some(i) = wanted.get(&m.offset()) {
                chunks[*i] = Some(m.payload().unwrap_or_default().to_vec());
            }
        },
    )?;
    let Some(chunks) = chunks.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let image = chunks.concat();
    Ok((image.len() as u64 == manifest.bytes).then_some(image))
}

/// Writes `image` as the checkpoint of `stage`'s `partition` up to `covers`.
pub async fn write(
    ctx: &Context,
    producer: &FutureProducer,
    stage: &str,
    partition: i32,
    covers: i64,
    image: &[u8],
) -> anyhow::Result<Manifest> {
    let topic = ctx.topics.name(Topic::Checkpoints);
    let chunk_bytes = ctx.runtime.checkpoint_chunk_bytes.max(1);
    let mut deliveries = Vec::new();
    for chunk in image.chunks(chunk_bytes) {
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(stage)
            .payload(chunk)
            .headers(kind("chunk"));
        deliveries.push(enqueue(producer, record).await?);
    }
    let mut chunks = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let d = delivery
            .await
            .context("checkpoint chunk cancelled")?
            .map_err(|(e, _)| e)
            .context("writing a checkpoint chunk")?;
        chunks.push(d.offset);
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        stage: stage.to_owned(),
        partition,
        covers,
        chunks,
        bytes: image.len() as u64,
        written_ms: now_ms(),
    };
    let payload = serde_json::to_vec(&manifest)?;
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key(stage)
        .payload(&payload[..])
        .headers(kind("manifest"));
    enqueue(producer, record)
        .await?
        .await
        .context("checkpoint manifest cancelled")?
        .map_err(|(e, _)| e)
        .context("writing a checkpoint manifest")?;
    Ok(manifest)
}

fn kind(value: &str) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: KIND,
        value: Some(value),
    })
}

/// A reader's fold of one output partition, kept by the checkpointer.
struct Shadow<St> {
    state: St,
    /// The next offset to fold: the state folds everything before it.
    next: i64,
    /// `covers` of the newest checkpoint (0 when there is none).
    checkpointed: i64,
    image_bytes: u64,
}

/// Whether a partition whose last checkpoint covers `checkpointed` and was
/// `image_bytes` long is due for a new one at `next`.
pub fn due(min_records: u64, checkpointed: i64, image_bytes: u64, next: i64) -> bool {
    let interval = min_records.max(image_bytes / BYTES_PER_RECORD);
    u64::try_from(next - checkpointed).unwrap_or(0) >= interval
}

/// Checkpoints `stage`'s assigned partitions until `shutdown` fires or
/// `running` is dropped (the stage stopped). A failure only delays
/// checkpoints: it is logged and the checkpointer starts over a little later.
pub async fn run_checkpointer<S: Stage>(
    stage: Arc<S>,
    ctx: Context,
    assignment: Arc<Mutex<HashSet<i32>>>,
    running: Weak<()>,
    shutdown: Shutdown,
) {
    let name = stage.plan().id.name();
    loop {
        let (stage, ctx, assignment, shutdown_, running_) = (
            Arc::clone(&stage),
            ctx.clone(),
            Arc::clone(&assignment),
            shutdown.clone(),
            running.clone(),
        );
        let handle = tokio::runtime::Handle::current();
        let stop = move || shutdown_.is_fired() || running_.strong_count() == 0;
        let run = tokio::task::spawn_blocking(move || {
            checkpoint_loop(&stage, &ctx, &assignment, &stop, &handle)
        })
        .await;
        match run {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::warn!(stage = name, error = %format!("{e:#}"), "checkpointer failed; restarting it")
            }
            Err(e) => {
                tracing::warn!(stage = name, error = %e, "checkpointer panicked; restarting it")
            }
        }
        if shutdown.is_fired() || running.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn checkpoint_loop<S: Stage>(
    stage: &Arc<S>,
    ctx: &Context,
    assignment: &Mutex<HashSet<i32>>,
    stop: &impl Fn() -> bool,
    handle: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let plan = stage.plan();
    let Some(source) = plan.state.own_output.filter(|o| o.checkpoints) else {
        return Ok(());
    };
    let (name, source) = (plan.id.name(), source.topic);
    let timeout = Duration::from_secs(ctx.runtime.restore_timeout_secs);
    let min_records = ctx.runtime.checkpoint_min_records;
    let producer = ctx.kafka.producer()?;
    let tail = Tail::new(&ctx.kafka, ctx.topics.name(source))?;
    let mut shadows: HashMap<i32, Shadow<S::State>> = HashMap::new();
    let mut since_check = std::time::Instant::now();
    // Asked at least every poll timeout, so this thread never outlives the
    // stage by much.
    while !stop() {
        if since_check.elapsed() >= Duration::from_secs(1) || shadows.is_empty() {
            since_check = std::time::Instant::now();
            let assigned = assignment
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let before = shadows.len();
            shadows.retain(|p, _| assigned.contains(p));
            let mut changed = shadows.len() != before;
            for p in assigned {
                if shadows.contains_key(&p) {
                    continue;
                }
                let mut state = stage.new_state(p);
                let (next, bytes) = resume(&**stage, ctx, p, &mut state, timeout)?
                    .map_or((0, 0), |m| (m.covers, m.bytes));
                let shadow = Shadow {
                    state,
                    next,
                    checkpointed: next,
                    image_bytes: bytes,
                };
                shadows.insert(p, shadow);
                changed = true;
            }
            if changed {
                let from: Vec<(i32, i64)> = shadows.iter().map(|(p, s)| (*p, s.next)).collect();
                tail.assign(&from)?;
            }
            for (p, shadow) in &mut shadows {
                if !due(
                    min_records,
                    shadow.checkpointed,
                    shadow.image_bytes,
                    shadow.next,
                ) {
                    continue;
                }
                let Some(image) = stage.image(&shadow.state) else {
                    return Ok(());
                };
                let manifest =
                    handle.block_on(write(ctx, &producer, name, *p, shadow.next, &image))?;
                tracing::info!(
                    stage = name,
                    partition = p,
                    covers = manifest.covers,
                    bytes = manifest.bytes,
                    chunks = manifest.chunks.len(),
                    "checkpoint written"
                );
                ctx.metrics.checkpoint_written(name, now_ms());
                shadow.checkpointed = shadow.next;
                shadow.image_bytes = manifest.bytes;
            }
        }
        let Some(message) = tail.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let Some(shadow) = shadows.get_mut(&message.partition()) else {
            continue;
        };
        if message.offset() < shadow.next {
            continue;
        }
        shadow.next = message.offset() + 1;
        // Undecodable records are skipped, as a restore skips them.
        if let Ok(record) = ctx.codec.decode(message.payload().unwrap_or_default()) {
            // A record never fails to fold; only images can.
            let _ = stage.restore(&mut shadow.state, Restore::Output(&record));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_wait_for_min_records_and_large_ones_for_their_size() {
        assert!(!due(1_000, 0, 0, 999));
        assert!(due(1_000, 0, 0, 1_000));
        assert!(due(1_000, 5_000, 0, 6_000));
        // A 1 MiB image waits for 8192 records, not 1000.
        assert!(!due(1_000, 0, 1 << 20, 8_191));
        assert!(due(1_000, 0, 1 << 20, 8_192));
    }
}
