//! chatcart: a stream-processing pipeline that turns chat shopping prompts
//! into orders, built to hold up under campaign surges.
//!
//! ```text
//! chat.prompts ─▶ intent ─▶ commerce.intents ─▶ coupon ─▶ commerce.decisions ─▶ fulfillment ─▶ commerce.orders
//!                   │ rejected                  ▲   │ ▲ leases        │ denied       │ returns        │ placed / failed
//!                   │                           │   ▼ │               │              ▼                │
//!                   │                           │ campaign.treasury ◀─┼──────────────┘                │
//!                   │                           └─────────────────────┼── releases (failed orders) ◀──┤
//!                   └───────────────────────────────────────────────▶ reply ◀─────────────────────────┘
//!                                                                      └─▶ chat.replies
//! every topic ─▶ analytics sink ─▶ ClickHouse
//! ```
//!
//! All topics are keyed by user id and share one partition count, so
//! partition `p` of every topic is one shard of the whole pipeline: a stage
//! that owns input partition `p` writes output partition `p`, and restores
//! its state for `p` from its own output partition `p` (the log is the ledger).
//!
//! # Layout
//! The pure layers are crates of their own, below this one:
//! `chatcart_ledger` (campaigns and the folds that decide which grants,
//! leases and orders count), `chatcart_extract` (the catalog and reading it
//! out of a prompt) and `chatcart_llm` (the optional LLM fallback for
//! prompts the rules read with low confidence). This crate holds:
//! - [`runtime`]: the [`runtime::Stage`] trait and the one runner for every stage
//!   (offsets stored only after outputs are acknowledged; drain on SIGINT/SIGTERM).
//! - [`stages`]: [`stages::IntentStage`], [`stages::CouponStage`],
//!   [`stages::FulfillmentStage`], [`stages::ReplyStage`], one file each.
//! - [`audit`]: re-folds every topic with the ledger's folds and checks the
//!   campaign's promises; [`lines`] runs the extractor over lines of text
//!   (`chatcart extract`).
//! - [`analytics`]: the sink that records every topic in ClickHouse.
//! - [`report`]: `chatcart report`, a campaign's figures and charts read back from ClickHouse.
//! - [`surge`], [`bench`](mod@bench): `chatcart surge` and `chatcart bench`.
//! - [`config`], [`topics`]: settings and topic names.
//! - [`app`]: wiring stages into a process; [`demo`] and [`send`] for trying it.

pub mod analytics;
pub mod app;
pub mod audit;
pub mod bench;
pub mod config;
pub mod demo;
pub mod lines;
pub mod report;
pub mod runtime;
pub mod send;
#[cfg(test)]
mod sim;
pub mod stages;
pub mod surge;
pub mod topics;

pub use config::Settings;
pub use topics::{Topic, TopicNames};
