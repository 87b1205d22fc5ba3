//! The test kit of the integration and fault tests: real services, an
//! isolated namespace per test, stages in-process or as child processes,
//! topic IO, fixtures, and the checks every scenario ends with.
//!
//! # Layout
//! - [`services`]: where the broker and ClickHouse under test are; logging.
//! - [`namespace`]: a test's own topics, groups, database and folder.
//! - [`fixtures`]: the prompts scenarios are built from.
//! - [`gateway`]: `chatcart gateway` in-process, and an HTTP client for its
//!   answers and event streams.
//! - [`pipeline`]: stages running inside the test process.
//! - [`child`]: `chatcart` as a child process (to SIGKILL or drain it),
//!   and the configuration file it reads.
//! - [`topics`]: publishing prompts and reading topics back.
//! - [`checks`]: the auditor's verdict, one reply per request, ClickHouse's
//!   rows.
//! - [`private_clickhouse`]: a ClickHouse server of one test's own.
//! - [`own_broker`]: a Tansu broker of one test's own, to kill and restart.
//! - [`netns`]: a network namespace to cut a process off the broker.
//! - [`slow_link`]: a proxy that holds back ClickHouse's answers to inserts.
//!
//! Everything is re-exported here, so a test reads `t::publish(…)`.

pub mod checks;
pub mod child;
pub mod fixtures;
pub mod gateway;
pub mod namespace;
pub mod netns;
pub mod own_broker;
pub mod pipeline;
pub mod private_clickhouse;
pub mod services;
pub mod slow_link;
pub mod topics;

pub use checks::*;
pub use child::*;
pub use fixtures::*;
pub use gateway::*;
pub use namespace::*;
pub use netns::*;
pub use own_broker::*;
pub use pipeline::*;
pub use private_clickhouse::*;
pub use services::*;
pub use slow_link::*;
pub use topics::*;
