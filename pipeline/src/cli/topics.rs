//! `chatcart topics create`: creates every topic and prints the layout.

use std::process::ExitCode;

use clap::Subcommand;
use runtime::{TopicNames, app};

use super::Config;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create every topic (existing ones are left as they are).
    Create {
        /// Partitions of every pipeline topic (overrides kafka.partitions).
        #[arg(long)]
        partitions: Option<i32>,
    },
}

pub async fn run(action: Action, config: &Config) -> anyhow::Result<ExitCode> {
    let Action::Create { partitions } = action;
    let mut settings = config.settings()?;
    if let Some(p) = partitions {
        settings.kafka.partitions = p;
        settings.validate()?;
    }
    app::create_topics(&settings).await?;
    app::check_topics(&settings).await?;
    for (name, partitions) in TopicNames::new(&settings.kafka).layout() {
        println!("{name}\t{partitions} partitions");
    }
    Ok(ExitCode::SUCCESS)
}
