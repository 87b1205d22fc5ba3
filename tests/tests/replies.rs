//! The reply stage as separate `chatcart run reply` processes, SIGKILLed
//! twenty times at random moments while 10,000 requests flow: a process
//! dies with replies in flight and input offsets not committed, and without
//! leaving its group. Every request must still get exactly one final reply.
//!
//! `CHATCART_TEST_SEED` replays a run (the seed is printed).

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess, Running};
use runtime::Topic;
use runtime::app::StageName;
use schemas::ReplyOutcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reply_processes_sigkilled_twenty_times_answer_each_request_once() {
    // Built (or found up to date) before the clock starts.
    t::chatcart_bin();
    let started = Instant::now();
    let seed = std::env::var("CHATCART_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut settings = t::settings("replies-kill", 12);
    settings.clickhouse.url.clear();
    // Some sold out, some denied for budget, some rejected: every kind of
    // terminal record reaches the reply stage.
    let c = &mut settings.campaigns[0];
    c.budget_cents = 3_000 * c.credit.unit_cents();
    c.stock.insert("egg-tart".into(), 300);
    t::create_topics(&settings).await;

    // A killed member is out of the group after 4 s (see tests/ledger.rs
    // for why not less on Tansu 0.6).
    let session = Duration::from_secs(4);
    let reply_settings = t::short_sessions(&settings, session);
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&reply_settings, &config);
    println!("reply process logs: {}", dir.display());

    let others = Running::start(
        &settings,
        &[StageName::Intent, StageName::Coupon, StageName::Fulfillment],
    );
    let mut spawned = 0;
    let spawn = |spawned: &mut usize| {
        *spawned += 1;
        ChildProcess::spawn(&format!("reply-{spawned}"), &config, &["run", "reply"])
    };
    let mut replies: Vec<ChildProcess> = (0..2).map(|_| spawn(&mut spawned)).collect();
    others.ready().await;
    for r in &mut replies {
        assert!(
            r.wait_for_log("partitions assigned", Duration::from_secs(60))
                .await,
            "{} did not join its group:\n{}",
            r.name(),
            r.log_text()
        );
    }

    let requests = t::prompts(10_000, seed.max(1));
    let (publisher, published) =
        t::publish_paced(&settings, requests.clone(), 250, Duration::from_millis(250));
    // Kill k falls at a random point of the k-th twentieth of the traffic.
    for k in 0..20 {
        let at = (k * requests.len() + rng.usize(..requests.len())) / 20;
        while published.load(std::sync::atomic::Ordering::Acquire) < at {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for r in &mut replies {
            if let Some(status) = r.exited() {
                panic!(
                    "{} exited by itself ({status}):\n{}",
                    r.name(),
                    r.log_text()
                );
            }
        }
        let victim = replies.swap_remove(rng.usize(..replies.len()));
        let (name, age) = (victim.name().to_owned(), victim.age());
        let status = victim.kill9();
        println!(
            "{:>5.1} s  kill -9 {name} (up {:.1} s, {status}) after {at}+ prompts",
            started.elapsed().as_secs_f64(),
            age.as_secs_f64(),
        );
        if k == 19 {
            // Tansu 0.6 can drop an expired member without a rebalance,
            // leaving its partitions unowned; the last replacement joins
            // once every killed member has expired (see tests/ledger.rs).
            tokio::time::sleep(session + Duration::from_secs(1)).await;
        } else if rng.u32(..4) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..=800))).await;
        }
        replies.push(spawn(&mut spawned));
    }
    // A member killed moments after it asked to join can still be counted
    // by Tansu when the last replacement joins, and then expire without a
    // rebalance, leaving its partitions unowned (seen in CI: 12 of 36). One
    // more join, once it has surely expired, hands them to the living.
    tokio::time::sleep(session + Duration::from_secs(1)).await;
    replies.push(spawn(&mut spawned));
    publisher.await.expect("publisher");
    t::await_all_replies(&settings, &requests, Duration::from_secs(120)).await;
    // Redelivered terminal records get time to reach the reply stage before
    // the check that none of them caused a second reply.
    for topic in [Topic::Intents, Topic::Decisions, Topic::Orders] {
        t::await_caught_up(&settings, "reply", topic, Duration::from_secs(60)).await;
    }
    println!(
        "{:>5.1} s  every request answered",
        started.elapsed().as_secs_f64()
    );
    for r in replies {
        let (name, log) = (r.name().to_owned(), r.log().to_owned());
        let status = r.terminate(Duration::from_secs(40));
        assert!(
            status.success(),
            "{name} did not drain cleanly ({status}):\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    others.stop().await.expect("stages drained");

    let (report, answers) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
    for outcome in [
        ReplyOutcome::OrderPlaced,
        ReplyOutcome::OrderFailed,
        ReplyOutcome::Denied,
        ReplyOutcome::Rejected,
    ] {
        assert!(
            answers.iter().any(|r| r.outcome == outcome),
            "no {outcome:?} reply: the kills did not meet every kind of answer"
        );
    }
}
