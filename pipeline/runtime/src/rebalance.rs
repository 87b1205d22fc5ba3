//! Consumer-group events as the runner needs them: which partitions were
//! taken away (so their state is dropped), which are held, and when a stage
//! first holds partitions (so a caller can wait for the pipeline to be
//! ready). Before partitions are given up, every output already produced is
//! flushed, so the next owner's restore sees it: a stage hands over its
//! state complete, not just eventually.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::producer::{FutureProducer, Producer};

/// How many stages of a process hold a partition assignment.
#[derive(Debug, Default)]
pub struct Ready {
    pub(crate) stages: AtomicUsize,
}

impl Ready {
    /// Stages that have been assigned partitions at least once.
    pub fn count(&self) -> usize {
        self.stages.load(Ordering::Acquire)
    }

    /// Waits until `stages` stages hold partitions; false on timeout.
    pub async fn wait_for(&self, stages: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < stages {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// The consumer context every chatcart consumer uses.
pub struct Rebalances {
    stage: &'static str,
    ready: Arc<Ready>,
    counted: AtomicBool,
    /// Bounded by the partition count.
    revoked: Mutex<HashSet<i32>>,
    assigned: Arc<Mutex<HashSet<i32>>>,
    /// The stage's producer, flushed before partitions are given up.
    producer: Option<FutureProducer>,
}

/// How long a revoke waits for outputs in flight to be acknowledged.
const FLUSH_ON_REVOKE: Duration = Duration::from_secs(30);

impl Rebalances {
    pub fn new(stage: &'static str, ready: Arc<Ready>, producer: Option<FutureProducer>) -> Self {
        Self {
            stage,
            ready,
            counted: AtomicBool::new(false),
            revoked: Mutex::new(HashSet::new()),
            assigned: Arc::default(),
            producer,
        }
    }

    /// The assigned partitions, kept up to date, for tasks that work on
    /// them beside the stage (the checkpointer).
    pub fn assignment(&self) -> Arc<Mutex<HashSet<i32>>> {
        Arc::clone(&self.assigned)
    }

    /// Whether `partition` (of the stage's inputs) is assigned now.
    pub fn is_assigned(&self, partition: i32) -> bool {
        self.assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&partition)
    }

    /// The stage this consumer belongs to.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> HashSet<i32> {
        let mut guard = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *guard)
    }
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
            for e in tpl.elements() {
                assigned.remove(&e.partition());
            }
            drop(assigned);
            if let Some(producer) = &self.producer
                && let Err(e) = producer.flush(FLUSH_ON_REVOKE)
            {
                tracing::warn!(stage = self.stage, error = %e, "outputs not flushed before a revoke");
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assigned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(tpl.elements().iter().map(|e| e.partition()));
                tracing::info!(
                    stage = self.stage,
                    partitions = tpl.count(),
                    "partitions assigned"
                );
                if tpl.count() > 0 && !self.counted.swap(true, Ordering::AcqRel) {
                    self.ready.stages.fetch_add(1, Ordering::AcqRel);
                }
            }
            Rebalance::Revoke(tpl) => {
                let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                revoked.extend(tpl.elements().iter().map(|e| e.partition()));
                tracing::info!(
                    stage = self.stage,
                    partitions = tpl.count(),
                    "partitions revoked"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(stage = self.stage, error = %e, "rebalance error")
            }
        }
    }
}
