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
//! - [`runtime`]: the [`runtime::Stage`] trait and the one runner for every stage
//!   (offsets stored only after outputs are acknowledged; drain on SIGINT/SIGTERM).
//! - [`stages`]: [`stages::IntentStage`], [`stages::CouponStage`],
//!   [`stages::FulfillmentStage`], [`stages::ReplyStage`], one file each.
//! - [`ledger`]: the pure folds that decide which grants and leases count,
//!   shared by the stages and the [`audit`]; [`campaign`]: what each campaign
//!   grants, to whom and when.
//! - [`catalog`], [`extract`]: what can be bought, and reading it out of a
//!   prompt; [`lines`] runs the extractor over lines of text (`chatcart extract`);
//!   [`llm`]: the optional LLM fallback for prompts the rules read with low confidence.
//! - [`analytics`]: the sink that records every topic in ClickHouse.
//! - [`report`]: `chatcart report`, a campaign's figures and charts read back from ClickHouse.
//! - [`config`], [`topics`]: settings and topic names.
//! - [`app`]: wiring stages into a process; [`demo`] and [`send`] for trying it.

pub mod analytics;
pub mod app;
pub mod audit;
pub mod bench;
pub mod campaign;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod extract;
pub mod ledger;
pub mod lines;
pub mod llm;
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
