//! Rows per second of the analytics sink, next to what bounds it: reading
//! the same records from the broker with one consumer, and inserting the
//! same rows into the same ClickHouse in bulk.
//!
//! ```sh
//! eval "$(bash tests/services.sh start)"
//! cargo bench -p chatcart-tests --bench sink
//! ```
//!
//! Each run publishes N prompts to a fresh `chat.prompts` (the other topics
//! stay empty), then:
//! 1. **consume**: one consumer reads every record back (no decoding): the
//!    broker's own limit for one reader;
//! 2. **sink**: the analytics sink starts on an empty database and stores
//!    every record; timed from its first row in ClickHouse to its last, so
//!    group join and migrations are left out;
//! 3. **bulk**: the rows the sink stored are read back and inserted into a
//!    copy of `events` as one INSERT.
//!
//! It prints each run and the medians, and the ratios sink/bulk and
//! sink/consume.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHATCART_TEST_KAFKA`, `CHATCART_TEST_CLICKHOUSE` | (skip) | the services |
//! | `CHATCART_BENCH_RECORDS` | 300000 | prompts per run (N) |
//! | `CHATCART_BENCH_RUNS` | 3 | runs, each on fresh topics and database |
//! | `CHATCART_BENCH_PARTITIONS` | 6 | partitions of every pipeline topic |
//! | `CHATCART_BENCH_BATCH_ROWS` | 10000 | `clickhouse.batch_rows` of the sink |

use std::time::{Duration, Instant};

use chatcart_tests::{Running, create_topics, events_counts, produce_prompts, prompts, settings};
use connectors::EventRow;
use runtime::app::StageName;
use runtime::{Topic, TopicNames};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Run {
    consume: f64,
    sink: f64,
    bulk: f64,
}

async fn run(n: usize, partitions: i32, batch_rows: usize, index: usize) -> Run {
    let mut s = settings(&format!("bench-sink-{index}"), partitions);
    s.clickhouse.batch_rows = batch_rows;
    create_topics(&s).await;
    let topics = TopicNames::new(&s.kafka);
    let producer = s.kafka.producer().expect("producer");
    let all = prompts(n, index as u64 + 1);
    for chunk in all.chunks(10_000) {
        produce_prompts(&producer, &topics, chunk).await;
    }

    // 1. The broker's limit for one reader.
    let kafka = s.kafka.clone();
    let name = topics.name(Topic::Prompts).to_owned();
    let (read, secs) = tokio::task::spawn_blocking(move || {
        let all: Vec<i32> = (0..partitions).collect();
        let started = Instant::now();
        let read = connectors::kafka::read_partitions(
            &kafka,
            &name,
            &all,
            Duration::from_secs(600),
            |_| {},
        )
        .expect("read back");
        (read, started.elapsed().as_secs_f64())
    })
    .await
    .expect("reader");
    assert_eq!(read as usize, n);
    let consume = n as f64 / secs;

    // 2. The sink, from its first stored row to its last.
    let sink = Running::start(&s, &[StageName::Analytics]);
    let mut first: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let sink_rate = loop {
        let (rows, _) = events_counts(&s).await;
        let now = Instant::now();
        if rows > 0 && first.is_none() {
            first = Some((now, rows));
        }
        if rows as usize >= n {
            let (t0, r0) = first.expect("first rows seen");
            let secs = now.duration_since(t0).as_secs_f64().max(1e-3);
            break (rows - r0) as f64 / secs;
        }
        assert!(now < deadline, "the sink stored {rows} of {n} rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    sink.stop().await.expect("sink drained");

    // 3. The same rows in one bulk insert.
    let client = s.clickhouse.client();
    let rows: Vec<EventRow> = client
        .query("SELECT ?fields FROM events")
        .fetch_all()
        .await
        .expect("rows read back");
    client
        .query("CREATE TABLE events_bulk AS events")
        .execute()
        .await
        .expect("copy of events");
    let started = Instant::now();
    let mut insert = client
        .insert::<EventRow>("events_bulk")
        .await
        .expect("insert");
    for row in &rows {
        insert.write(row).await.expect("write");
    }
    insert.end().await.expect("bulk insert");
    let bulk = rows.len() as f64 / started.elapsed().as_secs_f64();
    Run {
        consume,
        sink: sink_rate,
        bulk,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var("CHATCART_TEST_KAFKA").is_err()
        || std::env::var("CHATCART_TEST_CLICKHOUSE").is_err()
    {
        eprintln!("skipped: start the services first (eval \"$(bash tests/services.sh start)\")");
        return;
    }
    let n = env("CHATCART_BENCH_RECORDS", 300_000);
    let runs = env("CHATCART_BENCH_RUNS", 3);
    let partitions = env("CHATCART_BENCH_PARTITIONS", 6) as i32;
    let batch_rows = env("CHATCART_BENCH_BATCH_ROWS", 10_000);
    println!("{n} records, {partitions} partitions, batch_rows {batch_rows}, {runs} runs");
    println!(
        "{:>4} {:>12} {:>12} {:>12}",
        "run", "consume/s", "sink rows/s", "bulk rows/s"
    );
    let mut all = Vec::new();
    for i in 0..runs {
        let r = run(n, partitions, batch_rows, i).await;
        println!(
            "{:>4} {:>12.0} {:>12.0} {:>12.0}",
            i + 1,
            r.consume,
            r.sink,
            r.bulk
        );
        all.push(r);
    }
    let consume = median(all.iter().map(|r| r.consume).collect());
    let sink = median(all.iter().map(|r| r.sink).collect());
    let bulk = median(all.iter().map(|r| r.bulk).collect());
    println!("{:>4} {consume:>12.0} {sink:>12.0} {bulk:>12.0}", "med");
    println!(
        "sink / bulk insert = {:.2}; sink / one consumer = {:.2}",
        sink / bulk,
        sink / consume
    );
}
