//! The decisions fold: the state of one `commerce.decisions` partition after
//! folding its records in log order, and what each record did.
//!
//! Per campaign, a partition has an *allowance*: the leases credited to it
//! minus the allowance it returned. A grant is valid iff its request has no
//! decision before it, the campaign is configured, the user is within the
//! per-user limit, and the partition's valid unreleased grants stay within
//! the allowance. A release gives a valid grant's credit and the user's
//! eligibility back. A return is valid iff it does not exceed what is unused.
//!
//! So at every log position `granted ≤ allowance`, whoever wrote the
//! records; `docs/ledger.md` builds the budget argument on this.

use super::{FastMap, FastSet};
use std::sync::Arc;

use schemas::{CouponDecision, DecisionOutcome, Record, TreasuryRecord};

use super::recent::Recent;
use super::{Fault, Moved, fault, fold_movement, stock_sku};
use crate::campaign::Campaigns;
use schemas::reason::{ALREADY_USED, BUDGET_EXHAUSTED, NOT_ELIGIBLE};

/// How many of the most recent decided request ids a partition remembers
/// (besides every granted one). A redelivered intent is always younger than
/// this: redelivery starts at the last committed input offset, which trails
/// the head by at most `runtime.max_in_flight` records plus one auto-commit
/// interval of traffic. Part of the fold's definition: all readers must
/// agree on it.
pub const DEDUP_WINDOW: usize = 1 << 16;

/// What the ledger allows a new request, as far as this partition knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the per-user limit and the allowance.
    Grant,
    /// The user has had their credited orders.
    AlreadyUsed,
    /// Within the per-user limit, but the allowance left is too small.
    OverAllowance,
}

/// What folding one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A valid grant of this many cents: the request gets an order.
    Granted(i64),
    /// The request's decision is a denial: as written (`None`), or a grant
    /// the fold refused, with the reason it counts as a denial.
    Denied(Option<&'static str>),
    /// A valid release: this much credit is back in the allowance.
    Released(i64),
    /// A lease credit: the allowance grew by this much.
    Credited(i64),
    /// A valid return: the allowance shrank by this much.
    Returned(i64),
    /// A repeat of something already folded, or a record that does nothing
    /// here (an invalid release or return, a request record).
    Ignored,
}

/// One campaign's figures in one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Leases credited minus allowance returned, in cents.
    pub allowance: i64,
    /// Valid grants not released, in cents. Never above `allowance`.
    pub granted: i64,
    /// Valid grants ever, released or not.
    pub grants: u64,
    /// Credit given back by releases, in cents.
    pub released: i64,
    /// Allowance handed back by returns, in cents.
    pub returned: i64,
    /// Unreleased valid grants per user.
    pub(super) users: FastMap<String, u32>,
}

impl Account {
    /// Allowance not covering a grant, in cents.
    pub fn unused(&self) -> i64 {
        self.allowance - self.granted
    }
}

/// A valid grant, remembered so it can be released once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub campaign_id: String,
    pub user_id: String,
    pub credit_cents: i64,
    pub released: bool,
}

/// The state of one decisions partition.
#[derive(Debug, Clone)]
pub struct DecisionsFold {
    pub(super) campaigns: Arc<Campaigns>,
    pub(super) accounts: FastMap<String, Account>,
    /// Every valid grant, by request id; bounded by the budget.
    pub(super) grants: FastMap<String, Grant>,
    /// Recent decided request ids, oldest first; at most `DEDUP_WINDOW`.
    pub(super) recent: Recent,
    /// Lease ids credited and return ids seen.
    pub(super) movements: FastSet<String>,
}

impl DecisionsFold {
    pub fn new(campaigns: Arc<Campaigns>) -> Self {
        Self {
            campaigns,
            accounts: FastMap::default(),
            grants: FastMap::default(),
            recent: Recent::new(DEDUP_WINDOW),
            movements: FastSet::default(),
        }
    }

    /// Whether `request_id` already has a decision in this partition.
    pub fn is_decided(&self, request_id: &str) -> bool {
        self.grants.contains_key(request_id) || self.recent.contains(request_id)
    }

    /// The campaign's figures here (all zero when nothing happened yet).
    pub fn account(&self, campaign_id: &str) -> Account {
        self.accounts.get(campaign_id).cloned().unwrap_or_default()
    }

    /// Allowance of `campaign_id` not covering a grant, in cents.
    pub fn unused(&self, campaign_id: &str) -> i64 {
        self.accounts.get(campaign_id).map_or(0, Account::unused)
    }

    /// Every campaign with figures here.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The valid grant of `request_id`, if it has one.
    pub fn grant(&self, request_id: &str) -> Option<&Grant> {
        self.grants.get(request_id)
    }

    /// Whether a lease credit or return with this id was folded.
    pub fn has_movement(&self, id: &str) -> bool {
        self.movements.contains(id)
    }

    /// What a new request from `user_id` for `credit_cents` of
    /// `campaign_id` would get here.
    pub fn verdict(&self, campaign_id: &str, user_id: &str, credit_cents: i64) -> Verdict {
        let limit = self
            .campaigns
            .get(campaign_id)
            .map_or(0, |c| c.per_user_limit);
        let account = self.accounts.get(campaign_id);
        let used = account
            .and_then(|a| a.users.get(user_id))
            .copied()
            .unwrap_or(0);
        let unused = account.map_or(0, Account::unused);
        if used >= limit && !fault(Fault::IgnoreUserLimit) {
            Verdict::AlreadyUsed
        } else if credit_cents > unused && !fault(Fault::IgnoreAllowance) {
            Verdict::OverAllowance
        } else {
            Verdict::Grant
        }
    }

    /// Folds one record of the partition in; returns what it did.
    pub fn apply(&mut self, record: &Record) -> Effect {
        match record {
            Record::Decision(d) => self.apply_decision(d),
            Record::Treasury(t) => self.apply_movement(t),
            _ => Effect::Ignored,
        }
    }

    /// Folds one decision in.
    pub fn apply_decision(&mut self, d: &CouponDecision) -> Effect {
        if d.outcome == DecisionOutcome::Released {
            return self.release(d);
        }
        if self.is_decided(&d.request_id) {
            return Effect::Ignored;
        }
        self.remember(&d.request_id);
        if d.outcome == DecisionOutcome::Denied {
            return Effect::Denied(None);
        }
        if self.campaigns.get(&d.campaign_id).is_none() || d.credit_cents <= 0 {
            return Effect::Denied(Some(NOT_ELIGIBLE));
        }
        match self.verdict(&d.campaign_id, &d.user_id, d.credit_cents) {
            Verdict::AlreadyUsed => Effect::Denied(Some(ALREADY_USED)),
            Verdict::OverAllowance => Effect::Denied(Some(BUDGET_EXHAUSTED)),
            Verdict::Grant => {
                let account = self.accounts.entry(d.campaign_id.clone()).or_default();
                account.granted += d.credit_cents;
                account.grants += 1;
                *account.users.entry(d.user_id.clone()).or_default() += 1;
                self.grants.insert(
                    d.request_id.clone(),
                    Grant {
                        campaign_id: d.campaign_id.clone(),
                        user_id: d.user_id.clone(),
                        credit_cents: d.credit_cents,
                        released: false,
                    },
                );
                Effect::Granted(d.credit_cents)
            }
        }
    }

    fn release(&mut self, d: &CouponDecision) -> Effect {
        let Some(grant) = self.grants.get_mut(&d.request_id) else {
            return Effect::Ignored;
        };
        if grant.released {
            return Effect::Ignored;
        }
        grant.released = true;
        let account = self.accounts.entry(grant.campaign_id.clone()).or_default();
        account.granted -= grant.credit_cents;
        account.released += grant.credit_cents;
        if let Some(n) = account.users.get_mut(&grant.user_id) {
            *n = n.saturating_sub(1);
        }
        Effect::Released(grant.credit_cents)
    }

    fn apply_movement(&mut self, t: &TreasuryRecord) -> Effect {
        // Stock moves on the orders log; a stock record here is no budget.
        if stock_sku(&t.resource).is_some() {
            return Effect::Ignored;
        }
        let accounts = &mut self.accounts;
        let moved = fold_movement(t, &mut self.movements, || {
            let a = accounts.entry(t.campaign_id.clone()).or_default();
            (&mut a.allowance, &mut a.returned, a.granted)
        });
        match moved {
            Some(Moved::Credited(n)) => Effect::Credited(n),
            Some(Moved::Returned(n)) => Effect::Returned(n),
            None => Effect::Ignored,
        }
    }

    pub(super) fn remember(&mut self, request_id: &str) {
        self.recent.insert(request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{campaigns_limited as campaigns, decision, movement};
    use schemas::DecisionOutcome::{Denied, Granted, Released};
    use schemas::TreasuryKind;

    fn fold(limit: u32, allowance: i64) -> DecisionsFold {
        let mut f = DecisionsFold::new(campaigns(limit));
        assert_eq!(
            f.apply(&movement("l0", TreasuryKind::LeaseCredit, allowance)),
            Effect::Credited(allowance)
        );
        f
    }

    #[test]
    fn first_grant_per_user_wins() {
        let mut f = fold(1, 1_000);
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Granted(100)
        );
        assert_eq!(
            f.apply(&decision("r2", "u1", Granted, 100)),
            Effect::Denied(Some(ALREADY_USED))
        );
        assert_eq!(f.verdict("c", "u1", 100), Verdict::AlreadyUsed);
        assert_eq!(f.account("c").granted, 100);
    }

    #[test]
    fn a_repeated_decision_counts_once() {
        let mut f = fold(2, 1_000);
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Granted(100)
        );
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Ignored
        );
        assert_eq!(f.apply(&decision("r1", "u1", Denied, 0)), Effect::Ignored);
        assert_eq!(f.account("c").granted, 100);
        assert!(f.is_decided("r1"));
    }

    #[test]
    fn grants_beyond_the_allowance_count_as_denials() {
        let mut f = fold(1, 250);
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Granted(100)
        );
        assert_eq!(
            f.apply(&decision("r2", "u2", Granted, 100)),
            Effect::Granted(100)
        );
        assert_eq!(f.verdict("c", "u3", 100), Verdict::OverAllowance);
        assert_eq!(
            f.apply(&decision("r3", "u3", Granted, 100)),
            Effect::Denied(Some(BUDGET_EXHAUSTED))
        );
        assert_eq!(f.account("c").granted, 200);
        assert_eq!(f.verdict("c", "u3", 50), Verdict::Grant);
        // A second credit of the same lease changes nothing.
        assert_eq!(
            f.apply(&movement("l0", TreasuryKind::LeaseCredit, 250)),
            Effect::Ignored
        );
        assert_eq!(
            f.apply(&movement("l1", TreasuryKind::LeaseCredit, 100)),
            Effect::Credited(100)
        );
        assert_eq!(f.verdict("c", "u3", 100), Verdict::Grant);
    }

    #[test]
    fn releases_give_credit_and_eligibility_back_once() {
        let mut f = fold(1, 100);
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Granted(100)
        );
        assert_eq!(
            f.apply(&decision("r1", "u1", Released, 100)),
            Effect::Released(100)
        );
        assert_eq!(
            f.apply(&decision("r1", "u1", Released, 100)),
            Effect::Ignored
        );
        assert_eq!(
            f.apply(&decision("r9", "u9", Released, 100)),
            Effect::Ignored
        );
        assert_eq!(f.account("c").granted, 0);
        assert_eq!(f.verdict("c", "u1", 100), Verdict::Grant);
        // The released request itself stays decided.
        assert_eq!(
            f.apply(&decision("r1", "u1", Granted, 100)),
            Effect::Ignored
        );
    }

    #[test]
    fn returns_cannot_exceed_what_is_unused() {
        let mut f = fold(1, 300);
        f.apply(&decision("r1", "u1", Granted, 100));
        assert_eq!(
            f.apply(&movement("x1", TreasuryKind::LeaseReturn, 250)),
            Effect::Ignored
        );
        assert_eq!(
            f.apply(&movement("x2", TreasuryKind::LeaseReturn, 200)),
            Effect::Returned(200)
        );
        assert_eq!(
            f.apply(&movement("x2", TreasuryKind::LeaseReturn, 200)),
            Effect::Ignored
        );
        assert_eq!(f.unused("c"), 0);
        assert_eq!(f.verdict("c", "u2", 1), Verdict::OverAllowance);
    }

    #[test]
    fn unknown_campaigns_and_denials_are_decided_without_credit() {
        let mut f = fold(1, 1_000);
        let Record::Decision(mut d) = decision("r1", "u1", Granted, 100) else {
            unreachable!()
        };
        d.campaign_id = "other".into();
        assert_eq!(f.apply_decision(&d), Effect::Denied(Some(NOT_ELIGIBLE)));
        assert_eq!(
            f.apply(&decision("r2", "u2", Denied, 0)),
            Effect::Denied(None)
        );
        assert!(f.is_decided("r2"));
        assert_eq!(f.account("c").granted, 0);
    }

    #[test]
    fn the_dedup_window_is_bounded() {
        let mut f = fold(1, 1);
        for i in 0..DEDUP_WINDOW + 10 {
            f.apply(&decision(&format!("r{i}"), "u", Denied, 0));
        }
        assert_eq!(f.recent.len(), DEDUP_WINDOW);
        assert!(!f.is_decided("r0"));
        assert!(f.is_decided(&format!("r{}", DEDUP_WINDOW + 9)));
    }

    #[test]
    fn stock_movements_are_not_budget() {
        let mut f = fold(1, 1_000);
        let stock = crate::fixtures::stock("s1", TreasuryKind::LeaseCredit, "latte", 5);
        assert_eq!(f.apply(&stock), Effect::Ignored);
        assert_eq!(f.account("c").allowance, 1_000);
        assert!(!f.has_movement("s1"));
    }
}
