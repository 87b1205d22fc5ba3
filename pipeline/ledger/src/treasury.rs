//! The treasury fold: campaign budget and SKU stock handed to partitions in
//! leases, decided by folding the one-partition `campaign.treasury` topic in
//! log order. Budget (`resource = budget`, in cents) and the stock of each
//! SKU the campaign limits (`stock:<sku>`, in units) are separate accounts
//! of the same kind: everything below holds for each of them.
//!
//! A lease request is granted while the campaign has budget left, and the
//! fold itself sizes the lease from what is left ([`lease_size`]): large
//! while plenty remains, so busy partitions rarely ask; shrinking to one
//! order's credit near the end, so little sits unused in quiet partitions
//! when the budget runs out. A return puts unused allowance back. Since only
//! the fold decides, every reader sees the same leases, and
//! `Σ leases − Σ returns ≤ budget` holds at every log position.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemas::{TreasuryKind, TreasuryRecord};

use super::{BUDGET, stock_resource};
use crate::campaign::{Campaign, Campaigns};

/// A lease is `1 / (LEASE_SHARE × partitions)` of the budget left, so all
/// partitions asking at once take at most a quarter of it.
pub const LEASE_SHARE: i64 = 4;

/// The size of the next lease when `remaining` cents are left: a share of
/// it in whole credits (`unit`, the most one order gets), at least one
/// credit, at most all that is left. Whole credits mean a fixed-credit
/// campaign never strands a fraction of a credit in a partition.
pub fn lease_size(remaining: i64, partitions: i32, unit: i64) -> i64 {
    let unit = unit.max(1);
    let share = remaining / (LEASE_SHARE * i64::from(partitions.max(1)));
    (share / unit * unit).max(unit).min(remaining).max(0)
}

/// What became of a lease request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Granted, this many cents.
    Leased(i64),
    /// Refused: no budget was left when it was folded.
    Refused,
}

/// What folding one treasury record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreasuryEffect {
    Leased {
        partition: i32,
        amount: i64,
    },
    Refused,
    Returned(i64),
    /// A repeat, a malformed record, or one for an unknown campaign.
    Ignored,
}

/// One resource of one campaign: its budget or one SKU's stock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreasuryAccount {
    /// Cents of budget, or units of stock.
    pub budget: i64,
    /// The most one order takes (one credit, or one unit): leases are sized
    /// in whole units of it.
    pub unit: i64,
    /// Cents leased to partitions, ever.
    pub leased: i64,
    /// Cents returned by partitions, ever.
    pub returned: i64,
    pub requests: u64,
    pub refused: u64,
    /// Per partition: the leases granted to it, in log order.
    leases: Vec<Vec<(String, i64)>>,
    /// Per partition: cents returned.
    returned_by: Vec<i64>,
    /// Per partition: lease requests folded (granted or refused).
    requests_by: Vec<u64>,
}

impl TreasuryAccount {
    fn new(budget: i64, unit: i64, partitions: i32) -> Self {
        let n = usize::try_from(partitions.max(1)).unwrap_or(1);
        Self {
            budget,
            unit,
            leases: vec![Vec::new(); n],
            returned_by: vec![0; n],
            requests_by: vec![0; n],
            ..Self::default()
        }
    }

    /// Budget not leased out, in cents.
    pub fn remaining(&self) -> i64 {
        (self.budget - self.leased + self.returned).max(0)
    }

    /// The leases granted to `partition`, in log order.
    pub fn leases(&self, partition: i32) -> &[(String, i64)] {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.leases.get(p))
            .map_or(&[], Vec::as_slice)
    }

    /// How many lease requests of `partition` were folded.
    pub fn requests_by(&self, partition: i32) -> u64 {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.requests_by.get(p))
            .copied()
            .unwrap_or(0)
    }

    /// Cents leased to `partition` and not returned.
    pub fn held_by(&self, partition: i32) -> i64 {
        let leased: i64 = self.leases(partition).iter().map(|(_, a)| a).sum();
        let p = usize::try_from(partition).unwrap_or(usize::MAX);
        leased - self.returned_by.get(p).copied().unwrap_or(0)
    }
}

/// The state of `campaign.treasury` after folding it in log order.
#[derive(Debug, Clone)]
pub struct TreasuryFold {
    partitions: i32,
    /// Campaign → resource → account.
    accounts: HashMap<String, HashMap<String, TreasuryAccount>>,
    /// Every lease request's outcome, by lease id.
    status: HashMap<String, LeaseStatus>,
    returns: HashSet<String>,
    /// Records folded so far.
    pub records: u64,
}

impl TreasuryFold {
    pub fn new(campaigns: Arc<Campaigns>, partitions: i32) -> Self {
        let accounts = campaigns
            .iter()
            .map(|c| (c.id.clone(), Self::accounts_of(c, partitions)))
            .collect();
        Self {
            partitions,
            accounts,
            status: HashMap::new(),
            returns: HashSet::new(),
            records: 0,
        }
    }

    fn accounts_of(c: &Campaign, partitions: i32) -> HashMap<String, TreasuryAccount> {
        let budget = TreasuryAccount::new(c.budget_cents, c.credit.unit_cents(), partitions);
        let stock = c.stock.iter().map(|(sku, units)| {
            (
                stock_resource(sku),
                TreasuryAccount::new(*units, 1, partitions),
            )
        });
        std::iter::once((BUDGET.to_owned(), budget))
            .chain(stock)
            .collect()
    }

    /// The campaign's budget account, if the campaign is configured.
    pub fn account(&self, campaign_id: &str) -> Option<&TreasuryAccount> {
        self.resource(campaign_id, BUDGET)
    }

    /// Every account, as `(campaign, resource, account)`, in no order.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &str, &TreasuryAccount)> {
        self.accounts.iter().flat_map(|(campaign, resources)| {
            resources
                .iter()
                .map(move |(resource, account)| (campaign.as_str(), resource.as_str(), account))
        })
    }

    /// The account of `resource` (`budget` or `stock:<sku>`), if the
    /// campaign is configured and limits that resource.
    pub fn resource(&self, campaign_id: &str, resource: &str) -> Option<&TreasuryAccount> {
        self.accounts.get(campaign_id)?.get(resource)
    }

    /// What became of lease request `lease_id`; `None` until it is folded.
    pub fn status(&self, lease_id: &str) -> Option<LeaseStatus> {
        self.status.get(lease_id).copied()
    }

    /// Whether a return with this id was taken back.
    pub fn has_return(&self, return_id: &str) -> bool {
        self.returns.contains(return_id)
    }

    /// Whether every cent of the campaign's budget is leased out.
    pub fn exhausted(&self, campaign_id: &str) -> bool {
        self.exhausted_of(campaign_id, BUDGET)
    }

    /// Whether all of `resource` is leased out (or it has no account).
    pub fn exhausted_of(&self, campaign_id: &str, resource: &str) -> bool {
        self.resource(campaign_id, resource)
            .is_none_or(|a| a.remaining() == 0)
    }

    /// Folds one treasury record in; returns what it did.
    pub fn apply(&mut self, t: &TreasuryRecord) -> TreasuryEffect {
        self.records += 1;
        let Some(account) = self
            .accounts
            .get_mut(&t.campaign_id)
            .and_then(|c| c.get_mut(&t.resource))
        else {
            return TreasuryEffect::Ignored;
        };
        let Some(p) = usize::try_from(t.partition)
            .ok()
            .filter(|p| *p < account.leases.len())
        else {
            return TreasuryEffect::Ignored;
        };
        let unit = account.unit;
        match t.kind {
            TreasuryKind::LeaseRequest => {
                if self.status.contains_key(&t.request_id) {
                    return TreasuryEffect::Ignored;
                }
                account.requests += 1;
                account.requests_by[p] += 1;
                let amount = lease_size(account.remaining(), self.partitions, unit);
                if amount == 0 {
                    account.refused += 1;
                    self.status
                        .insert(t.request_id.clone(), LeaseStatus::Refused);
                    return TreasuryEffect::Refused;
                }
                account.leased += amount;
                account.leases[p].push((t.request_id.clone(), amount));
                self.status
                    .insert(t.request_id.clone(), LeaseStatus::Leased(amount));
                TreasuryEffect::Leased {
                    partition: t.partition,
                    amount,
                }
            }
            TreasuryKind::LeaseReturn => {
                // A partition cannot return more than it holds, so returns
                // never create budget.
                let holds = account.held_by(t.partition);
                if t.amount <= 0 || t.amount > holds || !self.returns.insert(t.request_id.clone()) {
                    return TreasuryEffect::Ignored;
                }
                account.returned += t.amount;
                account.returned_by[p] += t.amount;
                TreasuryEffect::Returned(t.amount)
            }
            TreasuryKind::LeaseCredit => TreasuryEffect::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::{CampaignConfig, CreditRule};

    fn fold(budget: i64, unit: i64, partitions: i32) -> TreasuryFold {
        let c = CampaignConfig {
            id: "c".into(),
            budget_cents: budget,
            credit: CreditRule::FreeUpToCents(unit),
            ..CampaignConfig::default()
        };
        TreasuryFold::new(Arc::new(Campaigns::new(&[c]).unwrap()), partitions)
    }

    fn record(id: &str, kind: TreasuryKind, partition: i32, amount: i64) -> TreasuryRecord {
        TreasuryRecord {
            request_id: id.into(),
            user_id: String::new(),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            kind,
            resource: BUDGET.into(),
            partition,
            amount,
        }
    }

    #[test]
    fn leases_shrink_to_one_credit_and_never_exceed_the_budget() {
        let mut f = fold(1_000_000, 100, 4);
        let mut sizes = vec![];
        for i in 0..1_000 {
            match f.apply(&record(
                &format!("l{i}"),
                TreasuryKind::LeaseRequest,
                i % 4,
                0,
            )) {
                TreasuryEffect::Leased { amount, .. } => sizes.push(amount),
                TreasuryEffect::Refused => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sizes[0], 62_500);
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "sizes only shrink");
        assert_eq!(sizes.iter().sum::<i64>(), 1_000_000);
        // The tail goes one credit at a time; the very last is what is left.
        assert_eq!(sizes[sizes.len() - 2], 100);
        assert!(*sizes.last().unwrap() <= 100);
        assert!(f.exhausted("c"));
        assert_eq!(
            f.apply(&record("late", TreasuryKind::LeaseRequest, 0, 0)),
            TreasuryEffect::Refused
        );
        assert_eq!(f.status("late"), Some(LeaseStatus::Refused));
    }

    #[test]
    fn the_last_lease_is_what_is_left() {
        let mut f = fold(250, 100, 1);
        let amounts: Vec<_> = (0..4)
            .map(|i| f.apply(&record(&format!("l{i}"), TreasuryKind::LeaseRequest, 0, 0)))
            .collect();
        assert_eq!(
            amounts,
            [
                TreasuryEffect::Leased {
                    partition: 0,
                    amount: 100
                },
                TreasuryEffect::Leased {
                    partition: 0,
                    amount: 100
                },
                TreasuryEffect::Leased {
                    partition: 0,
                    amount: 50
                },
                TreasuryEffect::Refused,
            ]
        );
    }

    #[test]
    fn repeats_and_bad_records_do_nothing() {
        let mut f = fold(1_000, 100, 2);
        assert!(matches!(
            f.apply(&record("l1", TreasuryKind::LeaseRequest, 0, 0)),
            TreasuryEffect::Leased { .. }
        ));
        assert_eq!(
            f.apply(&record("l1", TreasuryKind::LeaseRequest, 0, 0)),
            TreasuryEffect::Ignored
        );
        assert_eq!(
            f.apply(&record("l2", TreasuryKind::LeaseRequest, 2, 0)),
            TreasuryEffect::Ignored
        );
        let mut other = record("l3", TreasuryKind::LeaseRequest, 0, 0);
        other.campaign_id = "nope".into();
        assert_eq!(f.apply(&other), TreasuryEffect::Ignored);
        assert_eq!(f.account("c").unwrap().leases(0).len(), 1);
    }

    #[test]
    fn stock_is_leased_one_unit_at_a_time_from_its_own_account() {
        let c = CampaignConfig {
            id: "c".into(),
            budget_cents: 1_000,
            credit: CreditRule::FreeUpToCents(100),
            stock: [("latte".to_owned(), 3)].into(),
            ..CampaignConfig::default()
        };
        let mut f = TreasuryFold::new(Arc::new(Campaigns::new(&[c]).unwrap()), 12);
        let stock = |id: &str, resource: &str| TreasuryRecord {
            resource: resource.into(),
            ..record(id, TreasuryKind::LeaseRequest, 5, 0)
        };
        let latte = stock_resource("latte");
        for i in 0..3 {
            assert_eq!(
                f.apply(&stock(&format!("s{i}"), &latte)),
                TreasuryEffect::Leased {
                    partition: 5,
                    amount: 1
                }
            );
        }
        assert_eq!(f.apply(&stock("s3", &latte)), TreasuryEffect::Refused);
        assert!(f.exhausted_of("c", &latte));
        // The budget is untouched, and an unlimited SKU has no account.
        assert_eq!(f.account("c").unwrap().remaining(), 1_000);
        let unlimited = stock_resource("burger");
        assert_eq!(f.apply(&stock("s4", &unlimited)), TreasuryEffect::Ignored);
        assert!(f.resource("c", &unlimited).is_none());
    }

    #[test]
    fn returns_come_back_once_and_only_from_what_a_partition_holds() {
        let mut f = fold(1_000, 100, 2);
        f.apply(&record("l1", TreasuryKind::LeaseRequest, 0, 0));
        assert_eq!(f.account("c").unwrap().held_by(0), 100);
        let ignored = [("x1", 1, 10), ("x1", 0, 101), ("x1", 0, 0)];
        for (id, partition, amount) in ignored {
            let r = record(id, TreasuryKind::LeaseReturn, partition, amount);
            assert_eq!(f.apply(&r), TreasuryEffect::Ignored, "{r:?}");
        }
        let back = record("x2", TreasuryKind::LeaseReturn, 0, 60);
        assert_eq!(f.apply(&back), TreasuryEffect::Returned(60));
        assert_eq!(f.apply(&back), TreasuryEffect::Ignored);
        assert_eq!(f.account("c").unwrap().remaining(), 960);
    }
}
