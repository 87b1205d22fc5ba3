//! `chatcart config check`: loads the configuration exactly as a stage
//! does (defaults, `--config`, `CHATCART__…` variables, `campaigns_file`)
//! and prints the effective settings with every secret shown as
//! `<redacted>`; exits 1 with the error otherwise. Nothing is contacted.

use std::process::ExitCode;

use clap::Subcommand;

use super::Config;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Load the configuration as a stage would and print the effective
    /// settings, secrets redacted; exit 1 with the error if it does not load.
    Check,
}

pub fn run(action: Action, config: &Config) -> anyhow::Result<ExitCode> {
    let Action::Check = action;
    let settings = config.settings()?;
    print!("{}", toml::to_string(&settings.redacted())?);
    eprintln!("configuration loads and is valid");
    Ok(ExitCode::SUCCESS)
}
