//! The analytics sink over a slow link to ClickHouse ([`t::SlowLink`]): the
//! answers to its first inserts come back after its
//! `clickhouse.insert_timeout_ms`, so it gives up on inserts that have
//! landed and retries them. Every record is still stored once. The same
//! run with a sink that retries blind (`CHATCART_FAULT_SINK_RETRIES_BLIND=1`,
//! not asking what landed) stores rows twice, and the audit says so.

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess};
use tools::audit::stored;

/// How long the link holds an answer back, against the sink's timeout.
const HOLD: Duration = Duration::from_millis(2_500);
const INSERT_TIMEOUT_MS: u64 = 1_000;
/// Answers held back: the first few inserts.
const SLOW_INSERTS: u64 = 4;

struct Outcome {
    total: u64,
    rows: u64,
    distinct: u64,
    held: u64,
    audit: ledger::audit::Check,
    log: String,
}

async fn through_a_slow_link(name: &str, env: &[(&str, &str)]) -> Outcome {
    t::chatcart_bin();
    let mut settings = t::settings(name, 2);
    settings.clickhouse.batch_rows = 500;
    settings.clickhouse.batch_max_wait_ms = 200;
    t::create_topics(&settings).await;
    t::publish(&settings, &t::prompts(2_000, 3)).await;
    let link = t::SlowLink::start(&settings.clickhouse.url, HOLD, SLOW_INSERTS).await;
    let mut sink_settings = settings.clone();
    sink_settings.clickhouse.url = link.url.clone();
    sink_settings.clickhouse.insert_timeout_ms = INSERT_TIMEOUT_MS;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&sink_settings, &config);
    let sink = ChildProcess::spawn_with_env("sink", &config, &["run", "analytics"], env);
    let total = t::total_records(&settings).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while t::events_counts(&settings).await.1 < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // An answer still held back belongs to an insert that has landed.
    tokio::time::sleep(HOLD).await;
    let log = sink.log_text();
    let status = sink.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "the sink did not drain ({status}):\n{log}"
    );
    let (rows, distinct) = t::events_counts(&settings).await;
    let audit = stored::run(&settings).await.expect("read the stored rows");
    Outcome {
        total,
        rows,
        distinct,
        held: link.held(),
        audit,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserts_whose_answers_come_after_the_timeout_are_stored_once() {
    let o = through_a_slow_link("sink-slow-link", &[]).await;
    println!(
        "slow link: {} answers held, {} rows for {} records of {}",
        o.held, o.rows, o.distinct, o.total
    );
    assert_eq!(o.held, SLOW_INSERTS, "the link slowed no insert");
    assert!(o.log.contains("insert failed; sink paused"), "{}", o.log);
    assert!(
        o.log
            .contains("rows already in ClickHouse after a failed insert"),
        "the sink never found a timed-out insert stored:\n{}",
        o.log
    );
    assert_eq!((o.distinct, o.rows), (o.total, o.total));
    assert!(o.audit.ok, "{}", o.audit.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_that_retries_blind_over_a_slow_link_is_caught_duplicating() {
    let o = through_a_slow_link(
        "sink-slow-link-blind",
        &[("CHATCART_FAULT_SINK_RETRIES_BLIND", "1")],
    )
    .await;
    println!(
        "slow link, blind retries: {} answers held, {} rows for {} records of {}",
        o.held, o.rows, o.distinct, o.total
    );
    assert_eq!(o.distinct, o.total);
    assert!(
        o.rows > o.distinct,
        "retrying blind stored nothing twice ({} rows): the test could not catch it",
        o.rows
    );
    assert!(
        !o.audit.ok && o.audit.detail.contains("rows twice"),
        "{}",
        o.audit.detail
    );
}
