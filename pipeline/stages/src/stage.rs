//! What a stage is: the [`Stage`] trait, what a stage declares about itself
//! ([`Plan`]) and what it is restored from ([`Restore`]). It writes its
//! outputs into a [`Collector`]. No IO: the runner in `chatcart-runtime`
//! does that.

use std::sync::Arc;

use ledger::ImageError;
use schemas::{Codec, CodecError, Record};

use crate::collector::Collector;
use crate::topic::Topic;

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
    /// Inputs whose records before the group's committed offset are folded
    /// ([`Restore::Input`]), for state that is a fold of the inputs
    /// themselves (the decisions fold of fulfillment and reply, the reply
    /// stage's stock fold). Every input record is then folded exactly once:
    /// on restore or when handled.
    pub replay: &'static [Replay],
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

    /// Handles one input record: what it writes to `out` is produced
    /// before the input's offset is stored, unless it parks the record
    /// ([`Collector::park`]). `now_ms` is the processing time.
    fn handle(&self, state: &mut Self::State, record: Record, now_ms: i64, out: &mut Collector);

    /// Called whenever [`Plan::wakeup`] is notified, and every [`TICK`]:
    /// finishes parked records, oldest first
    /// ([`Collector::finish_parked`]), and emits what the partition needs
    /// on its own.
    fn poll(&self, _state: &mut Self::State, _now_ms: i64, _out: &mut Collector) {}
}

/// How often [`Stage::poll`] runs without a wakeup.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// Calls with a fresh collector each (for stage tests).
#[cfg(test)]
pub(crate) trait Calls: Stage {
    /// [`Stage::handle`] into a fresh collector.
    fn handled(&self, state: &mut Self::State, record: Record, now_ms: i64) -> Collector {
        let mut out = Collector::new();
        self.handle(state, record, now_ms, &mut out);
        out
    }

    /// [`Stage::poll`] into a fresh collector.
    fn polled(&self, state: &mut Self::State, now_ms: i64) -> Collector {
        let mut out = Collector::new();
        self.poll(state, now_ms, &mut out);
        out
    }
}

#[cfg(test)]
impl<S: Stage> Calls for S {}
