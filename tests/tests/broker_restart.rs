//! The broker SIGKILLed mid-surge and restarted on the same data (Tansu on
//! SQLite storage, a file that outlives the process). The stages run as a
//! `chatcart run` process under a supervisor that restarts it whenever it
//! exits; they ride the outage out, and every request gets exactly one
//! reply with the audit clean.

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_broker_killed_mid_surge_and_restarted_loses_and_doubles_nothing() {
    t::chatcart_bin();
    let started = Instant::now();
    let mut settings = t::settings("broker-restart", 4);
    settings.clickhouse.url.clear();
    let c = &mut settings.campaigns[0];
    c.budget_cents = 1_000 * c.credit.unit_cents();
    c.stock.insert("egg-tart".into(), 200);
    let dir = t::scratch_dir(&settings);
    let mut broker = t::OwnBroker::start(&dir, t::free_port(), "sqlite://tansu.db").await;
    settings.kafka.bootstrap_servers = broker.bootstrap();
    t::create_topics(&settings).await;
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let args = ["run", "intent", "coupon", "fulfillment", "reply"];
    let mut runs = 1;
    let mut pipeline = ChildProcess::spawn("pipeline-1", &config, &args);
    pipeline.holds_partitions().await;

    // 50 prompts a second for 30 s; the broker dies 10 s in, for 5 s.
    let requests = t::prompts(1_500, 11);
    let (publisher, _) =
        t::publish_paced(&settings, requests.clone(), 25, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.kill();
    println!(
        "{:>5.1} s  SIGKILL the broker",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.restart().await;
    println!(
        "{:>5.1} s  the broker is back on the same data",
        started.elapsed().as_secs_f64()
    );

    // The supervisor: whatever exits is started again, until every request
    // is answered.
    let answered = t::await_all_replies(&settings, &requests, Duration::from_secs(180));
    tokio::pin!(answered);
    loop {
        tokio::select! {
            () = &mut answered => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Some(status) = pipeline.exited() {
                    runs += 1;
                    println!(
                        "{:>5.1} s  the pipeline exited ({status}); restarting it",
                        started.elapsed().as_secs_f64()
                    );
                    pipeline = ChildProcess::spawn(&format!("pipeline-{runs}"), &config, &args);
                }
            }
        }
    }
    publisher.await.expect("publisher");
    t::await_settled(&settings).await;
    println!(
        "{:>5.1} s  every request answered ({runs} pipeline process(es))",
        started.elapsed().as_secs_f64()
    );
    let status = pipeline.terminate(Duration::from_secs(40));
    assert!(status.success(), "the pipeline did not drain ({status})");
    let (report, _) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
}
