//! Shared helpers for the integration and fault tests: where the real
//! services are, an isolated namespace (topics, groups, ClickHouse database)
//! per test, running stages in-process, and reading topics back.
//!
//! The services come from `CHATCART_TEST_KAFKA` (bootstrap servers) and
//! `CHATCART_TEST_CLICKHOUSE` (HTTP URL); `tests/run.sh` starts real ones
//! and sets both.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use connectors::kafka::{enqueue, read_partitions};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureRecord, Producer};
use runtime::app::{self, StageName};
use runtime::shutdown::Trigger;
use runtime::{Ready, Shutdown};
use runtime::{Settings, Topic, TopicNames};
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

/// `name` made unique to this process and moment, for topic prefixes and
/// consumer groups that must not collide with another run's.
pub fn unique_name(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    )
}

/// Settings for one test: its own topic prefix, consumer groups and
/// ClickHouse database, so tests can share the services and run at once.
pub fn settings(test: &str, partitions: i32) -> Settings {
    init_logging();
    let unique = unique_name(test);
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
    produce_prompts(&producer, &topics, prompts).await;
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Produces `prompts` to `chat.prompts` with `producer`, keyed by user, and
/// waits until the broker has acknowledged them all.
pub async fn produce_prompts(
    producer: &rdkafka::producer::FutureProducer,
    topics: &TopicNames,
    prompts: &[Prompt],
) {
    let codec = Codec::new();
    let mut deliveries = Vec::with_capacity(prompts.len());
    for p in prompts {
        let bytes = codec.encode(&Record::Prompt(p.clone())).expect("encode");
        let record = FutureRecord::to(topics.name(Topic::Prompts))
            .key(p.user_id.as_str())
            .payload(&bytes[..]);
        deliveries.push(enqueue(producer, record).await.expect("enqueue"));
    }
    for d in deliveries {
        assert!(matches!(d.await, Ok(Ok(_))), "prompt not delivered");
    }
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
    tools::demo::await_replies(settings, expected, timeout)
        .await
        .expect("reading chat.replies")
}

/// Total records in every chatcart topic, as of now.
pub async fn total_records(settings: &Settings) -> u64 {
    let mut total = 0;
    for t in Topic::EVENTS {
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
    let deadline = Instant::now() + timeout;
    loop {
        let counts = events_counts(settings).await;
        if counts.1 >= expected || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the auditor over the test's topics, fails the test unless it is
/// clean, and returns the report and every reply.
pub async fn clean_audit(settings: &Settings) -> (ledger::audit::AuditReport, Vec<Reply>) {
    let report = tools::audit::run(settings, Duration::from_secs(60))
        .await
        .expect("audit ran");
    assert!(report.clean(), "{report}");
    let replies = records(settings, Topic::Replies)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Reply(r) => Some(r),
            _ => None,
        })
        .collect();
    (report, replies)
}

/// Runs the auditor (`chatcart audit`'s checks) over the test's topics and
/// fails the test on any violation; also checks that exactly the published
/// requests were answered. Returns the replies.
pub async fn check_invariants(settings: &Settings, requests: &[Prompt]) -> Vec<Reply> {
    let (_, replies) = clean_audit(settings).await;
    let answered: HashSet<&str> = replies.iter().map(|r| r.request_id.as_str()).collect();
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
    let failed = count(ReplyOutcome::OrderFailed);
    assert_eq!(orders + failed + denials + rejections, requests.len());
    assert!(
        orders > 0 && denials > 0 && rejections > 0,
        "{orders} {denials} {rejections}"
    );
    replies
}

// ---------------------------------------------------------------------------
// Helpers for running stages as `chatcart` child processes (tests/ledger.rs).
// ---------------------------------------------------------------------------

/// The `chatcart` binary of this workspace, for tests that run stages as
/// separate processes (so they can be SIGKILLed).
///
/// `CHATCART_TEST_BIN` names a binary to use as is. Otherwise it is built
/// once per test process with `cargo build -p chatcart --tests --bin
/// chatcart`, into the target directory and profile this test executable
/// was built in (`<target>/<profile>/deps/<test>` → `<target>/<profile>/
/// chatcart`), so a test never runs a stale binary left over from an
/// earlier build (`cargo test -p chatcart-tests` alone does not rebuild it).
/// `--tests` resolves features as the workspace's test build does, so after
/// `cargo nextest run --workspace` (or `cargo test --workspace`) has built
/// everything this is a no-op of well under a second; after a build of
/// this crate alone, the first call compiles chatcart's tests once.
pub fn chatcart_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CHATCART_TEST_BIN") {
            return bin.into();
        }
        let exe = std::env::current_exe().expect("path of the test executable");
        let profile_dir = exe
            .parent()
            .and_then(std::path::Path::parent)
            .expect("the test executable lies in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("the profile directory lies in the target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let started = Instant::now();
        let out = std::process::Command::new(&cargo)
            .args([
                "build", "--quiet", "-p", "chatcart", "--tests", "--bin", "chatcart",
            ])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--profile", &profile])
            .output()
            .expect("running cargo to build the chatcart binary");
        assert!(
            out.status.success(),
            "cargo build -p chatcart --tests --bin chatcart failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join(format!("chatcart{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        eprintln!(
            "chatcart binary: {} (checked with {} build in {} ms)",
            bin.display(),
            std::path::Path::new(&cargo).display(),
            started.elapsed().as_millis()
        );
        bin
    })
    .clone()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `settings` as a configuration file for `chatcart --config`, and
/// checks that loading it gives back exactly `settings`, so child processes
/// run with the same settings (campaigns included) as the test's in-process
/// stages and auditor. Panics if a `CHATCART__…` variable in the
/// environment would change them.
pub fn write_config(settings: &Settings, path: &std::path::Path) {
    use std::fmt::Write as _;
    let s = settings;
    let mut t = String::new();
    let _ = writeln!(t, "[kafka]");
    let _ = writeln!(
        t,
        "bootstrap_servers = {}",
        toml_string(&s.kafka.bootstrap_servers)
    );
    let _ = writeln!(t, "topic_prefix = {}", toml_string(&s.kafka.topic_prefix));
    let _ = writeln!(t, "group_prefix = {}", toml_string(&s.kafka.group_prefix));
    let _ = writeln!(t, "partitions = {}", s.kafka.partitions);
    let _ = writeln!(t, "replication_factor = {}", s.kafka.replication_factor);
    let _ = writeln!(t, "[kafka.properties]");
    for (k, v) in &s.kafka.properties {
        let _ = writeln!(t, "{} = {}", toml_string(k), toml_string(v));
    }
    let c = &s.clickhouse;
    let _ = writeln!(t, "[clickhouse]");
    let _ = writeln!(t, "url = {}", toml_string(&c.url));
    let _ = writeln!(t, "database = {}", toml_string(&c.database));
    let _ = writeln!(t, "user = {}", toml_string(&c.user));
    let _ = writeln!(t, "password = {}", toml_string(&c.password));
    let _ = writeln!(t, "batch_rows = {}", c.batch_rows);
    let _ = writeln!(t, "batch_max_wait_ms = {}", c.batch_max_wait_ms);
    let _ = writeln!(t, "validation = {}", c.validation);
    let _ = writeln!(t, "insert_timeout_ms = {}", c.insert_timeout_ms);
    let _ = writeln!(t, "[coupon]");
    let _ = writeln!(
        t,
        "return_before_end_secs = {}",
        s.coupon.return_before_end_secs
    );
    let _ = writeln!(t, "[fulfillment]");
    let _ = writeln!(
        t,
        "close_after_end_secs = {}",
        s.fulfillment.close_after_end_secs
    );
    let _ = writeln!(t, "[intent]");
    if let Some(catalog) = &s.intent.catalog {
        let _ = writeln!(t, "catalog = {}", toml_string(&catalog.to_string_lossy()));
    }
    let _ = writeln!(t, "max_quantity = {}", s.intent.max_quantity);
    let r = &s.runtime;
    let _ = writeln!(t, "[runtime]");
    let _ = writeln!(t, "max_in_flight = {}", r.max_in_flight);
    let _ = writeln!(t, "restore_timeout_secs = {}", r.restore_timeout_secs);
    let _ = writeln!(t, "shutdown_timeout_secs = {}", r.shutdown_timeout_secs);
    let _ = writeln!(t, "checkpoint_min_records = {}", r.checkpoint_min_records);
    let _ = writeln!(t, "checkpoint_chunk_bytes = {}", r.checkpoint_chunk_bytes);
    let _ = writeln!(t, "health_listen = {}", toml_string(&r.health_listen));
    let _ = writeln!(t, "[codec.confluent_schemas]");
    for (id, schema) in &s.codec.confluent_schemas {
        let _ = writeln!(
            t,
            "{} = {}",
            toml_string(id),
            toml_string(&schema.to_string_lossy())
        );
    }
    for campaign in &s.campaigns {
        let _ = writeln!(t, "[[campaigns]]");
        let _ = writeln!(t, "id = {}", toml_string(&campaign.id));
        let _ = writeln!(t, "budget_cents = {}", campaign.budget_cents);
        let credit = match campaign.credit {
            ledger::campaign::CreditRule::FreeUpToCents(n) => format!("free_up_to_cents = {n}"),
            ledger::campaign::CreditRule::FixedCents(n) => format!("fixed_cents = {n}"),
        };
        let _ = writeln!(t, "credit = {{ {credit} }}");
        let _ = writeln!(t, "per_user_limit = {}", campaign.per_user_limit);
        if let Some(at) = &campaign.starts_at {
            let _ = writeln!(t, "starts_at = {}", toml_string(at));
        }
        if let Some(at) = &campaign.ends_at {
            let _ = writeln!(t, "ends_at = {}", toml_string(at));
        }
        let skus: Vec<String> = campaign
            .eligible_skus
            .iter()
            .map(|s| toml_string(s))
            .collect();
        let _ = writeln!(t, "eligible_skus = [{}]", skus.join(", "));
        let stock: Vec<String> = campaign
            .stock
            .iter()
            .map(|(sku, units)| format!("{} = {units}", toml_string(sku)))
            .collect();
        let _ = writeln!(t, "stock = {{ {} }}", stock.join(", "));
    }
    std::fs::write(path, &t).expect("writing the configuration file");
    let loaded = Settings::load(Some(path))
        .unwrap_or_else(|e| panic!("{} does not load: {e}\n{t}", path.display()));
    assert_eq!(
        &loaded,
        settings,
        "{} does not load as the test's settings (is a CHATCART__ variable set?)",
        path.display()
    );
}

/// A scratch directory for one test's files (configuration, child logs).
pub fn scratch_dir(settings: &Settings) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chatcart-test-{}",
        settings.kafka.group_prefix.trim_end_matches('.')
    ));
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

/// `chatcart <args…> --config <config>` running as a child process, its
/// standard error (the logs) going to a file. Dropping it kills it.
pub struct ChildProcess {
    child: std::process::Child,
    pub name: String,
    pub log: std::path::PathBuf,
    started: Instant,
}

impl ChildProcess {
    /// Starts `chatcart <args>` with `config`. The child's log filter is
    /// `CHATCART_TEST_CHILD_LOG` when set, else `RUST_LOG` when set, else
    /// `info`.
    pub fn spawn(name: &str, config: &std::path::Path, args: &[&str]) -> Self {
        Self::spawn_with_env(name, config, args, &[])
    }

    /// [`ChildProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        name: &str,
        config: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = config.parent().expect("the configuration's directory");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("creating the child's log file");
        let mut cmd = std::process::Command::new(chatcart_bin());
        cmd.arg("--config")
            .arg(config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .envs(env.iter().copied());
        if let Some(filter) = std::env::var_os("CHATCART_TEST_CHILD_LOG") {
            cmd.env("RUST_LOG", filter);
        } else if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting chatcart {args:?}: {e}"));
        Self {
            child,
            name: name.to_owned(),
            log,
            started: Instant::now(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// How long ago it was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it has exited (without reaping a status twice).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("checking a child process")
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log contains `needle`; false on timeout or exit.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            if self.exited().is_some() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGKILL: no drain, no commit, no leaving the consumer group.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        // `Child::kill` sends SIGKILL on Unix.
        let _ = self.child.kill();
        self.child.wait().expect("reaping a killed child")
    }

    /// SIGTERM, then waits up to `within` for it to drain and exit.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not drain within {within:?} of SIGTERM:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Publishes `prompts` (keyed by user, Avro, one producer) in chunks of
/// `chunk`, one chunk every `every` or as fast as the broker takes them.
/// The counter says how many the broker has acknowledged so far.
pub fn publish_paced(
    settings: &Settings,
    prompts: Vec<Prompt>,
    chunk: usize,
    every: Duration,
) -> (JoinHandle<()>, Arc<AtomicUsize>) {
    let published = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&published);
    let settings = settings.clone();
    let task = tokio::spawn(async move {
        let topics = TopicNames::new(&settings.kafka);
        let producer = settings.kafka.producer().expect("producer");
        let mut next = tokio::time::Instant::now();
        for slice in prompts.chunks(chunk) {
            tokio::time::sleep_until(next).await;
            next += every;
            produce_prompts(&producer, &topics, slice).await;
            counter.fetch_add(slice.len(), Ordering::Release);
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    });
    (task, published)
}

/// Waits until every request has a reply; fails the test after `timeout`.
pub async fn await_all_replies(settings: &Settings, requests: &[Prompt], timeout: Duration) {
    let seen = await_replies(settings, requests.len(), timeout).await;
    let distinct: HashSet<&str> = seen.iter().map(|r| r.request_id.as_str()).collect();
    assert!(
        distinct.len() >= requests.len(),
        "only {} of {} requests answered within {timeout:?}",
        distinct.len(),
        requests.len()
    );
}

/// Waits until stage `stage`'s consumer group has committed every record of
/// `topic` (each partition up to its end); fails the test after `timeout`.
/// How a test knows a stage has handled everything, redeliveries included.
pub async fn await_caught_up(settings: &Settings, stage: &str, topic: Topic, timeout: Duration) {
    use rdkafka::TopicPartitionList;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let kafka = settings.kafka.clone();
    let name = TopicNames::new(&kafka).name(topic).to_owned();
    let group = format!("{}.{stage}", kafka.group_prefix);
    let deadline = Instant::now() + timeout;
    loop {
        let (kafka, name, id) = (kafka.clone(), name.clone(), group.clone());
        let behind = tokio::task::spawn_blocking(move || {
            let ends = connectors::kafka::end_offsets(&kafka, &name, kafka.partitions)?;
            let consumer: BaseConsumer = kafka.client_config().set("group.id", &id).create()?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..kafka.partitions {
                tpl.add_partition(&name, p);
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
            let behind: i64 = committed
                .elements()
                .iter()
                .map(|e| {
                    let at = e.offset().to_raw().unwrap_or(0).max(0);
                    let end = ends[usize::try_from(e.partition()).unwrap_or(0)];
                    (end - at).max(0)
                })
                .sum();
            anyhow::Ok(behind)
        })
        .await
        .expect("lag probe")
        .expect("lag probe");
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} is still {behind} records behind on {topic:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the auditor and fails the test unless it is clean; checks that every
/// published request has exactly one reply and nothing else was answered.
/// Unlike [`check_invariants`], it does not require every kind of outcome
/// to occur. Returns the report and the replies.
pub async fn audit_exactly_once(
    settings: &Settings,
    requests: &[Prompt],
) -> (ledger::audit::AuditReport, Vec<Reply>) {
    let (report, replies) = clean_audit(settings).await;
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for r in &replies {
        *per_request.entry(r.request_id.as_str()).or_default() += 1;
    }
    let unanswered: Vec<&str> = requests
        .iter()
        .map(|p| p.request_id.as_str())
        .filter(|id| !per_request.contains_key(id))
        .take(5)
        .collect();
    assert!(
        unanswered.is_empty(),
        "requests without a reply: {unanswered:?}"
    );
    let repeated: Vec<(&str, usize)> = per_request
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .take(5)
        .collect();
    assert!(
        repeated.is_empty(),
        "requests with more than one reply: {repeated:?}"
    );
    assert_eq!(
        per_request.len(),
        requests.len(),
        "replies for requests never published"
    );
    (report, replies)
}

/// A ClickHouse server of one test's own (started by tests/services.sh in a
/// scratch folder), for tests that stop and start it. Stopped on drop.
pub struct PrivateClickHouse {
    dir: std::path::PathBuf,
    pub url: String,
}

fn services_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("services.sh")
}

impl PrivateClickHouse {
    /// Starts a new server in a scratch folder.
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&dir).expect("creating the server's folder");
        let mut server = Self {
            dir,
            url: String::new(),
        };
        server.url = server.up();
        server
    }

    fn up(&self) -> String {
        let out = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-start")
            .arg(&self.dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("running tests/services.sh");
        assert!(
            out.status.success(),
            "tests/services.sh clickhouse-start failed"
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server (SIGTERM, then SIGKILL if it lingers).
    pub fn stop(&self) {
        let status = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-stop")
            .arg(&self.dir)
            .status()
            .expect("running tests/services.sh");
        assert!(status.success(), "tests/services.sh clickhouse-stop failed");
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        let url = self.up();
        assert_eq!(url, self.url, "ClickHouse came back on another address");
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS`), if it is running.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `(rows, distinct (topic, partition, offset))` in `events` right now.
pub async fn events_counts(settings: &Settings) -> (u64, u64) {
    settings
        .clickhouse
        .client()
        .query("SELECT count(), uniqExact(topic, partition, offset) FROM events")
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or((0, 0))
}
