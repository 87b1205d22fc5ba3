//! `chatcart demo`: the whole pipeline in this process on a mock Kafka
//! cluster, a surge through it, and the audit; exits 1 unless every request
//! got exactly one reply and the audit is clean.

use std::process::ExitCode;
use std::time::Duration;

use tools::demo::{self, DemoOptions};

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many prompts to send (at most 50,000: beyond that the mock
    /// cluster no longer reads its topics back whole, so the audit would
    /// report records missing that the pipeline handled).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    requests: u32,
    /// Requests per second to send them at (the surge generator's constant
    /// profile), more than 0 and at most 100,000.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Partitions of every pipeline topic (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=64))]
    partitions: i32,
    /// Campaign budget in cents.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(i64).range(0..))]
    budget_cents: i64,
    /// Record every topic in this ClickHouse (HTTP URL, e.g. http://localhost:8123).
    /// The login is `--clickhouse-user` and clickhouse.password from
    /// `--config` or CHATCART__CLICKHOUSE__PASSWORD (not a flag, so it is
    /// not in the process list).
    #[arg(long)]
    clickhouse_url: Option<String>,
    /// ClickHouse user for `--clickhouse-url` (default: clickhouse.user,
    /// `default` unless configured).
    #[arg(long)]
    clickhouse_user: Option<String>,
    /// Limit a SKU's stock, e.g. `--stock egg-tart=40` (repeatable);
    /// orders beyond it fail `out_of_stock` and get their credit back.
    #[arg(long, value_name = "SKU=UNITS", value_parser = parse_stock)]
    stock: Vec<(String, i64)>,
    /// Seed for the synthetic traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up after this many seconds: waiting for the stages to start,
    /// for ClickHouse, and for the replies.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Send the prompts through `chatcart gateway` (run in this process),
    /// as HTTP requests with their event streams, instead of to Kafka.
    #[arg(long)]
    via_gateway: bool,
}

/// Runs the demo with its own flags, so it behaves the same on every
/// machine; from the configuration (`--config`, `CHATCART__…`) it reads the
/// ClickHouse login alone, and only with `--clickhouse-url`.
pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let (user, password) = if args.clickhouse_url.is_some() {
        let settings = config.settings()?;
        (
            args.clickhouse_user.unwrap_or(settings.clickhouse.user),
            settings.clickhouse.password,
        )
    } else {
        if config.0.is_some() {
            anyhow::bail!(
                "chatcart demo reads --config only for the ClickHouse login of --clickhouse-url; everything else is its own flags (see chatcart demo --help)"
            );
        }
        (String::new(), String::new())
    };
    let summary = demo::run(DemoOptions {
        stock: args.stock.into_iter().collect(),
        requests: args.requests as usize,
        rate: args.rate,
        progress: true,
        partitions: args.partitions,
        budget_cents: args.budget_cents,
        clickhouse_url: args.clickhouse_url,
        clickhouse_user: user,
        clickhouse_password: password,
        seed: args.seed,
        timeout: Duration::from_secs(args.timeout),
        gateway: args.via_gateway,
    })
    .await?;
    println!("{summary}\n");
    println!("{}", summary.audit);
    Ok(if summary.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `SKU=UNITS`, as `--stock` takes it.
fn parse_stock(text: &str) -> Result<(String, i64), String> {
    let (sku, units) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not SKU=UNITS, e.g. egg-tart=40"))?;
    let units: i64 = units
        .trim()
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("`{units}` is not a number of units (0 or more)"))?;
    Ok((sku.trim().to_owned(), units))
}
