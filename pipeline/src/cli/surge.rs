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
    /// Send through `chatcart gateway` at this base URL (e.g.
    /// http://127.0.0.1:8080) instead of straight to Kafka, timing each
    /// request's first event and final answer.
    #[arg(long, value_name = "URL")]
    via_gateway: Option<String>,
    /// Through a gateway: requests open at once (each holds a connection).
    #[arg(long, default_value_t = 8_000)]
    max_open: usize,
    /// Through a gateway: the pipeline's capacity in answers/s, to hold the
    /// goodput against (e.g. from `chatcart bench` or a surge below it).
    #[arg(long, value_name = "PER_SEC")]
    capacity: Option<f64>,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    let secs = now_ms() / 1000;
    let via_gateway = args.via_gateway.map(|url| surge::via_gateway::ViaGateway {
        url,
        max_open: args.max_open.max(1),
        timeout: settings.gateway.max_stream() + Duration::from_secs(10),
        capacity: args.capacity,
        implicit_promise_ms: settings.gateway.queued_after_ms,
    });
    let report = surge::run(
        &settings,
        surge::Surge {
            profile: args.profile.profile()?,
            mix: args.mix.mix(),
            seed: args.seed.unwrap_or(secs as u64),
            run: args.run.unwrap_or_else(|| format!("surge-{secs}")),
            drain_timeout: args.drain_timeout,
            progress: true,
            via_gateway,
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
