//! Wiring: builds the codec, catalog and stages from [`Settings`] and runs
//! any set of stages in one process until a drain is asked for (or one of
//! them fails, which drains the others).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connectors::ConnectorError;
use schemas::Codec;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::health::Health;
use crate::lag::LagProbe;
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::shutdown::Trigger;
use crate::{Context, Ready, Shutdown, run_stage};
use crate::{TopicNames, analytics};
use extract::Extractor;
use extract::catalog::Catalog;
use ledger::TreasuryFold;
use ledger::campaign::Campaigns;
use llm::{CatalogDescription, Llm};
use stages::Topic;
use stages::leases::TreasuryView;

use crate::metrics::sources::{LlmGauges, TreasuryGauges};
use stages::reply::Templates;
use stages::{CouponStage, FulfillmentStage, IntentStage, ReplyStage};

/// A stage that can be run by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum StageName {
    Intent,
    Coupon,
    Fulfillment,
    Reply,
    /// The ClickHouse sink (needs `clickhouse.url`).
    Analytics,
    /// Every stage; the analytics sink only when `clickhouse.url` is set.
    All,
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            StageName::Intent => "intent",
            StageName::Coupon => "coupon",
            StageName::Fulfillment => "fulfillment",
            StageName::Reply => "reply",
            StageName::Analytics => "analytics",
            StageName::All => "all",
        };
        f.write_str(name)
    }
}

/// Expands `all` and removes duplicates.
pub fn expand(names: &[StageName], settings: &Settings) -> Vec<StageName> {
    let mut out: Vec<StageName> = Vec::new();
    for name in names {
        if *name == StageName::All {
            out.extend([
                StageName::Intent,
                StageName::Coupon,
                StageName::Fulfillment,
                StageName::Reply,
            ]);
            if settings.clickhouse.enabled() {
                out.push(StageName::Analytics);
            }
        } else {
            out.push(*name);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The codec, with the Confluent schemas the configuration names.
pub fn codec(settings: &Settings) -> anyhow::Result<Codec> {
    let mut codec = Codec::new();
    for (id, path) in &settings.codec.confluent_schemas {
        let schema = std::fs::read_to_string(path).with_context(|| {
            format!("reading codec.confluent_schemas.{id} ({})", path.display())
        })?;
        // `validate` checked the key is a u32.
        let id: u32 = id.parse().context("codec.confluent_schemas key")?;
        codec = codec.with_confluent_schema(id, &schema)?;
    }
    Ok(codec)
}

/// Checks that every topic the pipeline uses exists with the configured
/// partition count. A mismatch would break co-partitioning and make each
/// partition's share of the budget wrong, so it is refused at start.
pub async fn check_topics(settings: &Settings) -> anyhow::Result<()> {
    check_topics_of(settings, &Topic::ALL).await
}

/// Waits until the broker answers, for at most `kafka.connect_timeout_secs`,
/// retrying with backoff and saying where it tries; gives up early when
/// `shutdown` fires. `Ok(true)` once the broker answered, `Ok(false)` when
/// told to stop.
pub async fn await_broker(
    settings: &Settings,
    shutdown: Option<&Shutdown>,
) -> anyhow::Result<bool> {
    /// Each attempt's wait for an answer: short, so a signal is acted on.
    const ATTEMPT: Duration = Duration::from_secs(2);
    let kafka = settings.kafka.clone();
    let servers = kafka.bootstrap_servers.clone();
    let limit = Duration::from_secs(kafka.connect_timeout_secs);
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    let mut told = false;
    loop {
        let k = kafka.clone();
        let attempt =
            tokio::task::spawn_blocking(move || connectors::broker::reachable(&k, ATTEMPT)).await?;
        let error = match attempt {
            Ok(()) => {
                if told {
                    tracing::info!(%servers, "the Kafka broker answers");
                }
                return Ok(true);
            }
            // A configuration error, a certificate that does not verify or
            // a refused login does not go away by waiting.
            Err(
                e @ (ConnectorError::Kafka(rdkafka::error::KafkaError::ClientConfig(..))
                | ConnectorError::Tls(_)
                | ConnectorError::Login(_)),
            ) => {
                return Err(e.into());
            }
            Err(e) => e,
        };
        let waited = started.elapsed();
        if waited + backoff >= limit {
            anyhow::bail!(
                "the Kafka broker at {servers} did not answer within {} s (kafka.connect_timeout_secs): {error}",
                limit.as_secs()
            );
        }
        if !told || waited.as_secs() / 10 != (waited + backoff).as_secs() / 10 {
            tracing::warn!(
                %servers,
                waited_secs = waited.as_secs(),
                gives_up_after_secs = limit.as_secs(),
                "waiting for the Kafka broker to answer (kafka.bootstrap_servers)"
            );
            told = true;
        }
        let stop = async {
            match shutdown {
                Some(s) => s.clone().wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop => return Ok(false),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// [`check_topics`] for `topics` alone (the benchmark's relay uses two).
pub async fn check_topics_of(settings: &Settings, topics: &[Topic]) -> anyhow::Result<()> {
    let kafka = settings.kafka.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let names = TopicNames::new(&kafka);
        for topic in topics {
            let name = names.name(topic);
            let expected = topic.partitions(kafka.partitions);
            match connectors::kafka::partition_count(&kafka, name)? {
                None => anyhow::bail!(
                    "topic {name} does not exist: create the topics with `chatcart topics create`"
                ),
                Some(n) if n != expected => anyhow::bail!(
                    "topic {name} has {n} partitions but kafka.partitions says {expected}: every pipeline topic must have kafka.partitions partitions (campaign.treasury: 1)"
                ),
                Some(_) => {}
            }
        }
        Ok(())
    })
    .await?
}

/// Creates every chatcart topic that does not exist yet, once the broker
/// answers ([`await_broker`]).
pub async fn create_topics(settings: &Settings) -> anyhow::Result<()> {
    await_broker(settings, None).await?;
    let layout = TopicNames::new(&settings.kafka).layout();
    connectors::kafka::create_topics(&settings.kafka, &layout).await?;
    Ok(())
}

/// How many stages `names` starts (for [`Ready::wait_for`]).
pub fn stage_count(names: &[StageName], settings: &Settings) -> usize {
    expand(names, settings).len()
}

/// Runs `names` until `shutdown` fires. If a stage fails, the others are
/// drained too and the first error is returned. `ready` counts the stages
/// holding partitions.
pub async fn run(
    names: Vec<StageName>,
    settings: Settings,
    trigger: Trigger,
    shutdown: Shutdown,
    ready: Arc<Ready>,
) -> anyhow::Result<()> {
    let names = expand(&names, &settings);
    if names.contains(&StageName::Analytics) && !settings.clickhouse.enabled() {
        anyhow::bail!(
            "the analytics stage needs clickhouse.url (e.g. CHATCART__CLICKHOUSE__URL=http://localhost:8123)"
        );
    }
    let mut tasks = JoinSet::new();
    let (health, metrics) = (Arc::<Health>::default(), Arc::<Metrics>::default());
    let ops = Ops {
        health: Arc::clone(&health),
        metrics: Arc::clone(&metrics),
        ready: Arc::clone(&ready),
        stages: names.len(),
        lag: Some(Arc::new(LagProbe::new(settings.clone()))),
    };
    serve_ops(&settings, ops, &mut tasks, &shutdown);
    if !await_broker_ready(&settings, &health, &shutdown).await? {
        return Ok(());
    }
    check_topics(&settings).await?;
    let catalog = Catalog::load(settings.intent.catalog.as_deref())?;
    let campaigns = Arc::new(settings.campaigns()?);
    check_skus(&campaigns, &catalog)?;
    let mut ctx = Context::new(
        settings.kafka.clone(),
        settings.runtime.clone(),
        codec(&settings)?,
        ready,
    );
    ctx.health = health;
    ctx.metrics = metrics;
    // The coupon and fulfillment stages of one process share one view of
    // the treasury, followed once.
    let mut shared: Option<Arc<TreasuryView>> = None;
    let mut treasury = |tasks: &mut JoinSet<anyhow::Result<()>>,
                        ctx: &Context,
                        campaigns: &Arc<Campaigns>,
                        shutdown: &Shutdown| {
        Arc::clone(shared.get_or_insert_with(|| {
            let fold = TreasuryFold::new(Arc::clone(campaigns), ctx.kafka.partitions);
            let treasury = Arc::new(TreasuryView::new(fold));
            ctx.metrics.register(TreasuryGauges(Arc::clone(&treasury)));
            tasks.spawn(follow_treasury(
                ctx.clone(),
                Arc::clone(&treasury),
                shutdown.clone(),
            ));
            treasury
        }))
    };
    for name in names {
        let (ctx, shutdown, catalog) = (ctx.clone(), shutdown.clone(), catalog.clone());
        let s = &settings;
        match name {
            StageName::Intent => {
                let default = campaigns.default_id().to_owned();
                let llm = Llm::from_config(&s.intent.llm, &describe(&catalog))?;
                if let Some(llm) = &llm {
                    tracing::info!(model = %s.intent.llm.model, "LLM fallback on for low-confidence prompts");
                    ctx.metrics.register(LlmGauges(llm.clone()));
                }
                let stage =
                    IntentStage::new(Extractor::new(catalog), s.intent.max_quantity, default)
                        .with_llm(llm)
                        .with_partitions(s.kafka.partitions);
                tasks.spawn(run_stage(stage, ctx, shutdown))
            }
            StageName::Coupon => {
                let return_ms =
                    i64::try_from(s.coupon.return_before_end_secs)?.saturating_mul(1_000);
                let stage = CouponStage::new(
                    Arc::clone(&campaigns),
                    treasury(&mut tasks, &ctx, &campaigns, &shutdown),
                    s.kafka.partitions,
                    return_ms,
                );
                tasks.spawn(run_stage(stage, ctx, shutdown))
            }
            StageName::Fulfillment => {
                let close_ms =
                    i64::try_from(s.fulfillment.close_after_end_secs)?.saturating_mul(1_000);
                let return_ms =
                    i64::try_from(s.fulfillment.return_before_end_secs)?.saturating_mul(1_000);
                let stage = FulfillmentStage::new(
                    Arc::clone(&campaigns),
                    catalog,
                    treasury(&mut tasks, &ctx, &campaigns, &shutdown),
                    s.kafka.partitions,
                    close_ms,
                )
                .with_return_before_end_ms(return_ms);
                // A fault for tests (tests/tests/zombie.rs): order beyond
                // the partition's stock, as a zombie with a stale view does.
                let stage = if fault_on("CHATCART_FAULT_FULFILLMENT_IGNORES_STOCK") {
                    stage.ignoring_stock()
                } else {
                    stage
                };
                tasks.spawn(run_stage(stage, ctx, shutdown))
            }
            StageName::Reply => {
                let stage = ReplyStage::new(catalog, Templates::built_in(), Arc::clone(&campaigns))
                    .with_gateway_partitions(s.kafka.partitions);
                // A fault for tests (tests/tests/storm.rs).
                let stage = if fault_on("CHATCART_FAULT_REPLY_FORGETS_ANSWERS") {
                    stage.forgetting_answers()
                } else {
                    stage
                };
                tasks.spawn(run_stage(stage, ctx, shutdown))
            }
            StageName::Analytics => {
                let (ch, campaigns) = (s.clickhouse.clone(), Arc::clone(&campaigns));
                tasks.spawn(async move { analytics::run_sink(ctx, ch, &campaigns, shutdown).await })
            }
            StageName::All => continue,
        };
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "stage failed; draining the others");
            trigger.fire();
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// What the LLM fallback is told about the catalog: every SKU's names, and
/// every option's values.
fn describe(catalog: &Catalog) -> CatalogDescription {
    CatalogDescription {
        skus: catalog
            .skus()
            .iter()
            .map(|s| {
                let names =
                    s.zh.iter()
                        .chain(&s.en)
                        .chain(&s.en_plural)
                        .cloned()
                        .collect();
                (s.id.clone(), names)
            })
            .collect(),
        options: catalog
            .options()
            .iter()
            .map(|(group, values)| (group.clone(), values.keys().cloned().collect()))
            .collect(),
    }
}

/// Refuses campaigns whose eligible SKUs are not in the catalog, which
/// would silently make every request `not_eligible`.
fn check_skus(campaigns: &Campaigns, catalog: &Catalog) -> anyhow::Result<()> {
    for c in campaigns.iter() {
        if let Some(sku) = c.eligible_skus.iter().find(|s| catalog.sku(s).is_none()) {
            anyhow::bail!(
                "campaign {}: eligible SKU `{sku}` is not in the catalog; fix campaigns.eligible_skus or the catalog",
                c.id
            );
        }
        if let Some(sku) = c.stock.keys().find(|s| catalog.sku(s).is_none()) {
            anyhow::bail!(
                "campaign {}: stock is set for `{sku}`, which is not in the catalog; fix campaigns.stock or the catalog",
                c.id
            );
        }
    }
    Ok(())
}

/// Serves `ops` on `runtime.health_listen`, when it is set, as one of
/// `tasks`. Started before the broker answers, so the process is seen
/// alive and says why it is not ready.
pub fn serve_ops(
    settings: &Settings,
    ops: Ops,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &Shutdown,
) {
    if !settings.runtime.health_listen.is_empty() {
        tasks.spawn(crate::ops::serve(
            settings.runtime.health_listen.clone(),
            ops,
            shutdown.clone(),
        ));
    }
}

/// [`await_broker`], with the part `kafka` of `health` not ready while it
/// waits.
pub async fn await_broker_ready(
    settings: &Settings,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<bool> {
    health.not_ready(
        "kafka",
        format!(
            "waiting for the broker at {}",
            settings.kafka.bootstrap_servers
        ),
    );
    let up = await_broker(settings, Some(shutdown)).await?;
    if up {
        health.ready("kafka");
    }
    Ok(up)
}

/// Follows `campaign.treasury` from its start for the coupon and fulfillment
/// stages, folding every record into `treasury`, until `shutdown` fires or
/// the stages are gone.
pub async fn follow_treasury(
    ctx: Context,
    treasury: Arc<TreasuryView>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let topic = ctx.topics.name(Topic::Treasury);
        let mut undecodable = 0u64;
        connectors::kafka::follow(
            &ctx.kafka,
            topic,
            0,
            0,
            // Also stop once the stage is gone (its task aborted), so this
            // blocking thread never outlives it.
            || shutdown.is_fired() || Arc::strong_count(&treasury) == 1,
            |message| match ctx
                .codec
                .decode(rdkafka::Message::payload(message).unwrap_or_default())
            {
                Ok(schemas::Record::Treasury(t)) => treasury.apply([&t]),
                _ => {
                    undecodable += 1;
                    tracing::warn!(
                        topic,
                        undecodable,
                        "skipped a record that is not a treasury record"
                    );
                }
            },
        )
        .with_context(|| format!("following {topic}"))
    })
    .await?
}

/// Whether the fault named by the environment variable `name` is injected
/// (set to `1`); says so in the log when it is.
fn fault_on(name: &str) -> bool {
    let on = std::env::var(name).is_ok_and(|v| v == "1");
    if on {
        tracing::warn!(fault = name, "fault injected");
    }
    on
}
