//! `chatcart gateway`: serves the HTTP front door (the `[gateway]` section)
//! until SIGINT/SIGTERM.

use std::process::ExitCode;

use runtime::Shutdown;
use runtime::app;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `HOST:PORT` to listen on (overrides gateway.listen).
    #[arg(long)]
    listen: Option<String>,
    /// This instance's partition of chat.gateway.replies (overrides
    /// gateway.instance); each running instance needs its own.
    #[arg(long)]
    instance: Option<i32>,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let mut settings = config.settings()?;
    if let Some(listen) = args.listen {
        settings.gateway.listen = listen;
    }
    if let Some(instance) = args.instance {
        settings.gateway.instance = instance;
    }
    settings.validate()?;
    let codec = app::codec(&settings)?;
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(trigger.fire_on_signal());
    gateway::run(settings, codec, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
