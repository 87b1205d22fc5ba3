//! Shared helpers for the integration and fault tests: where the real
//! services are, an isolated namespace (topics, groups, ClickHouse database)
//! per test, running stages in-process, and reading topics back.
//!
//! The services come from `CHATCART_TEST_KAFKA` (bootstrap servers) and
//! `CHATCART_TEST_CLICKHOUSE` (HTTP URL); `tests/run.sh` starts real ones
//! and sets both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chatcart::app::{self, StageName};
use chatcart::runtime::shutdown::Trigger;
use chatcart::runtime::{Ready, Shutdown};
use chatcart::{Settings, Topic, TopicNames};
use connectors::kafka::{enqueue, read_partitions};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureRecord, Producer};
use schemas::{Codec, Prompt, Record, Reply, ReplyOutcome};
use tokio::task::JoinHandle;

/// Bootstrap servers of the broker under test.
pub fn kafka() -> String {
    std::env::var("CHATCART_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("CHATCART_TEST_KAFKA is not set: run the suite with `bash tests/run.sh`, which starts Tansu and ClickHouse")
    })
}

/// HTTP URL of the ClickHouse under test.
pub fn clickhouse() -> String {
    std::env::var("CHATCART_TEST_CLICKHOUSE").unwrap_or_else(|_| {
        panic!("CHATCART_TEST_CLICKHOUSE is not set: run the suite with `bash tests/run.sh`, which starts Tansu and ClickHouse")
    })
}

/// Sends the stages' logs to the test's output (shown for failing tests);
/// `RUST_LOG` picks the level, `warn` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Settings for one test: its own topic prefix, consumer groups and
/// ClickHouse database, so tests can share the services and run at once.
pub fn settings(test: &str, partitions: i32) -> Settings {
    init_logging();
    let unique = format!(
        "{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let mut s = Settings::default();
    s.kafka.bootstrap_servers = kafka();
    s.kafka.topic_prefix = format!("{unique}.");
    s.kafka.group_prefix = unique.clone();
    s.kafka.partitions = partitions;
    // Tansu 0.6 cannot fetch from an offset inside a record batch: it skips
    // to the next batch, so a consumer resuming from a committed offset in
    // the middle of a batch would silently lose the rest of it (Kafka and
    // Redpanda do not). One record per batch makes every offset a batch
    // start, so resuming behaves as it does on Kafka. See docs/architecture.md.
    s.kafka
        .properties
        .insert("batch.num.messages".into(), "1".into());
    s.clickhouse.url = clickhouse();
    s.clickhouse.database = format!("t_{}", unique.replace('-', "_"));
    s.clickhouse.batch_max_wait_ms = 300;
    s.validate().expect("test settings are valid");
    s
}

/// Stages running in this process, as one `chatcart run` would.
pub struct Running {
    trigger: Trigger,
    task: JoinHandle<anyhow::Result<()>>,
    ready: Arc<Ready>,
    stages: usize,
}

impl Running {
    /// Starts `stages` with `settings`.
    pub fn start(settings: &Settings, stages: &[StageName]) -> Self {
        let (trigger, shutdown) = Shutdown::new();
        let ready = Arc::new(Ready::default());
        let task = tokio::spawn(app::run(
            stages.to_vec(),
            settings.clone(),
            trigger.clone(),
            shutdown,
            Arc::clone(&ready),
        ));
        Self {
            trigger,
            task,
            ready,
            stages: app::stage_count(stages, settings),
        }
    }

    /// Waits until every stage holds partitions.
    pub async fn ready(&self) {
        assert!(
            self.ready
                .wait_for(self.stages, Duration::from_secs(60))
                .await,
            "stages did not join their consumer groups within 60 s"
        );
    }

    /// Drains the stages as SIGTERM would and waits for them to exit.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .context("stages did not drain within 60 s")??
    }

    /// Drops the stages without a drain, as a crash would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Creates the test's topics.
pub async fn create_topics(settings: &Settings) {
    app::create_topics(settings).await.expect("topics created");
}

/// Publishes prompts (Avro single-object encoding, keyed by user) and waits
/// until the broker has them all.
pub async fn publish(settings: &Settings, prompts: &[Prompt]) {
    let topics = TopicNames::new(&settings.kafka);
    let producer = settings.kafka.producer().expect("producer");
    let codec = Codec::new();
    let mut deliveries = Vec::with_capacity(prompts.len());
    for p in prompts {
        let bytes = codec.encode(&Record::Prompt(p.clone())).expect("encode");
        let record = FutureRecord::to(topics.name(Topic::Prompts))
            .key(p.user_id.as_str())
            .payload(&bytes[..]);
        deliveries.push(enqueue(&producer, record).await.expect("enqueue"));
    }
    for d in deliveries {
        assert!(matches!(d.await, Ok(Ok(_))), "prompt not delivered");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Publishes raw bytes to partition `partition` of a topic.
pub async fn publish_raw(
    settings: &Settings,
    topic: Topic,
    partition: i32,
    key: &str,
    payload: &[u8],
) {
    let topics = TopicNames::new(&settings.kafka);
    let producer = settings.kafka.producer().expect("producer");
    let record = FutureRecord::to(topics.name(topic))
        .partition(partition)
        .key(key)
        .payload(payload);
    let delivery = enqueue(&producer, record).await.expect("enqueue").await;
    assert!(matches!(delivery, Ok(Ok(_))), "record not delivered");
}

/// One record read back: where it was, its headers, and its bytes.
#[derive(Debug, Clone)]
pub struct Raw {
    pub partition: i32,
    pub offset: i64,
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

/// Every record of `topic`, partition by partition, as of now.
pub async fn read_topic(settings: &Settings, topic: Topic) -> Vec<Raw> {
    let kafka = settings.kafka.clone();
    let name = TopicNames::new(&kafka).name(topic).to_owned();
    let partitions = topic.partitions(kafka.partitions);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let all: Vec<i32> = (0..partitions).collect();
        read_partitions(&kafka, &name, &all, Duration::from_secs(60), |m| {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|hd| {
                            let value = hd.value.map(String::from_utf8_lossy).unwrap_or_default();
                            (hd.key.to_owned(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Raw {
                partition: m.partition(),
                offset: m.offset(),
                headers,
                payload: m.payload().unwrap_or_default().to_vec(),
            });
        })
        .expect("read topic");
        out
    })
    .await
    .expect("reader thread")
}

/// Every decodable record of `topic`.
pub async fn records(settings: &Settings, topic: Topic) -> Vec<Record> {
    let codec = Codec::new();
    read_topic(settings, topic)
        .await
        .iter()
        .map(|r| codec.decode(&r.payload).expect("internal records decode"))
        .collect()
}

/// Reads `chat.replies` until `expected` distinct requests are answered or
/// `timeout` passes; returns every reply seen (duplicates included).
pub async fn await_replies(settings: &Settings, expected: usize, timeout: Duration) -> Vec<Reply> {
    chatcart::demo::await_replies(settings, expected, timeout)
        .await
        .expect("reading chat.replies")
}

/// Total records in every chatcart topic, as of now.
pub async fn total_records(settings: &Settings) -> u64 {
    let mut total = 0;
    for t in Topic::ALL {
        total += read_topic(settings, t).await.len() as u64;
    }
    total
}

/// Polls ClickHouse until the events table holds `expected` distinct records
/// (or `timeout` passes); returns `(rows, distinct (topic, partition, offset))`.
pub async fn clickhouse_counts(
    settings: &Settings,
    expected: u64,
    timeout: Duration,
) -> (u64, u64) {
    let client = settings.clickhouse.client();
    let deadline = Instant::now() + timeout;
    loop {
        let counts = client
            .query("SELECT count(), uniqExact(topic, partition, offset) FROM events")
            .fetch_one::<(u64, u64)>()
            .await
            .unwrap_or((0, 0));
        if counts.1 >= expected || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the auditor (`chatcart audit`'s checks) over the test's topics and
/// fails the test on any violation; also checks that exactly the published
/// requests were answered. Returns the replies.
pub async fn check_invariants(settings: &Settings, requests: &[Prompt]) -> Vec<Reply> {
    let report = chatcart::audit::run(settings, Duration::from_secs(60))
        .await
        .expect("audit ran");
    assert!(report.clean(), "{report}");
    let replies: Vec<Reply> = records(settings, Topic::Replies)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Reply(r) => Some(r),
            _ => None,
        })
        .collect();
    let answered: std::collections::HashSet<&str> =
        replies.iter().map(|r| r.request_id.as_str()).collect();
    for p in requests {
        assert!(
            answered.contains(p.request_id.as_str()),
            "request {} has no reply",
            p.request_id
        );
    }
    assert_eq!(
        replies.len(),
        requests.len(),
        "replies for requests never published"
    );
    let count = |o: ReplyOutcome| replies.iter().filter(|r| r.outcome == o).count();
    let (orders, denials, rejections) = (
        count(ReplyOutcome::OrderPlaced),
        count(ReplyOutcome::Denied),
        count(ReplyOutcome::Rejected),
    );
    assert_eq!(orders + denials + rejections, requests.len());
    assert!(
        orders > 0 && denials > 0 && rejections > 0,
        "{orders} {denials} {rejections}"
    );
    replies
}
