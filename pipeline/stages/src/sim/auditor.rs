//! The auditor catches each kind of fault: every test starts from the logs
//! of an honest simulated run (releases, budget denials and all) and breaks
//! one promise.

use schemas::{DecisionOutcome, OrderOutcome, Record, ReplyOutcome, TreasuryKind};

use crate::Restore;
use crate::sim;
use ledger::audit::{AuditReport, Logs, audit};
use ledger::campaign::Campaigns;
use ledger::{Fault, with_fault};
use std::sync::Arc;

use crate::Topic;

/// A seed whose run has grants, releases after failed orders, denials for
/// budget and demand above the budget, with no zombies.
const SEED: u64 = 9;

fn honest() -> (Logs, Campaigns, i32) {
    sim::logs(SEED)
}

/// The first granted decision in the logs, and its partition.
fn first_grant(logs: &Logs) -> (i32, schemas::CouponDecision) {
    logs.decisions
        .iter()
        .find_map(|(p, r)| match r {
            Record::Decision(d) if d.outcome == DecisionOutcome::Granted => Some((*p, d.clone())),
            _ => None,
        })
        .expect("the run granted something")
}

fn failed(report: &AuditReport) -> Vec<&'static str> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect()
}

fn check(logs: &Logs, campaigns: &Campaigns, partitions: i32) -> Vec<&'static str> {
    failed(&audit(campaigns, partitions, logs))
}

#[test]
fn an_honest_run_is_clean_and_exercises_every_outcome() {
    let (logs, campaigns, partitions) = honest();
    let report = audit(&campaigns, partitions, &logs);
    assert!(report.clean(), "{report}");
    let outcomes: std::collections::HashSet<_> = logs.replies.iter().map(|r| r.outcome).collect();
    for o in [
        ReplyOutcome::OrderPlaced,
        ReplyOutcome::OrderFailed,
        ReplyOutcome::Denied,
        ReplyOutcome::Expired,
    ] {
        assert!(outcomes.contains(&o), "{o:?}");
    }
    let released = logs
        .decisions
        .iter()
        .any(|(_, r)| matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Released));
    assert!(released);
}

#[test]
fn an_order_without_a_valid_grant_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    let mut order = logs.orders().next().unwrap().clone();
    order.request_id = "no-such-grant".into();
    logs.order_log.push((0, Record::Order(order)));
    assert_eq!(
        check(&logs, &campaigns, partitions),
        ["orders backed by grants"]
    );
}

#[test]
fn a_lost_order_or_release_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    let placed = logs
        .order_log
        .iter()
        .position(|(_, r)| matches!(r, Record::Order(o) if o.outcome == OrderOutcome::Placed))
        .unwrap();
    logs.order_log.remove(placed);
    assert!(check(&logs, &campaigns, partitions).contains(&"grants settled once"));

    let (mut logs, campaigns, partitions) = honest();
    let release = logs
        .decisions
        .iter()
        .position(
            |(_, r)| matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Released),
        )
        .unwrap();
    logs.decisions.remove(release);
    assert!(check(&logs, &campaigns, partitions).contains(&"grants settled once"));
}

#[test]
fn missing_duplicate_and_contradicting_replies_are_caught() {
    let (mut missing, campaigns, partitions) = honest();
    missing.replies.pop();
    assert_eq!(
        check(&missing, &campaigns, partitions),
        ["one reply per request"]
    );

    let (mut duplicate, ..) = honest();
    let again = duplicate.replies[0].clone();
    duplicate.replies.push(again);
    assert_eq!(
        check(&duplicate, &campaigns, partitions),
        ["one reply per request"]
    );

    let (mut contradicting, ..) = honest();
    let placed = contradicting
        .replies
        .iter_mut()
        .find(|r| r.outcome == ReplyOutcome::OrderPlaced)
        .unwrap();
    placed.outcome = ReplyOutcome::Denied;
    assert_eq!(
        check(&contradicting, &campaigns, partitions),
        ["replies match outcomes"]
    );

    let (mut wrong_reason, ..) = honest();
    let denied = wrong_reason
        .replies
        .iter_mut()
        .find(|r| r.reason.as_deref() == Some(schemas::reason::BUDGET_EXHAUSTED))
        .unwrap();
    denied.reason = Some(schemas::reason::ALREADY_USED.into());
    assert_eq!(
        check(&wrong_reason, &campaigns, partitions),
        ["replies match outcomes"]
    );
}

#[test]
fn a_lost_prompt_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    logs.undecodable_prompts = 1;
    assert_eq!(
        check(&logs, &campaigns, partitions),
        ["prompts accounted for"]
    );
}

#[test]
fn a_lease_credit_or_return_the_other_log_does_not_back_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    let (p, credit) = logs
        .decisions
        .iter()
        .find_map(|(p, r)| match r {
            Record::Treasury(t) if t.kind == TreasuryKind::LeaseCredit => Some((*p, t.clone())),
            _ => None,
        })
        .unwrap();
    let mut forged = credit.clone();
    forged.request_id = "forged-lease".into();
    logs.decisions.push((p, Record::Treasury(forged)));
    assert!(check(&logs, &campaigns, partitions).contains(&"leases match the treasury"));

    let (mut logs, ..) = honest();
    let mut forged = credit;
    forged.kind = TreasuryKind::LeaseReturn;
    forged.request_id = "forged-return".into();
    logs.treasury.push(forged);
    assert!(check(&logs, &campaigns, partitions).contains(&"leases match the treasury"));
}

#[test]
fn a_fold_that_ignores_the_allowance_is_caught_as_overspending() {
    // Grants beyond the allowance written by a broken coupon stage and
    // counted by an equally broken fold: the auditor's own sums catch it.
    let (mut logs, campaigns, partitions) = honest();
    let (p, grant) = first_grant(&logs);
    for i in 0..3 {
        let mut extra = grant.clone();
        extra.request_id = format!("extra-{i}");
        extra.user_id = format!("extra-user-{i}");
        logs.decisions.push((p, Record::Decision(extra)));
    }
    let failed = with_fault(Fault::IgnoreAllowance, || {
        check(&logs, &campaigns, partitions)
    });
    assert!(failed.contains(&"budget"), "{failed:?}");
    // With the real fold the extra grants are simply invalid: no overspend,
    // and they have no orders, so nothing else fails but their replies.
    assert!(!check(&logs, &campaigns, partitions).contains(&"budget"));
}

#[test]
fn a_fold_that_ignores_the_per_user_limit_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    // Make room in the partition, then grant a user a second time.
    let (p, grant) = first_grant(&logs);
    let mut credit = logs
        .decisions
        .iter()
        .find_map(|(q, r)| match r {
            Record::Treasury(t) if *q == p && t.kind == TreasuryKind::LeaseCredit => {
                Some(t.clone())
            }
            _ => None,
        })
        .unwrap();
    credit.request_id = "room".into();
    logs.decisions.push((p, Record::Treasury(credit)));
    let mut again = grant;
    again.request_id = "second-free-order".into();
    logs.decisions.push((p, Record::Decision(again)));
    let failed = with_fault(Fault::IgnoreUserLimit, || {
        check(&logs, &campaigns, partitions)
    });
    assert!(failed.contains(&"per-user limit"), "{failed:?}");
}

#[test]
fn budget_left_ungranted_while_demand_was_denied_is_caught() {
    let (mut logs, campaigns, partitions) = honest();
    // Turn the last fifteen valid grants into budget denials (and drop
    // their orders, releases and replies): budget is left while people were
    // told it ran out. (Released grants count as granted, so the run's
    // grants add up to more than the budget; fifteen takes it below.)
    let granted: Vec<String> = logs
        .orders()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(15)
        .map(|o| o.request_id.clone())
        .collect();
    for (_, r) in logs.decisions.iter_mut() {
        if let Record::Decision(d) = r
            && granted.contains(&d.request_id)
            && d.outcome == DecisionOutcome::Granted
        {
            d.outcome = DecisionOutcome::Denied;
            d.credit_cents = 0;
            d.reason = Some(schemas::reason::BUDGET_EXHAUSTED.into());
        }
    }
    logs.decisions.retain(|(_, r)| {
        !matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Released && granted.contains(&d.request_id))
    });
    logs.order_log
        .retain(|(_, r)| !matches!(r, Record::Order(o) if granted.contains(&o.request_id)));
    for r in logs
        .replies
        .iter_mut()
        .filter(|r| granted.contains(&r.request_id))
    {
        r.outcome = ReplyOutcome::Denied;
        r.reason = Some(schemas::reason::BUDGET_EXHAUSTED.into());
    }
    assert_eq!(check(&logs, &campaigns, partitions), ["budget utilisation"]);
}

/// The "stock" check alone, over a campaign that limits lattes to 2 units
/// and logs where partition 0 leased both and orders from `order_log`.
fn stock_check(order_log: Vec<(i32, Record)>) -> ledger::audit::Check {
    use ledger::fixtures::{campaigns_stocked as campaigns, stock};
    let campaigns = campaigns(&[("latte", 2)]);
    let request = |id: &str| match stock(id, TreasuryKind::LeaseRequest, "latte", 0) {
        Record::Treasury(t) => t,
        _ => unreachable!(),
    };
    let logs = Logs {
        treasury: vec![request("s1"), request("s2")],
        order_log,
        ..Logs::default()
    };
    audit(&campaigns, 1, &logs)
        .checks
        .into_iter()
        .find(|c| c.name == "stock")
        .expect("a stock check")
}

#[test]
fn unbacked_stock_credits_are_caught() {
    use ledger::fixtures::{item, order, stock};
    let latte = || vec![item("latte", 1)];
    let mut log = vec![
        (0, stock("s1", TreasuryKind::LeaseCredit, "latte", 1)),
        (0, stock("s2", TreasuryKind::LeaseCredit, "latte", 1)),
        (0, order("r1", OrderOutcome::Placed, latte())),
        (0, order("r2", OrderOutcome::Placed, latte())),
        (0, order("r2", OrderOutcome::Placed, latte())),
        (0, order("r3", OrderOutcome::Failed, latte())),
    ];
    let clean = stock_check(log.clone());
    assert!(clean.ok, "{}", clean.detail);

    log.insert(0, (0, stock("s9", TreasuryKind::LeaseCredit, "latte", 5)));
    let caught = stock_check(log);
    assert!(
        caught.detail.contains("s9 not granted"),
        "{}",
        caught.detail
    );
}

/// Runs a fulfillment stage over one partition with lattes limited to 2
/// units, for three one-latte grants; returns the campaigns and the logs
/// it wrote (the decisions log holds the budget credit and the grants).
fn fulfil_three_lattes() -> (Arc<Campaigns>, Logs) {
    use crate::FulfillmentStage;
    use crate::Stage;
    use crate::leases::TreasuryView;
    use crate::stage::Calls;
    use extract::catalog::Catalog;
    use ledger::fixtures::movement;
    use ledger::fixtures::{campaigns_stocked as campaigns, item};

    let campaigns = campaigns(&[("latte", 2)]);
    let fold = ledger::TreasuryFold::new(Arc::clone(&campaigns), 1);
    let treasury = Arc::new(TreasuryView::new(fold));
    let s = FulfillmentStage::new(
        Arc::clone(&campaigns),
        Catalog::built_in(),
        Arc::clone(&treasury),
        1,
        0,
    );
    let mut st = s.new_state(0);
    let lease = movement("b", TreasuryKind::LeaseCredit, 1_000_000);
    s.restore(&mut st, Restore::Input(&lease))
        .expect("a record folds");
    let mut logs = Logs::default();
    logs.decisions.push((0, lease));
    let mut emitted = Vec::new();
    for i in 0..3 {
        let grant = Record::Decision(schemas::CouponDecision {
            reply_partition: None,
            deadline_ms: None,
            request_id: format!("r{i}"),
            session_id: String::new(),
            user_id: format!("u{i}"),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            prompt_time_ms: 0,
            locale: "en".into(),
            outcome: DecisionOutcome::Granted,
            items: vec![item("latte", 1)],
            total_cents: 1_000,
            credit_cents: 1_000,
            reason: None,
        });
        logs.decisions.push((0, grant.clone()));
        emitted.extend_from_slice(s.handled(&mut st, grant, 0).emits());
        // Let every lease request reach the treasury before the next poll.
        for _ in 0..3 {
            treasury.deliver(&emitted);
            logs.treasury.extend(treasury_records(&emitted));
            emitted.retain(|e| e.topic != Topic::Treasury);
            emitted.extend_from_slice(s.polled(&mut st, 1).emits());
        }
    }
    logs.order_log = emitted
        .into_iter()
        .filter(|e| e.topic == Topic::Orders)
        .map(|e| (0, e.record))
        .collect();
    (campaigns, logs)
}

fn treasury_records(emits: &[crate::Emit]) -> impl Iterator<Item = schemas::TreasuryRecord> + '_ {
    emits.iter().filter_map(|e| match &e.record {
        Record::Treasury(t) if e.topic == Topic::Treasury => Some(t.clone()),
        _ => None,
    })
}

/// Settles and answers `logs` as the pipeline does: the coupon stage's
/// release for each order failed as written, then the real reply stage
/// over the decisions and the orders, whose replies, releases and
/// forwarded returns join the logs.
fn settle_and_answer(campaigns: &Arc<Campaigns>, logs: &mut Logs) {
    use crate::stage::Calls;
    use crate::{ReplyStage, Stage};
    for (_, r) in &logs.order_log {
        if let Record::Order(o) = r
            && o.outcome == OrderOutcome::Failed
        {
            let release = ledger::fixtures::decision(
                &o.request_id,
                &o.user_id,
                DecisionOutcome::Released,
                o.credit_cents,
            );
            logs.decisions.push((0, release));
        }
    }
    let reply = ReplyStage::new(
        extract::catalog::Catalog::built_in(),
        crate::reply::Templates::built_in(),
        Arc::clone(campaigns),
    );
    let mut st = reply.new_state(0);
    let inputs: Vec<Record> = logs
        .decisions
        .iter()
        .chain(&logs.order_log)
        .map(|(_, r)| r.clone())
        .collect();
    for record in inputs {
        for emit in reply.handled(&mut st, record, 0).into_emits() {
            match (emit.topic, emit.record) {
                (Topic::Replies, Record::Reply(r)) => logs.replies.push(r),
                (Topic::Decisions, d) => logs.decisions.push((0, d)),
                (Topic::Treasury, Record::Treasury(t)) => logs.treasury.push(t),
                _ => {}
            }
        }
    }
}

/// The details of the checks among `names` that failed.
fn failing(campaigns: &Campaigns, logs: &Logs, names: &[&str]) -> Vec<String> {
    audit(campaigns, 1, logs)
        .checks
        .into_iter()
        .filter(|c| names.contains(&c.name) && !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

const SETTLED: [&str; 3] = ["grants settled once", "replies match outcomes", "stock"];

#[test]
fn an_order_beyond_its_partitions_stock_is_answered_failed_and_its_credit_released() {
    let (campaigns, mut honest) = fulfil_three_lattes();
    settle_and_answer(&campaigns, &mut honest);
    assert_eq!(failing(&campaigns, &honest, &SETTLED), Vec::<String>::new());
    let outcomes: Vec<ReplyOutcome> = honest.replies.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            ReplyOutcome::OrderPlaced,
            ReplyOutcome::OrderPlaced,
            ReplyOutcome::OrderFailed
        ]
    );

    // A fulfillment that ignores stock (as a zombie with a stale view
    // does) places all three orders beyond its partition's stock.
    let (campaigns, mut zombie) = with_fault(Fault::IgnoreStock, fulfil_three_lattes);
    settle_and_answer(&campaigns, &mut zombie);
    assert_eq!(failing(&campaigns, &zombie, &SETTLED), Vec::<String>::new());
    let refused = zombie
        .replies
        .iter()
        .filter(|r| {
            r.outcome == ReplyOutcome::OrderFailed && r.reason.as_deref() == Some("out_of_stock")
        })
        .count();
    assert!(refused >= 1, "{:?}", zombie.replies);
    let report = audit(&campaigns, 1, &zombie);
    assert!(
        report
            .figures
            .iter()
            .any(|(_, line)| line.contains("beyond their partition's stock")),
        "{report}"
    );

    // Had the reply stage not released their credit, or answered them as
    // placed, the audit says so.
    let mut unreleased = zombie.clone();
    unreleased.decisions.retain(
        |(_, r)| !matches!(r, Record::Decision(d) if d.reason.as_deref() == Some("out_of_stock")),
    );
    let caught = failing(&campaigns, &unreleased, &SETTLED);
    assert!(
        caught.iter().any(|c| c.starts_with("grants settled once")),
        "{caught:?}"
    );
    let mut as_placed = zombie;
    for r in &mut as_placed.replies {
        r.outcome = ReplyOutcome::OrderPlaced;
    }
    let caught = failing(&campaigns, &as_placed, &SETTLED);
    assert!(
        caught
            .iter()
            .any(|c| c.starts_with("replies match outcomes")),
        "{caught:?}"
    );
}
