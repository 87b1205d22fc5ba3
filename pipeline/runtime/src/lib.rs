//! chatcart's runtime: everything that runs the stages against Kafka and
//! ClickHouse. Below it are the crates without broker or database IO
//! (`chatcart_stages` and what it builds on); above it the tools and the
//! binary.
//!
//! The one runner runs every stage ([`stages::Stage`]). A stage is a
//! deterministic function of its input records and its state, where the
//! state of partition `p` is a fold of the stage's own output partition `p`
//! (the log is the ledger). The runner owns everything else: group
//! membership, restoring state when a partition is assigned, decoding, dead
//! letters, producing outputs to the same partition, and storing an input
//! offset only once every output it caused is acknowledged (which offsets
//! may be stored is [`stages::progress`], shared with the benchmark's relay
//! and the simulation).
//!
//! # Layout
//! - [`runner`]: the consume → handle → produce → store-offset loop;
//!   `restore`: rebuilding a partition's state as the stage's plan says;
//!   [`produce`]: outputs and dead letters.
//! - [`rebalance`]: consumer-group events: revoked partitions, readiness.
//! - [`checkpoint`]: images of restored state, so a restore reads a
//!   checkpoint and a bounded tail rather than the whole partition.
//! - [`shutdown`]: the drain signal every long-running task listens to.
//! - [`health`]: which parts of the process can do their work, and which
//!   are ready to; [`metrics`]: what the process counts; [`ops`]: the
//!   endpoint that serves both (`/health`, `/livez`, `/readyz`,
//!   `/metrics`); [`listener`]: a listener that bounds its connections
//!   (the gateway's too).
//! - [`analytics`]: the sink that records every topic in ClickHouse.
//! - [`lag`]: each stage's backlog and rate per partition, read from its
//!   group's committed offsets (the gateway's admission, operators).
//! - [`app`]: wiring stages into a process; [`config`]: the settings;
//!   [`topics`]: the topics' full names. The runner itself takes only the
//!   `kafka` and `runtime` sections ([`Context`]).

pub mod analytics;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod health;
pub mod lag;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod produce;
pub mod rebalance;
mod restore;
pub mod runner;
pub mod shutdown;
pub mod topics;

use std::sync::Arc;

use connectors::KafkaConfig;
use schemas::Codec;

use crate::config::RuntimeConfig;

pub use config::Settings;
pub use produce::{DeadLetter, dead_letter};
pub use rebalance::Ready;
pub use runner::run_stage;
pub use shutdown::Shutdown;
pub use stages::Topic;
pub use topics::TopicNames;

/// What every stage of one process shares.
#[derive(Clone)]
pub struct Context {
    /// The cluster, the group, the partition count.
    pub kafka: Arc<KafkaConfig>,
    /// Limits on in-flight work, restores, checkpoints and drains.
    pub runtime: Arc<RuntimeConfig>,
    pub codec: Arc<Codec>,
    pub topics: Arc<TopicNames>,
    /// Counts the stages that hold partitions.
    pub ready: Arc<Ready>,
    /// What each part of the process reports about itself.
    pub health: Arc<health::Health>,
    /// What the process counts, for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
}

impl Context {
    pub fn new(
        kafka: KafkaConfig,
        runtime: RuntimeConfig,
        codec: Codec,
        ready: Arc<Ready>,
    ) -> Self {
        let topics = TopicNames::new(&kafka);
        Self {
            kafka: Arc::new(kafka),
            runtime: Arc::new(runtime),
            codec: Arc::new(codec),
            topics: Arc::new(topics),
            ready,
            health: Arc::default(),
            metrics: Arc::default(),
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
