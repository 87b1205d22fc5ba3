//! `chatcart gateway`: the front door for chat front-ends. It takes a prompt
//! over HTTP, decides from the pipeline's measured lag whether it can be
//! answered within `gateway.max_wait_secs`, and either refuses it at once
//! (`429`, with when to retry) or publishes it to `chat.prompts` and
//! streams the person at most one `queued` event (position and estimated
//! wait) and exactly one `final` event (the reply).
//!
//! Each instance owns one partition of `chat.gateway.replies`
//! (`gateway.instance`): the prompts it publishes name that partition, the
//! reply stage copies their replies there, and the instance reads only it.
//! So N instances each read 1/N of the replies, and a restarted instance
//! with the same number picks up the replies to what its predecessor
//! accepted. A front-end that publishes to Kafka itself is unaffected.
//!
//! # Layout
//! - [`http`]: the routes; [`wire`]: the JSON bodies, events and texts.
//! - [`admission`]: the pure estimate of a request's wait and the decision
//!   to admit or shed it, over [`runtime::lag`].
//! - [`requests`]: the requests the instance follows: idempotency, one
//!   request in flight per person, answers kept for a resume.
//! - [`metrics`]: what it counts for `/metrics`.
//! - [`tasks`]: what runs beside the server: reading the reply partition,
//!   sampling lag, following the treasury, forgetting old requests (the
//!   listener that bounds connections is `runtime::listener`).

pub mod admission;
pub mod http;
pub mod metrics;
pub mod requests;
pub mod tasks;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use ledger::BUDGET;
use ledger::campaign::Campaigns;
use rdkafka::producer::{FutureProducer, FutureRecord};
use runtime::Settings;
use runtime::config::GatewayConfig;
use runtime::lag::Lags;
use runtime::topics::TopicNames;
use schemas::{Codec, GatewayDecision, GatewayOutcome, Prompt, Record};
use stages::Topic;
use stages::leases::TreasuryView;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admission::{Admission, BaseLatency, Limits, Overload, Overrun};
use crate::requests::Requests;
use crate::wire::Refusal;

/// Counts of what the gateway did with the requests it was offered.
#[derive(Debug, Default)]
pub struct Counters {
    pub admitted: AtomicU64,
    pub queued: AtomicU64,
    pub shed_over_wait: AtomicU64,
    pub shed_stalled: AtomicU64,
    pub shed_no_estimate: AtomicU64,
    /// Decisions not recorded on `chat.gateway.decisions` because the
    /// producer's queue was full.
    pub decisions_dropped: AtomicU64,
}

impl Counters {
    fn admitted(&self, queued: bool) {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        if queued {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn shed(&self, why: Overload) {
        let c = match why {
            Overload::OverMaxWait(_) => &self.shed_over_wait,
            Overload::Stalled => &self.shed_stalled,
            Overload::NoEstimateYet => &self.shed_no_estimate,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the gateway did with a request, as recorded on
/// `chat.gateway.decisions`.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Admitted {
        position: i64,
        wait: Duration,
        used_up: bool,
    },
    Shed {
        position: i64,
        why: Overload,
    },
}

/// One gateway instance's shared state.
pub struct Gateway {
    pub config: GatewayConfig,
    partitions: i32,
    codec: Codec,
    topics: TopicNames,
    producer: FutureProducer,
    pub requests: Requests,
    campaign_ids: Vec<String>,
    campaigns: Arc<Campaigns>,
    treasury: Arc<TreasuryView>,
    lags: Mutex<Lags>,
    /// Per partition: requests admitted since the lags were last read.
    ahead: Mutex<Vec<i64>>,
    base: Mutex<BaseLatency>,
    overrun: Mutex<Overrun>,
    open: Arc<Semaphore>,
    pub counters: Counters,
    pub metrics: metrics::GatewayMetrics,
}

impl Gateway {
    /// The gateway for `settings`; nothing runs until [`run`].
    pub fn new(settings: &Settings, codec: Codec) -> anyhow::Result<Self> {
        let config = settings.gateway.clone();
        let campaigns = Arc::new(settings.campaigns()?);
        let partitions = settings.kafka.partitions;
        let fold = ledger::TreasuryFold::new(Arc::clone(&campaigns), partitions);
        // Rates are read over long enough to see a stall of `stall_secs`.
        let window = (config.stall() + Duration::from_secs(2)).max(Duration::from_secs(4));
        Ok(Self {
            partitions,
            codec,
            topics: TopicNames::new(&settings.kafka),
            producer: settings.kafka.producer()?,
            requests: Requests::new(
                config.max_tracked_requests,
                config.pending_for(),
                config.keep_answers(),
            ),
            campaign_ids: campaigns.iter().map(|c| c.id.clone()).collect(),
            campaigns,
            treasury: Arc::new(TreasuryView::new(fold)),
            lags: Mutex::new(Lags::new(window)),
            ahead: Mutex::new(vec![0; usize::try_from(partitions).unwrap_or(0)]),
            base: Mutex::default(),
            overrun: Mutex::default(),
            open: Arc::new(Semaphore::new(config.max_open_requests)),
            counters: Counters::default(),
            metrics: metrics::GatewayMetrics::default(),
            config,
        })
    }

    fn open_request(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        Arc::clone(&self.open).try_acquire_owned().map_err(|_| {
            http::unavailable("as many requests are open as allowed (gateway.max_open_requests); try again shortly")
        })
    }

    /// Admission for a request on `partition`; counts it as ahead of the
    /// next ones when admitted.
    fn admit(&self, partition: i32) -> Admission {
        let admission = self.estimate(partition);
        let p = usize::try_from(partition).unwrap_or(0);
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Admission::Admit { .. }, Some(n)) = (admission, ahead.get_mut(p)) {
            *n += 1;
        }
        admission
    }

    /// What admission would say now for a request on `partition`.
    fn estimate(&self, partition: i32) -> Admission {
        let p = usize::try_from(partition).unwrap_or(0);
        let lags = self.lags.lock().unwrap_or_else(PoisonError::into_inner);
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(p)
            .copied()
            .unwrap_or(0);
        let base = self
            .base
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get();
        let limits = Limits {
            max_wait: self.config.max_wait(),
            stall: self.config.stall(),
        };
        let margin = self
            .overrun
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .margin(std::time::Instant::now());
        let admission = admission::admit(&lags, p, ahead, base, margin, limits);
        if let Admission::Shed { .. } = admission {
            let stages: Vec<_> = (0..runtime::lag::STAGES.len())
                .map(|s| (lags.lag(s, p), lags.progress(s, p), lags.stalled_for(s, p)))
                .collect();
            tracing::debug!(partition, ?admission, ?stages, "over the limit");
        }
        admission
    }

    /// Whether the treasury has leased out all of `campaign`'s budget (the
    /// default campaign when empty).
    fn used_up(&self, campaign: &str) -> bool {
        let id = if campaign.is_empty() {
            self.campaigns.default_id()
        } else {
            campaign
        };
        self.treasury.read().exhausted_of(id, BUDGET)
    }

    /// Records what the gateway did with `prompt` on
    /// `chat.gateway.decisions`, without waiting: the answer to the person
    /// does not wait for the record. A full producer queue drops it
    /// (counted) rather than holding the answer; the broker's acks and the
    /// producer's retries carry the rest.
    /// `at_ms` is when the request arrived.
    fn record(&self, prompt: &Prompt, at_ms: i64, decision: Decision) {
        let (outcome, reason, position, wait) = match decision {
            Decision::Admitted {
                position,
                wait,
                used_up,
            } => (
                GatewayOutcome::Admitted,
                used_up.then_some(schemas::reason::FREE_ORDERS_USED_UP),
                position,
                Some(wait),
            ),
            Decision::Shed { position, why } => (
                GatewayOutcome::Shed,
                Some(why.reason()),
                position,
                why.wait(),
            ),
        };
        self.metrics
            .decided(outcome == GatewayOutcome::Admitted, reason, wait);
        let record = Record::Gateway(GatewayDecision {
            request_id: prompt.request_id.clone(),
            session_id: prompt.session_id.clone(),
            user_id: prompt.user_id.clone(),
            campaign_id: prompt.campaign_id.clone(),
            trace_id: prompt.trace_id.clone(),
            event_time_ms: at_ms,
            instance: self.config.instance,
            outcome,
            reason: reason.map(str::to_owned),
            position,
            estimated_wait_ms: wait.map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX)),
        });
        let bytes = match self.codec.encode(&record) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "encoding a gateway decision failed");
                return;
            }
        };
        let sent = self.producer.send_result(
            FutureRecord::to(self.topics.name(Topic::GatewayDecisions))
                .key(prompt.user_id.as_bytes())
                .payload(&bytes[..]),
        );
        // The delivery future is dropped: the record is still delivered.
        if sent.is_err() {
            let before = self
                .counters
                .decisions_dropped
                .fetch_add(1, Ordering::Relaxed);
            // One line per thousand: a full queue under a surge would
            // otherwise log as fast as requests come.
            if before % 1_000 == 0 {
                tracing::warn!(
                    dropped = before + 1,
                    "the producer's queue is full: gateway decisions are not being recorded"
                );
            }
        }
    }

    /// Publishes `prompt` to `partition` of `chat.prompts` and waits for
    /// the broker to acknowledge it.
    async fn publish(&self, prompt: &Prompt, partition: i32) -> anyhow::Result<()> {
        let bytes = self.codec.encode(&Record::Prompt(prompt.clone()))?;
        let record = FutureRecord::to(self.topics.name(Topic::Prompts))
            .partition(partition)
            .key(prompt.user_id.as_bytes())
            .payload(&bytes[..]);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .context("producing to chat.prompts")?;
        Ok(())
    }
}

/// Serves the gateway on `gateway.listen` until `shutdown` fires.
pub async fn run(
    settings: Settings,
    codec: Codec,
    shutdown: runtime::Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.gateway.listen)
        .await
        .with_context(|| format!("listening on gateway.listen = {}", settings.gateway.listen))?;
    serve(listener, settings, codec, shutdown).await
}

/// Serves the gateway on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    codec: Codec,
    shutdown: runtime::Shutdown,
) -> anyhow::Result<()> {
    let gateway = Arc::new(Gateway::new(&settings, codec)?);
    tasks::serve(gateway, listener, settings, shutdown).await
}
