//! The auditor's checks: pure functions of the logs, each promise one check.
//! Validity comes from the ledger's folds, folded here exactly as the stages
//! fold them, so the auditor and the stages cannot disagree about what
//! counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use schemas::reason::EXPIRED;
use schemas::{IntentOutcome, Record, ReplyOutcome};

use super::orders::{check_stock, fold_orders};
use super::{AuditReport, Check, Logs, check};
use crate::campaign::{Campaigns, yuan};
use crate::{DecisionsFold, Effect, OrderStatus, TreasuryEffect, TreasuryFold};

/// A valid grant, as the decisions fold saw it.
struct Granted<'a> {
    campaign: &'a str,
    user: &'a str,
    credit: i64,
}

/// Everything the folds say about the logs.
#[derive(Default)]
struct Folded<'a> {
    grants: HashMap<&'a str, Granted<'a>>,
    releases: HashMap<&'a str, u32>,
    /// Requests whose decision counts as a denial, with the reason.
    denied: HashMap<&'a str, String>,
    /// `(partition, campaign, lease id, amount)` of every lease credit.
    credits: Vec<(i32, &'a str, &'a str, i64)>,
    /// Return id → `(partition, campaign, amount)`, decisions side.
    returns: HashMap<&'a str, (i32, &'a str, i64)>,
    folds: BTreeMap<i32, DecisionsFold>,
}

fn fold_decisions<'a>(campaigns: &Arc<Campaigns>, logs: &'a Logs) -> Folded<'a> {
    let mut f = Folded::default();
    for (partition, record) in &logs.decisions {
        let fold = f
            .folds
            .entry(*partition)
            .or_insert_with(|| DecisionsFold::new(Arc::clone(campaigns)));
        match (fold.apply(record), record) {
            (Effect::Granted(credit), Record::Decision(d)) => {
                f.grants.insert(
                    &d.request_id,
                    Granted {
                        campaign: &d.campaign_id,
                        user: &d.user_id,
                        credit,
                    },
                );
            }
            (Effect::Denied(refused), Record::Decision(d)) => {
                let reason = refused.map(str::to_owned).or_else(|| d.reason.clone());
                f.denied.insert(&d.request_id, reason.unwrap_or_default());
            }
            (Effect::Released(_), Record::Decision(d)) => {
                *f.releases.entry(&d.request_id).or_default() += 1;
            }
            (Effect::Credited(amount), Record::Treasury(t)) => {
                f.credits
                    .push((*partition, &t.campaign_id, &t.request_id, amount));
            }
            (Effect::Returned(amount), Record::Treasury(t)) => {
                f.returns
                    .insert(&t.request_id, (*partition, &t.campaign_id, amount));
            }
            _ => {}
        }
    }
    f
}

/// Checks every promise over `logs`, for a pipeline of `partitions`
/// partitions running `campaigns`.
pub fn audit(campaigns: &Campaigns, partitions: i32, logs: &Logs) -> AuditReport {
    let campaigns = Arc::new(campaigns.clone());
    let mut treasury = TreasuryFold::new(Arc::clone(&campaigns), partitions);
    let mut treasury_returns: Vec<(&str, i32, i64)> = Vec::new();
    for t in &logs.treasury {
        if let TreasuryEffect::Returned(amount) = treasury.apply(t) {
            treasury_returns.push((&t.request_id, t.partition, amount));
        }
    }
    let f = fold_decisions(&campaigns, logs);
    let o = fold_orders(&campaigns, logs);
    let mut checks = Vec::new();
    let mut figures = Vec::new();

    // 1. Never overspend: grants within each partition's allowance (the
    // fold's own invariant), allowances within what the treasury leased
    // each partition, and leases within the budget.
    let mut over: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    for c in campaigns.iter() {
        let Some(t) = treasury.account(&c.id) else {
            continue;
        };
        let (mut granted, mut allowance) = (0, 0);
        for (p, fold) in &f.folds {
            let a = fold.account(&c.id);
            granted += a.granted;
            allowance += a.allowance;
            if a.granted > a.allowance || a.allowance > t.held_by(*p) {
                over.push(format!("{}[{p}]", c.id));
            }
        }
        if granted > c.budget_cents || t.leased - t.returned > c.budget_cents {
            over.push(c.id.clone());
        }
        lines.push(format!(
            "{}: granted {} ≤ allowances {} ≤ leased {} ≤ budget {}",
            c.id,
            yuan(granted),
            yuan(allowance),
            yuan(t.leased - t.returned),
            yuan(c.budget_cents)
        ));
    }
    let over_refs: Vec<&str> = over.iter().map(String::as_str).collect();
    checks.push(check(
        "budget",
        &over_refs,
        lines.join("; "),
        "overspent campaigns or partitions",
    ));

    // 2. Every lease credited in a partition was granted to it by the
    // treasury, with the same amount; every return the treasury took was a
    // valid return in that partition.
    let mut leased: HashMap<(&str, &str), (i32, i64)> = HashMap::new();
    for c in campaigns.iter() {
        if let Some(t) = treasury.account(&c.id) {
            for p in 0..partitions {
                for (id, amount) in t.leases(p) {
                    leased.insert((c.id.as_str(), id.as_str()), (p, *amount));
                }
            }
        }
    }
    let mut unbacked: Vec<&str> = f
        .credits
        .iter()
        .filter(|(p, c, id, amount)| leased.get(&(*c, *id)) != Some(&(*p, *amount)))
        .map(|(_, _, id, _)| *id)
        .collect();
    // A budget return was accepted in a decisions partition, a stock
    // return in an orders partition.
    let accepted = |id: &str| {
        f.returns
            .get(id)
            .map(|(p, _, amount)| (*p, *amount))
            .or_else(|| o.returns.get(id).copied())
    };
    unbacked.extend(
        treasury_returns
            .iter()
            .filter(|(id, p, amount)| accepted(id) != Some((*p, *amount)))
            .map(|(id, _, _)| *id),
    );
    checks.push(check(
        "leases match the treasury",
        &unbacked,
        format!(
            "{} leases credited, {} returns taken back",
            f.credits.len(),
            treasury_returns.len()
        ),
        "credits or returns the other log does not back",
    ));
    let forwarded: HashSet<&str> = treasury_returns.iter().map(|(id, _, _)| *id).collect();
    let stuck: Vec<&str> = f
        .returns
        .keys()
        .chain(o.returns.keys())
        .filter(|id| !forwarded.contains(*id))
        .copied()
        .collect();
    checks.push(check(
        "returns reached the treasury",
        &stuck,
        format!(
            "{} returns of budget, {} of stock",
            f.returns.len(),
            o.returns.len()
        ),
        "returns not forwarded to the treasury",
    ));

    // 3. Per-user limit, over every partition.
    let mut per_user: HashMap<(&str, &str), i64> = HashMap::new();
    for (request, g) in &f.grants {
        let released = i64::from(f.releases.get(request).copied().unwrap_or(0));
        *per_user.entry((g.campaign, g.user)).or_default() += 1 - released;
    }
    let over_limit: Vec<&str> = per_user
        .iter()
        .filter(|((c, _), n)| {
            let limit = campaigns.get(c).map_or(0, |c| c.per_user_limit);
            **n > i64::from(limit)
        })
        .map(|((_, user), _)| *user)
        .collect();
    checks.push(check(
        "per-user limit",
        &over_limit,
        format!(
            "{} users with credit, none above their limit",
            per_user.len()
        ),
        "users above the limit",
    ));

    // 4. Every valid grant has exactly one order (its first order record,
    // as the stock fold decides it), and a failed order exactly one
    // release; no order without a valid grant.
    let mut expired: HashSet<&str> = HashSet::new();
    for order in logs.orders() {
        if order.reason.as_deref() == Some(EXPIRED) {
            expired.insert(&order.request_id);
        }
    }
    let unsettled: Vec<&str> = f
        .grants
        .keys()
        .filter(|r| {
            let released = f.releases.get(*r).copied().unwrap_or(0);
            !matches!(
                (o.status.get(*r), released),
                (Some(OrderStatus::Placed), 0) | (Some(OrderStatus::Failed), 1)
            )
        })
        .copied()
        .collect();
    checks.push(check(
        "grants settled once",
        &unsettled,
        format!(
            "{} valid grants: each one order, {} released after a failed order",
            f.grants.len(),
            f.releases.len()
        ),
        "valid grants without exactly one order (and one release if it failed)",
    ));
    let orphans: Vec<&str> = o
        .status
        .keys()
        .filter(|r| !f.grants.contains_key(*r))
        .copied()
        .collect();
    checks.push(check(
        "orders backed by grants",
        &orphans,
        format!("{} orders, each for a valid grant", o.status.len()),
        "orders without a valid grant",
    ));

    // 5. Exactly one final reply per request, and none for unknown requests.
    let requests: HashSet<&str> = logs.prompts.iter().map(|p| p.request_id.as_str()).collect();
    let mut replies: HashMap<&str, u32> = HashMap::new();
    for r in &logs.replies {
        *replies.entry(&r.request_id).or_default() += 1;
    }
    let mut wrong_count: Vec<&str> = requests
        .iter()
        .filter(|r| replies.get(*r).copied().unwrap_or(0) != 1)
        .copied()
        .collect();
    wrong_count.extend(replies.keys().filter(|r| !requests.contains(*r)).copied());
    wrong_count.sort_unstable();
    checks.push(check(
        "one reply per request",
        &wrong_count,
        format!(
            "{} requests, {} replies",
            requests.len(),
            logs.replies.len()
        ),
        "requests without exactly one reply (or replies for unknown requests)",
    ));

    // 6. Each reply says what the log decided.
    let rejected: HashSet<&str> = logs
        .intents
        .iter()
        .filter(|i| i.outcome == IntentOutcome::Rejected)
        .map(|i| i.request_id.as_str())
        .collect();
    // Whichever stage ended a request as expired, its reply says so.
    expired.extend(
        logs.intents
            .iter()
            .filter(|i| i.reason.as_deref() == Some(EXPIRED))
            .map(|i| i.request_id.as_str()),
    );
    expired.extend(
        f.denied
            .iter()
            .filter(|(_, reason)| reason.as_str() == EXPIRED)
            .map(|(id, _)| *id),
    );
    let mismatched: Vec<&str> = logs
        .replies
        .iter()
        .filter(|r| {
            let id = r.request_id.as_str();
            let expected = if expired.contains(id) {
                Some((ReplyOutcome::Expired, Some(EXPIRED)))
            } else if rejected.contains(id) {
                Some((ReplyOutcome::Rejected, None))
            } else if let Some(status) = o.status.get(id) {
                Some(match status {
                    OrderStatus::Placed => (ReplyOutcome::OrderPlaced, None),
                    OrderStatus::Failed => (ReplyOutcome::OrderFailed, None),
                })
            } else {
                f.denied
                    .get(id)
                    .map(|reason| (ReplyOutcome::Denied, Some(reason.as_str())))
            };
            match expected {
                Some((outcome, Some(reason))) => {
                    (r.outcome, r.reason.as_deref()) != (outcome, Some(reason))
                }
                Some((outcome, None)) => r.outcome != outcome,
                None => true,
            }
        })
        .map(|r| r.request_id.as_str())
        .collect();
    checks.push(check(
        "replies match outcomes",
        &mismatched,
        "every reply matches the request's outcome in the log".to_owned(),
        "replies that contradict the log",
    ));

    // 7. Nothing lost: every prompt record is a request or a dead letter.
    let prompt_records = logs.prompts.len() as u64 + logs.undecodable_prompts;
    checks.push(Check {
        name: "prompts accounted for",
        ok: logs.undecodable_prompts <= logs.dead_letters,
        detail: format!(
            "{prompt_records} prompt records: {} requests, {} undecodable, {} dead letters",
            requests.len(),
            logs.undecodable_prompts,
            logs.dead_letters
        ),
    });

    // 8. Not stranded: a campaign whose demand exceeded its budget and that
    // denied anyone for budget granted all of it but 0.01% (or one order's
    // credit, if that is more).
    let campaign_of: HashMap<&str, &str> = logs
        .intents
        .iter()
        .map(|i| (i.request_id.as_str(), i.campaign_id.as_str()))
        .collect();
    // Demand: what the campaign would have granted every request, counting
    // each request once and each user at most up to the per-user limit. A
    // request that expired before its decision asked for nothing.
    let mut demand: HashMap<&str, i64> = HashMap::new();
    let mut asked: HashMap<(&str, &str), u32> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for i in &logs.intents {
        let withdrawn = f.denied.get(i.request_id.as_str()).map(String::as_str) == Some(EXPIRED);
        if i.outcome != IntentOutcome::Extracted || withdrawn || !seen.insert(&i.request_id) {
            continue;
        }
        let (Some(c), crate::campaign::Offer::Credit(credit)) =
            (campaigns.get(&i.campaign_id), campaigns.offer(i))
        else {
            continue;
        };
        let n = asked.entry((&c.id, &i.user_id)).or_default();
        if *n < c.per_user_limit {
            *n += 1;
            *demand.entry(&c.id).or_default() += credit;
        }
    }
    let mut short = Vec::new();
    let mut lines = Vec::new();
    for c in campaigns.iter() {
        let gross: i64 = f
            .grants
            .values()
            .filter(|g| g.campaign == c.id)
            .map(|g| g.credit)
            .sum();
        let denied = f
            .denied
            .iter()
            .filter(|(r, reason)| {
                reason.as_str() == schemas::reason::BUDGET_EXHAUSTED
                    && campaign_of.get(*r) == Some(&c.id.as_str())
            })
            .count();
        let slack = (c.budget_cents / 10_000).max(c.credit.unit_cents());
        let wanted = demand.get(c.id.as_str()).copied().unwrap_or(0);
        if denied > 0 && wanted > c.budget_cents && gross < c.budget_cents - slack {
            short.push(c.id.as_str());
        }
        let used = 100.0 * gross as f64 / c.budget_cents.max(1) as f64;
        lines.push(format!(
            "{}: {used:.3}% granted, demand {}, {denied} denied for budget",
            c.id,
            yuan(wanted)
        ));
    }
    checks.push(check(
        "budget utilisation",
        &short,
        lines.join("; "),
        "campaigns whose demand exceeded the budget that denied for budget with more than 0.01% (or one credit) not granted",
    ));

    let (stock, stock_lines) = check_stock(&campaigns, &treasury, &o);
    checks.push(stock);

    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for r in &logs.replies {
        let key = match &r.reason {
            Some(reason) => format!("{:?}: {reason}", r.outcome),
            None => format!("{:?}", r.outcome),
        };
        *by_outcome.entry(key).or_default() += 1;
    }
    figures.push(("valid grants", f.grants.len().to_string()));
    figures.push(("lease credits", f.credits.len().to_string()));
    for line in stock_lines {
        figures.push(("stock", line));
    }
    for (outcome, n) in by_outcome {
        figures.push(("replies", format!("{n:>8}  {outcome}")));
    }
    let totals = super::totals::totals(
        &campaigns,
        logs,
        f.grants.values().map(|g| (g.campaign, g.credit)),
    );
    AuditReport {
        checks,
        figures,
        totals,
    }
}
