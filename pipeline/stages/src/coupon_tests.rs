//! Unit tests of the coupon stage against an in-memory treasury.

use super::*;
use crate::Batch;
use crate::stage::Calls;
use ledger::campaign::{CampaignConfig, CreditRule};
use schemas::{Item, TreasuryKind};

fn intent(request: &str, user: &str, total: i64) -> IntentEvent {
    IntentEvent {
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
        outcome: IntentOutcome::Extracted,
        items: vec![Item {
            sku: "latte".into(),
            quantity: 1,
            options: Default::default(),
            unit_price_cents: total,
        }],
        coupon_code: None,
        total_cents: total,
        reason: None,
    }
}

/// A stage over one partition, budget `budget`, credit up to 100 per order.
fn stage(budget: i64, f: impl FnOnce(&mut CampaignConfig)) -> CouponStage {
    let mut c = CampaignConfig {
        id: "c".into(),
        budget_cents: budget,
        credit: CreditRule::FreeUpToCents(100),
        ..CampaignConfig::default()
    };
    f(&mut c);
    let campaigns = Arc::new(Campaigns::new(&[c]).unwrap());
    let treasury = Arc::new(TreasuryView::new(TreasuryFold::new(
        Arc::clone(&campaigns),
        1,
    )));
    CouponStage::with_nonce(campaigns, treasury, 1, 60_000, 7)
}

fn records(emits: &[Emit], topic: Topic) -> Vec<Record> {
    emits
        .iter()
        .filter(|e| e.topic == topic)
        .map(|e| e.record.clone())
        .collect()
}

/// Delivers every treasury record in `emits` to the stage's treasury.
fn deliver(s: &CouponStage, emits: &[Emit]) {
    s.treasury.deliver(emits);
}

fn outcome(emits: &[Emit]) -> (DecisionOutcome, i64, Option<String>) {
    let d = records(emits, Topic::Decisions)
        .into_iter()
        .find_map(|r| match r {
            Record::Decision(d) => Some(d),
            _ => None,
        })
        .expect("a decision");
    (d.outcome, d.credit_cents, d.reason)
}

#[test]
fn the_first_request_waits_for_a_lease_then_grants() {
    let s = stage(1_000, |_| {});
    let mut st = s.new_state(0);
    let step = s.handled(&mut st, Record::Intent(intent("r1", "u1", 80)), 0);
    assert!(step.is_parked());
    assert_eq!(
        records(step.emits(), Topic::Treasury).len(),
        1,
        "one lease request"
    );
    // Nothing changes until the treasury folds the request.
    assert!(s.polled(&mut st, 1).is_empty());
    deliver(&s, step.emits());
    let polled = s.polled(&mut st, 2);
    assert!(
        matches!(
            polled.batches().collect::<Vec<_>>()[..],
            [Batch::Own(_), Batch::Finished(_)]
        ),
        "credit, then grant"
    );
    let (emits, finished) = polled.split();
    assert_eq!(finished.len(), 1);
    assert_eq!(outcome(&finished[0]), (DecisionOutcome::Granted, 80, None));
    let credit = records(&emits, Topic::Decisions);
    assert!(
        matches!(&credit[..], [Record::Treasury(t)] if t.kind == TreasuryKind::LeaseCredit && t.amount == 200)
    );
}

#[test]
fn a_request_read_or_still_waiting_after_its_deadline_is_denied_expired() {
    let s = stage(1_000, |_| {});
    let mut st = s.new_state(0);
    let late = |id: &str, user: &str, deadline: i64| IntentEvent {
        deadline_ms: Some(deadline),
        ..intent(id, user, 80)
    };
    // Read too late: denied at once, before any lease is asked for.
    let step = s.handled(&mut st, Record::Intent(late("r0", "u0", 10)), 11);
    assert_eq!(
        outcome(step.emits()),
        (DecisionOutcome::Denied, 0, Some(EXPIRED.into()))
    );
    assert!(records(step.emits(), Topic::Treasury).is_empty());
    // Waiting for a lease when the deadline passes: denied then, and the
    // user may still be granted later.
    let first = s.handled(&mut st, Record::Intent(late("r1", "u1", 100)), 50);
    assert!(first.is_parked());
    let (_, finished) = s.polled(&mut st, 101).split();
    assert_eq!(
        outcome(&finished[0]),
        (DecisionOutcome::Denied, 0, Some(EXPIRED.into()))
    );
    deliver(&s, first.emits());
    let again = s.handled(&mut st, Record::Intent(intent("r2", "u1", 80)), 102);
    assert_eq!(outcome(again.emits()), (DecisionOutcome::Granted, 80, None));
}

#[test]
fn requests_behind_a_waiting_one_wait_in_order_but_denials_do_not() {
    let s = stage(1_000, |c| c.eligible_skus = ["latte".to_owned()].into());
    let mut st = s.new_state(0);
    let first = s.handled(&mut st, Record::Intent(intent("r1", "u1", 80)), 0);
    let second = s.handled(&mut st, Record::Intent(intent("r2", "u2", 80)), 0);
    assert!(first.is_parked() && second.is_parked());
    assert!(
        records(second.emits(), Topic::Treasury).is_empty(),
        "one request outstanding"
    );
    let mut tea = intent("r3", "u3", 80);
    tea.items[0].sku = "tea".into();
    let third = s.handled(&mut st, Record::Intent(tea), 0);
    assert_eq!(
        outcome(third.emits()).2.as_deref(),
        Some(schemas::reason::NOT_ELIGIBLE)
    );
    deliver(&s, first.emits());
    let (_, finished) = s.polled(&mut st, 1).split();
    let ids: Vec<_> = finished
        .iter()
        .flat_map(|e| records(e, Topic::Decisions))
        .map(|r| r.request_id().to_owned())
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(st.parked(), 0);
}

#[test]
fn grants_without_a_round_trip_while_the_lease_lasts_and_asks_ahead() {
    let s = stage(100_000, |_| {});
    let mut st = s.new_state(0);
    let first = s.handled(&mut st, Record::Intent(intent("r0", "u0", 100)), 0);
    deliver(&s, first.emits());
    s.polled(&mut st, 0);
    // 25,000 leased: 250 grants of 100; the next lease is asked for once
    // less than half a lease is left, and no request ever parks.
    let mut asked = 0;
    for i in 1..300 {
        let step = s.handled(
            &mut st,
            Record::Intent(intent(&format!("r{i}"), &format!("u{i}"), 100)),
            0,
        );
        assert!(!step.is_parked(), "request {i} parked");
        asked += records(step.emits(), Topic::Treasury).len();
        deliver(&s, step.emits());
    }
    assert!(asked >= 1, "asked ahead");
    assert_eq!(st.fold.account("c").grants, 300);
}

#[test]
fn once_the_budget_is_leased_out_denials_need_no_round_trip() {
    let s = stage(150, |_| {});
    let mut st = s.new_state(0);
    let step = s.handled(&mut st, Record::Intent(intent("r1", "u1", 100)), 0);
    deliver(&s, step.emits());
    let (emits, finished) = s.polled(&mut st, 1).split();
    assert_eq!(outcome(&finished[0]).0, DecisionOutcome::Granted);
    // In the one-credit tail nothing is asked for ahead: a spare would sit
    // here while other partitions run dry.
    assert!(records(&finished[0], Topic::Treasury).is_empty());
    deliver(&s, &emits);
    // The next request waits for the last 50, and (a free-up-to credit)
    // takes it rather than leave it stranded.
    let step = s.handled(&mut st, Record::Intent(intent("r2", "u2", 100)), 2);
    assert!(step.is_parked());
    deliver(&s, step.emits());
    let (_, finished) = s.polled(&mut st, 3).split();
    assert_eq!(outcome(&finished[0]), (DecisionOutcome::Granted, 50, None));
    // Now the treasury shows everything leased out: denied at once.
    let step = s.handled(&mut st, Record::Intent(intent("r3", "u3", 10)), 4);
    assert!(!step.is_parked());
    assert!(records(step.emits(), Topic::Treasury).is_empty());
    assert_eq!(outcome(step.emits()).2.as_deref(), Some(BUDGET_EXHAUSTED));
}

#[test]
fn a_fixed_credit_campaign_is_denied_once_whole_credits_run_out() {
    let s = stage(250, |c| c.credit = CreditRule::FixedCents(100));
    let mut st = s.new_state(0);
    let mut granted = 0;
    for i in 0..5 {
        let step = s.handled(
            &mut st,
            Record::Intent(intent(&format!("r{i}"), &format!("u{i}"), 100)),
            i,
        );
        deliver(&s, step.emits());
        let mut emits = step.emits().to_vec();
        for f in s.polled(&mut st, i).split().1 {
            deliver(&s, &f);
            emits.extend(f);
        }
        if let Some(Record::Decision(d)) = records(&emits, Topic::Decisions)
            .into_iter()
            .find(|r| matches!(r, Record::Decision(_)))
        {
            granted += d.credit_cents;
            assert!(d.credit_cents == 0 || d.credit_cents == 100);
        }
    }
    // Two whole credits; the last 50 cannot make a third.
    assert_eq!(granted, 200);
}

#[test]
fn a_failed_order_releases_its_credit_once() {
    let s = stage(100, |_| {});
    let mut st = s.new_state(0);
    let step = s.handled(&mut st, Record::Intent(intent("r1", "u1", 100)), 0);
    deliver(&s, step.emits());
    s.polled(&mut st, 0);
    let failed = OrderEvent {
        reply_partition: None,
        order_id: "o".into(),
        request_id: "r1".into(),
        session_id: String::new(),
        user_id: "u1".into(),
        campaign_id: "c".into(),
        trace_id: String::new(),
        event_time_ms: 0,
        prompt_time_ms: 0,
        locale: "en".into(),
        outcome: OrderOutcome::Failed,
        items: vec![],
        total_cents: 100,
        credit_cents: 100,
        to_pay_cents: 0,
        reason: Some("out_of_stock".into()),
    };
    let step = s.handled(&mut st, Record::Order(failed.clone()), 1);
    assert_eq!(
        outcome(step.emits()),
        (DecisionOutcome::Released, 100, Some("out_of_stock".into()))
    );
    assert!(s.handled(&mut st, Record::Order(failed), 1).is_empty());
    // The credit and the user's eligibility are back.
    let step = s.handled(&mut st, Record::Intent(intent("r2", "u1", 100)), 2);
    assert_eq!(outcome(step.emits()).0, DecisionOutcome::Granted);
}

#[test]
fn near_the_end_an_idle_partition_returns_what_it_does_not_use() {
    let s = stage(10_000, |c| c.ends_at = Some("1970-01-01T00:10:00Z".into()));
    let mut st = s.new_state(0);
    let step = s.handled(&mut st, Record::Intent(intent("r1", "u1", 100)), 0);
    deliver(&s, step.emits());
    s.polled(&mut st, 1);
    assert!(
        s.polled(&mut st, 400_000).is_empty(),
        "not near the end yet"
    );
    let (emits, _) = s.polled(&mut st, 560_000).split();
    let returned = records(&emits, Topic::Decisions);
    assert!(
        matches!(&returned[..], [Record::Treasury(t)] if t.kind == TreasuryKind::LeaseReturn && t.amount == 2_400)
    );
    assert_eq!(st.fold.unused("c"), 0);
    assert!(
        s.polled(&mut st, 561_000).is_empty(),
        "nothing left to return"
    );
}

#[test]
fn requests_outside_the_campaign_window_are_not_active() {
    let s = stage(10_000, |c| {
        c.starts_at = Some("2030-01-01T00:00:00Z".into())
    });
    let mut st = s.new_state(0);
    let step = s.handled(&mut st, Record::Intent(intent("r1", "u1", 100)), 0);
    assert_eq!(
        outcome(step.emits()).2.as_deref(),
        Some(schemas::reason::CAMPAIGN_NOT_ACTIVE)
    );
}

#[test]
fn restore_reproduces_the_state_and_redelivery_is_recognised() {
    let s = stage(10_000, |_| {});
    let mut live = s.new_state(0);
    let mut log = Vec::new();
    for (i, u) in ["u1", "u2", "u1"].iter().enumerate() {
        let step = s.handled(
            &mut live,
            Record::Intent(intent(&format!("r{i}"), u, 100)),
            0,
        );
        deliver(&s, step.emits());
        log.extend(records(step.emits(), Topic::Decisions));
        log.extend(records(s.polled(&mut live, 0).emits(), Topic::Decisions));
    }
    let mut restored = s.new_state(0);
    for r in &log {
        s.restore(&mut restored, Restore::Output(r))
            .expect("a record folds");
    }
    assert_eq!(restored.fold.account("c"), live.fold.account("c"));
    assert_eq!(restored.fold.account("c").grants, 2);
    let again = s.handled(&mut restored, Record::Intent(intent("r1", "u2", 100)), 0);
    assert!(again.is_empty());
}
