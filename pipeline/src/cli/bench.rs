//! `chatcart bench`: the raw hop, the no-op relay and the pipeline measured
//! on the configured services, then a backlog drained and the pipeline held
//! at half its burst rate for minutes; prints a table and writes the
//! figures as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tools::bench::sustained::Goals;
use tools::bench::{self, BenchOptions, Phase, SustainedOptions};

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
    /// The phases to run (comma-separated); they run in this order whatever
    /// the order given.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Phase::ALL)]
    phases: Vec<Phase>,
    /// Sustained phase: its rate as a share of the pipeline phase's burst rate.
    #[arg(long, default_value_t = 0.5)]
    sustained_share: f64,
    /// Sustained phase: a fixed rate (requests/s) instead of a share; needed
    /// when the pipeline phase does not run.
    #[arg(long, value_name = "PER_SEC")]
    sustained_rate: Option<f64>,
    /// Sustained phase: how long it is measured.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    sustained_for: Duration,
    /// Sustained phase: how long it sends at the rate before it is measured
    /// (whole minutes).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
    sustained_lead_in: Duration,
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
            phases: args.phases,
            sustained: SustainedOptions {
                share: args.sustained_share,
                rate: args.sustained_rate,
                lead_in: args.sustained_lead_in,
                duration: args.sustained_for,
                goals: Goals::default(),
            },
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
