//! End to end against the real broker and ClickHouse: 1,000 prompts from
//! 600 users through every stage, each in its own consumer group, checked
//! against the product's promises; and `send` getting a reply back.

use std::time::Duration;

use chatcart_tests::{self as t, Running};
use runtime::app::StageName;
use schemas::ReplyOutcome;
use tools::send::{self, Format};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_prompts_from_600_users_end_to_end() {
    let mut settings = t::settings("e2e", 12);
    // 150 credits for ~470 eligible users: the budget runs out.
    settings.campaigns[0].budget_cents = 150 * settings.campaigns[0].credit.unit_cents();
    t::create_topics(&settings).await;
    // Each stage in its own consumer group, as separate processes would be.
    let stages: Vec<Running> = [
        StageName::Intent,
        StageName::Coupon,
        StageName::Fulfillment,
        StageName::Reply,
        StageName::Analytics,
    ]
    .iter()
    .map(|s| Running::start(&settings, &[*s]))
    .collect();

    for s in &stages {
        s.ready().await;
    }
    let requests = t::prompts(1_000, 42);
    let users: std::collections::HashSet<_> = requests.iter().map(|p| &p.user_id).collect();
    assert!(users.len() <= 600);
    t::publish(&settings, &requests).await;
    let seen = t::await_replies(&settings, requests.len(), Duration::from_secs(120)).await;
    assert!(
        seen.len() >= requests.len(),
        "only {} replies arrived",
        seen.len()
    );

    let replies = t::check_invariants(&settings, &requests).await;
    let denied_budget = replies
        .iter()
        .filter(|r| r.reason.as_deref() == Some("budget_exhausted"))
        .count();
    assert!(denied_budget > 0, "the budget should have run out");

    // ClickHouse holds one row per record of every topic.
    let total = t::total_records(&settings).await;
    let (rows, distinct) = t::clickhouse_counts(&settings, total, Duration::from_secs(60)).await;
    assert_eq!(distinct, total, "ClickHouse is missing records");
    assert_eq!(rows, total, "ClickHouse holds duplicates");

    for s in stages {
        s.stop().await.expect("stage drained cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_gets_a_reply_through_the_running_pipeline() {
    let mut settings = t::settings("send", 4);
    settings.clickhouse.url.clear();
    t::create_topics(&settings).await;
    let pipeline = Running::start(&settings, &[StageName::All]);
    pipeline.ready().await;
    for (format, text, outcome) in [
        (Format::Json, "帮我买2杯珍珠奶茶", ReplyOutcome::OrderPlaced),
        (
            Format::Avro,
            "what's the weather like?",
            ReplyOutcome::Rejected,
        ),
    ] {
        let prompt = send::prompt("alice".into(), text.into(), None, None);
        let request_id = prompt.request_id.clone();
        let sent = send::send(&settings, prompt, format, Some(Duration::from_secs(60)))
            .await
            .expect("sent");
        let reply = sent.reply.expect("a reply within 60 s");
        assert_eq!(reply.request_id, request_id);
        assert_eq!(reply.outcome, outcome, "{}", reply.text);
    }
    pipeline.stop().await.expect("drained");
}
