//! `chatcart audit`: re-folds every topic and checks every promise; exits
//! 1 if one is broken.

use std::process::ExitCode;
use std::time::Duration;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up reading a topic after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let report = tools::audit::run(&config.settings()?, Duration::from_secs(args.timeout)).await?;
    println!("{report}");
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
