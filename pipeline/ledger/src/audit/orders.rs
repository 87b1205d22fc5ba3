//! The orders log as the auditor folds it: each `commerce.orders`
//! partition through the stock fold, exactly as fulfillment and the reply
//! stage fold it, and check 9 (never oversold) on the result.
//!
//! The first order record of a request decides it. A placed order the fold
//! refuses (a zombie fulfillment instance sold units its partition no
//! longer held) counts as failed: the reply stage answers it so and
//! releases its credit, and the settlement and reply checks hold it to
//! that. Later records for the same request (the same order id written
//! again) change nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use schemas::Record;

use super::{Check, Logs, check};
use crate::campaign::Campaigns;
use crate::{OrderStatus, StockEffect, StockFold, TreasuryFold, stock_resource};

/// Everything the stock folds say about the orders log.
#[derive(Default)]
pub(super) struct OrdersFolded<'a> {
    /// Each request's order as the fold decides it.
    pub status: HashMap<&'a str, OrderStatus>,
    /// Placed orders the fold refused, counted as failed.
    pub refused: usize,
    /// Stock return id → `(partition, amount)`, returns the fold accepted.
    pub returns: HashMap<&'a str, (i32, i64)>,
    /// `(partition, campaign, resource, lease id, amount)` of every stock
    /// lease credit the fold accepted.
    credits: Vec<(i32, &'a str, &'a str, &'a str, i64)>,
    /// `(campaign, sku)` → units of orders the fold placed.
    sold: HashMap<(&'a str, &'a str), i64>,
}

pub(super) fn fold_orders<'a>(campaigns: &Arc<Campaigns>, logs: &'a Logs) -> OrdersFolded<'a> {
    let mut folds: BTreeMap<i32, StockFold> = BTreeMap::new();
    let mut o = OrdersFolded::default();
    for (p, record) in &logs.order_log {
        let fold = folds
            .entry(*p)
            .or_insert_with(|| StockFold::new(Arc::clone(campaigns)));
        match (fold.apply(record), record) {
            (StockEffect::Placed, Record::Order(order)) => {
                o.status.insert(&order.request_id, OrderStatus::Placed);
                for item in &order.items {
                    *o.sold.entry((&order.campaign_id, &item.sku)).or_default() +=
                        i64::from(item.quantity.max(0));
                }
            }
            (effect @ (StockEffect::Failed | StockEffect::Refused), Record::Order(order)) => {
                o.status.insert(&order.request_id, OrderStatus::Failed);
                o.refused += usize::from(effect == StockEffect::Refused);
            }
            (StockEffect::Credited(n), Record::Treasury(t)) => {
                o.credits
                    .push((*p, &t.campaign_id, &t.resource, &t.request_id, n));
            }
            (StockEffect::Returned(n), Record::Treasury(t)) => {
                o.returns.insert(&t.request_id, (*p, n));
            }
            _ => {}
        }
    }
    o
}

/// Check 9, never oversold: per campaign and limited SKU, the units of the
/// orders the fold placed stay within the stock, and every stock lease
/// credited in an orders partition is one the treasury granted that
/// partition, with the same amount. (That stock returns match the treasury
/// is checked with the budget's, check 2.) Returns the check and a figure
/// line per SKU.
pub(super) fn check_stock(
    campaigns: &Campaigns,
    treasury: &TreasuryFold,
    o: &OrdersFolded<'_>,
) -> (Check, Vec<String>) {
    let mut bad: Vec<String> = o
        .credits
        .iter()
        .filter(|(p, campaign, resource, id, amount)| {
            !treasury.resource(campaign, resource).is_some_and(|a| {
                a.leases(*p)
                    .iter()
                    .any(|(lease, n)| lease == id && n == amount)
            })
        })
        .map(|(_, _, _, id, _)| format!("stock credit {id} not granted by the treasury"))
        .collect();
    let mut lines = Vec::new();
    for c in campaigns.iter() {
        for (sku, units) in &c.stock {
            let sold = o
                .sold
                .get(&(c.id.as_str(), sku.as_str()))
                .copied()
                .unwrap_or(0);
            if sold > *units {
                bad.push(format!("{}: {sku} sold {sold} of {units}", c.id));
            }
            let leased = treasury
                .resource(&c.id, &stock_resource(sku))
                .map_or(0, |a| a.leased - a.returned);
            lines.push(format!(
                "{}: {sku} {sold} sold, {leased} leased, of {units}",
                c.id
            ));
        }
    }
    if o.refused > 0 {
        lines.push(format!(
            "{} placed orders beyond their partition's stock, counted as failed",
            o.refused
        ));
    }
    let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
    let limited: usize = campaigns.iter().map(|c| c.stock.len()).sum();
    let ok = if limited == 0 {
        "no SKU has a limited stock".to_owned()
    } else {
        format!("{limited} limited SKUs, none oversold")
    };
    (
        check("stock", &refs, ok, "oversold SKUs or invalid stock records"),
        lines,
    )
}
