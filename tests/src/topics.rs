//! Writing to and reading back the test's topics.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connectors::kafka::{enqueue, read_partitions, scan};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureRecord, Producer};
use runtime::app;
use runtime::{Settings, Topic, TopicNames};
use schemas::{Codec, Prompt, Record, Reply};
use tokio::task::JoinHandle;

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

/// Total records in every topic the analytics sink stores, as of now.
pub async fn total_records(settings: &Settings) -> u64 {
    let mut total = 0;
    for t in Topic::ANALYTICS {
        total += read_topic(settings, t).await.len() as u64;
    }
    total
}

/// Reads `chat.replies` from the start until `expected` distinct requests
/// are answered or `timeout` passes; returns every reply seen, duplicates
/// included, so callers can check there are none.
pub async fn await_replies(settings: &Settings, expected: usize, timeout: Duration) -> Vec<Reply> {
    let kafka = settings.kafka.clone();
    let codec = app::codec(settings).expect("the test's codec");
    let replies_topic = TopicNames::new(&kafka).name(Topic::Replies).to_owned();
    let from: Vec<(String, i32, i64)> = (0..kafka.partitions)
        .map(|p| (replies_topic.clone(), p, 0))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut replies = Vec::with_capacity(expected);
        let mut distinct = HashSet::new();
        scan(&kafka, &from, timeout, |m| {
            if let Ok(Record::Reply(r)) = codec.decode(m.payload().unwrap_or_default()) {
                distinct.insert(r.request_id.clone());
                replies.push(r);
            }
            if distinct.len() >= expected {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("reading chat.replies");
        replies
    })
    .await
    .expect("reader thread")
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

/// Waits until the reply stage has handled every terminal record (every
/// intent, decision and order) and the coupon stage every order (the
/// releases of failed ones), redeliveries included: what a test waits for
/// before its closing checks.
pub async fn await_settled(settings: &Settings) {
    for topic in [Topic::Intents, Topic::Decisions, Topic::Orders] {
        await_caught_up(settings, "reply", topic, Duration::from_secs(60)).await;
    }
    await_caught_up(settings, "coupon", Topic::Orders, Duration::from_secs(60)).await;
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
