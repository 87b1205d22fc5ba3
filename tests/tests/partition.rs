//! A network partition: one of two coupon processes runs in a network
//! namespace of its own (`ip netns` and a veth pair, made by the test) and
//! is cut off from the broker for 30 s while it holds partitions under a
//! surge, then healed. Its partitions move to the other instance; what it
//! had produced but not delivered reaches the log late, where the ledger's
//! fold judges it like a zombie's records; it rejoins the group. Every
//! request gets exactly one reply and the audit is clean.

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess, Running};
use runtime::app::StageName;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_process_cut_off_for_thirty_seconds_counts_nothing_twice() {
    t::chatcart_bin();
    let started = Instant::now();
    let mut settings = t::settings("partition", 8);
    settings.clickhouse.url.clear();
    // The budget runs out mid-surge, so which instance decides matters.
    let c = &mut settings.campaigns[0];
    c.budget_cents = 1_500 * c.credit.unit_cents();
    let slot = u8::try_from(std::process::id() % 250).unwrap_or(0);
    let netns = t::Netns::create(slot);
    let dir = t::scratch_dir(&settings);
    let broker =
        t::OwnBroker::start_on(&dir, netns.host_ip(), t::free_port(), "memory://tansu/").await;
    settings.kafka.bootstrap_servers = broker.bootstrap();
    t::create_topics(&settings).await;
    let session = Duration::from_secs(6);
    let coupon_settings = t::short_sessions(&settings, session);
    let config = dir.join("chatcart.toml");
    t::write_config(&coupon_settings, &config);

    let others = Running::start(
        &settings,
        &[StageName::Intent, StageName::Fulfillment, StageName::Reply],
    );
    let mut cut_off = ChildProcess::spawn_in(&netns, "coupon-cut-off", &config, &["run", "coupon"]);
    let mut healthy = ChildProcess::spawn("coupon-healthy", &config, &["run", "coupon"]);
    others.ready().await;
    cut_off.holds_partitions().await;
    healthy.holds_partitions().await;

    // 100 prompts a second for 60 s; the link is down from 10 s to 40 s.
    let requests = t::prompts(6_000, 13);
    let (publisher, _) =
        t::publish_paced(&settings, requests.clone(), 25, Duration::from_millis(250));
    tokio::time::sleep(Duration::from_secs(10)).await;
    netns.cut();
    println!("{:>5.1} s  link cut", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(30)).await;
    netns.heal();
    println!("{:>5.1} s  link healed", started.elapsed().as_secs_f64());
    publisher.await.expect("publisher");
    t::await_all_replies(&settings, &requests, Duration::from_secs(180)).await;
    t::await_settled(&settings).await;
    println!(
        "{:>5.1} s  every request answered",
        started.elapsed().as_secs_f64()
    );
    let log = cut_off.log_text();
    let assignments = log.matches("partitions assigned").count();
    assert!(
        cut_off.exited().is_none(),
        "the cut-off process exited:\n{log}"
    );
    for child in [cut_off, healthy] {
        let name = child.name().to_owned();
        let status = child.terminate(Duration::from_secs(40));
        assert!(status.success(), "{name} did not drain ({status})");
    }
    others.stop().await.expect("stages drained");
    println!("the cut-off process was assigned partitions {assignments} times");
    let (report, _) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
    assert!(
        assignments >= 2,
        "the cut-off process did not rejoin the group after the link healed"
    );
}
