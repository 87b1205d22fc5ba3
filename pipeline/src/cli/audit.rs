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
    /// Also check the analytics sink's rows in ClickHouse: every record
    /// of every topic it copies stored once, from the topic's start, with
    /// no gap (records it has not reached yet are not a failure).
    #[arg(long)]
    clickhouse: bool,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    let mut report = tools::audit::run(&settings, Duration::from_secs(args.timeout)).await?;
    if args.clickhouse {
        report
            .checks
            .push(tools::audit::stored::run(&settings).await?);
    }
    println!("{report}");
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
