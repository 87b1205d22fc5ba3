//! The coupon ledger: a pure fold over one `commerce.decisions` partition in
//! log order. No IO.
//!
//! Validity is decided by log order, not by whoever wrote a record: a grant
//! counts only if its request was not granted before, its user is still
//! within the per-user limit, and the partition's valid grants stay within
//! the partition's allowance. The coupon stage asks the fold before it
//! grants (so its own grants are valid) and folds its output back in on
//! restore. Because the verdicts depend only on the log, any reader that
//! folds the same partition reaches the same ones, so a duplicate or a
//! zombie's extra grant is simply not counted. (In this version only the
//! coupon stage folds; fulfillment recognises requests by id, and having it
//! and the auditor fold as well is the next step.)
//!
//! In this first version each partition's allowance is a fixed share of the
//! campaign budget ([`allowance`]); leases through `campaign.treasury`
//! replace that so budget is not stranded in quiet partitions.

use std::collections::{HashMap, HashSet};

use schemas::{CouponDecision, DecisionOutcome};

/// Reason: the partition's share of the campaign budget is used up.
pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
/// Reason: the user already had their credited order(s).
pub const ALREADY_USED: &str = "already_used";
/// Reason: the request is for a campaign this pipeline does not run.
pub const NOT_ELIGIBLE: &str = "not_eligible";

/// Partition `partition`'s fixed share of `budget` over `partitions`: equal
/// shares, the remainder going one cent each to the lowest partitions, so the
/// shares add up to exactly the budget.
pub fn allowance(budget: i64, partitions: i32, partition: i32) -> i64 {
    let n = i64::from(partitions.max(1));
    let base = budget / n;
    let extra = i64::from(i64::from(partition) < budget % n);
    base + extra
}

/// What the ledger allows for a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Grant(i64),
    Deny(&'static str),
}

/// The state of one decisions partition after folding it in log order.
#[derive(Debug, Clone)]
pub struct DecisionsFold {
    allowance_cents: i64,
    per_user_limit: u32,
    granted_cents: i64,
    grants_per_user: HashMap<String, u32>,
    /// Every request with a decision, granted or not: a request is decided once.
    decided: HashSet<String>,
}

impl DecisionsFold {
    pub fn new(allowance_cents: i64, per_user_limit: u32) -> Self {
        Self {
            allowance_cents,
            per_user_limit,
            granted_cents: 0,
            grants_per_user: HashMap::new(),
            decided: HashSet::new(),
        }
    }

    /// Whether `request_id` already has a decision in this partition.
    pub fn is_decided(&self, request_id: &str) -> bool {
        self.decided.contains(request_id)
    }

    /// Credit granted so far by valid grants, in cents.
    pub fn granted_cents(&self) -> i64 {
        self.granted_cents
    }

    /// What a new request from `user_id` wanting `credit_cents` would get.
    pub fn verdict(&self, user_id: &str, credit_cents: i64) -> Verdict {
        if self.grants_per_user.get(user_id).copied().unwrap_or(0) >= self.per_user_limit {
            Verdict::Deny(ALREADY_USED)
        } else if self.granted_cents + credit_cents > self.allowance_cents {
            Verdict::Deny(BUDGET_EXHAUSTED)
        } else {
            Verdict::Grant(credit_cents)
        }
    }

    /// Folds one decision in; returns whether it is a valid grant (one that
    /// counts against the budget and entitles the request to an order).
    pub fn apply(&mut self, decision: &CouponDecision) -> bool {
        let first = self.decided.insert(decision.request_id.clone());
        if decision.outcome != DecisionOutcome::Granted || !first {
            return false;
        }
        let valid = decision.credit_cents >= 0
            && self.verdict(&decision.user_id, decision.credit_cents)
                == Verdict::Grant(decision.credit_cents);
        if valid {
            self.granted_cents += decision.credit_cents;
            *self
                .grants_per_user
                .entry(decision.user_id.clone())
                .or_default() += 1;
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::DecisionOutcome::{Denied, Granted};

    fn decision(
        request: &str,
        user: &str,
        outcome: DecisionOutcome,
        credit: i64,
    ) -> CouponDecision {
        CouponDecision {
            request_id: request.into(),
            session_id: String::new(),
            user_id: user.into(),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            prompt_time_ms: 0,
            locale: "en".into(),
            outcome,
            items: vec![],
            total_cents: credit,
            credit_cents: credit,
            reason: None,
        }
    }

    #[test]
    fn allowances_add_up_to_the_budget() {
        for (budget, n) in [(0, 1), (7, 3), (1_000_003, 12), (5, 12)] {
            let total: i64 = (0..n).map(|p| allowance(budget, n, p)).sum();
            assert_eq!(total, budget);
        }
    }

    #[test]
    fn first_grant_per_user_wins() {
        let mut f = DecisionsFold::new(1_000, 1);
        assert!(f.apply(&decision("r1", "u1", Granted, 100)));
        assert!(!f.apply(&decision("r2", "u1", Granted, 100)));
        assert_eq!(f.verdict("u1", 100), Verdict::Deny(ALREADY_USED));
        assert_eq!(f.granted_cents(), 100);
    }

    #[test]
    fn redelivered_grant_counts_once() {
        let mut f = DecisionsFold::new(1_000, 2);
        assert!(f.apply(&decision("r1", "u1", Granted, 100)));
        assert!(!f.apply(&decision("r1", "u1", Granted, 100)));
        assert_eq!(f.granted_cents(), 100);
        assert!(f.is_decided("r1"));
    }

    #[test]
    fn grants_beyond_the_allowance_are_invalid() {
        let mut f = DecisionsFold::new(250, 1);
        assert!(f.apply(&decision("r1", "u1", Granted, 100)));
        assert!(f.apply(&decision("r2", "u2", Granted, 100)));
        assert_eq!(f.verdict("u3", 100), Verdict::Deny(BUDGET_EXHAUSTED));
        assert!(!f.apply(&decision("r3", "u3", Granted, 100)));
        assert_eq!(f.granted_cents(), 200);
        // A smaller request still fits.
        assert_eq!(f.verdict("u3", 50), Verdict::Grant(50));
    }

    #[test]
    fn denials_are_decided_but_not_granted() {
        let mut f = DecisionsFold::new(250, 1);
        assert!(!f.apply(&decision("r1", "u1", Denied, 0)));
        assert!(f.is_decided("r1"));
        assert_eq!(f.verdict("u1", 100), Verdict::Grant(100));
    }
}
