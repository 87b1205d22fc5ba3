//! Benchmarks of the coupon ledger's pure folds and of the coupon stage's
//! per-request hot path, all in memory (no broker).
//!
//! ```sh
//! cargo bench -p chatcart-stages --bench ledger
//! ```
//!
//! - `decisions_fold`: [`DecisionsFold::apply`] over one partition's
//!   decisions log, as the coupon stage writes it (lease credits, then
//!   grants and denials of requests from 20k users), with ~2% repeated
//!   records (redeliveries). This is what every restore and the auditor do.
//!   `decisions_image`: writing and reading a checkpoint image of the fold
//!   of that log (a restore from a checkpoint reads one).
//! - `treasury_fold`: [`TreasuryFold::apply`] over `campaign.treasury` lease
//!   requests from 12 partitions (with some repeats and returns).
//! - `coupon_handle`: [`CouponStage::handle`] for extracted intents, one
//!   partition, the per-request hot path. `pre_credited`: the partition's
//!   lease already covers every request, so nothing is asked of the
//!   treasury; `with_leases`: a budget for about half the requests, with
//!   lease requests delivered to the in-memory [`TreasuryView`] and parked
//!   requests finished by [`Stage::poll`], as the runner would.
//!
//! Throughput is in elements (records or requests) per second.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chatcart_stages::CouponStage;
use chatcart_stages::Topic;
use chatcart_stages::coupon::{CouponState, TreasuryView};
use chatcart_stages::{Collector, Emit, Stage};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ledger::campaign::{CampaignConfig, Campaigns, CreditRule};
use ledger::{DecisionsFold, Effect, TreasuryFold};
use schemas::{IntentEvent, IntentOutcome, Item, Record, TreasuryKind, TreasuryRecord};

const CAMPAIGN: &str = "bench";
/// Pipeline partitions (lease sizes depend on it).
const PARTITIONS: i32 = 12;
/// Most credit one order gets, in cents.
const UNIT: i64 = 1_000;
/// Distinct users in the generated traffic.
const USERS: usize = 20_000;
/// Credited orders per user.
const PER_USER_LIMIT: u32 = 3;
/// Order totals of the generated intents; the credit is `min(total, UNIT)`,
/// 840 cents on average.
const TOTALS: [i64; 5] = [400, 800, 1_200, 1_600, 2_000];
const MEAN_CREDIT: i64 = 840;

fn campaigns(budget: i64) -> Arc<Campaigns> {
    let c = CampaignConfig {
        id: CAMPAIGN.into(),
        budget_cents: budget,
        credit: CreditRule::FreeUpToCents(UNIT),
        per_user_limit: PER_USER_LIMIT,
        ..CampaignConfig::default()
    };
    Arc::new(Campaigns::new(&[c]).expect("valid campaign"))
}

/// A budget that covers about half of `requests` (20k users × 3 orders
/// could take up to ~57% of 100k requests, so some users hit the limit too).
fn half_budget(requests: usize) -> i64 {
    requests as i64 / 2 * MEAN_CREDIT
}

/// `n` extracted intents from `USERS` users, in arrival order.
fn intents(n: usize, seed: u64) -> Vec<IntentEvent> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let total = TOTALS[rng.usize(..TOTALS.len())];
            IntentEvent {
                reply_partition: None,
                deadline_ms: None,
                request_id: format!("req-{seed}-{i:08}"),
                session_id: format!("sess-{i}"),
                user_id: format!("user-{:05}", rng.usize(..USERS)),
                campaign_id: CAMPAIGN.into(),
                trace_id: format!("{:032x}", rng.u128(..)),
                event_time_ms: 1_700_000_000_000 + i as i64,
                prompt_time_ms: 1_700_000_000_000 + i as i64,
                locale: if rng.bool() { "zh" } else { "en" }.into(),
                outcome: IntentOutcome::Extracted,
                items: vec![Item {
                    sku: "milk-tea".into(),
                    quantity: (total / 400) as i32,
                    options: [("size".to_owned(), "large".to_owned())].into(),
                    unit_price_cents: 400,
                }],
                coupon_code: None,
                total_cents: total,
                reason: None,
            }
        })
        .collect()
}

/// Drives one partition of a coupon stage over `intents` the way the
/// runner would, delivering every lease request to the in-memory treasury
/// at once and polling until nothing is parked. Returns every record the
/// stage wrote to `commerce.decisions`, in order, and how many lease
/// requests it made.
fn drive(
    stage: &CouponStage,
    treasury: &TreasuryView,
    st: &mut CouponState,
    intents: impl IntoIterator<Item = IntentEvent>,
    mut decisions: Option<&mut Vec<Record>>,
) -> usize {
    let mut leases = 0;
    let mut take = |emits: Vec<Emit>, decisions: &mut Option<&mut Vec<Record>>| {
        let mut asked: Vec<TreasuryRecord> = Vec::new();
        for e in emits {
            match (e.topic, e.record) {
                (Topic::Treasury, Record::Treasury(t)) => asked.push(t),
                (Topic::Decisions, r) => {
                    if let Some(d) = decisions.as_deref_mut() {
                        d.push(r);
                    }
                }
                _ => {}
            }
        }
        if !asked.is_empty() {
            leases += asked.len();
            treasury.apply(&asked);
        }
    };
    for (i, intent) in intents.into_iter().enumerate() {
        let now = i as i64;
        let mut out = Collector::new();
        stage.handle(st, Record::Intent(intent), now, &mut out);
        take(out.into_emits(), &mut decisions);
        let mut rounds = 0;
        while st.parked() > 0 && rounds < 8 {
            rounds += 1;
            let mut out = Collector::new();
            stage.poll(st, now, &mut out);
            take(out.into_emits(), &mut decisions);
        }
        assert_eq!(st.parked(), 0, "a request stayed parked");
    }
    leases
}

/// The decisions log of one partition after the coupon stage decided
/// `n` requests, with about 2% of its records repeated shortly after (as
/// a redelivery after a crash would write them).
fn decisions_log(n: usize) -> Vec<Record> {
    let campaigns = campaigns(half_budget(n));
    let treasury = Arc::new(TreasuryView::new(TreasuryFold::new(
        Arc::clone(&campaigns),
        PARTITIONS,
    )));
    let stage = CouponStage::with_nonce(campaigns, Arc::clone(&treasury), PARTITIONS, 0, 1);
    let mut st = stage.new_state(0);
    let mut written = Vec::with_capacity(n + n / 20);
    drive(
        &stage,
        &treasury,
        &mut st,
        intents(n, 1),
        Some(&mut written),
    );
    let mut rng = fastrand::Rng::with_seed(2);
    let mut log = Vec::with_capacity(written.len() + written.len() / 40);
    for (i, r) in written.iter().enumerate() {
        log.push(r.clone());
        if i > 100 && rng.u32(..100) < 2 {
            log.push(written[i - rng.usize(1..100)].clone());
        }
    }
    log
}

fn bench_decisions_fold(c: &mut Criterion) {
    let log = decisions_log(100_000);
    let campaigns = campaigns(half_budget(100_000));
    // What the log holds, so the output says what was measured.
    let mut check = DecisionsFold::new(Arc::clone(&campaigns));
    let mut effects = std::collections::BTreeMap::<String, usize>::new();
    for r in &log {
        let kind = match check.apply(r) {
            Effect::Granted(_) => "granted".to_owned(),
            Effect::Credited(_) => "lease credit".to_owned(),
            Effect::Denied(Some(reason)) => format!("denied {reason} (by the fold)"),
            Effect::Denied(None) => match r {
                Record::Decision(d) => format!("denied {}", d.reason.as_deref().unwrap_or("")),
                _ => "denied".to_owned(),
            },
            other => format!("{other:?}"),
        };
        *effects.entry(kind).or_default() += 1;
    }
    eprintln!(
        "decisions_fold: {} records, effects {effects:?}, granted {} of allowance {} cents",
        log.len(),
        check.account(CAMPAIGN).granted,
        check.account(CAMPAIGN).allowance
    );
    let mut g = c.benchmark_group("decisions_fold");
    g.throughput(Throughput::Elements(log.len() as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("apply_100k_log", |b| {
        b.iter_batched(
            || DecisionsFold::new(Arc::clone(&campaigns)),
            |mut fold| {
                for r in &log {
                    black_box(fold.apply(black_box(r)));
                }
                fold
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();

    // Checkpoint images of the fold of that whole log: writing one, and
    // reading one back (what a restore does instead of folding the log).
    let mut whole = DecisionsFold::new(Arc::clone(&campaigns));
    for r in &log {
        whole.apply(r);
    }
    let image = whole.image();
    eprintln!(
        "decisions_image: {} bytes for the fold of {} records",
        image.len(),
        log.len()
    );
    let mut g = c.benchmark_group("decisions_image");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(image.len() as u64));
    g.bench_function("write", |b| b.iter(|| black_box(whole.image())));
    g.bench_function("read", |b| {
        b.iter(|| {
            DecisionsFold::from_image(Arc::clone(&campaigns), black_box(&image)).expect("own image")
        })
    });
    g.finish();
}

fn lease_request(id: String, partition: i32) -> TreasuryRecord {
    TreasuryRecord {
        request_id: id,
        user_id: String::new(),
        campaign_id: CAMPAIGN.into(),
        trace_id: String::new(),
        event_time_ms: 0,
        kind: TreasuryKind::LeaseRequest,
        resource: ledger::BUDGET.into(),
        partition,
        amount: 0,
    }
}

/// `n` treasury records: lease requests from the 12 partitions in turn,
/// ~1% repeated, and every 50th record a partition returning 1,000 cents.
fn treasury_log(n: usize) -> Vec<TreasuryRecord> {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut log = Vec::with_capacity(n);
    let mut i = 0u64;
    while log.len() < n {
        let p = (i % PARTITIONS as u64) as i32;
        let id = format!("{CAMPAIGN}/{p}/lease/{i}-bench-{i}");
        if log.len() % 50 == 49 {
            let mut back = lease_request(format!("{CAMPAIGN}/{p}/return/{i}"), p);
            back.kind = TreasuryKind::LeaseReturn;
            back.amount = UNIT;
            log.push(back);
        } else if rng.u32(..100) == 0 && !log.is_empty() {
            let again = log[rng.usize(..log.len())].clone();
            log.push(again);
        } else {
            log.push(lease_request(id, p));
        }
        i += 1;
    }
    log
}

fn bench_treasury_fold(c: &mut Criterion) {
    let mut g = c.benchmark_group("treasury_fold");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    // A campaign of ¥1M in credits of at most ¥10: the leases a whole
    // campaign takes (until refused), and a long log of requests most of
    // which come after the budget is leased out (refused).
    for (name, budget, n) in [
        ("apply_1k_requests", 100_000_000, 1_000),
        ("apply_100k_requests", 100_000_000, 100_000),
    ] {
        let campaigns = campaigns(budget);
        let log = treasury_log(n);
        let mut check = TreasuryFold::new(Arc::clone(&campaigns), PARTITIONS);
        for r in &log {
            check.apply(r);
        }
        let a = check.account(CAMPAIGN).expect("configured");
        eprintln!(
            "treasury_fold/{name}: {} records, {} requests, {} refused, leased {} returned {} cents",
            log.len(),
            a.requests,
            a.refused,
            a.leased,
            a.returned
        );
        g.throughput(Throughput::Elements(log.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || TreasuryFold::new(Arc::clone(&campaigns), PARTITIONS),
                |mut fold| {
                    for r in &log {
                        black_box(fold.apply(black_box(r)));
                    }
                    fold
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

/// A coupon stage and partition 0's state with a lease already credited.
fn credited_stage(budget: i64) -> (CouponStage, Arc<TreasuryView>, CouponState) {
    let campaigns = campaigns(budget);
    let treasury = Arc::new(TreasuryView::new(TreasuryFold::new(
        Arc::clone(&campaigns),
        PARTITIONS,
    )));
    let stage = CouponStage::with_nonce(campaigns, Arc::clone(&treasury), PARTITIONS, 0, 7);
    let mut st = stage.new_state(0);
    // The first request parks and asks for a lease; delivering the request
    // to the treasury and polling credits it and finishes the request.
    let mut first = intents(1, 99);
    first[0].user_id = "warm-up".into();
    drive(&stage, &treasury, &mut st, first, None);
    assert!(st.fold.unused(CAMPAIGN) > 0, "lease credited");
    (stage, treasury, st)
}

fn bench_coupon_handle(c: &mut Criterion) {
    const BATCH: usize = 10_000;
    let batch = intents(BATCH, 5);
    let mut g = c.benchmark_group("coupon_handle");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(20));

    // A budget so large that the first lease (1/48 of it) covers every
    // request: the pure hot path (offer, verdict, fold, decision record).
    let big = 1_000_000_000_000;
    {
        let (stage, _treasury, mut st) = credited_stage(big);
        let before = st.fold.account(CAMPAIGN).grants;
        let mut asked = 0;
        for intent in batch.clone() {
            let mut step = Collector::new();
            stage.handle(&mut st, Record::Intent(intent), 1, &mut step);
            assert!(!step.is_parked());
            asked += step
                .emits()
                .iter()
                .filter(|e| e.topic == Topic::Treasury)
                .count();
        }
        eprintln!(
            "coupon_handle/pre_credited: {BATCH} intents, {} granted, {asked} lease requests",
            st.fold.account(CAMPAIGN).grants - before
        );
    }
    g.bench_function("pre_credited", |b| {
        b.iter_batched(
            || {
                let (stage, treasury, st) = credited_stage(big);
                let records: Vec<Record> = batch.iter().cloned().map(Record::Intent).collect();
                (stage, treasury, st, records)
            },
            |(stage, treasury, mut st, records)| {
                let mut out = Collector::new();
                for r in records {
                    out.clear();
                    stage.handle(&mut st, r, 1, &mut out);
                    black_box(out.emits());
                }
                (stage, treasury, st)
            },
            BatchSize::PerIteration,
        );
    });

    // A budget for about half the batch: leases are asked for ahead (and
    // delivered to the in-memory treasury at once), requests park when a
    // lease has not arrived, and once the budget is leased out the rest
    // are denied.
    let budget = half_budget(BATCH);
    {
        let (stage, treasury, mut st) = credited_stage(budget);
        let leases = drive(&stage, &treasury, &mut st, batch.clone(), None);
        let a = st.fold.account(CAMPAIGN);
        eprintln!(
            "coupon_handle/with_leases: {BATCH} intents, {} granted ({} of {budget} cents), {leases} lease requests",
            a.grants, a.granted
        );
    }
    g.bench_function("with_leases", |b| {
        b.iter_batched(
            || {
                let (stage, treasury, st) = credited_stage(budget);
                (stage, treasury, st, batch.clone())
            },
            |(stage, treasury, mut st, intents)| {
                black_box(drive(&stage, &treasury, &mut st, intents, None));
                (stage, treasury, st)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_decisions_fold,
    bench_treasury_fold,
    bench_coupon_handle
);
criterion_main!(benches);
