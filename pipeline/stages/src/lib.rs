//! The pipeline's stages: what each does with a record, with no IO. The
//! runner in `chatcart` consumes, restores, produces and stores offsets for
//! all of them alike.
//!
//! # Layout
//! - [`stage`]: the [`Stage`] trait and the [`Plan`] a stage declares (its
//!   inputs, what its state is restored from, its wakeup);
//!   [`collector`]: where it writes its outputs.
//! - [`progress`]: which input offsets may be stored: the runner's
//!   bookkeeping, driven by the runner, the benchmark's relay and the
//!   simulation alike.
//! - [`topic`]: the pipeline's topics.
//! - [`intent`], [`coupon`], [`fulfillment`], [`reply`]: the four stages,
//!   one file each, in flow order; [`leases`] is the lease protocol the
//!   coupon (budget) and fulfillment (stock) stages share.
//! - `sim` (tests only): the deterministic simulation of the coupon ledger
//!   under crashes, rebalances and zombies, and the auditor's tests against
//!   logs the real stages wrote.

pub mod collector;
pub mod coupon;
pub mod fulfillment;
pub mod intent;
pub mod leases;
pub mod progress;
pub mod reply;
#[cfg(test)]
mod sim;
pub mod stage;
pub mod topic;

pub use collector::{Batch, Collector, Emit};
pub use coupon::CouponStage;
pub use fulfillment::FulfillmentStage;
pub use intent::IntentStage;
pub use reply::ReplyStage;
pub use stage::{OwnOutput, Plan, Replay, Restore, Stage, StageId, StatePlan, TICK};
pub use topic::Topic;
