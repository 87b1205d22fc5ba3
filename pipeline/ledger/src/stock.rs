//! The stock fold: the state of one `commerce.orders` partition after
//! folding its records in log order, and what each record did.
//!
//! It is the decisions fold's counterpart for stock. Per campaign and SKU
//! with a configured stock, a partition has an *allowance* of units: the
//! stock leases credited to it (`stock:<sku>` records on the partition)
//! minus the units it returned. A placed order is valid iff its request has
//! no order before it and, for every limited SKU, its units fit in what the
//! partition's valid orders have not used yet. An order is all or nothing:
//! one short SKU makes the whole order invalid. So at every log position
//! `sold ≤ allowance` per SKU, whoever wrote the records, and since the
//! treasury never leases more than the stock, no SKU is ever oversold.
//!
//! The fulfillment stage restores this fold from its own output and writes
//! only orders that fit; the auditor re-folds the log to check it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemas::{Item, OrderEvent, OrderOutcome, Record, TreasuryRecord};

use super::{Fault, Moved, fault, fold_movement, stock_resource, stock_sku};
use crate::campaign::Campaigns;

/// One SKU's stock in one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockAccount {
    /// Units credited by leases minus units returned.
    pub allowance: i64,
    /// Units of valid placed orders. Never above `allowance`.
    pub sold: i64,
    /// Units handed back by returns.
    pub returned: i64,
}

impl StockAccount {
    /// Units not sold yet.
    pub fn unused(&self) -> i64 {
        self.allowance - self.sold
    }
}

/// What folding one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockEffect {
    /// A valid placed order: its units are sold.
    Placed,
    /// A failed order, as written.
    Failed,
    /// A placed order that does not fit the partition's stock (a zombie's,
    /// say): it counts as failed for want of stock.
    Refused,
    /// A stock lease credit: the allowance grew by this many units.
    Credited(i64),
    /// A valid stock return: the allowance shrank by this many units.
    Returned(i64),
    /// A repeat, an invalid return, or a record that does nothing here.
    Ignored,
}

/// What became of a request's order, as the log decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Placed,
    Failed,
}

/// The state of one orders partition.
#[derive(Debug, Clone)]
pub struct StockFold {
    campaigns: Arc<Campaigns>,
    /// Campaign → SKU → units; only SKUs whose stock is limited.
    accounts: HashMap<String, HashMap<String, StockAccount>>,
    /// Every request with an order, by request id. Orders exist only for
    /// valid grants, so this is bounded by the budget.
    orders: HashMap<String, OrderStatus>,
    /// Lease credit and return ids folded.
    movements: HashSet<String>,
}

impl StockFold {
    pub fn new(campaigns: Arc<Campaigns>) -> Self {
        Self {
            campaigns,
            accounts: HashMap::new(),
            orders: HashMap::new(),
            movements: HashSet::new(),
        }
    }

    /// The order status of `request_id`, if it has an order here.
    pub fn order(&self, request_id: &str) -> Option<OrderStatus> {
        self.orders.get(request_id).copied()
    }

    /// Requests with an order (placed or failed).
    pub fn orders(&self) -> usize {
        self.orders.len()
    }

    /// The partition's units of `sku` in `campaign_id` (all zero when none
    /// were leased yet).
    pub fn account(&self, campaign_id: &str, sku: &str) -> StockAccount {
        self.accounts
            .get(campaign_id)
            .and_then(|c| c.get(sku))
            .copied()
            .unwrap_or_default()
    }

    /// Whether a stock lease credit or return with this id was folded.
    pub fn has_movement(&self, id: &str) -> bool {
        self.movements.contains(id)
    }

    /// Units of `resource` (`stock:<sku>`) not sold yet.
    pub fn unused_of(&self, campaign_id: &str, resource: &str) -> i64 {
        stock_sku(resource).map_or(0, |sku| self.account(campaign_id, sku).unused())
    }

    /// Units each limited SKU of `items` needs beyond what is unused here,
    /// as `(stock:<sku>, missing)`; empty when the order fits.
    pub fn shortfall(&self, campaign_id: &str, items: &[Item]) -> Vec<(String, i64)> {
        if fault(Fault::IgnoreStock) {
            return Vec::new();
        }
        let Some(campaign) = self.campaigns.get(campaign_id) else {
            return Vec::new();
        };
        let mut need: Vec<(&str, i64)> = Vec::new();
        for item in items.iter().filter(|i| campaign.stock_of(&i.sku).is_some()) {
            let units = i64::from(item.quantity.max(0));
            match need.iter_mut().find(|(sku, _)| *sku == item.sku) {
                Some((_, n)) => *n += units,
                None => need.push((&item.sku, units)),
            }
        }
        need.into_iter()
            .filter_map(|(sku, units)| {
                let missing = units - self.account(campaign_id, sku).unused();
                (missing > 0).then(|| (stock_resource(sku), missing))
            })
            .collect()
    }

    /// Folds one record of the partition in; returns what it did.
    pub fn apply(&mut self, record: &Record) -> StockEffect {
        match record {
            Record::Order(o) => self.apply_order(o),
            Record::Treasury(t) => self.apply_movement(t),
            _ => StockEffect::Ignored,
        }
    }

    fn apply_order(&mut self, o: &OrderEvent) -> StockEffect {
        if self.orders.contains_key(&o.request_id) {
            return StockEffect::Ignored;
        }
        if o.outcome == OrderOutcome::Failed {
            self.orders
                .insert(o.request_id.clone(), OrderStatus::Failed);
            return StockEffect::Failed;
        }
        if !self.shortfall(&o.campaign_id, &o.items).is_empty() {
            self.orders
                .insert(o.request_id.clone(), OrderStatus::Failed);
            return StockEffect::Refused;
        }
        if let Some(campaign) = self.campaigns.get(&o.campaign_id) {
            for item in o
                .items
                .iter()
                .filter(|i| campaign.stock_of(&i.sku).is_some())
            {
                let account = self
                    .accounts
                    .entry(o.campaign_id.clone())
                    .or_default()
                    .entry(item.sku.clone())
                    .or_default();
                account.sold += i64::from(item.quantity.max(0));
            }
        }
        self.orders
            .insert(o.request_id.clone(), OrderStatus::Placed);
        StockEffect::Placed
    }

    fn apply_movement(&mut self, t: &TreasuryRecord) -> StockEffect {
        let Some(sku) = stock_sku(&t.resource) else {
            return StockEffect::Ignored;
        };
        let accounts = &mut self.accounts;
        let moved = fold_movement(t, &mut self.movements, || {
            let a = accounts
                .entry(t.campaign_id.clone())
                .or_default()
                .entry(sku.to_owned())
                .or_default();
            (&mut a.allowance, &mut a.returned, a.sold)
        });
        match moved {
            Some(Moved::Credited(n)) => StockEffect::Credited(n),
            Some(Moved::Returned(n)) => StockEffect::Returned(n),
            None => StockEffect::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{campaigns_stocked as campaigns, item, movement, order, stock};
    use schemas::TreasuryKind;

    use OrderOutcome::{Failed, Placed};

    #[test]
    fn orders_are_valid_while_their_units_fit_and_count_once() {
        let mut f = StockFold::new(campaigns(&[("latte", 10)]));
        assert_eq!(
            f.apply(&stock("l1", TreasuryKind::LeaseCredit, "latte", 3)),
            StockEffect::Credited(3)
        );
        let two = || vec![item("latte", 2)];
        assert_eq!(f.apply(&order("r1", Placed, two())), StockEffect::Placed);
        assert_eq!(f.apply(&order("r1", Placed, two())), StockEffect::Ignored);
        assert_eq!(f.shortfall("c", &two()), [("stock:latte".to_owned(), 1)]);
        // Beyond the allowance a placed order (a zombie's) is refused.
        assert_eq!(f.apply(&order("r2", Placed, two())), StockEffect::Refused);
        assert_eq!(f.order("r2"), Some(OrderStatus::Failed));
        assert_eq!(f.account("c", "latte").sold, 2);
        // Unlimited SKUs never fall short.
        assert!(f.shortfall("c", &[item("burger", 99)]).is_empty());
        assert_eq!(
            f.apply(&order("r3", Placed, vec![item("burger", 99)])),
            StockEffect::Placed
        );
        assert_eq!(f.apply(&order("r4", Failed, two())), StockEffect::Failed);
        assert_eq!(f.orders(), 4);
    }

    #[test]
    fn an_order_is_all_or_nothing_and_repeated_skus_add_up() {
        let mut f = StockFold::new(campaigns(&[("latte", 10), ("egg-tart", 10)]));
        f.apply(&stock("l1", TreasuryKind::LeaseCredit, "latte", 3));
        f.apply(&stock("l2", TreasuryKind::LeaseCredit, "egg-tart", 1));
        let items = vec![item("latte", 2), item("egg-tart", 2)];
        assert_eq!(f.shortfall("c", &items), [("stock:egg-tart".to_owned(), 1)]);
        assert_eq!(f.apply(&order("r1", Placed, items)), StockEffect::Refused);
        assert_eq!(f.account("c", "latte").sold, 0, "nothing of it is sold");
        let same_sku_twice = vec![item("latte", 2), item("latte", 2)];
        assert_eq!(
            f.shortfall("c", &same_sku_twice),
            [("stock:latte".to_owned(), 1)]
        );
    }

    #[test]
    fn returns_cannot_exceed_what_is_unused() {
        let mut f = StockFold::new(campaigns(&[("latte", 10)]));
        f.apply(&stock("l1", TreasuryKind::LeaseCredit, "latte", 3));
        f.apply(&order("r1", Placed, vec![item("latte", 2)]));
        assert_eq!(
            f.apply(&stock("x1", TreasuryKind::LeaseReturn, "latte", 2)),
            StockEffect::Ignored
        );
        assert_eq!(
            f.apply(&stock("x2", TreasuryKind::LeaseReturn, "latte", 1)),
            StockEffect::Returned(1)
        );
        assert_eq!(
            f.apply(&stock("l1", TreasuryKind::LeaseCredit, "latte", 3)),
            StockEffect::Ignored
        );
        assert_eq!(f.unused_of("c", "stock:latte"), 0);
        // A budget movement is not stock.
        assert_eq!(
            f.apply(&movement("b1", TreasuryKind::LeaseCredit, 100)),
            StockEffect::Ignored
        );
    }
}
