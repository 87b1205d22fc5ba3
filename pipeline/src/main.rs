//! The `chatcart` binary: parses the command line, sets up logging and the
//! async runtime, and runs the command (`cli`, one file per command).

mod cli;

use std::io;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

/// Allocation was about a fifth of a stage process's CPU with the system
/// allocator (docs/benchmarks.md, the tuning table of "Pipeline against
/// the broker").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(cli.default_log_level())),
        )
        .with_writer(io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.execute()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
