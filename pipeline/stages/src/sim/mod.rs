//! Deterministic simulation of the coupon ledger (after TigerBeetle's VOPR
//! and FoundationDB's simulator): the real coupon stage, folds, fulfillment
//! and reply stages run against in-memory logs, with several coupon
//! instances over many partitions, while a seeded random schedule injects
//! crashes at any point (before or after produce, before or after the offset
//! is stored or committed), restarts, clean and unclean rebalances, zombies
//! that keep writing after losing a partition, redeliveries, duplicate
//! records, failed orders and delayed lease grants. After the faults stop
//! and the system drains, the auditor's checks must pass.
//!
//! A failing seed is printed; `CHATCART_SIM_SEED=<seed>` replays just it.
//!
//! The model of the runner: an instance's outputs wait in an outbox until
//! "acknowledged" (written to the log, in order); an input's offset is
//! stored once it and everything before it is finished and acknowledged,
//! and committed later; a new owner restores from the decisions log (often
//! through a checkpoint image of a prefix of it) and resumes at the
//! committed offsets.

#[cfg(test)]
mod auditor;
#[cfg(test)]
mod tests;
mod world;

pub use world::{logs, run};
