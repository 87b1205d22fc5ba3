//! What a stage is: the [`Stage`] trait, what a stage declares about itself
//! ([`Plan`]), what it is restored from ([`Restore`]) and what it outputs
//! ([`Step`], [`Output`]). No IO: the runner in `chatcart` does that.

use std::sync::Arc;

use ledger::ImageError;
use schemas::{Codec, CodecError, Record};

use crate::topic::Topic;

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

/// One of the four pipeline stages. Its consumer group
/// (`<group_prefix>.<name>`), its checkpoints and its log lines go by its
/// name, and a stage that restores from another's checkpoints names that
/// stage by this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageId {
    Intent,
    Coupon,
    Fulfillment,
    Reply,
}

impl StageId {
    /// The name its group, checkpoints and logs use.
    pub const fn name(self) -> &'static str {
        match self {
            StageId::Intent => "intent",
            StageId::Coupon => "coupon",
            StageId::Fulfillment => "fulfillment",
            StageId::Reply => "reply",
        }
    }
}

/// What a stage is, as data: the runner does the rest.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: StageId,
    /// Topics the stage consumes.
    pub inputs: &'static [Topic],
    /// How a partition's state is rebuilt when the partition is assigned.
    pub state: StatePlan,
    /// Notified when parked records may be ready (say, a lease arrived):
    /// the runner then calls [`Stage::poll`], and every [`TICK`] besides.
    /// A stage without one is never polled.
    pub wakeup: Option<Arc<tokio::sync::Notify>>,
}

/// Where a partition's state comes from. Each part is folded into a fresh
/// [`Stage::new_state`] through [`Stage::restore`]; a stage with neither
/// starts every partition empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatePlan {
    /// The stage's own output, folded back ([`Restore::Output`]): the log is
    /// the ledger.
    pub own_output: Option<OwnOutput>,
    /// An input whose records before the group's committed offset are
    /// folded ([`Restore::Input`]), for state that is a fold of the input
    /// itself (the decisions fold of fulfillment and reply). Every input
    /// record is then folded exactly once: on restore or when handled.
    pub replay: Option<Replay>,
}

/// Restoring from the stage's own output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnOutput {
    pub topic: Topic,
    /// Read only the newest this many records (say, the request ids
    /// answered last), so a restore's cost is bounded without checkpoints.
    pub window: Option<u64>,
    /// The fold is checkpointed ([`Stage::image`]) and a restore starts
    /// from the newest checkpoint ([`Restore::OutputImage`]) and its tail.
    pub checkpoints: bool,
}

/// Replaying an input up to the committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub input: Topic,
    /// The stage whose checkpoints are images of the fold the replay
    /// builds (the coupon stage's, for the decisions fold): the replay
    /// starts from one of them ([`Restore::InputImage`]) instead of from
    /// the first record.
    pub from_checkpoints_of: Option<StageId>,
}

/// One thing folded into a partition's state while it is restored.
#[derive(Debug, Clone, Copy)]
pub enum Restore<'a> {
    /// A record of the stage's own output.
    Output(&'a Record),
    /// A checkpoint image of the own-output fold, into a fresh state: as if
    /// every record it covers had been folded.
    OutputImage(&'a [u8]),
    /// An input record from before the committed offset.
    Input(&'a Record),
    /// A checkpoint image of the replayed fold, into a fresh state.
    InputImage(&'a [u8]),
}

/// A pipeline stage. Implementations hold no per-partition state themselves;
/// the runner keeps one [`Stage::State`] per assigned partition.
pub trait Stage: Send + Sync + 'static {
    /// State of one partition, rebuilt as [`Plan::state`] says.
    type State: Send + 'static;

    /// What the stage is: its name, inputs, state and wakeup.
    fn plan(&self) -> Plan;

    /// Fresh state for `partition`, before anything is restored into it.
    fn new_state(&self, partition: i32) -> Self::State;

    /// Folds one record or image into `state` while it is restored. An
    /// image that does not load is an error; the runner then restores from
    /// further back.
    fn restore(&self, _state: &mut Self::State, _from: Restore<'_>) -> Result<(), ImageError> {
        Ok(())
    }

    /// The own-output fold of `state` as an image for a checkpoint (when
    /// [`OwnOutput::checkpoints`] is set).
    fn image(&self, _state: &Self::State) -> Option<Vec<u8>> {
        None
    }

    /// Decodes an input record. Internal topics use Avro single-object
    /// encoding; a stage reading from outside overrides this.
    fn decode(&self, codec: &Codec, _topic: Topic, bytes: &[u8]) -> Result<Record, CodecError> {
        codec.decode(bytes)
    }

    /// Handles one input record; what it returns is produced before the
    /// input's offset is stored. `now_ms` is the processing time.
    fn handle(&self, state: &mut Self::State, record: Record, now_ms: i64) -> Step;

    /// Called whenever [`Plan::wakeup`] is notified, and every [`TICK`]:
    /// finishes parked records (oldest first) and emits what the partition
    /// needs on its own.
    fn poll(&self, _state: &mut Self::State, _now_ms: i64) -> Polled {
        Polled::new()
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
