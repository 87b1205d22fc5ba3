//! `chatcart demo`: the whole pipeline in one process with nothing
//! installed. It starts librdkafka's in-process mock cluster, creates the
//! topics, runs every stage, sends a surge through the same generator as
//! `chatcart surge` (at a constant rate, with its progress bar), waits for
//! every reply, audits the topics and reports what happened. With
//! `gateway`, the surge goes through `chatcart gateway`, run in the same
//! process, as a chat front-end's requests would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::read_partitions;
use rdkafka::mocking::MockCluster;

use crate::surge::{Mix, Profile, Surge, SurgeReport};
use runtime::app::{self, StageName};
use runtime::config::Settings;
use runtime::topics::TopicNames;
use runtime::{Ready, Shutdown, now_ms};
use stages::Topic;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub requests: usize,
    /// Requests per second the surge generator sends them at.
    pub rate: f64,
    pub partitions: i32,
    pub budget_cents: i64,
    /// SKU → units, for SKUs whose stock is limited.
    pub stock: BTreeMap<String, i64>,
    pub clickhouse_url: Option<String>,
    /// The ClickHouse login, when `clickhouse_url` is set.
    pub clickhouse_user: String,
    pub clickhouse_password: String,
    pub seed: u64,
    pub timeout: Duration,
    /// Draw the surge generator's progress bar.
    pub progress: bool,
    /// Send through the gateway (in this process) instead of to Kafka.
    pub gateway: bool,
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The surge generator's figures.
    pub surge: SurgeReport,
    pub analytics: bool,
    pub topic_prefix: String,
    /// The run's campaign (its own per run when analytics is on).
    pub campaign_id: String,
    pub clickhouse_url: String,
    /// The auditor's verdict on the topics the run left behind.
    pub audit: ledger::audit::AuditReport,
}

impl Summary {
    /// Every request answered exactly once and the audit clean.
    pub fn complete(&self) -> bool {
        self.surge.complete() && self.audit.clean()
    }
}

impl DemoOptions {
    /// Checks the options before anything starts, each error naming its
    /// flag.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(1..=50_000).contains(&self.requests) {
            anyhow::bail!("--requests must be between 1 and 50000");
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            anyhow::bail!(
                "--rate must be more than 0 and at most 100000 requests per second (got {})",
                self.rate
            );
        }
        if !(1..=64).contains(&self.partitions) {
            anyhow::bail!("--partitions must be between 1 and 64");
        }
        if self.budget_cents < 0 {
            anyhow::bail!("--budget-cents must be 0 or more");
        }
        if self.timeout < Duration::from_secs(1) {
            anyhow::bail!("--timeout must be at least 1 second");
        }
        if let Some(url) = &self.clickhouse_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                anyhow::bail!(
                    "--clickhouse-url must be the HTTP interface, e.g. http://localhost:8123 (got {})",
                    connectors::secret::redact_url(url)
                );
            }
        }
        Ok(())
    }
}

/// Fires a shutdown when dropped, so that every way out of the demo, an
/// error included, stops what it started instead of leaving stages (and
/// the runtime waiting for them) running.
struct StopOnDrop(runtime::shutdown::Trigger);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.fire();
    }
}

/// Runs the demo and returns its summary.
pub async fn run(options: DemoOptions) -> anyhow::Result<Summary> {
    options.check()?;
    // Names the run's requests and users, its topics and campaign: unique
    // per process, since two demos may start in the same second and write
    // to the same ClickHouse database.
    let run_id = format!("demo-{}-{}", now_ms() / 1000, std::process::id());
    let cluster = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    let mut settings = Settings::default();
    settings.kafka.bootstrap_servers = cluster.bootstrap_servers();
    settings.kafka.partitions = options.partitions;
    settings.campaigns[0].budget_cents = options.budget_cents;
    settings.campaigns[0].stock = options.stock.clone();
    if let Some(url) = &options.clickhouse_url {
        settings.clickhouse.url = url.clone();
        settings.clickhouse.user = options.clickhouse_user.clone();
        settings.clickhouse.password = options.clickhouse_password.clone();
        settings.clickhouse.database = "chatcart_demo".into();
        // Every run starts a fresh mock cluster at offset 0; a prefix per run
        // keeps its rows apart from earlier runs' in the same table, and a
        // campaign per run keeps its figures apart in the views.
        settings.kafka.topic_prefix = format!("{run_id}.");
        settings.campaigns[0].id = run_id.clone();
    }
    settings.validate()?;
    if settings.clickhouse.enabled() {
        // ClickHouse is asked first, so a wrong URL or login is reported
        // as what it is, within --timeout, before anything runs.
        let within = options.timeout.min(Duration::from_secs(30));
        let at = settings.clickhouse.shown_url();
        match tokio::time::timeout(
            within,
            connectors::clickhouse::migrate::migrate(&settings.clickhouse),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let why = match &e {
                    connectors::ConnectorError::ClickHouse(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                anyhow::bail!(
                    "ClickHouse at {at} failed: {why} (check --clickhouse-url, --clickhouse-user and clickhouse.password)"
                )
            }
            Err(_) => anyhow::bail!(
                "ClickHouse at {at} did not answer within {} s (check --clickhouse-url)",
                within.as_secs()
            ),
        }
    }
    let topics = TopicNames::new(&settings.kafka);
    for (name, partitions) in topics.layout() {
        cluster
            .create_topic(&name, partitions, 1)
            .with_context(|| format!("creating topic {name}"))?;
    }

    let (trigger, shutdown) = Shutdown::new();
    let (gateway_trigger, gateway_shutdown) = Shutdown::new();
    let _stop = (
        StopOnDrop(trigger.clone()),
        StopOnDrop(gateway_trigger.clone()),
    );
    let ready = Arc::new(Ready::default());
    let stages = app::stage_count(&[StageName::All], &settings);
    let mut pipeline = tokio::spawn(app::run(
        vec![StageName::All],
        settings.clone(),
        trigger.clone(),
        shutdown,
        Arc::clone(&ready),
    ));
    // Publish once every stage holds its partitions, so the latencies
    // measure the pipeline rather than consumer-group start-up. A pipeline
    // that stops first (say, refusing the configuration) says why.
    tokio::select! {
        joined = ready.wait_for(stages, options.timeout) => {
            if !joined {
                anyhow::bail!(
                    "the stages did not join their consumer groups within --timeout ({} s)",
                    options.timeout.as_secs()
                );
            }
        }
        ended = &mut pipeline => {
            ended??;
            anyhow::bail!("the pipeline stopped before it started");
        }
    }

    // A little over `requests / rate` seconds, so rounding cannot drop the last one.
    let duration =
        Duration::from_secs_f64((options.requests as f64 + 0.5) / options.rate.max(1e-3));
    let via_gateway = if options.gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the gateway")?;
        let url = format!("http://{}", listener.local_addr()?);
        let codec = app::codec(&settings)?;
        tokio::spawn(gateway::serve(
            listener,
            settings.clone(),
            codec,
            gateway_shutdown,
        ));
        Some(crate::surge::via_gateway::ViaGateway {
            url,
            max_open: 4_000,
            timeout: settings.gateway.max_stream(),
            capacity: None,
            implicit_promise_ms: settings.gateway.queued_after_ms,
        })
    } else {
        None
    };
    let surge = crate::surge::run(
        &settings,
        Surge {
            profile: Profile::constant(options.rate, duration)?,
            // Through the gateway, a person with a request in flight is
            // refused the next, so there people send less often each.
            mix: if options.gateway {
                Mix {
                    users: (options.requests as u64 * 5).max(1),
                    zipf_exponent: 0.5,
                    ..Mix::default()
                }
            } else {
                Mix {
                    users: (options.requests as u64 * 3 / 5).max(1),
                    ..Mix::default()
                }
            },
            seed: options.seed,
            run: run_id,
            drain_timeout: options.timeout,
            progress: options.progress,
            via_gateway,
        },
    )
    .await?;
    if settings.clickhouse.enabled() {
        await_analytics(&settings, &topics, options.timeout).await?;
    }
    gateway_trigger.fire();
    trigger.fire();
    pipeline.await??;
    let audit = crate::audit::run(&settings, Duration::from_secs(60)).await?;

    Ok(Summary {
        surge,
        analytics: options.clickhouse_url.is_some(),
        topic_prefix: settings.kafka.topic_prefix.clone(),
        campaign_id: settings.campaigns[0].id.clone(),
        clickhouse_url: settings.clickhouse.url.clone(),
        audit,
    })
}

/// Waits until ClickHouse holds a row for every record of every topic, so
/// the demo does not stop the sink half-way through.
async fn await_analytics(
    settings: &Settings,
    topics: &TopicNames,
    timeout: Duration,
) -> anyhow::Result<()> {
    let kafka = settings.kafka.clone();
    let layout: Vec<(String, i32)> = Topic::ANALYTICS
        .iter()
        .map(|t| {
            (
                topics.name(*t).to_owned(),
                t.partitions(settings.kafka.partitions),
            )
        })
        .collect();
    let total = tokio::task::spawn_blocking(move || {
        let mut total = 0u64;
        for (name, partitions) in layout {
            let all: Vec<i32> = (0..partitions).collect();
            total += read_partitions(&kafka, &name, &all, Duration::from_secs(60), |_| {})?;
        }
        anyhow::Ok(total)
    })
    .await??;
    let client = settings.clickhouse.client();
    let deadline = Instant::now() + timeout;
    loop {
        let names: Vec<&str> = Topic::ANALYTICS.iter().map(|t| topics.name(*t)).collect();
        let held = client
            .query("SELECT uniqExact(topic, partition, offset) FROM events WHERE has(?, topic)")
            .bind(names)
            .fetch_one::<u64>()
            .await
            .unwrap_or(0);
        if held >= total {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "ClickHouse holds {held} of {total} records after {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "chatcart demo")?;
        write!(f, "{}", self.surge)?;
        if self.analytics {
            writeln!(
                f,
                "  analytics sink    on (ClickHouse database chatcart_demo, topics {}*, campaign {})",
                self.topic_prefix, self.campaign_id
            )?;
            write!(
                f,
                "  report            chatcart report --clickhouse-url {} --database chatcart_demo --campaign {} --html report.html",
                connectors::secret::redact_url(&self.clickhouse_url),
                self.campaign_id
            )
        } else {
            write!(
                f,
                "  analytics sink    off (pass --clickhouse-url to record every topic in ClickHouse)"
            )
        }
    }
}
