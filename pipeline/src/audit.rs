//! The auditor: re-folds the topics from the beginning and checks every
//! promise the pipeline makes. [`audit`] is pure (it checks records already
//! read); [`run`] reads them from Kafka first. The integration and fault
//! tests end with it, and `chatcart audit` runs it against a live pipeline.
//!
//! Grant validity comes from the same [`DecisionsFold`] the coupon stage
//! uses, folded over each decisions partition in log order, so the auditor
//! and the stage cannot disagree about which grants count.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use connectors::kafka::read_partitions;
use rdkafka::message::Message;
use schemas::{
    CouponDecision, DecisionOutcome, IntentEvent, IntentOutcome, OrderEvent, OrderOutcome, Prompt,
    Record, Reply, ReplyOutcome,
};

use crate::app;
use crate::config::{CampaignConfig, Settings};
use crate::ledger::{self, DecisionsFold};
use crate::topics::{Topic, TopicNames};

/// Every record of the pipeline's topics, each partition in log order.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub prompts: Vec<Prompt>,
    /// Records on `chat.prompts` that could not be decoded.
    pub undecodable_prompts: u64,
    pub dead_letters: u64,
    pub intents: Vec<IntentEvent>,
    /// `(partition, decision)`, in log order within each partition.
    pub decisions: Vec<(i32, CouponDecision)>,
    pub orders: Vec<OrderEvent>,
    pub replies: Vec<Reply>,
}

/// One checked promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, with examples when the check fails.
    pub detail: String,
}

/// What the auditor found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Figures worth seeing next to the checks (not pass/fail).
    pub figures: Vec<(&'static str, String)>,
}

impl Report {
    /// Whether every check passed.
    pub fn clean(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Up to three examples, for a failing check's detail.
fn examples<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.into_iter().collect();
    let shown: Vec<&str> = all.iter().take(3).copied().collect();
    if all.len() > shown.len() {
        format!(
            "{} (and {} more)",
            shown.join(", "),
            all.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

fn check(name: &'static str, bad: &[&str], ok_detail: String, what: &str) -> Check {
    if bad.is_empty() {
        Check {
            name,
            ok: true,
            detail: ok_detail,
        }
    } else {
        Check {
            name,
            ok: false,
            detail: format!("{} {what}: {}", bad.len(), examples(bad.iter().copied())),
        }
    }
}

/// Checks the promises over `logs`, for a pipeline of `partitions`
/// partitions running `campaign`.
pub fn audit(campaign: &CampaignConfig, partitions: i32, logs: &Logs) -> Report {
    // Valid grants, by folding every decisions partition in log order.
    let mut folds: HashMap<i32, DecisionsFold> = HashMap::new();
    let mut valid: HashMap<&str, &CouponDecision> = HashMap::new();
    let mut first_decision: HashMap<&str, DecisionOutcome> = HashMap::new();
    for (partition, d) in &logs.decisions {
        let fold = folds.entry(*partition).or_insert_with(|| {
            let allowance = ledger::allowance(campaign.budget_cents, partitions, *partition);
            DecisionsFold::new(allowance, campaign.per_user_limit)
        });
        first_decision
            .entry(d.request_id.as_str())
            .or_insert(d.outcome);
        if fold.apply(d) {
            valid.insert(d.request_id.as_str(), d);
        }
    }
    let granted: i64 = valid.values().map(|d| d.credit_cents).sum();
    let mut grants_per_user: HashMap<(&str, &str), u32> = HashMap::new();
    for d in valid.values() {
        *grants_per_user
            .entry((d.campaign_id.as_str(), d.user_id.as_str()))
            .or_default() += 1;
    }

    let requests: HashSet<&str> = logs.prompts.iter().map(|p| p.request_id.as_str()).collect();
    let mut checks = Vec::new();

    // 1. Never overspend.
    checks.push(Check {
        name: "budget",
        ok: granted <= campaign.budget_cents,
        detail: format!(
            "valid grants ¥{:.2} of ¥{:.2}",
            granted as f64 / 100.0,
            campaign.budget_cents as f64 / 100.0
        ),
    });

    // 2. Per-user limit, over every partition.
    let over: Vec<&str> = grants_per_user
        .iter()
        .filter(|(_, n)| **n > campaign.per_user_limit)
        .map(|((_, user), _)| *user)
        .collect();
    checks.push(check(
        "per-user limit",
        &over,
        format!(
            "{} users with credit, none above {}",
            grants_per_user.len(),
            campaign.per_user_limit
        ),
        "users above the limit",
    ));

    // 3. Every valid grant has exactly one order; no order without one.
    let mut orders_per_request: HashMap<&str, u32> = HashMap::new();
    for o in &logs.orders {
        *orders_per_request.entry(o.request_id.as_str()).or_default() += 1;
    }
    let unordered: Vec<&str> = valid
        .keys()
        .filter(|r| orders_per_request.get(*r).copied().unwrap_or(0) != 1)
        .copied()
        .collect();
    checks.push(check(
        "grants ordered once",
        &unordered,
        format!("{} valid grants, each with one order", valid.len()),
        "valid grants without exactly one order",
    ));
    let unbacked: Vec<&str> = orders_per_request
        .keys()
        .filter(|r| !valid.contains_key(*r))
        .copied()
        .collect();
    checks.push(check(
        "orders backed by grants",
        &unbacked,
        format!(
            "{} orders, each for a valid grant",
            orders_per_request.len()
        ),
        "orders without a valid grant",
    ));

    // 4. Exactly one final reply per request, and none for unknown requests.
    let mut replies_per_request: HashMap<&str, u32> = HashMap::new();
    for r in &logs.replies {
        *replies_per_request
            .entry(r.request_id.as_str())
            .or_default() += 1;
    }
    let mut wrong_count: Vec<&str> = requests
        .iter()
        .filter(|r| replies_per_request.get(*r).copied().unwrap_or(0) != 1)
        .copied()
        .collect();
    wrong_count.extend(
        replies_per_request
            .keys()
            .filter(|r| !requests.contains(*r))
            .copied(),
    );
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

    // 5. Each reply says what the ledger decided.
    let rejected: HashSet<&str> = logs
        .intents
        .iter()
        .filter(|i| i.outcome == IntentOutcome::Rejected)
        .map(|i| i.request_id.as_str())
        .collect();
    let placed: HashSet<&str> = logs
        .orders
        .iter()
        .filter(|o| o.outcome == OrderOutcome::Placed)
        .map(|o| o.request_id.as_str())
        .collect();
    let mismatched: Vec<&str> = logs
        .replies
        .iter()
        .filter(|r| {
            let id = r.request_id.as_str();
            let expected = if rejected.contains(id) {
                Some(ReplyOutcome::Rejected)
            } else if placed.contains(id) {
                Some(ReplyOutcome::OrderPlaced)
            } else if first_decision.get(id) == Some(&DecisionOutcome::Denied) {
                Some(ReplyOutcome::Denied)
            } else {
                None
            };
            expected != Some(r.outcome)
        })
        .map(|r| r.request_id.as_str())
        .collect();
    checks.push(check(
        "replies match outcomes",
        &mismatched,
        "every reply matches the request's outcome".to_owned(),
        "replies that contradict the log",
    ));

    // 6. Nothing lost: every prompt record is a request or a dead letter.
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

    let exhausted = logs
        .replies
        .iter()
        .filter(|r| r.reason.as_deref() == Some(ledger::BUDGET_EXHAUSTED))
        .count();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for r in &logs.replies {
        let key = match &r.reason {
            Some(reason) => format!("{:?}: {reason}", r.outcome),
            None => format!("{:?}", r.outcome),
        };
        *by_outcome.entry(key).or_default() += 1;
    }
    let mut figures = vec![
        (
            "budget used",
            format!(
                "{:.2}% ({} requests denied for budget)",
                100.0 * granted as f64 / campaign.budget_cents.max(1) as f64,
                exhausted
            ),
        ),
        ("valid grants", valid.len().to_string()),
    ];
    for (outcome, n) in by_outcome {
        figures.push(("replies", format!("{n:>8}  {outcome}")));
    }
    Report { checks, figures }
}

/// Reads every topic from the beginning and audits it.
pub async fn run(settings: &Settings, timeout: Duration) -> anyhow::Result<Report> {
    let settings_c = settings.clone();
    let codec = app::codec(settings)?;
    let logs =
        tokio::task::spawn_blocking(move || read_logs(&settings_c, &codec, timeout)).await??;
    Ok(audit(&settings.campaign, settings.kafka.partitions, &logs))
}

fn read_logs(
    settings: &Settings,
    codec: &schemas::Codec,
    timeout: Duration,
) -> anyhow::Result<Logs> {
    let topics = TopicNames::new(&settings.kafka);
    let mut logs = Logs::default();
    for topic in [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Dlq,
    ] {
        let partitions: Vec<i32> = (0..topic.partitions(settings.kafka.partitions)).collect();
        // One consumer interleaves partitions but keeps each partition in
        // log order, which is all the per-partition folds need.
        read_partitions(
            &settings.kafka,
            topics.name(topic),
            &partitions,
            timeout,
            |m| {
                let payload = m.payload().unwrap_or_default();
                let record = match topic {
                    Topic::Dlq => {
                        logs.dead_letters += 1;
                        return;
                    }
                    Topic::Prompts => codec.decode_prompt(payload).ok().map(Record::Prompt),
                    _ => codec.decode(payload).ok(),
                };
                match record {
                    None if topic == Topic::Prompts => logs.undecodable_prompts += 1,
                    Some(Record::Prompt(r)) => logs.prompts.push(r),
                    Some(Record::Intent(r)) => logs.intents.push(r),
                    Some(Record::Decision(r)) => logs.decisions.push((m.partition(), r)),
                    Some(Record::Order(r)) => logs.orders.push(r),
                    Some(Record::Reply(r)) => logs.replies.push(r),
                    _ => {}
                }
            },
        )?;
    }
    Ok(logs)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chatcart audit")?;
        for c in &self.checks {
            let status = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "  {status}  {:<24} {}", c.name, c.detail)?;
        }
        for (name, value) in &self.figures {
            writeln!(f, "        {name:<24} {value}")?;
        }
        let verdict = if self.clean() {
            "clean"
        } else {
            "VIOLATIONS FOUND"
        };
        write!(f, "  {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::catalog::Catalog;
    use crate::runtime::Stage;
    use crate::stages::reply::Templates;
    use crate::stages::{CouponStage, FulfillmentStage, IntentStage, ReplyStage};

    fn campaign() -> CampaignConfig {
        CampaignConfig {
            budget_cents: 100 * 2_000,
            ..CampaignConfig::default()
        }
    }

    /// Runs prompts through the real stages' handlers, on one partition,
    /// and returns the topics they wrote.
    fn pipeline(prompts: &[Prompt]) -> Logs {
        let campaign = campaign();
        let intent = IntentStage::new(Catalog::built_in(), 50, campaign.id.clone());
        let coupon = CouponStage::new(campaign, 1);
        let reply = ReplyStage::new(Catalog::built_in(), Templates::built_in());
        let (mut fold, mut placed, mut answered) = (
            coupon.new_state(0),
            FulfillmentStage.new_state(0),
            reply.new_state(0),
        );
        let mut logs = Logs::default();
        let mut queue: VecDeque<Record> = prompts.iter().cloned().map(Record::Prompt).collect();
        while let Some(record) = queue.pop_front() {
            let mut out = Vec::new();
            match &record {
                Record::Prompt(p) => {
                    logs.prompts.push(p.clone());
                    out.extend(intent.handle(&mut (), record.clone(), 1));
                }
                Record::Intent(i) => {
                    logs.intents.push(i.clone());
                    out.extend(coupon.handle(&mut fold, record.clone(), 2));
                    out.extend(reply.handle(&mut answered, record.clone(), 2));
                }
                Record::Decision(d) => {
                    logs.decisions.push((0, d.clone()));
                    out.extend(FulfillmentStage.handle(&mut placed, record.clone(), 3));
                    out.extend(reply.handle(&mut answered, record.clone(), 3));
                }
                Record::Order(o) => {
                    logs.orders.push(o.clone());
                    out.extend(reply.handle(&mut answered, record.clone(), 4));
                }
                Record::Reply(r) => logs.replies.push(r.clone()),
                Record::Treasury(_) => {}
            }
            queue.extend(out.into_iter().map(|e| e.record));
        }
        logs
    }

    fn failed(report: &Report) -> Vec<&'static str> {
        report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    fn clean_logs() -> Logs {
        pipeline(&crate::demo::prompts(600, 3))
    }

    #[test]
    fn an_honest_run_is_clean() {
        let logs = clean_logs();
        let report = audit(&campaign(), 1, &logs);
        assert!(report.clean(), "{report}");
        // The run exercised every kind of answer, and ran out of budget.
        let outcomes: HashSet<_> = logs.replies.iter().map(|r| r.outcome).collect();
        assert!(outcomes.contains(&ReplyOutcome::OrderPlaced));
        assert!(outcomes.contains(&ReplyOutcome::Denied));
        assert!(outcomes.contains(&ReplyOutcome::Rejected));
        assert!(
            logs.replies
                .iter()
                .any(|r| r.reason.as_deref() == Some(ledger::BUDGET_EXHAUSTED))
        );
    }

    #[test]
    fn a_zombie_grant_turned_into_an_order_is_caught() {
        let mut logs = clean_logs();
        // A stale writer grants a second free order to someone who has one,
        // and fulfillment (which does not fold yet) places it.
        let (_, first) = logs
            .decisions
            .iter()
            .find(|(_, d)| d.outcome == DecisionOutcome::Granted)
            .cloned()
            .unwrap();
        let mut zombie = first.clone();
        zombie.request_id = "zombie-1".into();
        logs.decisions.push((0, zombie.clone()));
        let mut order = logs
            .orders
            .iter()
            .find(|o| o.request_id == first.request_id)
            .cloned()
            .unwrap();
        order.request_id = "zombie-1".into();
        logs.orders.push(order);
        let report = audit(&campaign(), 1, &logs);
        assert!(
            failed(&report).contains(&"orders backed by grants"),
            "{report}"
        );
    }

    #[test]
    fn missing_duplicate_and_contradicting_replies_are_caught() {
        let mut missing = clean_logs();
        missing.replies.pop();
        assert_eq!(
            failed(&audit(&campaign(), 1, &missing)),
            ["one reply per request"]
        );

        let mut duplicate = clean_logs();
        let again = duplicate.replies[0].clone();
        duplicate.replies.push(again);
        assert_eq!(
            failed(&audit(&campaign(), 1, &duplicate)),
            ["one reply per request"]
        );

        let mut contradicting = clean_logs();
        let placed = contradicting
            .replies
            .iter_mut()
            .find(|r| r.outcome == ReplyOutcome::OrderPlaced)
            .unwrap();
        placed.outcome = ReplyOutcome::Denied;
        assert_eq!(
            failed(&audit(&campaign(), 1, &contradicting)),
            ["replies match outcomes"]
        );
    }

    #[test]
    fn a_lost_order_and_a_lost_prompt_are_caught() {
        let mut lost_order = clean_logs();
        lost_order.orders.remove(0);
        assert!(failed(&audit(&campaign(), 1, &lost_order)).contains(&"grants ordered once"));

        let mut lost_prompt = clean_logs();
        lost_prompt.undecodable_prompts = 1;
        assert_eq!(
            failed(&audit(&campaign(), 1, &lost_prompt)),
            ["prompts accounted for"]
        );
    }

    #[test]
    fn more_grants_than_the_budget_allows_are_not_counted() {
        // Audited against half the budget the decisions were made with, the
        // later grants fall outside the allowance: they are invalid, so their
        // orders are unbacked, and the budget itself is never exceeded.
        let logs = clean_logs();
        let mut half = campaign();
        half.budget_cents /= 2;
        let report = audit(&half, 1, &logs);
        assert!(
            report.checks.iter().any(|c| c.name == "budget" && c.ok),
            "{report}"
        );
        assert!(
            failed(&report).contains(&"orders backed by grants"),
            "{report}"
        );
    }
}
