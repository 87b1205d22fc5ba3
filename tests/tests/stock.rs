//! Stock against the real broker: a SKU with less stock than demand across
//! twelve partitions sells exactly its stock, everyone else hears it sold
//! out and gets their credit back; then every record is delivered to a
//! second run of the whole pipeline from offset 0, which must create no
//! second order and no second reply. And stock comes back: what idle
//! partitions did not sell returns to the treasury, where later demand on
//! another partition buys all of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chatcart_tests::{self as t, Running};
use runtime::Topic;
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
    let all = t::STAGES;
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

/// Per orders partition, the latte units leased to it and not sold; and
/// what the treasury holds back of the stock (never leased, or returned).
async fn stock_where(settings: &runtime::Settings) -> (BTreeMap<i32, i64>, i64) {
    let campaigns = Arc::new(settings.campaigns().expect("campaigns"));
    let codec = schemas::Codec::new();
    let mut folds: BTreeMap<i32, ledger::StockFold> = BTreeMap::new();
    for raw in t::read_topic(settings, Topic::Orders).await {
        let record = codec.decode(&raw.payload).expect("orders decode");
        folds
            .entry(raw.partition)
            .or_insert_with(|| ledger::StockFold::new(Arc::clone(&campaigns)))
            .apply(&record);
    }
    let mut treasury = ledger::TreasuryFold::new(Arc::clone(&campaigns), settings.kafka.partitions);
    for record in t::records(settings, Topic::Treasury).await {
        if let Record::Treasury(r) = record {
            treasury.apply(&r);
        }
    }
    let id = &settings.campaigns[0].id;
    let unused = folds
        .iter()
        .map(|(p, f)| (*p, f.unused_of(id, "stock:latte")))
        .collect();
    let remaining = treasury
        .resource(id, "stock:latte")
        .map_or(0, |a| a.remaining());
    (unused, remaining)
}

/// `n` prompts, `text` each, from people whose prompts land on orders
/// partition `partition` (all of them when `None`), numbered from `first`.
fn people_on(
    partition: Option<i32>,
    partitions: i32,
    first: usize,
    n: usize,
    text: &str,
) -> Vec<Prompt> {
    (first..)
        .map(|i| format!("returning-{i}"))
        .filter(|user| {
            partition.is_none_or(|p| stages::topic::shard_of(user.as_bytes(), partitions) == p)
        })
        .take(n)
        .enumerate()
        .map(|(i, user)| t::prompt(format!("{user}-{first}-{i}"), &user, text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsold_stock_goes_back_to_the_treasury_and_later_demand_sells_all_of_it() {
    const LATTES: i64 = 100;
    let mut settings = t::settings("stock-returns", 4);
    settings.clickhouse.url.clear();
    let c = &mut settings.campaigns[0];
    c.budget_cents = 1_000 * c.credit.unit_cents();
    c.stock.insert("latte".into(), LATTES);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3_600);
    c.ends_at = Some(humantime::format_rfc3339_seconds(in_an_hour).to_string());
    // The whole campaign counts as near its end: an idle partition hands
    // back what it holds two seconds after its last order.
    settings.fulfillment.return_before_end_secs = 7_200;
    t::create_topics(&settings).await;
    let all = t::STAGES;
    let running = Running::start(&settings, &all);
    running.ready().await;

    // Demand below the stock: eight lattes over all four partitions. Each
    // partition leases a share of a hundred, more than it sells.
    let first = people_on(None, 4, 0, 8, "one latte please");
    t::publish(&settings, &first).await;
    t::await_all_replies(&settings, &first, Duration::from_secs(120)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (unused, remaining) = loop {
        let (unused, remaining) = stock_where(&settings).await;
        if unused.values().all(|u| *u == 0) || tokio::time::Instant::now() > deadline {
            break (unused, remaining);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("after the first wave: unused per partition {unused:?}, treasury holds {remaining}");
    assert!(
        unused.values().all(|u| *u == 0),
        "unsold stock left in partitions: {unused:?}"
    );
    assert_eq!(
        remaining,
        LATTES - 8,
        "every unsold unit is back in the treasury"
    );

    // Demand above the stock, all on partition 0: fifty orders of two.
    // Only what the other partitions gave back lets it sell every unit.
    let second = people_on(Some(0), 4, 1_000, 50, "two lattes please");
    t::publish(&settings, &second).await;
    t::await_all_replies(&settings, &second, Duration::from_secs(180)).await;
    t::await_caught_up(&settings, "coupon", Topic::Orders, Duration::from_secs(60)).await;
    t::await_caught_up(&settings, "reply", Topic::Orders, Duration::from_secs(60)).await;
    running.stop().await.expect("drained");

    let requests: Vec<Prompt> = first.iter().chain(&second).cloned().collect();
    let (report, replies) = t::audit_exactly_once(&settings, &requests).await;
    println!("{report}");
    let placed: usize = replies
        .iter()
        .filter(|r| r.outcome == ReplyOutcome::OrderPlaced)
        .count();
    assert_eq!(placed, 8 + (LATTES as usize - 8) / 2, "every unit sold");
    let sold_out = replies
        .iter()
        .filter(|r| r.reason.as_deref() == Some("out_of_stock"))
        .count();
    assert_eq!(sold_out, 50 - (LATTES as usize - 8) / 2);
}
