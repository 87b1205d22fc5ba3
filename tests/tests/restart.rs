//! Restarting the coupon stage mid-run, both with a drain (SIGTERM) and
//! without one (a crash), keeps every promise: its state comes back from its
//! own output partition and redelivered intents are not decided twice.

use std::time::Duration;

use chatcart_tests::{self as t, Running};
use runtime::Topic;
use runtime::app::StageName;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coupon_stage_restarts_mid_run() {
    let mut settings = t::settings("restart", 12);
    settings.clickhouse.url.clear();
    settings.campaigns[0].budget_cents = 150 * settings.campaigns[0].credit.unit_cents();
    // Small in-flight windows make it likely a stop lands between produce
    // and offset commit.
    settings.runtime.max_in_flight = 16;
    t::create_topics(&settings).await;
    let others = Running::start(
        &settings,
        &[StageName::Intent, StageName::Fulfillment, StageName::Reply],
    );
    let mut coupon = Running::start(&settings, &[StageName::Coupon]);
    others.ready().await;
    coupon.ready().await;

    let requests = t::prompts(1_000, 7);
    let publisher = {
        let (settings, requests) = (settings.clone(), requests.clone());
        tokio::spawn(async move {
            // Publish in slices so the restarts fall in the middle of the flow.
            for slice in requests.chunks(100) {
                t::publish(&settings, slice).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    // Wait until the coupon stage has decided a first share, then stop it
    // with a drain, and start it again.
    wait_for_decisions(&settings, 150).await;
    coupon.stop().await.expect("coupon drained");
    coupon = Running::start(&settings, &[StageName::Coupon]);
    // Then crash it (no drain) and start it again.
    wait_for_decisions(&settings, 400).await;
    coupon.kill().await;
    coupon = Running::start(&settings, &[StageName::Coupon]);

    publisher.await.expect("publisher");
    let seen = t::await_replies(&settings, requests.len(), Duration::from_secs(120)).await;
    assert!(
        seen.len() >= requests.len(),
        "only {} replies arrived",
        seen.len()
    );
    // Give any redelivered intents time to reach the stages before checking
    // that none of them caused a second decision or reply.
    tokio::time::sleep(Duration::from_secs(2)).await;
    t::check_invariants(&settings, &requests).await;

    coupon.stop().await.expect("coupon drained");
    others.stop().await.expect("stages drained");
}

async fn wait_for_decisions(settings: &runtime::Settings, at_least: usize) {
    for _ in 0..240 {
        if t::read_topic(settings, Topic::Decisions).await.len() >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("fewer than {at_least} decisions after 60 s");
}
