//! `chatcart relay` (hidden): the no-op hop `chatcart bench` measures the
//! stages against.

use std::process::ExitCode;

use runtime::Shutdown;
use runtime::Topic;
use tools::bench::relay;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topic to read, by its base name (e.g. chat.prompts).
    #[arg(long, value_parser = relay::parse_topic)]
    from: Topic,
    /// The topic to write, by its base name (e.g. commerce.intents).
    #[arg(long, value_parser = relay::parse_topic)]
    to: Topic,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(trigger.fire_on_signal());
    relay::relay(
        &config.settings()?,
        args.from,
        args.to,
        shutdown,
        Default::default(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
