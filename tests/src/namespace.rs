//! An isolated namespace per test: its own topic prefix, consumer groups,
//! ClickHouse database and scratch folder, so tests share the services and
//! run at once.

use runtime::Settings;

use crate::services::{clickhouse, init_logging, kafka};

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

/// A scratch directory for one test's files (configuration, child logs).
pub fn scratch_dir(settings: &Settings) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chatcart-test-{}",
        settings.kafka.group_prefix.trim_end_matches('.')
    ));
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

/// `settings` with a consumer session of `session` (and a heartbeat a fifth
/// of it), so a killed or frozen member leaves its group that soon. Less
/// than 4 s is not reliable on Tansu 0.6 (see tests/ledger.rs).
pub fn short_sessions(settings: &Settings, session: std::time::Duration) -> Settings {
    let mut s = settings.clone();
    for (k, v) in [
        ("session.timeout.ms", session.as_millis().to_string()),
        (
            "heartbeat.interval.ms",
            (session / 5).as_millis().to_string(),
        ),
    ] {
        s.kafka.properties.insert(k.into(), v);
    }
    s
}
