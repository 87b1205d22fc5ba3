//! `chatcart gateway` against the real broker: each instance gets only its
//! own replies, a repeat or a resume never makes a second order, bad input
//! is refused with nothing published, admission sheds while a stage is
//! held back and admits again when it moves, the sold-out notice comes at
//! once, and a killed gateway's successor answers what it accepted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess, GatewayUnderTest, Running};
use runtime::Topic;
use runtime::app::StageName;
use schemas::{DecisionOutcome, Record};
use serde_json::json;

/// Request ids on each partition of `chat.gateway.replies`.
async fn copies_by_partition(settings: &runtime::Settings) -> HashMap<i32, Vec<String>> {
    let mut by = HashMap::<i32, Vec<String>>::new();
    for raw in t::read_topic(settings, Topic::GatewayReplies).await {
        if let Ok(Record::Reply(r)) = schemas::Codec::new().decode(&raw.payload) {
            by.entry(raw.partition).or_default().push(r.request_id);
        }
    }
    by
}

/// How many times each request id was published to `chat.prompts`.
async fn published(settings: &runtime::Settings) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in t::records(settings, Topic::Prompts).await {
        *n.entry(r.request_id().to_owned()).or_insert(0) += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_each_read_only_their_own_replies() {
    let settings = t::settings("gateway-two", 4);
    t::create_topics(&settings).await;
    let stages = Running::start(&settings, &t::STAGES);
    let (a, b) = (
        GatewayUnderTest::start(&settings, 0).await,
        GatewayUnderTest::start(&settings, 2).await,
    );
    stages.ready().await;
    let mut expected: HashMap<i32, BTreeSet<String>> = HashMap::new();
    let mut posts = Vec::new();
    for i in 0..12 {
        let (gw, instance) = if i % 2 == 0 { (&a, 0) } else { (&b, 2) };
        let id = format!("two-{i}");
        expected.entry(instance).or_default().insert(id.clone());
        let url = gw.url("/v1/prompts?wait=60");
        let body = t::prompt_body(&id, &format!("user-{i}"), "帮我买2杯奶茶");
        posts.push(tokio::spawn(async move {
            (id, t::post_json(&url, &body).await)
        }));
    }
    for post in posts {
        let (id, answer) = post.await.expect("the request task");
        assert_eq!(answer.status, 200, "{id}: {:?}", answer.body);
        assert_eq!(answer.body["request_id"], id.as_str());
        assert_eq!(answer.body["outcome"], "order_placed", "{:?}", answer.body);
    }
    // Each instance's partition holds exactly its own requests' replies.
    let copies = copies_by_partition(&settings).await;
    for (instance, ids) in &expected {
        let got: BTreeSet<String> = copies
            .get(instance)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        assert_eq!(&got, ids, "partition {instance} of chat.gateway.replies");
    }
    assert_eq!(copies.len(), 2, "nothing on other partitions: {copies:?}");
    a.stop().await;
    b.stop().await;
    stages.stop().await.expect("stages drain");
    t::clean_audit(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_or_a_resume_publishes_nothing_twice() {
    let settings = t::settings("gateway-repeat", 2);
    t::create_topics(&settings).await;
    let stages = Running::start(&settings, &t::STAGES);
    let gw = GatewayUnderTest::start(&settings, 1).await;
    stages.ready().await;
    let body = t::prompt_body("rep-1", "carol", "two iced lattes");
    // The client gives up at once; the request goes on.
    let first = t::post_json(&gw.url("/v1/prompts?wait=0"), &body).await;
    assert!(matches!(first.status, 200 | 202), "{first:?}");
    if first.status == 202 {
        assert_eq!(first.body["url"], "/v1/prompts/rep-1");
    }
    // The same id from someone else is refused; from the same person it
    // follows the first, as does a resume.
    let other = t::post_json(
        &gw.url("/v1/prompts?wait=0"),
        &t::prompt_body("rep-1", "mallory", "x"),
    )
    .await;
    assert_eq!(
        (other.status, other.body["error"].as_str()),
        (409, Some("request_id_taken"))
    );
    let events = t::stream(&gw.url("/v1/prompts"), Some(&body), Duration::from_secs(60))
        .await
        .expect("a stream");
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.last(), Some(&"final"), "{events:?}");
    assert_eq!(names.iter().filter(|n| **n == "final").count(), 1);
    let resumed = t::get_json(&gw.url("/v1/prompts/rep-1?wait=10")).await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body, events.last().expect("final").data);
    let unknown = t::get_json(&gw.url("/v1/prompts/nope?wait=1")).await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (404, Some("unknown_request"))
    );
    assert_eq!(published(&settings).await.get("rep-1"), Some(&1));
    gw.stop().await;
    stages.stop().await.expect("stages drain");
    let (_, replies) = t::clean_audit(&settings).await;
    assert_eq!(replies.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_its_field_and_nothing_is_published() {
    let mut settings = t::settings("gateway-bad", 2);
    settings.gateway.max_body_bytes = 1_024;
    t::create_topics(&settings).await;
    let gw = GatewayUnderTest::start(&settings, 0).await;
    let url = gw.url("/v1/prompts?wait=1");
    let long_id = "x".repeat(129);
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (
            b"{\"request_id\": \"r\",".to_vec(),
            400,
            "invalid_json",
            "body",
        ),
        (b"\xff\xfe{\"a\":1}".to_vec(), 400, "invalid_utf8", "body"),
        (
            br#"{"user_id":"u","text":"t"}"#.to_vec(),
            400,
            "missing_field",
            "request_id",
        ),
        (
            t::prompt_body(&long_id, "u", "t"),
            400,
            "field_too_long",
            "request_id",
        ),
        (
            json!({"request_id":"r","user_id":"u","text":"t","campaign_id":"nope"})
                .to_string()
                .into_bytes(),
            400,
            "unknown_campaign",
            "campaign_id",
        ),
        (
            t::prompt_body("r", "u", &"好".repeat(400)),
            413,
            "body_too_large",
            "body",
        ),
    ];
    for (body, status, code, field) in cases {
        let a = t::post_json(&url, &body).await;
        assert_eq!(a.status, status, "{:?}", a.body);
        assert_eq!(a.body["error"], code);
        assert_eq!(a.body["field"], field);
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    gw.stop().await;
    assert!(
        published(&settings).await.is_empty(),
        "nothing was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_sheds_while_the_intent_stage_is_held_back_and_admits_when_it_moves() {
    let mut settings = t::settings("gateway-shed", 1);
    settings.gateway.stall_secs = 2;
    // Every admitted request is told its place first.
    settings.gateway.queued_after_ms = 0;
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut intent = ChildProcess::spawn("intent", &config, &["run", "intent"]);
    let rest = Running::start(
        &settings,
        &[
            StageName::Coupon,
            StageName::Fulfillment,
            StageName::Reply,
            StageName::Analytics,
        ],
    );
    let gw = GatewayUnderTest::start(&settings, 0).await;
    rest.ready().await;
    // What the gateway decided, as its clients saw it.
    let (mut admissions, mut sheds) = (1, 0);
    intent.holds_partitions().await;

    // Running: admitted, told its place within 100 ms, then answered.
    let events = t::stream(
        &gw.url("/v1/prompts"),
        Some(&t::prompt_body("ok-0", "u-0", "one latte")),
        Duration::from_secs(60),
    )
    .await
    .expect("a stream");
    assert_eq!(
        events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["queued", "final"]
    );
    assert!(
        events[0].after < Duration::from_millis(1_000),
        "{:?}",
        events[0].after
    );
    assert!(events[0].data["estimated_wait_secs"].is_u64() && events[0].data["position"].is_i64());

    // Held back: requests queue until the stage counts as stalled, then
    // are refused at once with when to retry.
    intent.pause();
    let started = Instant::now();
    let mut admitted = Vec::new();
    let shed = loop {
        let i = admitted.len() + 1;
        let id = format!("held-{i}");
        let a = t::post_json(
            &gw.url("/v1/prompts?wait=0"),
            &t::prompt_body(&id, &format!("u-{i}"), "one latte"),
        )
        .await;
        if a.status == 429 {
            sheds += 1;
            break a;
        }
        assert_eq!(a.status, 202, "{a:?}");
        admissions += 1;
        admitted.push(id);
        assert!(started.elapsed() < Duration::from_secs(30), "never shed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!admitted.is_empty());
    assert_eq!(shed.body["error"], "too_busy");
    assert!(shed.retry_after.is_some_and(|s| s >= 1), "{shed:?}");
    assert!(
        shed.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("try again"))
    );
    // A person with a request in flight is told which.
    let busy = t::post_json(
        &gw.url("/v1/prompts?wait=0"),
        &t::prompt_body("again", "u-1", "one latte"),
    )
    .await;
    assert_eq!(
        (busy.status, busy.body["request_id"].as_str()),
        (409, Some("held-1"))
    );
    // Shed requests were never published.
    let before = published(&settings).await;
    assert!(
        !before.contains_key("again")
            && before.keys().all(|k| k.starts_with("held-") || k == "ok-0")
    );

    intent.resume();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = t::post_json(
            &gw.url("/v1/prompts?wait=30"),
            &t::prompt_body("after", "u-after", "one latte"),
        )
        .await;
        if a.status == 200 {
            admissions += 1;
            break;
        }
        assert_eq!(a.status, 429, "{a:?}");
        sheds += 1;
        assert!(Instant::now() < deadline, "never admitted again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every admitted request gets its one answer.
    for id in &admitted {
        let a = t::get_json(&gw.url(&format!("/v1/prompts/{id}?wait=60"))).await;
        assert_eq!(a.status, 200, "{id}: {a:?}");
    }
    // The analytics views count the same decisions, and a promise for
    // every admitted request answered.
    let client = settings.clickhouse.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let counted = loop {
        let counted = client
            .query("SELECT toUInt64(sum(admitted)), toUInt64(sum(shed)), toUInt64(sum(shed_stalled)) FROM front_door_per_second")
            .fetch_one::<(u64, u64, u64)>()
            .await
            .unwrap_or_default();
        let promised = client
            .query("SELECT count() FROM kept_promises")
            .fetch_one::<u64>()
            .await
            .unwrap_or_default();
        if (counted.0, counted.1, promised) == (admissions, sheds, admissions)
            || Instant::now() > deadline
        {
            break (counted, promised);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        counted,
        ((admissions, sheds, counted.0.2), admissions),
        "(admitted, shed, stalled), promises"
    );
    assert!(
        counted.0.2 >= 1,
        "no shed for the stalled stage: {counted:?}"
    );
    gw.stop().await;
    rest.stop().await.expect("stages drain");
    intent.terminate(Duration::from_secs(30));
    t::clean_audit(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sold_out_campaign_is_said_at_once_and_the_final_answer_follows() {
    let mut settings = t::settings("gateway-sold-out", 2);
    let unit = settings.campaigns[0].credit.unit_cents();
    settings.campaigns[0].budget_cents = 2 * unit;
    t::create_topics(&settings).await;
    let stages = Running::start(&settings, &t::STAGES);
    let gw = GatewayUnderTest::start(&settings, 0).await;
    stages.ready().await;
    // Spend the budget.
    for i in 0..4 {
        let a = t::post_json(
            &gw.url("/v1/prompts?wait=60"),
            &t::prompt_body(&format!("spend-{i}"), &format!("s-{i}"), "帮我买2杯奶茶"),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let id = format!("late-{}", Instant::now().elapsed().as_nanos());
        let events = t::stream(
            &gw.url("/v1/prompts"),
            Some(&t::prompt_body(&id, &id, "帮我买2杯奶茶")),
            Duration::from_secs(60),
        )
        .await
        .expect("a stream");
        if events[0].name == "queued" {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "never told the free orders are gone: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(events[0].data["free_orders"], "used_up");
    assert!(
        events[0].data["text"]
            .as_str()
            .is_some_and(|t| t.contains("免单"))
    );
    assert_eq!(events[1].name, "final");
    assert_eq!(events[1].data["reason"], "budget_exhausted", "{events:?}");
    gw.stop().await;
    stages.stop().await.expect("stages drain");
    t::clean_audit(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadline_passing_while_the_coupon_stage_is_held_back_ends_expired_without_a_grant() {
    let settings = t::settings("gateway-deadline", 1);
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut coupon = ChildProcess::spawn("coupon", &config, &["run", "coupon"]);
    let rest = Running::start(
        &settings,
        &[StageName::Intent, StageName::Fulfillment, StageName::Reply],
    );
    rest.ready().await;
    coupon.holds_partitions().await;
    coupon.pause();
    let mut prompt = t::prompt("dl-1", "dora", "帮我买2杯奶茶");
    prompt.deadline_ms = Some(runtime::now_ms() + 1_500);
    t::publish(&settings, &[prompt]).await;
    t::await_caught_up(&settings, "intent", Topic::Prompts, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    coupon.resume();
    let replies = t::await_replies(&settings, 1, Duration::from_secs(60)).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].outcome, schemas::ReplyOutcome::Expired);
    assert_eq!((replies[0].credit_cents, replies[0].to_pay_cents), (0, 0));
    let grants = t::records(&settings, Topic::Decisions)
        .await
        .into_iter()
        .filter(|r| matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Granted))
        .count();
    assert_eq!(grants, 0);
    rest.stop().await.expect("stages drain");
    coupon.terminate(Duration::from_secs(30));
    t::clean_audit(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateways_successor_answers_what_it_accepted_without_a_second_order() {
    t::chatcart_bin();
    let settings = t::settings("gateway-kill", 2);
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let stages = Running::start(&settings, &t::STAGES);
    stages.ready().await;
    let spawn = |name: &str, port: u16| {
        let listen = format!("127.0.0.1:{port}");
        ChildProcess::spawn(
            name,
            &config,
            &["gateway", "--listen", &listen, "--instance", "1"],
        )
    };
    let port = t::free_port();
    let mut first = spawn("gateway-1", port);
    assert!(
        first
            .wait_for_log("gateway ready", Duration::from_secs(60))
            .await,
        "{}",
        first.log_text()
    );
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let ids: Vec<String> = (0..6).map(|i| format!("k-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let a = t::post_json(
            &url("/v1/prompts?wait=0"),
            &t::prompt_body(id, &format!("k-user-{i}"), "两杯拿铁"),
        )
        .await;
        assert!(matches!(a.status, 200 | 202), "{a:?}");
    }
    first.kill9();
    let mut second = spawn("gateway-2", port);
    assert!(
        second
            .wait_for_log("gateway ready", Duration::from_secs(60))
            .await,
        "{}",
        second.log_text()
    );
    for (i, id) in ids.iter().enumerate() {
        // A client reconnecting posts again with the same id.
        let a = t::post_json(
            &url("/v1/prompts?wait=60"),
            &t::prompt_body(id, &format!("k-user-{i}"), "两杯拿铁"),
        )
        .await;
        assert_eq!(a.status, 200, "{id}: {a:?}");
        assert_eq!(a.body["outcome"], "order_placed");
    }
    second.terminate(Duration::from_secs(30));
    stages.stop().await.expect("stages drain");
    let (_, replies) = t::clean_audit(&settings).await;
    assert_eq!(
        replies.len(),
        ids.len(),
        "one reply, and one order, per request"
    );
}
