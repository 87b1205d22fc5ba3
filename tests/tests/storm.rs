//! A rebalance storm: while a surge runs for two minutes, the coupon and
//! reply stages are scaled from one instance to four and back to one every
//! three seconds. Every step revokes and reassigns partitions, so parked
//! requests, leases in flight, outputs not yet acknowledged and answered
//! windows change hands forty times. Every request must still get exactly
//! one reply, and the audit must be clean.
//!
//! `CHATCART_FAULT_REPLY_FORGETS_ANSWERS=1` runs the reply stage without
//! restoring which requests it answered; this test then fails with second
//! replies, which is how we know it can catch one.

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, Running};
use runtime::app::StageName;

/// How long the storm lasts, and how often it scales.
const STORM: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coupon_and_reply_scaled_one_to_four_and_back_every_three_seconds() {
    let started = Instant::now();
    let mut settings = t::settings("storm", 8);
    settings.clickhouse.url.clear();
    // Some denied for budget, some sold out, some rejected: every kind of
    // record changes hands mid-flight.
    let c = &mut settings.campaigns[0];
    c.budget_cents = 4_000 * c.credit.unit_cents();
    c.stock.insert("egg-tart".into(), 400);
    t::create_topics(&settings).await;

    let fixed = Running::start(&settings, &[StageName::Intent, StageName::Fulfillment]);
    let scaled = [StageName::Coupon, StageName::Reply];
    let first: Vec<Running> = scaled
        .iter()
        .map(|s| Running::start(&settings, &[*s]))
        .collect();
    fixed.ready().await;
    for r in &first {
        r.ready().await;
    }

    // 100 prompts a second for the length of the storm.
    let n = usize::try_from(STORM.as_secs()).unwrap_or(0) * 100;
    let requests = t::prompts(n, 7);
    let (publisher, _) =
        t::publish_paced(&settings, requests.clone(), 25, Duration::from_millis(250));
    let mut extra: Vec<Running> = Vec::new();
    let mut steps = 0;
    let end = Instant::now() + STORM;
    while Instant::now() < end {
        tokio::time::sleep(STEP).await;
        if extra.is_empty() {
            // One to four: three more of each join.
            extra = (0..3)
                .flat_map(|_| scaled.iter().map(|s| Running::start(&settings, &[*s])))
                .collect();
        } else {
            // Four to one: the three leave, draining as a scale-down does.
            let leaving = std::mem::take(&mut extra);
            for stopped in futures::future::join_all(leaving.into_iter().map(Running::stop)).await {
                stopped.expect("a scaled-down instance drained");
            }
        }
        steps += 1;
    }
    println!(
        "{:>5.1} s  {steps} scaling steps",
        started.elapsed().as_secs_f64()
    );
    for stopped in futures::future::join_all(extra.into_iter().map(Running::stop)).await {
        stopped.expect("an instance drained");
    }
    publisher.await.expect("publisher");
    t::await_all_replies(&settings, &requests, Duration::from_secs(120)).await;
    t::await_settled(&settings).await;
    println!(
        "{:>5.1} s  every request answered",
        started.elapsed().as_secs_f64()
    );
    for r in first {
        r.stop().await.expect("drained");
    }
    fixed.stop().await.expect("drained");
    let (report, _) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
    assert!(steps >= 30, "only {steps} scaling steps");
}
