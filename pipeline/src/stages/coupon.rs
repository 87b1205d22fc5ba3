//! Coupon stage: `commerce.intents` → `commerce.decisions`. Decides whether a
//! request gets campaign credit and how much, from the partition's ledger
//! fold, which it restores from its own output partition on assignment.

use schemas::{CouponDecision, DecisionOutcome, IntentEvent, IntentOutcome, Record};

use crate::config::CampaignConfig;
use crate::ledger::{self, DecisionsFold, Verdict};
use crate::runtime::{Emit, Stage};
use crate::topics::Topic;

/// Grants or denies campaign credit.
pub struct CouponStage {
    campaign: CampaignConfig,
    partitions: i32,
}

impl CouponStage {
    pub fn new(campaign: CampaignConfig, partitions: i32) -> Self {
        Self {
            campaign,
            partitions,
        }
    }

    /// The decision for an extracted intent, folded into `fold` so the next
    /// decision sees it. `None` for a request decided before (redelivery).
    pub fn decide(
        &self,
        fold: &mut DecisionsFold,
        intent: IntentEvent,
        now_ms: i64,
    ) -> Option<CouponDecision> {
        if intent.outcome != IntentOutcome::Extracted || fold.is_decided(&intent.request_id) {
            return None;
        }
        let wanted = intent.total_cents.min(self.campaign.credit_per_order_cents);
        let verdict = if intent.campaign_id == self.campaign.id {
            fold.verdict(&intent.user_id, wanted)
        } else {
            Verdict::Deny(ledger::NOT_ELIGIBLE)
        };
        let (outcome, credit_cents, reason) = match verdict {
            Verdict::Grant(credit) => (DecisionOutcome::Granted, credit, None),
            Verdict::Deny(reason) => (DecisionOutcome::Denied, 0, Some(reason.to_owned())),
        };
        let decision = CouponDecision {
            request_id: intent.request_id,
            session_id: intent.session_id,
            user_id: intent.user_id,
            campaign_id: intent.campaign_id,
            trace_id: intent.trace_id,
            event_time_ms: now_ms,
            prompt_time_ms: intent.prompt_time_ms,
            locale: intent.locale,
            outcome,
            items: intent.items,
            total_cents: intent.total_cents,
            credit_cents,
            reason,
        };
        fold.apply(&decision);
        Some(decision)
    }
}

impl Stage for CouponStage {
    type State = DecisionsFold;

    fn name(&self) -> &'static str {
        "coupon"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Intents]
    }

    fn restore_from(&self) -> Option<Topic> {
        Some(Topic::Decisions)
    }

    fn new_state(&self, partition: i32) -> DecisionsFold {
        let allowance = ledger::allowance(self.campaign.budget_cents, self.partitions, partition);
        DecisionsFold::new(allowance, self.campaign.per_user_limit)
    }

    fn restore(&self, fold: &mut DecisionsFold, record: &Record) {
        if let Record::Decision(decision) = record {
            fold.apply(decision);
        }
    }

    fn handle(&self, fold: &mut DecisionsFold, record: Record, now_ms: i64) -> Vec<Emit> {
        match record {
            Record::Intent(intent) => self
                .decide(fold, intent, now_ms)
                .map(|d| Emit::new(Topic::Decisions, Record::Decision(d)))
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Item;

    fn intent(request: &str, user: &str, total: i64) -> IntentEvent {
        IntentEvent {
            request_id: request.into(),
            session_id: String::new(),
            user_id: user.into(),
            campaign_id: "spring-festival".into(),
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

    fn stage(budget: i64) -> CouponStage {
        CouponStage::new(
            CampaignConfig {
                budget_cents: budget,
                credit_per_order_cents: 2_000,
                ..CampaignConfig::default()
            },
            1,
        )
    }

    #[test]
    fn grants_up_to_the_credit_then_denies_by_reason() {
        let s = stage(3_000);
        let mut fold = s.new_state(0);
        let d = s.decide(&mut fold, intent("r1", "u1", 2_500), 0).unwrap();
        assert_eq!(
            (d.outcome, d.credit_cents),
            (DecisionOutcome::Granted, 2_000)
        );
        let d = s.decide(&mut fold, intent("r2", "u1", 500), 0).unwrap();
        assert_eq!(d.reason.as_deref(), Some(ledger::ALREADY_USED));
        let d = s.decide(&mut fold, intent("r3", "u2", 2_500), 0).unwrap();
        assert_eq!(d.reason.as_deref(), Some(ledger::BUDGET_EXHAUSTED));
        // A cheap order still fits in what is left.
        let d = s.decide(&mut fold, intent("r4", "u3", 900), 0).unwrap();
        assert_eq!((d.outcome, d.credit_cents), (DecisionOutcome::Granted, 900));
    }

    #[test]
    fn redelivered_intent_is_not_decided_twice() {
        let s = stage(10_000);
        let mut fold = s.new_state(0);
        assert!(s.decide(&mut fold, intent("r1", "u1", 100), 0).is_some());
        assert!(s.decide(&mut fold, intent("r1", "u1", 100), 0).is_none());
    }

    #[test]
    fn restore_reproduces_the_state() {
        let s = stage(10_000);
        let mut live = s.new_state(0);
        let out: Vec<Record> = ["u1", "u2", "u1"]
            .iter()
            .enumerate()
            .flat_map(|(i, u)| {
                s.handle(
                    &mut live,
                    Record::Intent(intent(&format!("r{i}"), u, 1_000)),
                    0,
                )
            })
            .map(|e| e.record)
            .collect();
        let mut restored = s.new_state(0);
        for r in &out {
            s.restore(&mut restored, r);
        }
        assert_eq!(restored.granted_cents(), live.granted_cents());
        assert!(
            s.decide(&mut restored, intent("r9", "u2", 1_000), 0)
                .unwrap()
                .reason
                .is_some()
        );
    }

    #[test]
    fn other_campaigns_are_not_eligible() {
        let s = stage(10_000);
        let mut fold = s.new_state(0);
        let mut i = intent("r1", "u1", 100);
        i.campaign_id = "other".into();
        let d = s.decide(&mut fold, i, 0).unwrap();
        assert_eq!(d.reason.as_deref(), Some(ledger::NOT_ELIGIBLE));
    }
}
