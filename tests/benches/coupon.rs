//! Throughput of the coupon stage alone on the real broker.
//!
//! ```sh
//! eval "$(bash tests/services.sh start)"   # or CHATCART_TEST_KAFKA=host:port of any broker
//! cargo bench -p chatcart-tests --bench coupon
//! ```
//!
//! Each run creates fresh topics, pre-loads `commerce.intents` with N
//! extracted intents (keyed by user id and partitioned by the producer's
//! default partitioner, as prompts are, and the intent stage keeps a
//! prompt's partition), then starts only the coupon stage and measures the
//! wall time until `commerce.decisions` holds a decision for every request.
//! Decisions are counted by reading the topic as it grows (Tansu's
//! ListOffsets is not reliable). The budget covers about half the requests,
//! so grants, both kinds of denial and lease requests are all exercised;
//! the lease requests on `campaign.treasury` are counted too (a per-request
//! broker round trip would show as about one per grant).
//!
//! Environment (all optional but the first):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHATCART_TEST_KAFKA` | (skip) | bootstrap servers of the broker |
//! | `CHATCART_BENCH_REQUESTS` | 100000 | intents per run (N) |
//! | `CHATCART_BENCH_RUNS` | 5 | runs, each on fresh topics |
//! | `CHATCART_BENCH_USERS` | 20000 | distinct users |
//! | `CHATCART_BENCH_PARTITIONS` | 12 | partitions of every pipeline topic |
//! | `CHATCART_BENCH_PER_USER_LIMIT` | 3 | credited orders per user |
//! | `CHATCART_BENCH_BUDGET_CENTS` | N / 2 × 840 | campaign budget (840: mean credit) |
//! | `CHATCART_BENCH_BATCH_ONE` | 1 | `batch.num.messages = 1` on every producer, as the test suite (and docs/architecture.md, for Tansu 0.6) sets it; 0 leaves librdkafka's batching |
//! | `CHATCART_BENCH_TIMEOUT_SECS` | 600 | give up on a run after this long |

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chatcart_tests::{Running, create_topics, records};
use connectors::kafka::{enqueue, scan};
use ledger::campaign::{CampaignConfig, CreditRule};
use ledger::{LeaseStatus, TreasuryFold};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureRecord, Producer};
use runtime::Settings;
use runtime::app::StageName;
use runtime::{Topic, TopicNames};
use schemas::{Codec, DecisionOutcome, IntentEvent, IntentOutcome, Item, Record, TreasuryKind};

const CAMPAIGN: &str = "bench";
/// Most credit one order gets, in cents.
const UNIT: i64 = 1_000;
/// Order totals; the credit is `min(total, UNIT)`, 840 cents on average.
const TOTALS: [i64; 5] = [400, 800, 1_200, 1_600, 2_000];
const MEAN_CREDIT: i64 = 840;

struct Config {
    kafka: String,
    requests: usize,
    runs: usize,
    users: usize,
    partitions: i32,
    per_user_limit: u32,
    budget: i64,
    batch_one: bool,
    timeout: Duration,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env(kafka: String) -> Self {
        let requests: usize = env("CHATCART_BENCH_REQUESTS", 100_000);
        Self {
            kafka,
            requests,
            runs: env("CHATCART_BENCH_RUNS", 5),
            users: env("CHATCART_BENCH_USERS", 20_000),
            partitions: env("CHATCART_BENCH_PARTITIONS", 12),
            per_user_limit: env("CHATCART_BENCH_PER_USER_LIMIT", 3),
            budget: env(
                "CHATCART_BENCH_BUDGET_CENTS",
                requests as i64 / 2 * MEAN_CREDIT,
            ),
            batch_one: env::<u8>("CHATCART_BENCH_BATCH_ONE", 1) != 0,
            timeout: Duration::from_secs(env("CHATCART_BENCH_TIMEOUT_SECS", 600)),
        }
    }

    /// Settings of one run: its own topics and consumer groups, no ClickHouse.
    fn settings(&self, run: usize) -> Settings {
        let unique = chatcart_tests::unique_name(&format!("bench-coupon-{run}"));
        let mut s = Settings::default();
        s.kafka.bootstrap_servers = self.kafka.clone();
        s.kafka.topic_prefix = format!("{unique}.");
        s.kafka.group_prefix = unique;
        s.kafka.partitions = self.partitions;
        if self.batch_one {
            s.kafka
                .properties
                .insert("batch.num.messages".into(), "1".into());
        }
        s.campaigns = vec![CampaignConfig {
            id: CAMPAIGN.into(),
            budget_cents: self.budget,
            credit: CreditRule::FreeUpToCents(UNIT),
            per_user_limit: self.per_user_limit,
            ..CampaignConfig::default()
        }];
        s.validate().expect("bench settings are valid");
        s
    }
}

/// `n` extracted intents from `users` users, in arrival order.
fn intents(n: usize, users: usize, run: usize) -> Vec<IntentEvent> {
    let mut rng = fastrand::Rng::with_seed(run as u64 + 1);
    let now = runtime::now_ms();
    (0..n)
        .map(|i| {
            let total = TOTALS[rng.usize(..TOTALS.len())];
            IntentEvent {
                reply_partition: None,
                deadline_ms: None,
                request_id: format!("req-{run}-{i:08}"),
                session_id: format!("sess-{i}"),
                user_id: format!("user-{:05}", rng.usize(..users)),
                campaign_id: CAMPAIGN.into(),
                trace_id: format!("{:032x}", rng.u128(..)),
                event_time_ms: now,
                prompt_time_ms: now,
                locale: if rng.bool() { "zh" } else { "en" }.into(),
                outcome: IntentOutcome::Extracted,
                items: vec![Item {
                    sku: "milk-tea".into(),
                    quantity: (total / 400) as i32,
                    options: [("size".to_owned(), "large".to_owned())].into(),
                    unit_price_cents: 400,
                }],
                coupon_code: None,
                total_cents: total,
                reason: None,
            }
        })
        .collect()
}

/// Writes `intents` to `commerce.intents`, keyed by user id with the
/// producer's default partitioner (as `chatcart_tests::publish` writes
/// prompts, whose partition the intent stage keeps), and waits until the
/// broker has them all. Returns the records per partition.
async fn preload(settings: &Settings, intents: &[IntentEvent]) -> Vec<usize> {
    let topics = TopicNames::new(&settings.kafka);
    let producer = settings.kafka.producer().expect("producer");
    let codec = Codec::new();
    let mut deliveries = Vec::with_capacity(intents.len());
    for intent in intents {
        let bytes = codec
            .encode(&Record::Intent(intent.clone()))
            .expect("encode");
        let record = FutureRecord::to(topics.name(Topic::Intents))
            .key(intent.user_id.as_str())
            .payload(&bytes[..]);
        deliveries.push(enqueue(&producer, record).await.expect("enqueue"));
    }
    let mut per_partition = vec![0; settings.kafka.partitions as usize];
    for d in deliveries {
        match d.await {
            Ok(Ok(delivered)) => per_partition[delivered.partition as usize] += 1,
            other => panic!("intent not delivered: {other:?}"),
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    per_partition
}

/// What a run's decisions log showed once every request was decided.
#[derive(Debug, Default)]
struct Seen {
    /// When the first and the last missing decision were read.
    first: Option<Instant>,
    done: Option<Instant>,
    decided: usize,
    /// Decision records (granted or denied) beyond one per request.
    repeated: usize,
    granted: usize,
    granted_cents: i64,
    denied: BTreeMap<String, usize>,
    lease_credits: usize,
    /// Lease returns written to `commerce.decisions` (the fulfillment stage,
    /// not running here, forwards them to `campaign.treasury`).
    lease_returns: usize,
    /// Per partition: cents credited by leases and granted, and when its
    /// last decision (of those read) and first `budget_exhausted` were read.
    credited_by: Vec<i64>,
    granted_by: Vec<i64>,
    last_by: Vec<Option<Instant>>,
    exhausted_by: Vec<Option<Instant>>,
}

/// Reads `commerce.decisions` (every partition, from the start) as it grows,
/// until `expected` requests have a decision or `timeout` passes.
async fn await_decisions(settings: &Settings, expected: usize, timeout: Duration) -> Seen {
    let kafka = settings.kafka.clone();
    let topic = TopicNames::new(&kafka).name(Topic::Decisions).to_owned();
    tokio::task::spawn_blocking(move || {
        let from: Vec<(String, i32, i64)> = (0..kafka.partitions)
            .map(|p| (topic.clone(), p, 0))
            .collect();
        let codec = Codec::new();
        let mut ids: HashSet<String> = HashSet::with_capacity(expected);
        let n = kafka.partitions as usize;
        let mut seen = Seen {
            credited_by: vec![0; n],
            granted_by: vec![0; n],
            last_by: vec![None; n],
            exhausted_by: vec![None; n],
            ..Seen::default()
        };
        scan(&kafka, &from, timeout, |m| {
            let p = m.partition() as usize;
            match codec.decode(m.payload().unwrap_or_default()) {
                Ok(Record::Decision(d)) if d.outcome != DecisionOutcome::Released => {
                    let now = Instant::now();
                    seen.first.get_or_insert(now);
                    if !ids.insert(d.request_id) {
                        seen.repeated += 1;
                        return ControlFlow::Continue(());
                    }
                    seen.last_by[p] = Some(now);
                    if d.outcome == DecisionOutcome::Granted {
                        seen.granted += 1;
                        seen.granted_cents += d.credit_cents;
                        seen.granted_by[p] += d.credit_cents;
                    } else {
                        let reason = d.reason.unwrap_or_default();
                        if reason == schemas::reason::BUDGET_EXHAUSTED {
                            seen.exhausted_by[p].get_or_insert(now);
                        }
                        *seen.denied.entry(reason).or_default() += 1;
                    }
                    if ids.len() == expected {
                        seen.done = Some(Instant::now());
                        return ControlFlow::Break(());
                    }
                }
                Ok(Record::Treasury(t)) if t.kind == TreasuryKind::LeaseCredit => {
                    seen.lease_credits += 1;
                    seen.credited_by[p] += t.amount;
                }
                Ok(Record::Treasury(t)) if t.kind == TreasuryKind::LeaseReturn => {
                    seen.lease_returns += 1;
                    seen.credited_by[p] -= t.amount;
                }
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .expect("reading commerce.decisions");
        seen.decided = ids.len();
        seen
    })
    .await
    .expect("reader thread")
}

/// Deletes the run's topics, so the broker does not keep them in memory.
async fn delete_topics(settings: &Settings) {
    let admin: AdminClient<DefaultClientContext> = match settings.kafka.client_config().create() {
        Ok(a) => a,
        Err(e) => return eprintln!("  (topics not deleted: {e})"),
    };
    let names = TopicNames::new(&settings.kafka);
    let all: Vec<&str> = Topic::ALL.iter().map(|t| names.name(*t)).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    if let Err(e) = admin.delete_topics(&all, &opts).await {
        eprintln!("  (topics not deleted: {e})");
    }
}

struct RunResult {
    /// Decisions per second, from the stage holding its partitions to the
    /// last decision read.
    rate: f64,
    /// Decisions per second, from starting the stage.
    rate_from_start: f64,
}

async fn run_once(cfg: &Config, run: usize) -> Option<RunResult> {
    let settings = cfg.settings(run);
    create_topics(&settings).await;
    let intents = intents(cfg.requests, cfg.users, run);
    let users: HashSet<&str> = intents.iter().map(|i| i.user_id.as_str()).collect();
    let loaded = Instant::now();
    let per_partition = preload(&settings, &intents).await;
    println!(
        "run {run}: pre-loaded {} intents from {} users in {:.1} s; per partition {per_partition:?}",
        intents.len(),
        users.len(),
        loaded.elapsed().as_secs_f64()
    );

    let cpu_before = cpu_secs();
    let start = Instant::now();
    let running = Running::start(&settings, &[StageName::Coupon]);
    let counting = tokio::spawn({
        let settings = settings.clone();
        let (n, timeout) = (cfg.requests, cfg.timeout);
        async move { await_decisions(&settings, n, timeout).await }
    });
    running.ready().await;
    let ready = Instant::now();
    let seen = counting.await.expect("counting task");
    let treasury = records(&settings, Topic::Treasury).await;
    let count = |k: TreasuryKind| {
        treasury
            .iter()
            .filter(|r| matches!(r, Record::Treasury(t) if t.kind == k))
            .count()
    };
    let (lease_requests, lease_returns) = (
        count(TreasuryKind::LeaseRequest),
        count(TreasuryKind::LeaseReturn),
    );
    let tail = tail_leases(&settings, &treasury);
    let stopped = running.stop().await;
    delete_topics(&settings).await;
    if let Err(e) = stopped {
        println!("run {run}: the stage did not stop cleanly: {e:#}");
    }

    let Some(done) = seen.done else {
        println!(
            "run {run}: STALLED: {} of {} requests decided after {:.1} s ({} granted, denied {:?}, {} lease credits, {lease_requests} lease requests)",
            seen.decided,
            cfg.requests,
            start.elapsed().as_secs_f64(),
            seen.granted,
            seen.denied,
            seen.lease_credits,
        );
        return None;
    };
    let n = cfg.requests as f64;
    let (from_ready, from_start) = (done - ready, done - start);
    let from_first = seen.first.map(|f| done - f).unwrap_or_default();
    let result = RunResult {
        rate: n / from_ready.as_secs_f64(),
        rate_from_start: n / from_start.as_secs_f64(),
    };
    println!(
        "run {run}: {} decisions in {:.2} s from ready ({:.0}/s); {:.2} s from start ({:.0}/s, group join {:.2} s); first to last decision {:.2} s",
        seen.decided,
        from_ready.as_secs_f64(),
        result.rate,
        from_start.as_secs_f64(),
        result.rate_from_start,
        (ready - start).as_secs_f64(),
        from_first.as_secs_f64(),
    );
    println!(
        "       granted {} ({} of {} cents), denied {:?}, repeated decisions {}; campaign.treasury: {lease_requests} lease requests, {lease_returns} returns; commerce.decisions: {} lease credits, {} returns",
        seen.granted,
        seen.granted_cents,
        cfg.budget,
        seen.denied,
        seen.repeated,
        seen.lease_credits,
        seen.lease_returns,
    );
    println!(
        "       one-credit tail: {} of the {lease_requests} lease requests were granted one credit or less, asked over {:.2} s (event times of the first and last)",
        tail.0, tail.1
    );
    // Where the budget went: allowance each partition was credited and did
    // not grant, and how far apart the partitions finished.
    let unused: Vec<i64> = seen
        .credited_by
        .iter()
        .zip(&seen.granted_by)
        .map(|(c, g)| c - g)
        .collect();
    let since = |t: &Option<Instant>| t.map_or(f64::NAN, |t| (t - ready).as_secs_f64());
    let finished: Vec<String> = seen
        .last_by
        .iter()
        .map(|t| format!("{:.1}", since(t)))
        .collect();
    let exhausted: Vec<String> = seen
        .exhausted_by
        .iter()
        .map(|t| format!("{:.1}", since(t)))
        .collect();
    println!(
        "       per partition: allowance neither granted nor returned {unused:?} cents (sum {}); last decision at [{}] s; first budget_exhausted at [{}] s; CPU of this process (stage + counter) {:.1} s",
        unused.iter().sum::<i64>(),
        finished.join(", "),
        exhausted.join(", "),
        cpu_secs() - cpu_before,
    );
    Some(result)
}

/// Folds `campaign.treasury` as the stage's treasury does and returns how
/// many leases were of one credit or less (the tail, where the stage asks
/// only for a request that waits) and the seconds between the first and
/// the last of those requests.
fn tail_leases(settings: &Settings, treasury: &[Record]) -> (usize, f64) {
    let campaigns = std::sync::Arc::new(settings.campaigns().expect("valid campaigns"));
    let mut fold = TreasuryFold::new(campaigns, settings.kafka.partitions);
    let (mut n, mut first, mut last) = (0, i64::MAX, i64::MIN);
    for r in treasury {
        let Record::Treasury(t) = r else { continue };
        fold.apply(t);
        if t.kind == TreasuryKind::LeaseRequest
            && matches!(fold.status(&t.request_id), Some(LeaseStatus::Leased(a)) if a <= UNIT)
        {
            n += 1;
            first = first.min(t.event_time_ms);
            last = last.max(t.event_time_ms);
        }
    }
    let secs = if n > 0 {
        (last - first) as f64 / 1_000.0
    } else {
        0.0
    };
    (n, secs)
}

/// CPU time (user + system) this process used so far, in seconds.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which ends with ')'): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[tokio::main]
async fn main() {
    let Ok(kafka) = std::env::var("CHATCART_TEST_KAFKA") else {
        println!(
            "coupon bench skipped: CHATCART_TEST_KAFKA is not set (the broker's bootstrap servers; `tests/services.sh` or `tests/run.sh` start one)"
        );
        return;
    };
    // `RUST_LOG` picks the level; by default warnings, less librdkafka's
    // note that consumers ignore the producer setting batch.num.messages.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,librdkafka=error"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let cfg = Config::from_env(kafka);
    println!(
        "coupon stage throughput on {}: {} intents, {} users, {} partitions, per-user limit {}, budget {} cents (credit ≤ {UNIT}), batch.num.messages=1: {}, {} runs",
        cfg.kafka,
        cfg.requests,
        cfg.users,
        cfg.partitions,
        cfg.per_user_limit,
        cfg.budget,
        cfg.batch_one,
        cfg.runs
    );
    let mut rates = Vec::new();
    let mut rates_from_start = Vec::new();
    let mut stalled = 0;
    for run in 1..=cfg.runs {
        match Box::pin(run_once(&cfg, run)).await {
            Some(r) => {
                rates.push(r.rate);
                rates_from_start.push(r.rate_from_start);
            }
            None => stalled += 1,
        }
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "coupon: median {:.0} decisions/s from ready [{}]; median {:.0} decisions/s from start [{}]; {stalled} stalled",
        median(rates.clone()),
        list(&rates),
        median(rates_from_start.clone()),
        list(&rates_from_start),
    );
    if stalled > 0 {
        std::process::exit(1);
    }
}
