//! Stock against the real broker: a SKU with less stock than demand across
//! twelve partitions sells exactly its stock, everyone else hears it sold
//! out and gets their credit back; then every record is delivered to a
//! second run of the whole pipeline from offset 0, which must create no
//! second order and no second reply.

use std::collections::HashMap;
use std::time::Duration;

use chatcart_tests::{self as t, Running};
use runtime::Topic;
use runtime::app::StageName;
use schemas::{DecisionOutcome, OrderOutcome, Prompt, Record, ReplyOutcome};

const STOCK: i64 = 50;
const REQUESTS: usize = 200;

/// `n` one-latte orders from `n` people, half in Chinese.
fn latte_orders(n: usize) -> Vec<Prompt> {
    (0..n)
        .map(|i| {
            let text = if i % 2 == 0 {
                "来一杯拿铁"
            } else {
                "one latte please"
            };
            t::prompt(format!("latte-{i}"), &format!("person-{i}"), text)
        })
        .collect()
}

async fn orders(settings: &runtime::Settings) -> Vec<schemas::OrderEvent> {
    t::records(settings, Topic::Orders)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Order(o) => Some(o),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_of_fifty_sells_fifty_and_a_replay_from_zero_changes_nothing() {
    let mut settings = t::settings("stock", 12);
    settings.clickhouse.url.clear();
    // Budget for every request, so every one is granted and only stock
    // decides.
    let c = &mut settings.campaigns[0];
    c.budget_cents = 10 * REQUESTS as i64 * c.credit.unit_cents();
    c.stock.insert("latte".into(), STOCK);
    t::create_topics(&settings).await;
    let all = [
        StageName::Intent,
        StageName::Coupon,
        StageName::Fulfillment,
        StageName::Reply,
    ];
    let first = Running::start(&settings, &all);
    first.ready().await;
    let requests = latte_orders(REQUESTS);
    t::publish(&settings, &requests).await;
    t::await_all_replies(&settings, &requests, Duration::from_secs(120)).await;
    // Releases follow the failed orders; let them land before the audit.
    t::await_caught_up(&settings, "coupon", Topic::Orders, Duration::from_secs(60)).await;
    first.stop().await.expect("first run drained");

    let (report, replies) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
    let mut outcomes: HashMap<(ReplyOutcome, Option<String>), usize> = HashMap::new();
    for r in &replies {
        *outcomes.entry((r.outcome, r.reason.clone())).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        HashMap::from([
            ((ReplyOutcome::OrderPlaced, None), STOCK as usize),
            (
                (ReplyOutcome::OrderFailed, Some("out_of_stock".into())),
                REQUESTS - STOCK as usize
            ),
        ]),
        "every request granted; exactly the stock placed, the rest sold out"
    );
    // The partitions really did share the stock: orders were placed in
    // more than one partition.
    let raw = t::read_topic(&settings, Topic::Orders).await;
    let partitions: std::collections::HashSet<i32> = raw.iter().map(|r| r.partition).collect();
    assert!(partitions.len() > 1, "orders in partitions {partitions:?}");
    let placed = orders(&settings).await;
    let units: i32 = placed
        .iter()
        .filter(|o| o.outcome == OrderOutcome::Placed)
        .flat_map(|o| &o.items)
        .map(|i| i.quantity)
        .sum();
    assert_eq!(i64::from(units), STOCK);
    // Every sold-out request's credit was released, once.
    let decisions = t::records(&settings, Topic::Decisions).await;
    let released = decisions
        .iter()
        .filter(|r| matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Released))
        .count();
    assert_eq!(released, REQUESTS - STOCK as usize);
    let sold_out = replies
        .iter()
        .find(|r| r.outcome == ReplyOutcome::OrderFailed)
        .expect("a sold-out reply");
    assert!(sold_out.order_id.is_some() && sold_out.to_pay_cents == 0);
    println!("a sold-out reply: {}", sold_out.text);

    // The second run: new consumer groups, so every stage reads every
    // input from offset 0 — each prompt, intent, decision and order is
    // delivered a second time.
    let before = (orders(&settings).await.len(), replies.len());
    let mut replay = settings.clone();
    replay.kafka.group_prefix = format!("{}-replay", settings.kafka.group_prefix);
    let second = Running::start(&replay, &all);
    second.ready().await;
    for (stage, topic) in [
        ("intent", Topic::Prompts),
        ("coupon", Topic::Intents),
        ("coupon", Topic::Orders),
        ("fulfillment", Topic::Decisions),
        ("reply", Topic::Intents),
        ("reply", Topic::Decisions),
        ("reply", Topic::Orders),
    ] {
        t::await_caught_up(&replay, stage, topic, Duration::from_secs(120)).await;
    }
    second.stop().await.expect("second run drained");
    let after = (
        orders(&settings).await.len(),
        t::records(&settings, Topic::Replies).await.len(),
    );
    assert_eq!(after, before, "(orders, replies) after the replay");
    let (report, _) = t::audit_exactly_once(&settings, &requests).await;
    println!("after the replay: {report}");
}
