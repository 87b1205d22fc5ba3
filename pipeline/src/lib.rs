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
//! The layers without IO are crates of their own, below this one:
//! `chatcart_ledger` (campaigns, the folds that decide which grants, leases
//! and orders count, and the auditor's checks), `chatcart_extract` (the
//! catalog and reading it out of a prompt), `chatcart_llm` (the optional LLM
//! fallback) and `chatcart_stages` (the `Stage` trait, the four stages, the
//! runner's bookkeeping and the simulation). This crate does the IO:
//! - [`runtime`]: the one runner for every stage (offsets stored only after
//!   outputs are acknowledged; drain on SIGINT/SIGTERM), checkpoints,
//!   rebalances, health.
//! - [`analytics`]: the sink that records every topic in ClickHouse.
//! - [`app`]: wiring stages into a process; [`config`], [`topics`]: settings
//!   and the topics' full names.
//! - What the commands run: [`audit`] (`chatcart audit`), [`report`],
//!   [`surge`], [`bench`](mod@bench), [`demo`] and [`send`]. The command
//!   line itself is the binary's (`src/cli/`, one file per command).

pub mod analytics;
pub mod app;
pub mod audit;
pub mod bench;
pub mod config;
pub mod demo;
pub mod report;
pub mod runtime;
pub mod send;
pub mod surge;
pub mod topics;

pub use config::Settings;
pub use stages::Topic;
pub use topics::TopicNames;
