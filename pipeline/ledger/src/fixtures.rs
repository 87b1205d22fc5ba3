//! Campaigns and records for tests of the folds and of everything that folds
//! them (the stages, the simulation, the auditor): one campaign `c`, records
//! with only the fields the folds read filled in. Built only for this
//! crate's tests and with the `fixtures` feature, which only test builds
//! enable.

use std::sync::Arc;

use schemas::{
    CouponDecision, DecisionOutcome, Item, OrderEvent, OrderOutcome, Record, TreasuryKind,
    TreasuryRecord,
};

use crate::campaign::{CampaignConfig, Campaigns};
use crate::stock_resource;

/// Campaign `c` with unlimited budget and stock, and `limit` credited orders a user.
pub fn campaigns_limited(limit: u32) -> Arc<Campaigns> {
    let c = CampaignConfig {
        id: "c".into(),
        per_user_limit: limit,
        ..CampaignConfig::default()
    };
    Arc::new(Campaigns::new(&[c]).expect("a valid campaign"))
}

/// A decision of campaign `c` for `request` by `user`, crediting `credit`.
pub fn decision(request: &str, user: &str, outcome: DecisionOutcome, credit: i64) -> Record {
    Record::Decision(CouponDecision {
        reply_partition: None,
        deadline_ms: None,
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
    })
}

/// A budget lease movement of campaign `c` with id `id`.
pub fn movement(id: &str, kind: TreasuryKind, amount: i64) -> Record {
    lease_movement(id, kind, crate::BUDGET.into(), amount)
}

/// A lease movement of `resource` in campaign `c`, partition 0.
fn lease_movement(id: &str, kind: TreasuryKind, resource: String, amount: i64) -> Record {
    Record::Treasury(TreasuryRecord {
        request_id: id.into(),
        user_id: String::new(),
        campaign_id: "c".into(),
        trace_id: String::new(),
        event_time_ms: 0,
        kind,
        resource,
        partition: 0,
        amount,
    })
}

/// Campaign `c` selling at most `stock` units of each SKU named.
pub fn campaigns_stocked(stock: &[(&str, i64)]) -> Arc<Campaigns> {
    let c = CampaignConfig {
        id: "c".into(),
        stock: stock.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
        ..CampaignConfig::default()
    };
    Arc::new(Campaigns::new(&[c]).expect("a valid campaign"))
}

/// `quantity` of `sku` at ¥10.00.
pub fn item(sku: &str, quantity: i32) -> Item {
    Item {
        sku: sku.into(),
        quantity,
        options: Default::default(),
        unit_price_cents: 1_000,
    }
}

/// An order of user `u` in campaign `c` for `request`.
pub fn order(request: &str, outcome: OrderOutcome, items: Vec<Item>) -> Record {
    Record::Order(OrderEvent {
        reply_partition: None,
        request_id: request.into(),
        session_id: String::new(),
        user_id: "u".into(),
        campaign_id: "c".into(),
        trace_id: String::new(),
        event_time_ms: 0,
        prompt_time_ms: 0,
        locale: "en".into(),
        order_id: format!("CC-{request}"),
        outcome,
        items,
        total_cents: 0,
        credit_cents: 0,
        to_pay_cents: 0,
        reason: None,
    })
}

/// A stock lease movement of `units` of `sku` in campaign `c`, with id `id`.
pub fn stock(id: &str, kind: TreasuryKind, sku: &str, units: i64) -> Record {
    lease_movement(id, kind, stock_resource(sku), units)
}
