//! What runs beside the HTTP server: the reader of this instance's reply
//! partition, the lag sampler, the treasury follower and the forgetting of
//! old requests.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use runtime::lag::LagSampler;
use runtime::listener::Bounded;
use runtime::{Settings, Shutdown};
use schemas::Record;
use stages::Topic;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Gateway;

/// How many of the newest records of the reply partition a starting
/// instance reads back, so it can answer resumes of what its predecessor
/// accepted.
const READ_BACK: i64 = 50_000;

/// Runs the server and its tasks until `shutdown` fires or one fails.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let health = Arc::<runtime::health::Health>::default();
    let metrics = Arc::<runtime::metrics::Metrics>::default();
    metrics.extend(|registry| gw.metrics.register(registry));
    let ops = runtime::ops::Ops {
        health: Arc::clone(&health),
        metrics,
        ready: Arc::default(),
        stages: 0,
        // The stages' own endpoints serve the lag.
        lag: None,
    };
    runtime::app::serve_ops(&settings, ops, &mut tasks, &shutdown);
    if !runtime::app::await_broker_ready(&settings, &health, &shutdown).await? {
        return Ok(());
    }
    runtime::app::check_topics_of(
        &settings,
        &[
            Topic::Prompts,
            Topic::GatewayReplies,
            Topic::GatewayDecisions,
            Topic::Treasury,
        ],
    )
    .await?;
    tracing::info!(listen = %listener.local_addr()?, instance = gw.config.instance, "gateway ready");
    tasks.spawn(read_replies(
        Arc::clone(&gw),
        settings.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(sample_lag(
        Arc::clone(&gw),
        settings.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(forget_old(Arc::clone(&gw), shutdown.clone()));
    let ctx = runtime::Context::new(
        settings.kafka.clone(),
        settings.runtime.clone(),
        schemas::Codec::new(),
        Arc::default(),
    );
    tasks.spawn(runtime::app::follow_treasury(
        ctx,
        Arc::clone(&gw.treasury),
        shutdown.clone(),
    ));
    // No idle limit: an event stream waits quietly for its reply, and its
    // length has a limit of its own.
    let listener = Bounded::new(listener, gw.config.max_connections, None);
    let app = crate::http::router(Arc::clone(&gw));
    let mut stop = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
            .context("serving HTTP")
    });
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
            tracing::error!(error = %format!("{e:#}"), "gateway task failed; stopping");
            first_error.get_or_insert(e);
            tasks.abort_all();
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Reads this instance's partition of `chat.gateway.replies` and hands each
/// reply to the request waiting for it.
async fn read_replies(
    gw: Arc<Gateway>,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let topic = gw.topics.name(Topic::GatewayReplies).to_owned();
        let p = gw.config.instance;
        let end = connectors::kafka::end_offset(&settings.kafka, &topic, p)?;
        let tail = connectors::kafka::Tail::new(&settings.kafka, &topic)?;
        tail.assign(&[(p, (end - READ_BACK).max(0))])?;
        while !shutdown.is_fired() {
            let Some(message) = tail.poll(Duration::from_millis(100)) else {
                continue;
            };
            let payload = rdkafka::Message::payload(&message?)
                .unwrap_or_default()
                .to_vec();
            match gw.codec.decode(&payload) {
                Ok(Record::Reply(reply)) => {
                    let now = Instant::now();
                    match gw.requests.answer(reply, now) {
                        Some((took, None)) => gw
                            .base
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .observe(took),
                        // Measured against the estimate it was told, less
                        // the margin, so the margin does not feed on itself.
                        Some((took, Some(q))) => {
                            let since_told = took.saturating_sub(q.told_after).as_secs_f64();
                            let estimate = q.wait.saturating_sub(q.margin).as_secs_f64();
                            gw.overrun
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .observe(now, since_told - estimate);
                        }
                        None => {}
                    }
                }
                _ => tracing::warn!(topic, "skipped a record that is not a reply"),
            }
        }
        Ok(())
    })
    .await?
}

/// Reads every stage's lag every `gateway.sample_ms`.
async fn sample_lag(
    gw: Arc<Gateway>,
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let sampler = LagSampler::new(&settings)?;
        let mut failures = 0u64;
        while !shutdown.is_fired() {
            let started = Instant::now();
            match sampler.sample() {
                Ok(sample) => {
                    let mut lags = gw.lags.lock().unwrap_or_else(PoisonError::into_inner);
                    let mut ahead = gw.ahead.lock().unwrap_or_else(PoisonError::into_inner);
                    lags.push(sample);
                    ahead.iter_mut().for_each(|n| *n = 0);
                }
                Err(error) => {
                    failures += 1;
                    // Admission keeps using the last reading meanwhile (and
                    // counts what it admits since, so its estimates grow).
                    // Every 40th failure is logged: ten seconds at the
                    // default rate, not four lines a second.
                    if failures % 40 == 1 {
                        tracing::warn!(%error, failures, "reading the stages' lag failed");
                    }
                }
            }
            std::thread::sleep(gw.config.sample_every().saturating_sub(started.elapsed()));
        }
        Ok(())
    })
    .await?
}

/// Forgets answers kept long enough and requests given up on, every second.
async fn forget_old(gw: Arc<Gateway>, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => gw.requests.evict(Instant::now()),
            () = shutdown.wait() => return Ok(()),
        }
    }
}
