//! What a benchmark run measured: the JSON `chatcart bench` writes (`--json`)
//! and the table it prints.

use std::fmt;

use serde::Serialize;

use super::cpu::CpuUse;
use super::sustained::Sustained;
use crate::procs::RssStats;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: &'static str,
    /// Records (requests) per second, sustained over a run: the median run.
    pub per_sec: f64,
    /// Every run's records per second, in the order they ran.
    pub runs: Vec<f64>,
    /// Records of each run.
    pub records: u64,
    /// Latency at half of the relay's maximum rate (not for the raw hop).
    pub half_load: Option<HalfLoad>,
    /// CPU per request of each process over the throughput runs.
    pub cpu: CpuUse,
}

/// Latency at a fixed, sustainable rate.
#[derive(Debug, Clone, Serialize)]
pub struct HalfLoad {
    pub rate: f64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub answered: u64,
    pub requests: u64,
}

/// The drain of a backlog through the pipeline's processes.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub backlog: u64,
    /// From starting the processes to the last answer.
    pub secs: f64,
    pub per_sec: f64,
    pub answered: u64,
    pub rss: Vec<RssStats>,
}

/// Everything one `chatcart bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub date_unix: i64,
    pub bootstrap_servers: String,
    pub partitions: i32,
    /// The phases that ran, of the raw hop, the relay and the pipeline.
    pub rows: Vec<Row>,
    /// Pipeline throughput over the relay's (goal: at least 0.6).
    pub pipeline_over_relay: Option<f64>,
    /// Relay throughput over the raw hop's.
    pub relay_over_raw: Option<f64>,
    /// Pipeline p99 over the relay's at half the relay's maximum (goal: at most 1.5).
    pub p99_pipeline_over_relay: Option<f64>,
    /// The relay's measured CPU per request over the pipeline's: on a
    /// machine the processes keep busy, the throughput ratio to expect,
    /// without the run-to-run noise of the throughput itself.
    pub cpu_relay_over_pipeline: Option<f64>,
    pub drain: Option<Drain>,
    pub sustained: Option<Sustained>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chatcart bench ({} partitions, broker {})",
            self.partitions, self.bootstrap_servers
        )?;
        if !self.rows.is_empty() {
            writeln!(
                f,
                "  {:<12} {:>12}  {:<26} {:<34}",
                "", "records/s", "runs (records/s)", "latency at half the relay's max"
            )?;
        }
        for row in &self.rows {
            let latency = row.half_load.as_ref().map_or(String::new(), |h| {
                format!(
                    "{:.0}/s: p50 {} ms, p99 {} ms, max {} ms{}",
                    h.rate,
                    h.p50_ms,
                    h.p99_ms,
                    h.max_ms,
                    if h.answered < h.requests {
                        format!(" ({} of {} answered)", h.answered, h.requests)
                    } else {
                        String::new()
                    }
                )
            });
            writeln!(
                f,
                "  {:<12} {:>12.0}  {:<26} {latency}",
                row.name,
                row.per_sec,
                row.runs
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
        }
        if let Some(ratio) = self.pipeline_over_relay {
            writeln!(
                f,
                "  pipeline / relay throughput   {ratio:.2}  (goal >= 0.6)"
            )?;
        }
        if let Some(ratio) = self.relay_over_raw {
            writeln!(f, "  relay / raw hop throughput    {ratio:.2}")?;
        }
        if let Some(p99) = self.p99_pipeline_over_relay {
            writeln!(
                f,
                "  pipeline / relay p99          {p99:.2}  (goal <= 1.5, at half the relay's max)"
            )?;
        }
        if !self.rows.is_empty() {
            self.fmt_cpu(f)?;
        }
        if let Some(d) = &self.drain {
            writeln!(
                f,
                "  backlog of {} drained in {:.1} s ({:.0}/s); memory of each process while it drained:",
                d.backlog, d.secs, d.per_sec
            )?;
            for r in &d.rss {
                writeln!(
                    f,
                    "    {:<12} peak {:>7.1} MiB, median {:>7.1} MiB",
                    r.name,
                    r.peak_kib as f64 / 1024.0,
                    r.median_kib as f64 / 1024.0
                )?;
            }
        }
        if let Some(s) = &self.sustained {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl BenchReport {
    /// The CPU table: µs per request of each process, one column a row.
    fn fmt_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shared processes first, then each phase's own in the order they
        // first appear.
        let mut names: Vec<&str> = vec!["broker", "clickhouse", "generator"];
        for row in &self.rows {
            for name in row.cpu.processes.keys() {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        writeln!(
            f,
            "  CPU per request over the throughput runs (µs; broker and ClickHouse when they run here):"
        )?;
        write!(f, "    {:<24}", "")?;
        for row in &self.rows {
            write!(f, " {:>12}", row.name)?;
        }
        writeln!(f)?;
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
        for name in names {
            write!(f, "    {name:<24}")?;
            for row in &self.rows {
                write!(f, " {:>12}", cell(row.cpu.processes.get(name).copied()))?;
            }
            writeln!(f)?;
        }
        let totals = [
            (
                "all of the above",
                self.rows
                    .iter()
                    .map(|r| Some(r.cpu.measured_us))
                    .collect::<Vec<_>>(),
            ),
            (
                "whole machine",
                self.rows.iter().map(|r| r.cpu.machine_us).collect(),
            ),
        ];
        for (label, values) in totals {
            write!(f, "    {label:<24}")?;
            for value in values {
                write!(f, " {:>12}", cell(value))?;
            }
            writeln!(f)?;
        }
        if let Some(ratio) = self.cpu_relay_over_pipeline {
            writeln!(
                f,
                "  relay / pipeline CPU per request {ratio:.2}  (the throughput ratio the CPU alone predicts)"
            )?;
        }
        Ok(())
    }
}
