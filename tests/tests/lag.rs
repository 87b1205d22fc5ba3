//! `chatcart lag` against the real broker (and ClickHouse, for the sink):
//! a stage that holds its partitions but is frozen shows STALL and one that
//! is gone shows STOP, each with the lag left behind; a group falling
//! behind shows WARN and, once it catches up, OK; offsets reset backwards
//! show REWIND; and the sink's position is where ClickHouse's rows end.
//!
//! The WARN, OK and REWIND cases commit the group's offsets from the test
//! (as `kafka-consumer-groups --reset-offsets` would, and as a slow stage
//! would), so the pace is the test's and not the machine's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chatcart_tests::{self as t, ChildProcess};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use runtime::Settings;
use runtime::topics::TopicNames;
use serde_json::Value;
use stages::Topic;

/// `chatcart lag --json` for `group` over `window` seconds.
fn lag(config: &Path, group: &str, window: u64) -> Value {
    let out = Command::new(t::chatcart_bin())
        .args(["--config", &config.to_string_lossy(), "lag", "--json"])
        .args(["--group", group, "--window", &window.to_string()])
        .output()
        .expect("running chatcart lag");
    assert!(
        out.status.success(),
        "chatcart lag failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    report["groups"][0].clone()
}

fn partitions_of<'a>(group: &'a Value, topic: &str) -> Vec<&'a Value> {
    group["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| p["topic"] == topic)
        .collect()
}

/// Commits `offset` for `group` on partition 0 of `topic`, as a client
/// outside the group (the group must have no members).
fn commit(settings: &Settings, group: &str, topic: &str, offset: i64) {
    let consumer: BaseConsumer = settings
        .kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("committing the group's offset");
}

async fn setup(test: &str, partitions: i32) -> (Settings, std::path::PathBuf) {
    let settings = t::settings(test, partitions);
    t::create_topics(&settings).await;
    let config = t::scratch_dir(&settings).join("chatcart.toml");
    t::write_config(&settings, &config);
    (settings, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_stage_stalls_and_a_stopped_one_stops_with_the_lag_it_left() {
    let (settings, config) = setup("lag-stop", 2).await;
    let mut intent = ChildProcess::spawn("intent", &config, &["run", "intent"]);
    intent.holds_partitions().await;
    t::publish(&settings, &t::prompts(40, 1)).await;
    t::await_caught_up(&settings, "intent", Topic::Prompts, Duration::from_secs(60)).await;
    let group = lag(&config, "intent", 2);
    assert_eq!(group["status"], "OK", "{group:#}");
    assert_eq!(group["total_lag"], 0, "{group:#}");

    // Frozen while it holds its partitions: it is still a member (for its
    // session timeout, 10 s) and commits nothing.
    intent.pause();
    t::publish(&settings, &t::prompts(30, 2)).await;
    let group = lag(&config, "intent", 3);
    intent.resume();
    assert_eq!(group["status"], "STALL", "{group:#}");
    assert!(group["total_lag"].as_i64() >= Some(28), "{group:#}");
    let worst = &group["worst"];
    assert_eq!(worst["topic"], "chat.prompts", "{group:#}");
    assert!(
        worst["lag_seconds"].is_null(),
        "no commits, no pace: {group:#}"
    );

    // Gone: it drains, leaves the group, and new prompts wait for nobody.
    t::await_caught_up(&settings, "intent", Topic::Prompts, Duration::from_secs(60)).await;
    assert!(intent.terminate(Duration::from_secs(30)).success());
    t::publish(&settings, &t::prompts(20, 3)).await;
    let group = lag(&config, "intent", 2);
    assert_eq!(group["status"], "STOP", "{group:#}");
    assert_eq!(group["members"], 0, "{group:#}");
    let lag_total: i64 = partitions_of(&group, "chat.prompts")
        .iter()
        .map(|p| p["end"].as_i64().unwrap() - p["committed"].as_i64().unwrap())
        .sum();
    assert_eq!(group["total_lag"].as_i64(), Some(lag_total), "{group:#}");
    assert!(lag_total >= 18, "the 20 new prompts wait: {group:#}");
}

/// Every half second until `lag` returns: `arrive` prompts more, and the
/// group's offset `step` further (from `committed`). Returns the report and
/// where the offset ended.
async fn paced(
    settings: &Settings,
    config: &Path,
    window: u64,
    committed: i64,
    (arrive, step): (usize, i64),
) -> (Value, i64) {
    let group = format!("{}.intent", settings.kafka.group_prefix);
    let topics = TopicNames::new(&settings.kafka);
    let producer = settings.kafka.producer().expect("producer");
    let mut reader = {
        let config = config.to_owned();
        tokio::task::spawn_blocking(move || lag(&config, "intent", window))
    };
    let mut committed = committed;
    let mut round = 0u64;
    loop {
        round += 1;
        t::produce_prompts(&producer, &topics, &t::prompts(arrive, round)).await;
        committed += step;
        let (s, g, name) = (
            settings.clone(),
            group.clone(),
            topics.name(Topic::Prompts).to_owned(),
        );
        tokio::task::spawn_blocking(move || commit(&s, &g, &name, committed))
            .await
            .expect("commit");
        tokio::select! {
            report = &mut reader => return (report.expect("lag"), committed),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_falling_behind_warns_catching_up_is_ok_and_a_reset_rewinds() {
    let (settings, config) = setup("lag-pace", 1).await;
    let group = format!("{}.intent", settings.kafka.group_prefix);
    let topic = TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    t::publish(&settings, &t::prompts(100, 1)).await;
    commit(&settings, &group, &topic, 10);

    // Falling behind: 20 arrive for every 5 committed.
    let (behind, committed) = paced(&settings, &config, 4, 10, (20, 5)).await;
    assert_eq!(behind["status"], "WARN", "{behind:#}");
    let p = &behind["partitions"][0];
    assert!(p["lag_seconds"].as_f64() > Some(0.0), "a pace: {behind:#}");

    // Catching up: 60 committed for every 5 that arrive.
    let (catching_up, _) = paced(&settings, &config, 4, committed, (5, 60)).await;
    assert_eq!(catching_up["status"], "OK", "{catching_up:#}");
    assert!(
        catching_up["total_lag"].as_i64() < behind["total_lag"].as_i64(),
        "{catching_up:#}"
    );

    // Reset backwards, as an operator replaying the topic would.
    let reader = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || lag(&config, "intent", 3))
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    commit(&settings, &group, &topic, 0);
    let rewound = reader.await.expect("lag");
    assert_eq!(rewound["status"], "REWIND", "{rewound:#}");
    assert_eq!(rewound["partitions"][0]["committed"], 0, "{rewound:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sinks_position_is_where_clickhouse_rows_end() {
    let (settings, config) = setup("lag-sink", 2).await;
    t::publish(&settings, &t::prompts(50, 1)).await;
    let mut sink = ChildProcess::spawn("sink", &config, &["run", "analytics"]);
    sink.holds_partitions().await;
    t::await_caught_up(
        &settings,
        "analytics",
        Topic::Prompts,
        Duration::from_secs(60),
    )
    .await;
    assert!(sink.terminate(Duration::from_secs(30)).success());
    t::publish(&settings, &t::prompts(10, 2)).await;

    let group = lag(&config, "analytics", 2);
    assert_eq!(group["position_from"], "clickhouse", "{group:#}");
    assert_eq!(group["status"], "STOP", "{group:#}");
    let held: Vec<(String, i32, i64)> = settings
        .clickhouse
        .client()
        .query("SELECT topic, partition, max(offset) FROM events GROUP BY topic, partition")
        .fetch_all()
        .await
        .expect("reading ClickHouse");
    let prompts = TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    let mut behind = 0;
    for p in partitions_of(&group, "chat.prompts") {
        let partition = p["partition"].as_i64().unwrap() as i32;
        let last = held
            .iter()
            .find(|(t, q, _)| *t == prompts && *q == partition)
            .map(|(_, _, o)| *o)
            .expect("ClickHouse holds each partition's prompts");
        assert_eq!(p["committed"].as_i64(), Some(last + 1), "{p:#}");
        // The advisory Kafka commit agrees once the sink has drained.
        assert_eq!(p["kafka_committed"], p["committed"], "{p:#}");
        assert_eq!(
            p["lag"].as_i64(),
            Some(p["end"].as_i64().unwrap() - last - 1),
            "{p:#}"
        );
        behind += p["lag"].as_i64().unwrap();
    }
    assert!(
        behind >= 8,
        "the 10 new prompts are not in ClickHouse: {group:#}"
    );
}
