//! The audit's figures per campaign, counted the way the analytics views
//! count them (each request once per step), so a test can hold the views to
//! the auditor's numbers. Grants come from the decisions fold: only grants
//! the ledger accepts count.

use std::collections::{BTreeMap, HashSet};

use schemas::{DecisionOutcome, IntentOutcome, OrderOutcome, Record, code};

use super::Logs;
use crate::campaign::Campaigns;

/// One campaign's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub prompts: u64,
    pub intents_extracted: u64,
    pub intents_rejected: u64,
    pub grants: u64,
    pub credit_granted_cents: i64,
    /// Denials by reason.
    pub denials: BTreeMap<String, u64>,
    pub releases: u64,
    pub credit_released_cents: i64,
    pub orders_placed: u64,
    /// Failed orders by reason.
    pub orders_failed: BTreeMap<String, u64>,
    /// Replies by `outcome` or `outcome:reason` (snake case).
    pub replies: BTreeMap<String, u64>,
    /// Units sold per SKU (placed orders).
    pub sold: BTreeMap<String, i64>,
}

/// Per campaign; `grants` maps each valid grant's request to its campaign
/// and credit.
pub(super) fn totals<'a>(
    campaigns: &Campaigns,
    logs: &'a Logs,
    grants: impl Iterator<Item = (&'a str, i64)>,
) -> BTreeMap<String, Totals> {
    let mut all: BTreeMap<String, Totals> = BTreeMap::new();
    let mut seen: HashSet<(&str, &str, String)> = HashSet::new();
    let mut first = |kind: &'static str, request: &'a str, outcome: String| {
        seen.insert((kind, request, outcome))
    };
    for p in &logs.prompts {
        let campaign = if p.campaign_id.is_empty() {
            campaigns.default_id()
        } else {
            &p.campaign_id
        };
        if first("prompt", &p.request_id, String::new()) {
            all.entry(campaign.to_owned()).or_default().prompts += 1;
        }
    }
    for i in &logs.intents {
        if first("intent", &i.request_id, code(i.outcome)) {
            let t = all.entry(i.campaign_id.clone()).or_default();
            match i.outcome {
                IntentOutcome::Extracted => t.intents_extracted += 1,
                IntentOutcome::Rejected => t.intents_rejected += 1,
            }
        }
    }
    for (campaign, credit) in grants {
        let t = all.entry(campaign.to_owned()).or_default();
        t.grants += 1;
        t.credit_granted_cents += credit;
    }
    for (_, record) in &logs.decisions {
        let Record::Decision(d) = record else {
            continue;
        };
        if d.outcome == DecisionOutcome::Granted
            || !first("decision", &d.request_id, code(d.outcome))
        {
            continue;
        }
        let t = all.entry(d.campaign_id.clone()).or_default();
        if d.outcome == DecisionOutcome::Released {
            t.releases += 1;
            t.credit_released_cents += d.credit_cents;
        } else {
            *t.denials
                .entry(d.reason.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    for o in logs.orders() {
        if !first("order", &o.request_id, code(o.outcome)) {
            continue;
        }
        let t = all.entry(o.campaign_id.clone()).or_default();
        match o.outcome {
            OrderOutcome::Placed => {
                t.orders_placed += 1;
                for item in &o.items {
                    *t.sold.entry(item.sku.clone()).or_default() += i64::from(item.quantity);
                }
            }
            OrderOutcome::Failed => {
                *t.orders_failed
                    .entry(o.reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
    }
    for r in &logs.replies {
        let outcome = code(r.outcome);
        if !first("reply", &r.request_id, outcome.clone()) {
            continue;
        }
        let key = match &r.reason {
            Some(reason) => format!("{outcome}:{reason}"),
            None => outcome,
        };
        *all.entry(r.campaign_id.clone())
            .or_default()
            .replies
            .entry(key)
            .or_default() += 1;
    }
    all
}
