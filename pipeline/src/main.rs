//! The `chatcart` binary: parses the command line, sets up logging and the
//! async runtime, and runs the command (`cli`, one file per command).

mod cli;

use std::io::{self, IsTerminal as _};
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use cli::LogFormat;

/// Allocation was about a fifth of a stage process's CPU with the system
/// allocator (docs/benchmarks.md, the tuning table of "Pipeline against
/// the broker").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = cli::Cli::parse();
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => filter,
            Err(e) => {
                eprintln!(
                    "error: RUST_LOG=`{spec}` is not a log filter: {e} (e.g. RUST_LOG=info, or RUST_LOG=warn,chatcart_runtime=debug)"
                );
                return ExitCode::from(2);
            }
        },
        _ => EnvFilter::new(cli.default_log_level()),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match cli.log_format() {
        LogFormat::Json => logs.json().init(),
        // Colour codes only for a person at a terminal, not in a file or
        // a log shipper.
        LogFormat::Text => logs.with_ansi(io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.execute()) {
        Ok(code) => code,
        // Writing to a reader that went away (see quiet_on_broken_pipe).
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(141)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `chatcart report | head` closes the pipe early; Rust's print macros
/// then panic. A reader who stopped reading is no fault: exit quietly, with
/// the status of a Unix tool ended by SIGPIPE (141). (Restoring the signal
/// itself would take unsafe code, which this workspace forbids.)
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
