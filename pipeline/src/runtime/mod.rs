//! What a stage is, and the one runner that runs every stage.
//!
//! A stage is a deterministic function of its input records and its state,
//! where the state of partition `p` is a fold of the stage's own output
//! partition `p` (the log is the ledger). The runner owns everything else:
//! group membership, restoring state when a partition is assigned, decoding,
//! dead letters, producing outputs to the same partition, and storing an
//! input offset only once every output it caused is acknowledged.
//!
//! # Layout
//! - [`runner`]: the consume → handle → produce → store-offset loop.
//! - [`progress`]: the loop's bookkeeping without IO (which offsets may be
//!   stored, what is parked), shared with the benchmark's relay and the
//!   simulation.
//! - [`rebalance`]: consumer-group events: revoked partitions, readiness.
//! - [`checkpoint`]: images of restored state, so a restore reads a
//!   checkpoint and a bounded tail rather than the whole partition.
//! - [`shutdown`]: the drain signal every long-running task listens to.
//! - [`health`]: which parts of the process can do their work, and the
//!   optional `GET /health` endpoint.

pub mod checkpoint;
pub mod health;
pub mod progress;
pub mod rebalance;
pub mod runner;
pub mod shutdown;

use std::sync::Arc;

use schemas::{Codec, CodecError, Record};

use crate::config::Settings;
use crate::topics::{Topic, TopicNames};
use ledger::ImageError;

pub use rebalance::Ready;
pub use runner::{DeadLetter, dead_letter, run_stage};
pub use shutdown::Shutdown;

/// One output of a stage: a record for a topic. It goes to the same
/// partition as the input that caused it (partition 0 for the treasury).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    pub topic: Topic,
    pub record: Record,
}

impl Emit {
    pub fn new(topic: Topic, record: Record) -> Self {
        Self { topic, record }
    }
}

/// A pipeline stage. Implementations hold no per-partition state themselves;
/// the runner keeps one [`Stage::State`] per assigned partition.
pub trait Stage: Send + Sync + 'static {
    /// State of one partition, rebuilt from the stage's own output.
    type State: Send + 'static;

    /// The stage's name; its consumer group is `<group_prefix>.<name>`.
    fn name(&self) -> &'static str;

    /// Topics the stage consumes.
    fn inputs(&self) -> &'static [Topic];

    /// The topic the stage's state is restored from (its own output), if any.
    fn restore_from(&self) -> Option<Topic> {
        None
    }

    /// Fresh state for `partition`, before anything is restored into it.
    fn new_state(&self, partition: i32) -> Self::State;

    /// Folds one record of the stage's own output back into its state.
    fn restore(&self, _state: &mut Self::State, _record: &Record) {}

    /// When the restored state is a window over the newest records of the
    /// stage's own output (say, the request ids answered last), how many
    /// records: a restore then reads only those, so its cost is bounded
    /// without checkpoints.
    fn restore_window(&self) -> Option<u64> {
        None
    }

    /// The restored part of `state` (what [`Stage::restore`] built) as an
    /// image for a checkpoint, or `None` for a stage without checkpoints.
    fn image(&self, _state: &Self::State) -> Option<Vec<u8>> {
        None
    }

    /// Replaces the restored part of a fresh `state` with `image`, as if
    /// every record the image covers had been restored.
    fn load_image(&self, _state: &mut Self::State, _image: &[u8]) -> Result<(), ImageError> {
        Ok(())
    }

    /// An input topic whose records before the resume point are folded into
    /// the state on restore ([`Stage::replay`]), for state that is a fold
    /// of the input itself (the decisions fold of fulfillment and reply).
    /// The resume point is the group's committed offset, so every input
    /// record is folded exactly once: on restore or when it is handled.
    fn replays(&self) -> Option<Topic> {
        None
    }

    /// Folds one input record from before the resume point into the state.
    fn replay(&self, _state: &mut Self::State, _record: &Record) {}

    /// The stage whose checkpoints are images of the fold [`Stage::replay`]
    /// builds (the coupon stage's, for the decisions fold), so a replay can
    /// start from one of them instead of from the first record.
    fn replay_checkpoints(&self) -> Option<&'static str> {
        None
    }

    /// Replaces the replayed part of a fresh `state` with such an image, as
    /// if every input record it covers had been replayed.
    fn load_replay_image(&self, _state: &mut Self::State, _image: &[u8]) -> Result<(), ImageError> {
        Ok(())
    }

    /// Decodes an input record. Internal topics use Avro single-object
    /// encoding; a stage reading from outside overrides this.
    fn decode(&self, codec: &Codec, _topic: Topic, bytes: &[u8]) -> Result<Record, CodecError> {
        codec.decode(bytes)
    }

    /// Handles one input record; what it returns is produced before the
    /// input's offset is stored. `now_ms` is the processing time.
    fn handle(&self, state: &mut Self::State, record: Record, now_ms: i64) -> Step;

    /// Called whenever [`Stage::wakeup`] is notified, and every
    /// [`TICK`]: finishes parked records (oldest first) and emits what the
    /// partition needs on its own.
    fn poll(&self, _state: &mut Self::State, _now_ms: i64) -> Polled {
        Polled::new()
    }

    /// Notified when parked records may be ready (e.g. a lease arrived).
    fn wakeup(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// How often [`Stage::poll`] runs without a wakeup.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// What handling one input record did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Produced now.
    pub emits: Vec<Emit>,
    /// The record is not finished: its outputs come from a later
    /// [`Stage::poll`], and its offset is not stored until they are
    /// acknowledged. Parked records of a partition finish in order.
    pub parked: bool,
}

impl From<Vec<Emit>> for Step {
    fn from(emits: Vec<Emit>) -> Self {
        Self {
            emits,
            parked: false,
        }
    }
}

/// What [`Stage::poll`] produced, in the order it is to be produced (the
/// stage's state already reflects that order).
pub type Polled = Vec<Output>;

/// One output of [`Stage::poll`].
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// A record that belongs to no input record.
    Emit(Box<Emit>),
    /// The outputs of the oldest parked record still unfinished.
    Finished(Vec<Emit>),
}

/// The records a [`Stage::poll`] emitted outside parked records, and the
/// outputs of each parked record it finished (for stage tests).
#[cfg(test)]
pub(crate) fn split(polled: Polled) -> (Vec<Emit>, Vec<Vec<Emit>>) {
    let (mut emits, mut finished) = (vec![], vec![]);
    for out in polled {
        match out {
            Output::Emit(e) => emits.push(*e),
            Output::Finished(f) => finished.push(f),
        }
    }
    (emits, finished)
}

/// What every stage of one process shares.
#[derive(Clone)]
pub struct Context {
    pub settings: Arc<Settings>,
    pub codec: Arc<Codec>,
    pub topics: Arc<TopicNames>,
    /// Counts the stages that hold partitions.
    pub ready: Arc<Ready>,
    /// What each part of the process reports about itself.
    pub health: Arc<health::Health>,
}

impl Context {
    pub fn new(settings: Settings, codec: Codec, ready: Arc<Ready>) -> Self {
        let topics = TopicNames::new(&settings.kafka);
        Self {
            settings: Arc::new(settings),
            codec: Arc::new(codec),
            topics: Arc::new(topics),
            ready,
            health: Arc::default(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
