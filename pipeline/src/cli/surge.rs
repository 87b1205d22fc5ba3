//! `chatcart surge`: sends a surge of prompts on a rate profile to a running
//! pipeline and reports how it was answered; exits 1 unless every request
//! was answered exactly once.

use std::process::ExitCode;
use std::time::Duration;

use runtime::now_ms;
use tools::surge;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    profile: surge::ProfileArgs,
    #[command(flatten)]
    mix: surge::MixArgs,
    /// Seed of the traffic (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Names the run; request and user ids start with it (default: `surge-` and the Unix time in seconds).
    #[arg(long, value_parser = parse_run_name)]
    run: Option<String>,
    /// After the last send, wait this long for the remaining answers.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    drain_timeout: Duration,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    let secs = now_ms() / 1000;
    let report = surge::run(
        &settings,
        surge::Surge {
            profile: args.profile.profile()?,
            mix: args.mix.mix(),
            seed: args.seed.unwrap_or(secs as u64),
            run: args.run.unwrap_or_else(|| format!("surge-{secs}")),
            drain_timeout: args.drain_timeout,
            progress: true,
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.complete() {
        eprintln!(
            "incomplete: {} unanswered, {} duplicate answers, {} deliveries not acknowledged",
            report.unanswered, report.duplicate_answers, report.failed_sends
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A run name, checked as the traffic generator checks it.
fn parse_run_name(s: &str) -> Result<String, String> {
    surge::traffic::check_run(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}
