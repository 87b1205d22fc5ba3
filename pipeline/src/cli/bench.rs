//! `chatcart bench`: the raw hop, the no-op relay and the pipeline measured
//! on the configured services, then a backlog drained; prints a table and
//! writes the figures as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tools::bench::{self, BenchOptions};

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Records of each throughput run.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Throughput runs of each configuration; the table shows the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    runs: u16,
    /// Prompts queued before the pipeline starts, for the drain phase (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// How long each half-load latency phase sends.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    latency_for: Duration,
    /// How long to wait for a phase's last answers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    drain_timeout: Duration,
    /// Where the processes' configuration files and logs go.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    work_dir: PathBuf,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE", default_value = "target/bench/bench.json")]
    json: PathBuf,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let report = bench::run(
        &config.settings()?,
        &BenchOptions {
            records: args.records,
            runs: usize::from(args.runs),
            backlog: args.backlog,
            latency_for: args.latency_for,
            drain_timeout: args.drain_timeout,
            work_dir: args.work_dir,
            progress: true,
        },
    )
    .await?;
    println!("{report}");
    let json = args.json;
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("figures written to {}", json.display());
    Ok(ExitCode::SUCCESS)
}
