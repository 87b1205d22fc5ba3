//! `chatcart lag`: every chatcart consumer group's lag per partition, and
//! its status by Burrow's rules, read over a window and printed once (or
//! refreshed in place with `--watch`). The work is `tools::lag`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use runtime::Shutdown;
use tools::lag::{Options, Sampler, Window, evaluate_window, measure};

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this group: intent, coupon, fulfillment, reply or analytics
    /// (or its id: kafka.group_prefix, a dot, the name).
    #[arg(long)]
    group: Option<String>,
    /// Seconds the readings span; statuses compare the first reading with
    /// the last. Readings are a second apart.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=600))]
    window: u64,
    /// Keep reading and refresh the table in place every second, until
    /// Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Print JSON (with --watch, one object per line).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    let options = Options {
        group: args.group,
        window: Duration::from_secs(args.window),
        every: Duration::from_secs(1),
    };
    if !args.watch {
        let report = measure(&settings, &options).await?;
        print(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (trigger, mut shutdown) = Shutdown::new();
    tokio::spawn(trigger.fire_on_signal());
    let sampler = Sampler::new(&settings, &options)?;
    let mut window = Window::new(&options);
    loop {
        window.push(sampler.sample().await?);
        let report = evaluate_window(sampler.groups(), &window.samples());
        if !args.json {
            // Home and clear: the table replaces the last one.
            print!("\x1b[H\x1b[2J");
        }
        print(&report, args.json)?;
        tokio::select! {
            () = shutdown.wait() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(options.every) => {}
        }
    }
}

fn print(report: &tools::lag::LagReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(())
}
