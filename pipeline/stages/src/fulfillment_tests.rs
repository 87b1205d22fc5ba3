//! Unit tests of the fulfillment stage against an in-memory treasury.

use super::*;
use crate::stage::Calls;
use ledger::campaign::CampaignConfig;
use ledger::fixtures::{item, movement};
use ledger::{BUDGET, OrderStatus};
use schemas::{DecisionOutcome, Item};

fn granted(request: &str, user: &str, items: Vec<Item>) -> Record {
    Record::Decision(CouponDecision {
        reply_partition: None,
        deadline_ms: None,
        request_id: request.into(),
        session_id: String::new(),
        user_id: user.into(),
        campaign_id: "c".into(),
        trace_id: String::new(),
        event_time_ms: 0,
        prompt_time_ms: 0,
        locale: "en".into(),
        outcome: DecisionOutcome::Granted,
        items,
        total_cents: 3_000,
        credit_cents: 2_000,
        reason: None,
    })
}

fn latte(n: i32) -> Vec<Item> {
    vec![item("latte", n)]
}

/// A stage over `partitions` partitions; the campaign limits `stock`.
fn stage(
    stock: &[(&str, i64)],
    partitions: i32,
    f: impl FnOnce(&mut CampaignConfig),
) -> FulfillmentStage {
    let mut c = CampaignConfig {
        id: "c".into(),
        budget_cents: 1_000_000,
        stock: stock.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
        ..CampaignConfig::default()
    };
    f(&mut c);
    let campaigns = Arc::new(Campaigns::new(&[c]).unwrap());
    let treasury = Arc::new(TreasuryView::new(TreasuryFold::new(
        Arc::clone(&campaigns),
        partitions,
    )));
    FulfillmentStage::new(campaigns, Catalog::built_in(), treasury, partitions, 60_000)
}

/// A partition state with `budget` cents of budget credited.
fn state(s: &FulfillmentStage, partition: i32, budget: i64) -> FulfillmentState {
    let mut st = s.new_state(partition);
    let lease = movement("budget-lease", TreasuryKind::LeaseCredit, budget);
    s.restore(&mut st, Restore::Input(&lease))
        .expect("a record folds");
    st
}

fn orders(emits: &[Emit]) -> Vec<OrderEvent> {
    emits
        .iter()
        .filter_map(|e| match &e.record {
            Record::Order(o) if e.topic == Topic::Orders => Some(o.clone()),
            _ => None,
        })
        .collect()
}

/// Folds the treasury records of `emits` into the stage's treasury.
fn deliver(s: &FulfillmentStage, emits: &[Emit]) {
    s.treasury.deliver(emits);
}

#[test]
fn order_ids_are_stable_and_distinct() {
    assert_eq!(order_id("c", "r1"), order_id("c", "r1"));
    assert_ne!(order_id("c", "r1"), order_id("c", "r2"));
    assert_ne!(order_id("c", "r1"), order_id("c2", "r1"));
    assert_eq!(order_id("c", "r1").len(), 18);
}

#[test]
fn only_valid_grants_become_orders_and_valid_returns_go_to_the_treasury() {
    let s = stage(&[], 1, |_| {});
    let mut st = s.new_state(0);
    // No allowance yet: the grant is invalid.
    assert!(
        s.handled(&mut st, granted("r0", "u0", latte(1)), 0)
            .is_empty()
    );
    assert!(
        s.handled(&mut st, movement("l1", TreasuryKind::LeaseCredit, 3_000), 0)
            .is_empty()
    );
    let placed = orders(s.handled(&mut st, granted("r1", "u1", latte(1)), 0).emits());
    assert!(
        matches!(&placed[..], [o] if o.outcome == OrderOutcome::Placed && o.to_pay_cents == 1_000)
    );
    // Beyond the allowance, a second grant (say a zombie's) is no order,
    // and a repeated grant is no second order.
    assert!(
        s.handled(&mut st, granted("r2", "u2", latte(1)), 0)
            .is_empty()
    );
    assert!(
        s.handled(&mut st, granted("r1", "u1", latte(1)), 0)
            .is_empty()
    );
    // Only 1,000 is unused: a return of more is not forwarded.
    assert!(
        s.handled(&mut st, movement("x1", TreasuryKind::LeaseReturn, 1_500), 0)
            .is_empty()
    );
    let forwarded = s.handled(&mut st, movement("x2", TreasuryKind::LeaseReturn, 1_000), 0);
    assert!(
        matches!(forwarded.emits(), [e] if e.topic == Topic::Treasury
        && matches!(&e.record, Record::Treasury(t) if t.amount == 1_000 && t.request_id == "x2" && t.resource == BUDGET))
    );
}

#[test]
fn a_grant_waits_for_a_stock_lease_and_is_ordered_when_it_arrives() {
    let s = stage(&[("latte", 100)], 1, |_| {});
    let mut st = state(&s, 0, 100_000);
    let step = s.handled(&mut st, granted("r1", "u1", latte(2)), 0);
    assert!(step.is_parked(), "no stock leased yet");
    assert!(orders(step.emits()).is_empty());
    // A later grant of an unlimited SKU waits behind it: arrival order.
    let burger = vec![item("burger", 1)];
    assert!(
        s.handled(&mut st, granted("r2", "u2", burger), 0)
            .is_parked()
    );
    deliver(&s, step.emits());
    let (emits, finished) = s.polled(&mut st, 1).split();
    // The lease (100 / 4 = 25 units) is credited to the orders partition.
    assert!(matches!(&emits[..], [e] if e.topic == Topic::Orders
        && matches!(&e.record, Record::Treasury(t) if t.kind == TreasuryKind::LeaseCredit && t.amount == 25)));
    assert_eq!(finished.len(), 2);
    let placed: Vec<_> = finished.iter().flat_map(|f| orders(f)).collect();
    assert_eq!(placed.len(), 2);
    assert!(placed.iter().all(|o| o.outcome == OrderOutcome::Placed));
    assert_eq!(st.stock.account("c", "latte").sold, 2);
    assert_eq!(st.parked(), 0);
}

#[test]
fn when_every_unit_is_leased_out_an_order_that_does_not_fit_fails_whole() {
    // Three units over two partitions: leases of one unit, asked for only
    // by a waiting grant.
    let s = stage(&[("latte", 3), ("egg-tart", 100)], 2, |_| {});
    let mut p0 = state(&s, 0, 100_000);
    let mut p1 = state(&s, 1, 100_000);
    let mut placed = 0;
    for i in 0..3 {
        let step = s.handled(
            &mut p0,
            granted(&format!("a{i}"), &format!("u{i}"), latte(1)),
            0,
        );
        deliver(&s, step.emits());
        let (_, finished) = s.polled(&mut p0, 1).split();
        placed += finished.iter().flat_map(|f| orders(f)).count();
    }
    assert_eq!(placed, 3);
    assert!(
        s.treasury
            .read()
            .exhausted_of("c", &stock_resource("latte"))
    );
    // Partition 1 gets nothing: its order fails at once, egg tarts and
    // all, with its credit to be released.
    let both = vec![item("egg-tart", 1), item("latte", 1)];
    let step = s.handled(&mut p1, granted("b1", "v1", both), 0);
    let failed = orders(step.emits());
    assert!(!step.is_parked());
    assert!(
        matches!(&failed[..], [o] if o.outcome == OrderOutcome::Failed
        && o.reason.as_deref() == Some(OUT_OF_STOCK) && o.credit_cents == 2_000 && o.to_pay_cents == 0)
    );
    assert_eq!(p1.stock.account("c", "egg-tart").sold, 0);
    assert_eq!(p1.stock.order("b1"), Some(OrderStatus::Failed));
}

#[test]
fn orders_fail_for_unknown_skus_and_after_the_campaign_closed() {
    let s = stage(&[], 1, |c| c.ends_at = Some("2026-01-01T00:00:00Z".into()));
    let end = 1_767_225_600_000;
    let mut st = state(&s, 0, 100_000);
    let reason = |step: Collector| orders(step.emits())[0].reason.clone();
    let gone = vec![item("pizza", 1)];
    assert_eq!(
        reason(s.handled(&mut st, granted("r1", "u1", gone), end)).as_deref(),
        Some(SKU_UNAVAILABLE)
    );
    // Within the grace period (60 s here) a backlog is still ordered.
    let step = s.handled(&mut st, granted("r2", "u2", latte(1)), end + 59_999);
    assert_eq!(orders(step.emits())[0].outcome, OrderOutcome::Placed);
    assert_eq!(
        reason(s.handled(&mut st, granted("r3", "u3", latte(1)), end + 60_000)).as_deref(),
        Some(CAMPAIGN_CLOSED)
    );
}

#[test]
fn a_grant_read_after_its_deadline_fails_expired_and_keeps_its_credit_for_release() {
    let s = stage(&[], 1, |_| {});
    let mut st = state(&s, 0, 100_000);
    let with_deadline = |id: &str, deadline: i64| match granted(id, id, latte(1)) {
        Record::Decision(mut d) => {
            d.deadline_ms = Some(deadline);
            Record::Decision(d)
        }
        _ => unreachable!(),
    };
    let on_time = orders(
        s.handled(&mut st, with_deadline("r1", 5_000), 5_000)
            .emits(),
    );
    assert_eq!(on_time[0].outcome, OrderOutcome::Placed, "at the deadline");
    let late = orders(
        s.handled(&mut st, with_deadline("r2", 5_000), 5_001)
            .emits(),
    );
    assert_eq!(late[0].outcome, OrderOutcome::Failed);
    assert_eq!(late[0].reason.as_deref(), Some(EXPIRED));
    // The coupon stage releases what a failed order carries.
    assert_eq!((late[0].credit_cents, late[0].to_pay_cents), (2_000, 0));
}

#[test]
fn a_restored_partition_knows_its_orders_and_its_stock() {
    let s = stage(&[("latte", 100)], 1, |_| {});
    let mut live = state(&s, 0, 100_000);
    let mut log = Vec::new();
    let step = s.handled(&mut live, granted("r1", "u1", latte(1)), 0);
    deliver(&s, step.emits());
    log.extend(
        s.polled(&mut live, 1)
            .emits()
            .iter()
            .map(|e| e.record.clone()),
    );
    let mut restored = state(&s, 0, 100_000);
    for record in &log {
        s.restore(&mut restored, Restore::Output(record))
            .expect("a record folds");
    }
    assert_eq!(restored.stock.order("r1"), Some(OrderStatus::Placed));
    assert_eq!(
        restored.stock.account("c", "latte"),
        live.stock.account("c", "latte")
    );
    // The redelivered grant is no second order, and the next grant is
    // ordered from the restored lease without asking for another.
    let mut restored_fold = state(&s, 0, 100_000);
    restored_fold.stock = restored.stock.clone();
    assert!(
        s.handled(&mut restored_fold, granted("r1", "u1", latte(1)), 2)
            .is_empty()
    );
    let step = s.handled(&mut restored_fold, granted("r2", "u2", latte(1)), 2);
    assert!(matches!(step.emits(), [e] if e.topic == Topic::Orders));
}

#[test]
fn an_order_of_more_units_than_a_lease_gathers_leases_until_it_fits() {
    // 100 units over 12 partitions: leases of 2 units, the order needs 5.
    let s = stage(&[("latte", 100)], 12, |_| {});
    let mut st = state(&s, 3, 100_000);
    let step = s.handled(&mut st, granted("r1", "u1", latte(5)), 0);
    assert!(step.is_parked());
    let mut emits = step.into_emits();
    let mut placed = Vec::new();
    for round in 1..=5 {
        deliver(&s, &emits);
        let (more, finished) = s.polled(&mut st, round).split();
        emits = more;
        placed.extend(finished.iter().flat_map(|f| orders(f)));
        if !placed.is_empty() {
            break;
        }
    }
    assert!(
        matches!(&placed[..], [o] if o.outcome == OrderOutcome::Placed),
        "{placed:?}"
    );
    assert_eq!(st.stock.account("c", "latte").sold, 5);
}

/// Every output of a poll: its own and those of the records it finished.
fn everything(step: Collector) -> Vec<Emit> {
    let (mut emits, finished) = step.split();
    emits.extend(finished.into_iter().flatten());
    emits
}

#[test]
fn near_the_end_an_idle_partition_returns_the_stock_it_does_not_sell() {
    let s = stage(&[("latte", 400)], 1, |c| {
        c.ends_at = Some("1970-01-01T00:10:00Z".into())
    });
    let mut st = state(&s, 0, 1_000_000);
    // The first order waits for a lease, which covers more than it needs.
    let step = s.handled(&mut st, granted("r1", "u1", latte(1)), 0);
    deliver(&s, step.emits());
    let emits = everything(s.polled(&mut st, 1));
    assert_eq!(orders(&emits).len(), 1);
    let unused = st.stock.unused_of("c", "stock:latte");
    assert!(unused > 0, "the lease left units over");
    assert!(
        s.polled(&mut st, 200_000).is_empty(),
        "not near the end yet"
    );
    // Waiting for stock keeps the partition from returning any.
    let step = s.handled(
        &mut st,
        granted("r2", "u2", latte(i32::try_from(unused).unwrap() + 1)),
        560_000,
    );
    assert!(orders(step.emits()).is_empty(), "it waits for a lease");
    let emits = everything(s.polled(&mut st, 570_000));
    assert!(
        !emits.iter().any(
            |e| matches!(&e.record, Record::Treasury(t) if t.kind == TreasuryKind::LeaseReturn)
        ),
        "returned stock a waiting order needs"
    );
    deliver(&s, &emits);
    let emits = everything(s.polled(&mut st, 570_001));
    assert_eq!(orders(&emits).len(), 1, "the lease arrived");
    let left = st.stock.unused_of("c", "stock:latte");
    assert!(left > 0);
    // Idle for two seconds near the end: what is left goes back, through
    // the orders log (the reply stage forwards it).
    let emits = everything(s.polled(&mut st, 572_001));
    let returned: Vec<i64> = emits
        .iter()
        .filter_map(|e| match &e.record {
            Record::Treasury(t)
                if t.kind == TreasuryKind::LeaseReturn && e.topic == Topic::Orders =>
            {
                Some(t.amount)
            }
            _ => None,
        })
        .collect();
    assert_eq!(returned, [left]);
    assert_eq!(st.stock.unused_of("c", "stock:latte"), 0);
    assert!(s.polled(&mut st, 573_000).is_empty(), "nothing left");
}
