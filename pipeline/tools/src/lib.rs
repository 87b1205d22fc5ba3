//! chatcart's tools: what the commands other than `run` do, on top of the
//! runtime. Nothing in a running pipeline depends on this crate.
//!
//! # Layout
//! - [`send`]: publish one prompt as a front-end would, and wait for its
//!   reply.
//! - [`surge`]: seeded campaign traffic at a rate profile, and what came
//!   back; straight to Kafka or through `chatcart gateway`
//!   ([`gateway_client`]: its HTTP client).
//! - [`bench`](mod@bench): the repeatable benchmark of the broker, a no-op
//!   relay and the pipeline, and its relay.
//! - [`report`]: a campaign's figures from ClickHouse, as text or HTML.
//! - [`lag`]: every consumer group's lag and status, for operators.
//! - [`audit`]: re-fold every topic and check the pipeline's promises
//!   (the checks themselves are `chatcart_ledger::audit`).
//! - [`demo`]: the whole pipeline in-process on a mock cluster.
//! - [`procs`]: chatcart processes started as children and stopped as an
//!   orchestrator stops them, with their memory; the one supervisor the
//!   benchmark and the integration tests share.

pub mod audit;
pub mod bench;
pub mod demo;
pub mod gateway_client;
pub mod lag;
pub mod procs;
pub mod report;
pub mod send;
pub mod surge;
