//! `chatcart run`: runs stages in this process until SIGINT/SIGTERM, then
//! drains them.

use std::process::ExitCode;

use runtime::Shutdown;
use runtime::app::{self, StageName};

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stages to run; `all` runs every stage.
    #[arg(required = true, value_enum)]
    stages: Vec<StageName>,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(trigger.clone().fire_on_signal());
    app::run(
        args.stages,
        config.settings()?,
        trigger,
        shutdown,
        Default::default(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
