//! The gateway's client (`tools::gateway_client`, which `chatcart surge
//! --via-gateway` sends with) against a real gateway and broker: a request
//! answered later than the gateway's stream limit ends its first stream
//! with `pending`, and the client follows it at the request's URL, as a
//! chat front-end should, to its one final answer.

use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess, GatewayUnderTest, Running};
use runtime::app::StageName;
use tools::gateway_client::{Answered, follow, request, resume_url};

fn names(answered: &Result<Answered, reqwest::Error>) -> Vec<String> {
    match answered {
        Ok(Answered::Stream(events)) => events.iter().map(|e| e.name.clone()).collect(),
        other => panic!("a stream, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_that_ends_pending_is_followed_to_its_one_final_answer() {
    let mut settings = t::settings("gateway-follow", 1);
    settings.gateway.max_stream_secs = 1;
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut coupon = ChildProcess::spawn("coupon", &config, &["run", "coupon"]);
    let rest = Running::start(
        &settings,
        &[StageName::Intent, StageName::Fulfillment, StageName::Reply],
    );
    let gw = GatewayUnderTest::start(&settings, 0).await;
    rest.ready().await;
    coupon.holds_partitions().await;
    // Held back, the coupon stage keeps the answer past the stream limit.
    coupon.pause();
    let client = reqwest::Client::new();
    let endpoint = gw.url("/v1/prompts");
    let body = t::prompt_body("fol-1", "erin", "帮我买2杯奶茶");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut answered = request(&client, &endpoint, Some(body), Duration::from_secs(90)).await;
    let first = names(&answered);
    assert_eq!(
        first.last().map(String::as_str),
        Some("pending"),
        "the first stream ends at the gateway's limit: {first:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    coupon.resume();
    let resumes = follow(
        &client,
        &resume_url(&endpoint, "fol-1"),
        &mut answered,
        deadline,
    )
    .await;
    let all = names(&answered);
    assert!(resumes >= 1, "{all:?}");
    assert_eq!(all.last().map(String::as_str), Some("final"), "{all:?}");
    assert_eq!(all.iter().filter(|n| *n == "final").count(), 1, "{all:?}");
    gw.stop().await;
    rest.stop().await.expect("stages drain");
    coupon.terminate(Duration::from_secs(30));
    let (_, replies) = t::clean_audit(&settings).await;
    assert_eq!(replies.len(), 1);
}
