//! Checkpoints against the real broker: what the coupon stage's
//! checkpointer writes, folded on with the records after it, is exactly the
//! fold of the whole decisions partition; a checkpoint that does not read
//! back whole is skipped for an older one; and a coupon stage restored
//! through checkpoints keeps every promise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess, Running};
use connectors::kafka::enqueue;
use ledger::DecisionsFold;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use runtime::app::{self, StageName};
use runtime::checkpoint::{self, Manifest};
use runtime::{Context, Ready};
use runtime::{Settings, Topic, TopicNames};
use schemas::{Codec, Prompt};

/// One latte each from requests `from..from + count`, spread over `users`.
fn prompts(from: usize, count: usize, users: usize) -> Vec<Prompt> {
    (from..from + count)
        .map(|i| {
            t::prompt(
                format!("r{i}"),
                &format!("u{}", i % users),
                "order latte x1",
            )
        })
        .collect()
}

fn context(settings: &Settings) -> Context {
    let codec = app::codec(settings).expect("codec");
    Context::new(
        settings.kafka.clone(),
        settings.runtime.clone(),
        codec,
        Arc::new(Ready::default()),
    )
}

async fn latest(ctx: &Context, partition: i32) -> Option<(Manifest, Vec<u8>)> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        checkpoint::latest(&ctx, "coupon", partition, Duration::from_secs(30))
    })
    .await
    .expect("reader thread")
    .expect("reading checkpoints")
}

/// Waits until `partition` has a checkpoint covering at least `at_least`.
async fn checkpoint_covering(ctx: &Context, partition: i32, at_least: i64) -> (Manifest, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((manifest, image)) = latest(ctx, partition).await
            && manifest.covers >= at_least
        {
            return (manifest, image);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of partition {partition} covering {at_least} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn produce_checkpoint_record(
    settings: &Settings,
    partition: i32,
    kind: &str,
    payload: &[u8],
) {
    let topics = TopicNames::new(&settings.kafka);
    let producer = settings.kafka.producer().expect("producer");
    let headers = OwnedHeaders::new().insert(Header {
        key: "chatcart.checkpoint",
        value: Some(kind),
    });
    let record = FutureRecord::to(topics.name(Topic::Checkpoints))
        .partition(partition)
        .key("coupon")
        .payload(payload)
        .headers(headers);
    let delivered = enqueue(&producer, record).await.expect("enqueue").await;
    assert!(matches!(delivered, Ok(Ok(_))), "not delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_plus_their_tail_fold_to_the_whole_partition() {
    // Built (or found up to date) before anything waits on the processes.
    t::chatcart_bin();
    let mut settings = t::settings("checkpoint", 2);
    settings.clickhouse.url.clear();
    settings.runtime.checkpoint_min_records = 40;
    // Images of a few kilobytes, so every checkpoint has several chunks.
    settings.runtime.checkpoint_chunk_bytes = 1024;
    // Room for 300 of the 400 people: grants, denials and leases all occur.
    settings.campaigns[0].budget_cents = 300 * 2_200;
    t::create_topics(&settings).await;
    let ctx = context(&settings);
    let stages = t::STAGES;

    let first = prompts(0, 600, 400);
    let running = Running::start(&settings, &stages);
    running.ready().await;
    t::publish(&settings, &first).await;
    t::await_replies(&settings, first.len(), Duration::from_secs(90)).await;
    // Both partitions checkpointed; then everything stops, so the logs and
    // the checkpoints below stay as they are.
    for p in 0..2 {
        checkpoint_covering(&ctx, p, 1).await;
    }
    // The downstream stages' committed offsets must reach the checkpoints
    // for their replay to start from them below: the coupon stage may
    // write (lease records) after the last decision they have committed.
    for stage in ["fulfillment", "reply"] {
        t::await_caught_up(&settings, stage, Topic::Decisions, Duration::from_secs(60)).await;
    }
    running.stop().await.expect("stages drained");

    let decisions = t::read_topic(&settings, Topic::Decisions).await;
    let codec = Codec::new();
    let campaigns = Arc::new(settings.campaigns().expect("campaigns"));
    for p in 0..2 {
        let log: Vec<_> = decisions.iter().filter(|r| r.partition == p).collect();
        let end = log.last().map_or(0, |r| r.offset + 1);
        let (manifest, image) = latest(&ctx, p).await.expect("a checkpoint");
        assert!(manifest.covers <= end, "{manifest:?} beyond the end {end}");
        assert!(
            manifest.chunks.len() > 1,
            "a {} byte image in one chunk",
            manifest.bytes
        );
        let mut whole = DecisionsFold::new(Arc::clone(&campaigns));
        let mut resumed = DecisionsFold::from_image(Arc::clone(&campaigns), &image)
            .expect("the checkpoint's image reads back");
        for r in &log {
            let record = codec.decode(&r.payload).expect("decisions decode");
            whole.apply(&record);
            if r.offset >= manifest.covers {
                resumed.apply(&record);
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&resumed.image()),
            String::from_utf8_lossy(&whole.image()),
            "partition {p}: checkpoint at {} plus its tail differs from the whole partition",
            manifest.covers
        );
    }

    // A manifest whose chunks do not add up, and a chunk with no manifest
    // (a writer killed half-way), are passed over for the last good one.
    let (good, _) = latest(&ctx, 0).await.expect("a checkpoint");
    let broken = Manifest {
        covers: good.covers + 1_000_000,
        chunks: vec![good.chunks[0]],
        bytes: good.bytes + 1,
        ..good.clone()
    };
    let broken = serde_json::to_vec(&broken).expect("json");
    produce_checkpoint_record(&settings, 0, "manifest", &broken).await;
    produce_checkpoint_record(&settings, 0, "chunk", b"{\"version\":1,").await;
    let (found, image) = latest(&ctx, 0).await.expect("the good checkpoint");
    assert_eq!(found, good, "the broken checkpoint was not skipped");
    assert!(DecisionsFold::from_image(Arc::clone(&campaigns), &image).is_ok());

    // A new coupon process restores through the checkpoints (passing over
    // the broken one) and goes on granting exactly what the ledger allows;
    // new fulfillment and reply processes start their replay of the
    // decisions partitions from the same checkpoints.
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut coupon = ChildProcess::spawn("coupon", &config, &["run", "coupon"]);
    let mut downstream =
        ChildProcess::spawn("downstream", &config, &["run", "fulfillment", "reply"]);
    let others = Running::start(&settings, &[StageName::Intent]);
    others.ready().await;
    for child in [&mut coupon, &mut downstream] {
        assert!(
            child
                .wait_for_log("partitions assigned", Duration::from_secs(60))
                .await,
            "the {} process did not join its group:\n{}",
            child.name(),
            child.log_text()
        );
    }
    // Partitions are restored when their first record arrives.
    let second = prompts(600, 300, 500);
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    t::publish(&settings, &second).await;
    t::await_all_replies(&settings, &all, Duration::from_secs(90)).await;
    let log = coupon.log_text();
    let status = coupon.terminate(Duration::from_secs(40));
    assert!(status.success(), "the coupon process did not drain:\n{log}");
    // Read once it exited, so every line it logged is in the file.
    let downstream_path = downstream.log().to_owned();
    let status = downstream.terminate(Duration::from_secs(40));
    let downstream_log = std::fs::read_to_string(downstream_path).unwrap_or_default();
    assert!(
        status.success(),
        "the fulfillment and reply process did not drain:\n{downstream_log}"
    );
    others.stop().await.expect("stages drained");
    // (The reply stage also replays its orders partitions, from the first
    // record: the coupon stage's checkpoints are of the decisions fold.)
    for stage in ["fulfillment", "reply"] {
        let replayed: Vec<&str> = downstream_log
            .lines()
            .filter(|l| {
                l.contains("input replayed")
                    && l.contains(stage)
                    && l.contains("commerce.decisions")
            })
            .collect();
        assert!(
            !replayed.is_empty()
                && replayed.iter().all(|l| l.contains("from_checkpoint")
                    && l.contains("0: ")
                    && l.contains("1: ")),
            "{stage} did not replay both partitions from checkpoints: {replayed:?}"
        );
    }
    let restored: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("state restored"))
        .collect();
    assert!(
        restored
            .iter()
            .any(|l| l.contains("from_checkpoint") && l.contains("0: ") && l.contains("1: ")),
        "the restore did not start from the checkpoints of both partitions: {restored:?}"
    );
    let (report, _) = t::audit_exactly_once(&settings, &all).await;
    println!("{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
