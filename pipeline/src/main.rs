//! The `chatcart` command line.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chatcart::app::{self, StageName};
use chatcart::bench::relay;
use chatcart::demo::{self, DemoOptions};
use chatcart::lines;
use chatcart::report;
use chatcart::runtime::Shutdown;
use chatcart::send::{self, Format};
use chatcart::surge;
use chatcart::{Settings, Topic};
use clap::{Parser, Subcommand};
use extract::Extractor;
use extract::catalog::Catalog;
use tracing_subscriber::EnvFilter;

/// Allocation was about a fifth of a stage process's CPU with the system
/// allocator (docs/benchmarks.md, the tuning table of "Pipeline against
/// the broker").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns chat shopping prompts into orders, one Kafka stage at a time.
#[derive(Debug, Parser)]
#[command(name = "chatcart", version, about)]
struct Cli {
    /// A TOML configuration file (see chatcart.example.toml). Environment
    /// variables such as CHATCART__KAFKA__BOOTSTRAP_SERVERS override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create chatcart's topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Run one or more stages in this process until SIGINT/SIGTERM.
    Run {
        /// Stages to run; `all` runs every stage.
        #[arg(required = true, value_enum)]
        stages: Vec<StageName>,
    },
    /// Publish one prompt, as a chat front-end would.
    Send {
        /// The person sending it (the Kafka key).
        #[arg(long)]
        user: String,
        /// A request id; generated when omitted.
        #[arg(long)]
        request_id: Option<String>,
        /// `zh` or `en`; detected from the text when omitted.
        #[arg(long)]
        locale: Option<String>,
        /// How to encode the prompt.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Wait up to this many seconds for the reply and print it (0: don't wait).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// What the person typed.
        text: String,
    },
    /// Create or update the analytics tables and views in ClickHouse
    /// (clickhouse.url, clickhouse.database); the sink also does this when it starts.
    Migrate,
    /// Re-fold every topic from the beginning and check the pipeline's promises.
    Audit {
        /// Give up reading a topic after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Read prompts from stdin, one per line, and print what each orders as a JSON line.
    Extract {
        /// A catalog TOML file (default: intent.catalog, else the built-in catalog).
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        /// Largest quantity of one item (default: intent.max_quantity).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=10_000))]
        max_quantity: Option<i32>,
    },
    /// Run the whole pipeline in-process on a mock Kafka cluster (nothing to install).
    Demo {
        /// How many prompts to send (at most 50,000: beyond that the mock
        /// cluster no longer reads its topics back whole, so the audit would
        /// report records missing that the pipeline handled).
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
        requests: u32,
        /// Requests per second to send them at (the surge generator's constant profile).
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Partitions of every pipeline topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Campaign budget in cents.
        #[arg(long, default_value_t = 1_000_000)]
        budget_cents: i64,
        /// Record every topic in this ClickHouse (HTTP URL, e.g. http://localhost:8123).
        #[arg(long)]
        clickhouse_url: Option<String>,
        /// Limit a SKU's stock, e.g. `--stock egg-tart=40` (repeatable);
        /// orders beyond it fail `out_of_stock` and get their credit back.
        #[arg(long, value_name = "SKU=UNITS", value_parser = parse_stock)]
        stock: Vec<(String, i64)>,
        /// Seed for the synthetic traffic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Give up waiting for replies after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Send a surge of prompts at a rate profile to a running pipeline and
    /// measure every answer: latency from each request's intended send
    /// time, outcomes by reason, budget used, throughput over time.
    Surge {
        #[command(flatten)]
        profile: surge::ProfileArgs,
        #[command(flatten)]
        mix: surge::MixArgs,
        /// Seed of the traffic (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Names the run; request and user ids start with it (default: surge-<unix seconds>).
        #[arg(long, value_parser = parse_run_name)]
        run: Option<String>,
        /// After the last send, wait this long for the remaining answers.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        drain_timeout: Duration,
        /// Print the report as JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure, on the configured broker and ClickHouse, a raw produce and
    /// consume hop, a no-op relay through the pipeline's topic chain and the
    /// pipeline itself; then drain a backlog through the pipeline's
    /// processes. Prints a table and writes JSON.
    Bench {
        /// Records of each throughput run.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Throughput runs of each configuration; the table shows the median.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
        runs: u16,
        /// Prompts queued before the pipeline starts, for the drain phase (0: skip it).
        #[arg(long, default_value_t = 1_000_000)]
        backlog: u64,
        /// How long each half-load latency phase sends.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        latency_for: Duration,
        /// How long to wait for a phase's last answers.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
        drain_timeout: Duration,
        /// Where the processes' configuration files and logs go.
        #[arg(long, value_name = "DIR", default_value = "target/bench")]
        work_dir: PathBuf,
        /// Also write the figures as JSON to this file.
        #[arg(long, value_name = "FILE", default_value = "target/bench/bench.json")]
        json: PathBuf,
    },
    /// Print a campaign's key figures from ClickHouse; optionally also write
    /// them with charts as a self-contained HTML page.
    Report {
        /// ClickHouse HTTP URL (default: clickhouse.url).
        #[arg(long, value_name = "URL")]
        clickhouse_url: Option<String>,
        /// Database holding the analytics views (default: clickhouse.database).
        #[arg(long, value_name = "DB")]
        database: Option<String>,
        /// The campaign to report on (default: the first configured campaign).
        #[arg(long, value_name = "ID")]
        campaign: Option<String>,
        /// Start of the range, UTC: RFC 3339 or `YYYY-MM-DD HH:MM:SS`
        /// (default: the campaign's first record).
        #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
        from: Option<u32>,
        /// End of the range, inclusive, same forms (default: the campaign's last record).
        #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
        to: Option<u32>,
        /// Also write the report with charts to this HTML file.
        #[arg(long, value_name = "PATH")]
        html: Option<PathBuf>,
    },
    /// Pass every record of one topic on to the same partition of another,
    /// untouched, until SIGINT/SIGTERM: the no-op baseline of `chatcart
    /// bench`.
    #[command(hide = true)]
    Relay {
        /// The topic to read, by its base name (e.g. chat.prompts).
        #[arg(long, value_parser = relay::parse_topic)]
        from: Topic,
        /// The topic to write, by its base name (e.g. commerce.intents).
        #[arg(long, value_parser = relay::parse_topic)]
        to: Topic,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsAction {
    /// Create every topic (existing ones are left as they are).
    Create {
        /// Partitions of every pipeline topic (overrides kafka.partitions).
        #[arg(long)]
        partitions: Option<i32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Extract { .. }
            | Command::Report { .. }
            | Command::Surge { .. }
            | Command::Bench { .. }
    ) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
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
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = || Settings::load(cli.config.as_deref());
    match cli.command {
        Command::Demo {
            requests,
            rate,
            partitions,
            budget_cents,
            clickhouse_url,
            stock,
            seed,
            timeout,
        } => {
            let summary = demo::run(DemoOptions {
                stock: stock.into_iter().collect(),
                requests: requests as usize,
                rate,
                progress: true,
                partitions,
                budget_cents,
                clickhouse_url,
                seed,
                timeout: Duration::from_secs(timeout),
            })
            .await?;
            println!("{summary}\n");
            println!("{}", summary.audit);
            return Ok(if summary.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Extract {
            catalog,
            max_quantity,
        } => {
            let settings = settings()?;
            let path = catalog.or(settings.intent.catalog);
            let catalog = Catalog::load(path.as_deref()).with_context(|| {
                let name = path
                    .as_ref()
                    .map_or("built-in".into(), |p| p.display().to_string());
                format!("loading the catalog ({name})")
            })?;
            let max_quantity = max_quantity.unwrap_or(settings.intent.max_quantity);
            lines::extract_lines(
                &Extractor::new(catalog),
                max_quantity,
                io::stdin().lock(),
                io::stdout().lock(),
            )?;
        }
        Command::Bench {
            records,
            runs,
            backlog,
            latency_for,
            drain_timeout,
            work_dir,
            json,
        } => {
            let report = chatcart::bench::run(
                &settings()?,
                &chatcart::bench::BenchOptions {
                    records,
                    runs: usize::from(runs),
                    backlog,
                    latency_for,
                    drain_timeout,
                    work_dir,
                    progress: true,
                },
            )
            .await?;
            println!("{report}");
            if let Some(dir) = json.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&json, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing {}", json.display()))?;
            println!("figures written to {}", json.display());
        }
        Command::Surge {
            profile,
            mix,
            seed,
            run,
            drain_timeout,
            json,
        } => {
            let settings = settings()?;
            let secs = chatcart::runtime::now_ms() / 1000;
            let report = surge::run(
                &settings,
                surge::Surge {
                    profile: profile.profile()?,
                    mix: mix.mix(),
                    seed: seed.unwrap_or(secs as u64),
                    run: run.unwrap_or_else(|| format!("surge-{secs}")),
                    drain_timeout,
                    progress: true,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            if !report.complete() {
                eprintln!(
                    "incomplete: {} unanswered, {} duplicate answers, {} deliveries not acknowledged",
                    report.unanswered, report.duplicate_answers, report.failed_sends
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Migrate => {
            let settings = settings()?;
            if !settings.clickhouse.enabled() {
                anyhow::bail!(
                    "clickhouse.url is not set (e.g. CHATCART__CLICKHOUSE__URL=http://localhost:8123)"
                );
            }
            let m = connectors::clickhouse::migrate::migrate(&settings.clickhouse).await?;
            println!(
                "ClickHouse {} at {}, database {}",
                m.server.text, settings.clickhouse.url, settings.clickhouse.database
            );
            println!(
                "dialect: LowCardinality {}, insert deduplication token {}",
                if m.dialect.low_cardinality {
                    "on"
                } else {
                    "off (server before 20.1)"
                },
                if m.dialect.dedup_token {
                    "on"
                } else {
                    "off (server before 22.2)"
                }
            );
            for mig in connectors::clickhouse::migrate::MIGRATIONS {
                let state = if m.applied.contains(&mig.version) {
                    "applied now"
                } else {
                    "already applied"
                };
                println!("  {:04}_{:<16} {state}", mig.version, mig.name);
            }
        }
        Command::Report {
            clickhouse_url,
            database,
            campaign,
            from,
            to,
            html,
        } => {
            let mut settings = settings()?;
            if let Some(url) = clickhouse_url {
                settings.clickhouse.url = url;
            }
            if let Some(database) = database {
                settings.clickhouse.database = database;
            }
            if !settings.clickhouse.enabled() {
                anyhow::bail!(
                    "no ClickHouse to read: pass --clickhouse-url (e.g. http://localhost:8123) or set clickhouse.url"
                );
            }
            settings.clickhouse.validate()?;
            let request = report::Request {
                campaign,
                default_campaign: settings
                    .campaigns
                    .first()
                    .map(|c| c.id.clone())
                    .unwrap_or_default(),
                from,
                to,
            };
            let report = report::fetch(&settings.clickhouse, &request).await?;
            let mut text = report::text::render_text(&report);
            if let Some(path) = html {
                std::fs::write(&path, report::html::render_html(&report))
                    .with_context(|| format!("writing the HTML report to {}", path.display()))?;
                text.push_str(&format!("\nHTML report written to {}\n", path.display()));
            }
            let mut stdout = io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // `chatcart report | head` is not a failure.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                written => written.context("writing the report to standard output")?,
            }
        }
        Command::Audit { timeout } => {
            let report = chatcart::audit::run(&settings()?, Duration::from_secs(timeout)).await?;
            println!("{report}");
            if !report.clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Topics {
            action: TopicsAction::Create { partitions },
        } => {
            let mut settings = settings()?;
            if let Some(p) = partitions {
                settings.kafka.partitions = p;
                settings.validate()?;
            }
            app::create_topics(&settings).await?;
            app::check_topics(&settings).await?;
            for (name, partitions) in chatcart::TopicNames::new(&settings.kafka).layout() {
                println!("{name}\t{partitions} partitions");
            }
        }
        Command::Run { stages } => {
            let (trigger, shutdown) = Shutdown::new();
            tokio::spawn(trigger.clone().fire_on_signal());
            app::run(stages, settings()?, trigger, shutdown, Default::default()).await?;
        }
        Command::Relay { from, to } => {
            let (trigger, shutdown) = Shutdown::new();
            tokio::spawn(trigger.fire_on_signal());
            relay::relay(&settings()?, from, to, shutdown, Default::default()).await?;
        }
        Command::Send {
            user,
            request_id,
            locale,
            format,
            wait,
            text,
        } => {
            let prompt = send::prompt(user, text, locale, request_id);
            let request_id = prompt.request_id.clone();
            let wait = (wait > 0).then(|| Duration::from_secs(wait));
            let sent = send::send(&settings()?, prompt, format, wait).await?;
            println!(
                "sent {request_id} to partition {} at offset {}",
                sent.partition, sent.offset
            );
            match (wait, sent.reply) {
                (None, _) => {}
                (Some(_), Some(reply)) => {
                    println!(
                        "reply ({:?}, {} ms): {}",
                        reply.outcome, reply.latency_ms, reply.text
                    );
                }
                (Some(w), None) => {
                    eprintln!(
                        "no reply within {} s: are the stages running (chatcart run all)?",
                        w.as_secs()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A run name, checked as the traffic generator checks it.
fn parse_run_name(s: &str) -> Result<String, String> {
    surge::traffic::check_run(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}
