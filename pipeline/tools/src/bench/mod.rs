//! `chatcart bench`: the pipeline measured against the broker's own limit,
//! in bursts and held for minutes.
//!
//! # Layout
//! - [`options`]: what a run is asked to do; [`harness`]: the phases of a
//!   run; [`results`]: what it measured, as JSON and as the printed table.
//! - [`relay`]: a no-op relay hop (consume, produce to the same partition of
//!   the next topic, store the offset once acknowledged), the baseline the
//!   pipeline's stages are compared with (`chatcart relay` runs one).
//! - [`cpu`]: the CPU time each process (broker and ClickHouse included)
//!   spends per request.
//! - [`raw`]: one produce-and-consume hop with the pipeline's client settings.
//! - [`sustained`]: the pipeline held at a share of its burst rate for
//!   minutes: answers per 10-s window, latency and CPU per minute.

pub mod cpu;
pub mod harness;
pub mod options;
pub mod raw;
pub mod relay;
pub mod results;
pub mod sustained;

pub use harness::run;
pub use options::{BenchOptions, Phase, SustainedOptions};
pub use results::BenchReport;
