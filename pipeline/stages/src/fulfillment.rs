//! Fulfillment stage: `commerce.decisions` → `commerce.orders`, stock lease
//! requests on `campaign.treasury`, and budget returns on to the treasury.
//!
//! It folds each decisions partition with the ledger's decisions fold and
//! orders only a *valid* grant, so a duplicate or a zombie's grant beyond
//! the budget never becomes an order. The order id is derived from the
//! request id, and which requests have an order is restored from the stage's
//! own output, so a redelivered grant is recognised.
//!
//! Stock works like the budget: the partition spends only the stock leases
//! credited to its `commerce.orders` partition (the ledger's stock fold),
//! asks the treasury for more ahead of need (the shared [`Leases`]), and a
//! grant whose items do not fit waits, without blocking other partitions,
//! until a lease arrives. When the treasury has leased out all of a SKU, an
//! order that does not fit fails `out_of_stock`; it is all or nothing. A
//! failed order goes to the coupon stage, which releases its credit, and to
//! the reply stage.
//!
//! Idle partitions hand unused stock back near a campaign's end or once
//! the treasury has none of a SKU left, as the coupon stage does with
//! budget; the reply stage, which folds the orders log, forwards the
//! returns the log accepts.
//!
//! Returns of unused budget reach the treasury through this stage, not
//! straight from the coupon stage: the treasury cannot check a return, but
//! this stage folds the decisions log in order and forwards only returns
//! the fold found valid, with the amount the fold accepted.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use schemas::{CouponDecision, OrderEvent, OrderOutcome, Record, TreasuryKind, TreasuryRecord};

use super::leases::{Leases, ResourceAt, TreasuryView};
use crate::Topic;
use crate::{Collector, Emit, OwnOutput, Plan, Replay, Restore, Stage, StageId, StatePlan};
use extract::catalog::Catalog;
use ledger::campaign::Campaigns;
use ledger::{DecisionsFold, Effect, ImageError, StockFold, TreasuryFold, stock_resource};
use schemas::reason::{CAMPAIGN_CLOSED, EXPIRED, OUT_OF_STOCK, SKU_UNAVAILABLE, is_expired};

/// How long before a campaign's end idle partitions return unused stock,
/// unless configured (`fulfillment.return_before_end_secs`).
pub const DEFAULT_RETURN_BEFORE_END_MS: i64 = 300_000;

/// Creates orders for valid grants.
pub struct FulfillmentStage {
    campaigns: Arc<Campaigns>,
    catalog: Catalog,
    treasury: Arc<TreasuryView>,
    partitions: i32,
    close_after_end_ms: i64,
    return_before_end_ms: i64,
    /// Off only to inject a fault (see [`FulfillmentStage::ignoring_stock`]).
    checks_stock: bool,
    nonce: u64,
}

/// One partition's fulfillment state.
pub struct FulfillmentState {
    /// The decisions partition, folded up to the record being handled.
    pub fold: DecisionsFold,
    /// The stage's own orders partition: orders and stock leases.
    pub stock: StockFold,
    /// Valid grants waiting for stock, in arrival order.
    parked: VecDeque<CouponDecision>,
    leases: Leases,
}

impl FulfillmentState {
    /// Grants waiting for stock.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

/// The order id for a request: stable across redeliveries and restarts.
/// FNV-1a (64 bit) keeps it short enough to read out to a person.
pub fn order_id(campaign_id: &str, request_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in campaign_id.bytes().chain([0]).chain(request_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("CC{hash:016X}")
}

impl FulfillmentStage {
    pub fn new(
        campaigns: Arc<Campaigns>,
        catalog: Catalog,
        treasury: Arc<TreasuryView>,
        partitions: i32,
        close_after_end_ms: i64,
    ) -> Self {
        let nonce = std::collections::hash_map::RandomState::new().hash_one(partitions);
        Self {
            campaigns,
            catalog,
            treasury,
            partitions,
            close_after_end_ms,
            return_before_end_ms: DEFAULT_RETURN_BEFORE_END_MS,
            checks_stock: true,
            nonce,
        }
    }

    /// Idle partitions return their unused stock this long before a
    /// campaign ends (as well as once the treasury has none of a SKU left).
    pub fn with_return_before_end_ms(mut self, ms: i64) -> Self {
        self.return_before_end_ms = ms;
        self
    }

    /// A fault for tests: orders every grant without asking the stock fold
    /// whether it fits, as a zombie acting on a stale view of its
    /// partition's stock does. The log's fold refuses what does not fit,
    /// and the reply stage answers it failed and releases its credit.
    pub fn ignoring_stock(mut self) -> Self {
        self.checks_stock = false;
        self
    }

    /// Hands back the stock an idle partition does not use, near a
    /// campaign's end or once the treasury has none of the SKU left, so
    /// busier partitions can sell it. This is also where the units an
    /// all-or-nothing order gathered before it failed go back. The reply
    /// stage forwards each return the orders fold accepts to the treasury.
    fn return_unused(
        &self,
        st: &mut FulfillmentState,
        t: &TreasuryFold,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) {
        if !st.parked.is_empty() {
            return;
        }
        for campaign in self.campaigns.iter() {
            let near_end = now_ms >= campaign.ends_ms.saturating_sub(self.return_before_end_ms);
            for sku in campaign.stock.keys() {
                let resource = stock_resource(sku);
                st.leases.give_back(
                    &mut st.stock,
                    ResourceAt::new(t, &campaign.id, &resource, now_ms),
                    near_end,
                    out,
                );
            }
        }
    }

    /// Every stock-limited resource of every campaign, as `(campaign, resource)`.
    fn stock_resources(&self) -> impl Iterator<Item = (&str, String)> {
        self.campaigns.iter().flat_map(|c| {
            c.stock
                .keys()
                .map(move |sku| (c.id.as_str(), stock_resource(sku)))
        })
    }

    fn credit_leases(
        &self,
        st: &mut FulfillmentState,
        t: &TreasuryFold,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) {
        for (campaign, resource) in self.stock_resources() {
            st.leases.credit(
                &mut st.stock,
                ResourceAt::new(t, campaign, &resource, now_ms),
                out,
            );
        }
    }

    /// Why `d` cannot be ordered whatever the stock, if it cannot.
    fn refusal(&self, d: &CouponDecision, now_ms: i64) -> Option<&'static str> {
        let closed = self
            .campaigns
            .get(&d.campaign_id)
            .is_some_and(|c| now_ms >= c.ends_ms.saturating_add(self.close_after_end_ms));
        // An order past its deadline fails, so its credit is released and
        // the person, told it expired, may try again.
        if is_expired(d.deadline_ms, now_ms) {
            Some(EXPIRED)
        } else if closed {
            Some(CAMPAIGN_CLOSED)
        } else if d.items.iter().any(|i| self.catalog.sku(&i.sku).is_none()) {
            Some(SKU_UNAVAILABLE)
        } else {
            None
        }
    }

    /// The order for the valid grant `d`, or `None` when it must wait for
    /// stock (a lease is then on its way).
    fn decide(
        &self,
        st: &mut FulfillmentState,
        t: &TreasuryFold,
        d: &CouponDecision,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) -> Option<OrderEvent> {
        let c = d.campaign_id.as_str();
        let mut reason = self.refusal(d, now_ms);
        if reason.is_none() {
            let short = if self.checks_stock {
                st.stock.shortfall(c, &d.items)
            } else {
                Vec::new()
            };
            for (resource, _) in &short {
                st.leases.demand(c, resource, now_ms);
            }
            if short
                .iter()
                .any(|(resource, _)| st.leases.exhausted(ResourceAt::new(t, c, resource, now_ms)))
            {
                reason = Some(OUT_OF_STOCK);
            } else if !short.is_empty() {
                for (resource, missing) in &short {
                    let need = st.stock.unused_of(c, resource) + missing;
                    st.leases.request(
                        &st.stock,
                        ResourceAt::new(t, c, resource, now_ms),
                        Some(need),
                        out,
                    );
                }
                return None;
            }
        }
        let order = order(d, reason, now_ms);
        st.stock.apply(&Record::Order(order.clone()));
        if reason.is_none() {
            for sku in d.items.iter().map(|i| stock_resource(&i.sku)) {
                if t.resource(c, &sku).is_some() {
                    st.leases.demand(c, &sku, now_ms);
                    st.leases
                        .request(&st.stock, ResourceAt::new(t, c, &sku, now_ms), None, out);
                }
            }
        }
        Some(order)
    }

    fn on_grant(
        &self,
        st: &mut FulfillmentState,
        d: CouponDecision,
        now_ms: i64,
        out: &mut Collector,
    ) {
        if st.stock.order(&d.request_id).is_some() {
            return;
        }
        // The decisions fold already dropped repeats, so every grant here is
        // new; it waits behind the grants already waiting, so a partition
        // orders in arrival order.
        if !st.parked.is_empty() {
            st.parked.push_back(d);
            out.park();
            return;
        }
        let treasury = Arc::clone(&self.treasury);
        let t = treasury.read();
        let mut emits = Vec::new();
        self.credit_leases(st, &t, now_ms, &mut emits);
        let decided = self.decide(st, &t, &d, now_ms, &mut emits);
        out.extend(emits);
        match decided {
            Some(o) => out.emit(Topic::Orders, Record::Order(o)),
            None => {
                st.parked.push_back(d);
                out.park();
            }
        }
    }
}

/// The order record for grant `d`: placed, or failed with `reason`.
fn order(d: &CouponDecision, reason: Option<&str>, now_ms: i64) -> OrderEvent {
    OrderEvent {
        reply_partition: d.reply_partition,
        order_id: order_id(&d.campaign_id, &d.request_id),
        request_id: d.request_id.clone(),
        session_id: d.session_id.clone(),
        user_id: d.user_id.clone(),
        campaign_id: d.campaign_id.clone(),
        trace_id: d.trace_id.clone(),
        event_time_ms: now_ms,
        prompt_time_ms: d.prompt_time_ms,
        locale: d.locale.clone(),
        outcome: if reason.is_none() {
            OrderOutcome::Placed
        } else {
            OrderOutcome::Failed
        },
        items: d.items.clone(),
        total_cents: d.total_cents,
        credit_cents: d.credit_cents,
        to_pay_cents: if reason.is_none() {
            (d.total_cents - d.credit_cents).max(0)
        } else {
            0
        },
        reason: reason.map(str::to_owned),
    }
}

impl Stage for FulfillmentStage {
    type State = FulfillmentState;

    fn plan(&self) -> Plan {
        Plan {
            id: StageId::Fulfillment,
            inputs: &[Topic::Decisions],
            state: StatePlan {
                own_output: Some(OwnOutput {
                    topic: Topic::Orders,
                    window: None,
                    checkpoints: false,
                }),
                replay: &[Replay {
                    input: Topic::Decisions,
                    from_checkpoints_of: Some(StageId::Coupon),
                }],
            },
            wakeup: Some(self.treasury.changed()),
        }
    }

    fn new_state(&self, partition: i32) -> FulfillmentState {
        FulfillmentState {
            fold: DecisionsFold::new(Arc::clone(&self.campaigns)),
            stock: StockFold::new(Arc::clone(&self.campaigns)),
            parked: VecDeque::new(),
            leases: Leases::new(partition, self.partitions, Topic::Orders, self.nonce),
        }
    }

    fn restore(&self, st: &mut FulfillmentState, from: Restore<'_>) -> Result<(), ImageError> {
        match from {
            Restore::Output(record) => {
                st.stock.apply(record);
            }
            Restore::Input(record) => {
                st.fold.apply(record);
            }
            Restore::InputImage(image) => {
                st.fold = DecisionsFold::from_image(Arc::clone(&self.campaigns), image)?;
            }
            Restore::OutputImage(_) => {}
        }
        Ok(())
    }

    fn handle(&self, st: &mut FulfillmentState, record: Record, now_ms: i64, out: &mut Collector) {
        match (st.fold.apply(&record), record) {
            (Effect::Granted(_), Record::Decision(d)) => self.on_grant(st, d, now_ms, out),
            (Effect::Returned(amount), Record::Treasury(t)) => {
                let forward = TreasuryRecord {
                    kind: TreasuryKind::LeaseReturn,
                    amount,
                    event_time_ms: now_ms,
                    ..t
                };
                out.emit(Topic::Treasury, Record::Treasury(forward));
            }
            _ => {}
        }
    }

    fn poll(&self, st: &mut FulfillmentState, now_ms: i64, out: &mut Collector) {
        if self.campaigns.iter().all(|c| c.stock.is_empty()) {
            return;
        }
        let treasury = Arc::clone(&self.treasury);
        let t = treasury.read();
        let mut emits = Vec::new();
        self.credit_leases(st, &t, now_ms, &mut emits);
        out.extend(emits.drain(..));
        while let Some(d) = st.parked.front() {
            if st.stock.order(&d.request_id).is_some() {
                st.parked.pop_front();
                out.finish_parked([]);
                continue;
            }
            let d = d.clone();
            let Some(o) = self.decide(st, &t, &d, now_ms, &mut emits) else {
                out.extend(emits.drain(..));
                break;
            };
            st.parked.pop_front();
            emits.push(Emit::new(Topic::Orders, Record::Order(o)));
            out.finish_parked(emits.drain(..));
        }
        self.return_unused(st, &t, now_ms, &mut emits);
        out.extend(emits);
    }
}

#[cfg(test)]
#[path = "fulfillment_tests.rs"]
mod tests;
