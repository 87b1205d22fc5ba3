//! The benchmark's building blocks against a real broker: the no-op relay
//! (`tools::bench::relay`) passes every record along the pipeline's
//! topic chain exactly once, to the same partition, byte for byte; a relay
//! SIGKILLed mid-stream and restarted, then joined by another member that
//! leaves again (two rebalances), loses nothing; the check behind both
//! catches a relay that stores offsets before its outputs are acknowledged;
//! and the raw hop (`tools::bench::raw`) measures one produce-and-consume.
//!
//! Each test prints what it measured (run with `--no-capture` to see it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatcart_tests as t;
use connectors::kafka::{enqueue, read_partitions};
use futures::StreamExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use runtime::{Ready, Shutdown};
use runtime::{Settings, Topic, TopicNames};
use schemas::{Codec, Record};
use tokio::task::JoinHandle;
use tools::bench::raw::raw_hop;
use tools::bench::relay::{relay, relay_name};
use tools::procs::{Process, RssSampler};

/// The pipeline's chain of topics, one relay per hop.
const HOPS: [(Topic, Topic); 4] = [
    (Topic::Prompts, Topic::Intents),
    (Topic::Intents, Topic::Decisions),
    (Topic::Decisions, Topic::Orders),
    (Topic::Orders, Topic::Replies),
];

/// One record as sent or as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    partition: i32,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Encoded prompts, each with a header of its own: every payload is
/// distinct (request ids are), so a payload identifies its record.
fn payloads(count: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let codec = Codec::new();
    chatcart_tests::prompts(count, seed)
        .into_iter()
        .map(|p| {
            let bytes = codec.encode(&Record::Prompt(p.clone())).expect("encode");
            (p.user_id, bytes)
        })
        .collect()
}

/// Produces `records` to `chat.prompts` (keyed by user, partitioned by the
/// producer) and returns where each landed, by payload.
async fn send(
    producer: &FutureProducer,
    settings: &Settings,
    records: &[(String, Vec<u8>)],
) -> HashMap<Vec<u8>, Seen> {
    let topic = TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    let mut deliveries = Vec::with_capacity(records.len());
    for (i, (user, payload)) in records.iter().enumerate() {
        let seq = i.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "bench.seq",
                value: Some(&seq),
            })
            .insert(Header::<&[u8]> {
                key: "bench.empty",
                value: None,
            });
        let record = FutureRecord::to(&topic)
            .key(user.as_str())
            .payload(&payload[..])
            .headers(headers);
        let delivery = enqueue(producer, record).await.expect("enqueue");
        deliveries.push((user, payload, seq, delivery));
    }
    let mut sent = HashMap::with_capacity(records.len());
    for (user, payload, seq, delivery) in deliveries {
        let partition = delivery
            .await
            .expect("delivery")
            .expect("prompt delivered")
            .partition;
        let seen = Seen {
            partition,
            key: Some(user.as_bytes().to_vec()),
            headers: vec![
                ("bench.seq".to_owned(), Some(seq.into_bytes())),
                ("bench.empty".to_owned(), None),
            ],
        };
        sent.insert(payload.clone(), seen);
    }
    sent
}

/// Every record of `topic` now, as `(payload, where and how)`.
async fn read_back(settings: &Settings, topic: Topic) -> Vec<(Vec<u8>, Seen)> {
    let kafka = settings.kafka.clone();
    let name = TopicNames::new(&kafka).name(topic).to_owned();
    tokio::task::spawn_blocking(move || {
        let all: Vec<i32> = (0..kafka.partitions).collect();
        let mut out = Vec::new();
        read_partitions(&kafka, &name, &all, Duration::from_secs(60), |m| {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|hd| (hd.key.to_owned(), hd.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            let seen = Seen {
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                headers,
            };
            out.push((m.payload().unwrap_or_default().to_vec(), seen));
        })
        .expect("reading the topic back");
        out
    })
    .await
    .expect("reader thread")
}

/// How the records read back compare with the records sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Arrivals {
    missing: usize,
    /// Records that arrived more than once (counted once each).
    repeated: usize,
    /// Extra copies beyond the first.
    extra_copies: usize,
    /// Arrived on another partition, or with another key or headers.
    altered: usize,
    /// Payloads never sent.
    unknown: usize,
}

fn compare(sent: &HashMap<Vec<u8>, Seen>, got: &[(Vec<u8>, Seen)]) -> Arrivals {
    let mut copies: HashMap<&[u8], usize> = HashMap::new();
    let mut arrivals = Arrivals::default();
    for (payload, seen) in got {
        match sent.get(payload) {
            None => arrivals.unknown += 1,
            Some(expected) => {
                if expected != seen {
                    arrivals.altered += 1;
                }
                *copies.entry(payload).or_default() += 1;
            }
        }
    }
    arrivals.missing = sent.len() - copies.len();
    arrivals.repeated = copies.values().filter(|n| **n > 1).count();
    arrivals.extra_copies = copies.values().map(|n| n - 1).sum();
    arrivals
}

/// Relays running in this process, one task each.
struct Relays {
    trigger: runtime::shutdown::Trigger,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    ready: Arc<Ready>,
}

impl Relays {
    fn start(settings: &Settings, hops: &[(Topic, Topic)]) -> Self {
        let (trigger, shutdown) = Shutdown::new();
        let ready = Arc::new(Ready::default());
        let tasks = hops
            .iter()
            .map(|(from, to)| {
                let (settings, shutdown, ready) =
                    (settings.clone(), shutdown.clone(), Arc::clone(&ready));
                let (from, to) = (*from, *to);
                tokio::spawn(async move { relay(&settings, from, to, shutdown, ready).await })
            })
            .collect();
        Self {
            trigger,
            tasks,
            ready,
        }
    }

    async fn ready(&self) {
        assert!(
            self.ready
                .wait_for(self.tasks.len(), Duration::from_secs(60))
                .await,
            "relays did not get partitions within 60 s"
        );
    }

    async fn stop(self) {
        self.trigger.fire();
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("a relay drained within 60 s")
                .expect("relay task")
                .expect("relay stopped cleanly");
        }
    }
}

/// Waits until every relay of `hops`, in order, has committed all of its
/// input: then the last topic holds everything.
async fn await_chain(settings: &Settings, hops: &[(Topic, Topic)], timeout: Duration) {
    for (from, _) in hops {
        t::await_caught_up(settings, relay_name(*from), *from, timeout).await;
    }
}

/// Reads `topic` until it holds at least `count` records; fails the test
/// after `timeout`.
async fn await_records(
    settings: &Settings,
    topic: Topic,
    count: usize,
    timeout: Duration,
) -> Vec<(Vec<u8>, Seen)> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_back(settings, topic).await;
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records on {topic:?} after {timeout:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_relays_pass_every_record_once_to_the_same_partition() {
    let mut settings = t::settings("relay-chain", 6);
    // librdkafka's default batching, as a benchmark runs: the tests cap
    // batches at one record only because Tansu cannot resume a consumer
    // inside a batch, and nothing here resumes (one member per group, no
    // restart). It makes the chain several times faster.
    settings.kafka.properties.remove("batch.num.messages");
    t::create_topics(&settings).await;
    let relays = Relays::start(&settings, &HOPS);
    relays.ready().await;

    let records = payloads(20_000, 11);
    let producer = settings.kafka.producer().expect("producer");
    let started = Instant::now();
    let sent = send(&producer, &settings, &records).await;
    let sent_secs = started.elapsed().as_secs_f64();
    // Not `await_chain`: with batches, Tansu's end offsets fall short of
    // the last batch, so committed offsets cannot say the chain is done.
    let got = await_records(
        &settings,
        Topic::Replies,
        sent.len(),
        Duration::from_secs(180),
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "relay chain, 6 partitions, default batching: {} records sent in {sent_secs:.2} s ({:.0}/s); all on chat.replies after {secs:.2} s ({:.0}/s through 4 hops)",
        sent.len(),
        sent.len() as f64 / sent_secs,
        sent.len() as f64 / secs,
    );
    relays.stop().await;

    assert_eq!(sent.len(), records.len(), "payloads are distinct");
    assert_eq!(compare(&sent, &got), Arrivals::default());
    // Nothing more arrived after the relays drained.
    assert_eq!(read_back(&settings, Topic::Replies).await.len(), got.len());
    for (from, _) in HOPS {
        assert_eq!(read_back(&settings, from).await.len(), records.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_sigkilled_restarted_and_rebalanced_mid_stream_loses_nothing() {
    let settings = t::settings("relay-kill", 6);
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let exe = t::chatcart_bin();
    let args = [
        "relay",
        "--from",
        "chat.prompts",
        "--to",
        "commerce.intents",
    ];
    let start = |name: &str| {
        Process::spawn(name, &exe, &config, &args, &dir.join(format!("{name}.log")))
            .expect("relay process started")
    };
    let names = TopicNames::new(&settings.kafka);
    let intents = names.name(Topic::Intents).to_owned();
    let landed = || {
        let kafka = settings.kafka.clone();
        let intents = intents.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                connectors::kafka::end_offsets(&kafka, &intents, kafka.partitions)
                    .expect("end offsets")
                    .iter()
                    .sum::<i64>()
            })
            .await
            .expect("probe")
        }
    };

    let mut first = start("relay-1");
    // Published in slices, so the kill falls into a flow still arriving.
    let records = payloads(20_000, 12);
    let publisher = {
        let (settings, records) = (settings.clone(), records.clone());
        tokio::spawn(async move {
            let producer = settings.kafka.producer().expect("producer");
            let mut sent = HashMap::new();
            for slice in records.chunks(1_000) {
                sent.extend(send(&producer, &settings, slice).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            producer.flush(Duration::from_secs(10)).expect("flush");
            sent
        })
    };
    // Copies on commerce.intents so far, duplicates included.
    let await_landed = |target: i64| {
        let landed = &landed;
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let now = landed().await;
                if now >= target {
                    return now;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {now} records relayed, waiting for {target}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let total = i64::try_from(records.len()).expect("a count");
    let at_kill = await_landed(4_000).await;
    assert!(first.exited().is_none(), "the relay exited on its own");
    // Dropping a Process is a SIGKILL: no drain, no commit, no leaving.
    drop(first);
    // The killed member must expire before the next one joins: Tansu can
    // drop an expired member without a rebalance, leaving its partitions
    // unowned (see tests/replies.rs). The session timeout is 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;

    let second = start("relay-2");
    let sampler = RssSampler::start(
        vec![(second.name().to_owned(), second.pid())],
        Duration::from_millis(100),
    );
    // A second member joins and leaves while the flow goes on: two
    // rebalances, each revoking partitions with outputs in flight.
    let joined_at = await_landed((at_kill + 3_000).min(total)).await;
    let third = start("relay-3");
    let left_at = await_landed((joined_at + 3_000).min(total)).await;
    let status = third
        .stop(Duration::from_secs(40))
        .expect("the joining relay was running");
    assert!(
        status.success(),
        "the joining relay did not drain: {status}"
    );
    let sent = publisher.await.expect("publisher");
    t::await_caught_up(
        &settings,
        relay_name(Topic::Prompts),
        Topic::Prompts,
        Duration::from_secs(180),
    )
    .await;
    let rss = sampler.finish();
    let status = second
        .stop(Duration::from_secs(40))
        .expect("the relay was running");
    assert!(
        status.success(),
        "the relay did not drain cleanly: {status}"
    );

    let got = read_back(&settings, Topic::Intents).await;
    let arrivals = compare(&sent, &got);
    eprintln!(
        "relay killed after {at_kill} of {} records had landed, another joined at {joined_at} and left at {left_at}: {arrivals:?}; restarted relay's memory: {rss:?}",
        sent.len()
    );
    assert_eq!(
        (arrivals.missing, arrivals.altered, arrivals.unknown),
        (0, 0, 0),
        "{arrivals:?}"
    );
    assert!(rss[0].samples > 0 && rss[0].peak_kib > 0, "{rss:?}");
}

/// A faulty relay: it stores each input offset as soon as it reads the
/// record (`enable.auto.offset.store`), and its outputs wait in a buffer
/// before they are sent, as they would in a slow producer's queue. Stopped
/// before the buffer goes out, the committed offsets are past records that
/// never arrived.
async fn faulty_relay(settings: Settings, read: Arc<std::sync::atomic::AtomicUsize>) {
    let names = TopicNames::new(&settings.kafka);
    let consumer: StreamConsumer = settings
        .kafka
        .consumer_config(relay_name(Topic::Prompts))
        .set("enable.auto.offset.store", "true")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&[names.name(Topic::Prompts)])
        .expect("subscribe");
    let producer = settings.kafka.producer().expect("producer");
    let mut buffer = Vec::new();
    let mut flush = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(30),
        Duration::from_secs(30),
    );
    let mut messages = consumer.stream();
    loop {
        tokio::select! {
            Some(message) = messages.next() => {
                let m = message.expect("consume").detach();
                buffer.push(m);
                read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ = flush.tick() => {
                for m in buffer.drain(..) {
                    let mut record = FutureRecord::<[u8], [u8]>::to(names.name(Topic::Intents))
                        .partition(m.partition());
                    if let Some(key) = m.key() {
                        record = record.key(key);
                    }
                    if let Some(payload) = m.payload() {
                        record = record.payload(payload);
                    }
                    let _ = enqueue(&producer, record).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_check_catches_a_relay_that_stores_offsets_before_the_ack() {
    let settings = t::settings("relay-fault", 4);
    t::create_topics(&settings).await;
    let records = payloads(5_000, 13);
    let producer = settings.kafka.producer().expect("producer");
    let sent = send(&producer, &settings, &records).await;

    let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let faulty = tokio::spawn(faulty_relay(settings.clone(), Arc::clone(&read)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.load(std::sync::atomic::Ordering::Relaxed) < sent.len() / 2 {
        assert!(
            Instant::now() < deadline,
            "the faulty relay read too little"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two auto-commits (every second) pass, then it stops, as a crash would.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    faulty.abort();
    let _ = faulty.await;

    // The real relay takes over from the committed offsets.
    let relays = Relays::start(&settings, &HOPS[..1]);
    relays.ready().await;
    await_chain(&settings, &HOPS[..1], Duration::from_secs(120)).await;
    relays.stop().await;

    let arrivals = compare(&sent, &read_back(&settings, Topic::Intents).await);
    eprintln!(
        "faulty relay read {} of {} records before it stopped: {arrivals:?}",
        read.load(std::sync::atomic::Ordering::Relaxed),
        sent.len()
    );
    assert!(
        arrivals.missing > 0,
        "the check did not notice the lost records: {arrivals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raw_hop_measures_ten_thousand_records() {
    let settings = t::settings("raw-hop", 6);
    let payload = payloads(1, 14).remove(0).1;
    let topic = format!("{}bench.raw", settings.kafka.topic_prefix);
    let hop = raw_hop(&settings, &topic, 10_000, &payload)
        .await
        .expect("raw hop");
    eprintln!(
        "raw hop, 6 partitions, {} B records, one record per batch (the tests' Tansu setting): {hop:?}",
        payload.len()
    );
    assert_eq!(hop.records, 10_000);
    assert!(hop.produce_per_sec > 0.0 && hop.hop_per_sec > 0.0);
    assert!(hop.hop_secs >= hop.produce_secs * 0.5, "{hop:?}");

    let err = raw_hop(&settings, &topic, 10, &payload)
        .await
        .expect_err("the topic holds the last run's records");
    assert!(err.to_string().contains("already exists"), "{err:#}");

    // The same with librdkafka's default batching, for comparison: the
    // tests cap batches at one record only because Tansu cannot resume
    // inside a batch, which a fresh group reading from the start never does.
    let mut batched = settings.clone();
    batched.kafka.properties.remove("batch.num.messages");
    let topic = format!("{}bench.raw-batched", settings.kafka.topic_prefix);
    let hop = raw_hop(&batched, &topic, 10_000, &payload)
        .await
        .expect("raw hop");
    eprintln!("raw hop, default batching: {hop:?}");
    assert_eq!(hop.records, 10_000);
}
