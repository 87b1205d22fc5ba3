//! The analytics sink: its own consumer group over every topic, one row per
//! Kafka record into ClickHouse's `events` table, each record exactly once.
//!
//! # Layout
//! - [`row`]: the row for one record (no prompt or reply text), and the
//!   `campaigns` rows the views set spending and sales against.
//! - [`cursor`]: where each partition resumes, from what ClickHouse holds.
//! - [`sink`]: the loop: batch, insert, store offsets; pause and retry
//!   while ClickHouse is away; refused rows to the dead-letter topic.
//!
//! The schema (tables and the views analysts query) is migrated by
//! `connectors::clickhouse::migrate`, at sink start and by `chatcart migrate`.

pub mod cursor;
pub mod row;
pub mod sink;

pub use sink::run_sink;
