//! The one runner that runs every stage ([`stages::Stage`]).
//!
//! A stage is a deterministic function of its input records and its state,
//! where the state of partition `p` is a fold of the stage's own output
//! partition `p` (the log is the ledger). The runner owns everything else:
//! group membership, restoring state when a partition is assigned, decoding,
//! dead letters, producing outputs to the same partition, and storing an
//! input offset only once every output it caused is acknowledged (which
//! offsets may be stored is [`stages::progress`], shared with the
//! benchmark's relay and the simulation).
//!
//! # Layout
//! - [`runner`]: the consume → handle → produce → store-offset loop;
//!   `restore`: rebuilding a partition's state as the stage's plan says;
//!   [`produce`]: outputs and dead letters.
//! - [`rebalance`]: consumer-group events: revoked partitions, readiness.
//! - [`checkpoint`]: images of restored state, so a restore reads a
//!   checkpoint and a bounded tail rather than the whole partition.
//! - [`shutdown`]: the drain signal every long-running task listens to.
//! - [`health`]: which parts of the process can do their work, and the
//!   optional `GET /health` endpoint.

pub mod checkpoint;
pub mod health;
pub mod produce;
pub mod rebalance;
mod restore;
pub mod runner;
pub mod shutdown;

use std::sync::Arc;

use schemas::Codec;

use crate::config::Settings;
use crate::topics::TopicNames;

pub use produce::{DeadLetter, dead_letter};
pub use rebalance::Ready;
pub use runner::run_stage;
pub use shutdown::Shutdown;

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
