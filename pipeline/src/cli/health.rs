//! `chatcart health --url URL`: asks a chatcart process's health endpoint
//! (`runtime.health_listen`) and exits 0 when it answers 200, 1 otherwise,
//! printing what it said. Container healthchecks use it, so the image
//! needs no curl.

use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint, e.g. http://127.0.0.1:9464/health.
    #[arg(long)]
    url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()?;
    let response = match client.get(&args.url).send().await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("unhealthy: {} did not answer: {e}", args.url);
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = response.status();
    // The endpoint's answer is a few short lines; more is not read.
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(4_096).collect();
    if status.is_success() {
        println!("{}", body.trim_end());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("unhealthy ({status}): {}", body.trim_end());
        Ok(ExitCode::FAILURE)
    }
}
