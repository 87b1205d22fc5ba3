//! The `chatcart` command line: the commands, one file each, and how the
//! binary hands a parsed command to its file.
//!
//! # Layout
//! - `topics`, `run`, `relay`: create the topics; run stages, or the
//!   benchmark's no-op relay, until SIGINT/SIGTERM.
//! - `gateway`: the HTTP front door for chat front-ends.
//! - `send`, `demo`, `extract`: try the pipeline by hand.
//! - `surge`, `bench`: load and measure it.
//! - `migrate`, `report`, `audit`: the analytics tables, a campaign's
//!   figures, and the check of every promise.
//! - `config`: load the configuration and show it, secrets redacted;
//!   `health`: ask a running process whether it is healthy; `lag`: every
//!   consumer group's lag and status.

mod audit;
mod bench;
mod config;
mod demo;
mod extract;
mod gateway;
mod health;
mod lag;
mod migrate;
mod relay;
mod report;
mod run;
mod send;
mod surge;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runtime::Settings;

/// Turns chat shopping prompts into orders, one Kafka stage at a time.
#[derive(Debug, Parser)]
#[command(name = "chatcart", version, about)]
pub struct Cli {
    /// A TOML configuration file (see chatcart.example.toml). Environment
    /// variables such as CHATCART__KAFKA__BOOTSTRAP_SERVERS override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How logs are written to stderr: `text` for people, `json` (one
    /// object per line) for log shippers. RUST_LOG sets the level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create chatcart's topics.
    Topics {
        #[command(subcommand)]
        action: topics::Action,
    },
    /// Check the configuration: load it as a stage would and print the
    /// effective settings, secrets redacted.
    Config {
        #[command(subcommand)]
        action: config::Action,
    },
    /// Ask a chatcart process's health endpoint (runtime.health_listen);
    /// exit 0 when it is healthy, 1 otherwise (for container healthchecks).
    Health(health::Args),
    /// Print every chatcart consumer group's lag per partition and its
    /// status (OK, WARN, REWIND, STALL, STOP by Burrow's rules) over a
    /// window of readings; the analytics sink's position is read from
    /// ClickHouse.
    Lag(lag::Args),
    /// Run one or more stages in this process until SIGINT/SIGTERM.
    Run(run::Args),
    /// Serve the HTTP front door for chat front-ends until SIGINT/SIGTERM:
    /// admits prompts by the pipeline's measured wait, publishes them and
    /// streams each person a queued and a final answer.
    Gateway(gateway::Args),
    /// Publish one prompt, as a chat front-end would.
    Send(send::Args),
    /// Create or update the analytics tables and views in ClickHouse
    /// (clickhouse.url, clickhouse.database); the sink also does this when it starts.
    Migrate,
    /// Re-fold every topic from the beginning and check the pipeline's promises.
    Audit(audit::Args),
    /// Read prompts from stdin, one per line, and print what each orders as a JSON line.
    Extract(extract::Args),
    /// Run the whole pipeline in-process on a mock Kafka cluster (nothing to install).
    Demo(demo::Args),
    /// Send a surge of prompts at a rate profile to a running pipeline and
    /// measure every answer: latency from each request's intended send
    /// time, outcomes by reason, budget used, throughput over time.
    Surge(surge::Args),
    /// Measure, on the configured broker and ClickHouse, a raw produce and
    /// consume hop, a no-op relay through the pipeline's topic chain and the
    /// pipeline itself; then drain a backlog through the pipeline's
    /// processes. Prints a table and writes JSON.
    Bench(bench::Args),
    /// Print a campaign's key figures from ClickHouse; optionally also write
    /// them with charts as a self-contained HTML page.
    Report(report::Args),
    /// Pass every record of one topic on to the same partition of another,
    /// untouched, until SIGINT/SIGTERM: the no-op baseline of `chatcart
    /// bench`.
    #[command(hide = true)]
    Relay(relay::Args),
}

impl Cli {
    /// How logs are written.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The level logged when `RUST_LOG` says nothing: the commands whose
    /// output is a report keep the terminal for it.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Demo(_)
            | Command::Extract(_)
            | Command::Report(_)
            | Command::Surge(_)
            | Command::Bench(_)
            | Command::Config { .. }
            | Command::Health(_)
            | Command::Lag(_) => "warn",
            _ => "info",
        }
    }

    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let config = Config(self.config);
        match self.command {
            Command::Topics { action } => topics::run(action, &config).await,
            Command::Config { action } => config::run(action, &config),
            Command::Health(args) => health::run(args).await,
            Command::Lag(args) => lag::run(args, &config).await,
            Command::Run(args) => run::run(args, &config).await,
            Command::Gateway(args) => gateway::run(args, &config).await,
            Command::Send(args) => send::run(args, &config).await,
            Command::Migrate => migrate::run(&config).await,
            Command::Audit(args) => audit::run(args, &config).await,
            Command::Extract(args) => extract::run(args, &config),
            Command::Demo(args) => demo::run(args, &config).await,
            Command::Surge(args) => surge::run(args, &config).await,
            Command::Bench(args) => bench::run(args, &config).await,
            Command::Report(args) => report::run(args, &config).await,
            Command::Relay(args) => relay::run(args, &config).await,
        }
    }
}

/// Where the settings come from: `--config`, then `CHATCART__…` variables.
/// Loaded only by the commands that need them (the demo does not).
struct Config(Option<PathBuf>);

impl Config {
    fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Settings::load(self.0.as_deref())?)
    }
}
