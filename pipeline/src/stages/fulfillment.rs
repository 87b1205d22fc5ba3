//! Fulfillment stage: `commerce.decisions` → `commerce.orders`, and
//! returns on to `campaign.treasury`. Folds each decisions partition with the
//! ledger's decisions fold and places an order only for a *valid* grant, so
//! a duplicate or a zombie's grant beyond the budget never becomes an order.
//! The order id is derived from the request id, so a redelivered grant names
//! the same order and is recognised.
//!
//! Returns of unused allowance reach the treasury through this stage, not
//! straight from the coupon stage: the treasury cannot check a return, but
//! this stage folds the decisions log in order and forwards only returns
//! the fold found valid, with the amount the fold accepted.

use std::collections::HashSet;
use std::sync::Arc;

use schemas::{CouponDecision, OrderEvent, OrderOutcome, Record, TreasuryKind, TreasuryRecord};

use crate::campaign::Campaigns;
use crate::ledger::{DecisionsFold, Effect};
use crate::runtime::{Emit, Stage, Step};
use crate::topics::Topic;

/// Creates orders for valid grants.
pub struct FulfillmentStage {
    campaigns: Arc<Campaigns>,
}

impl FulfillmentStage {
    pub fn new(campaigns: Arc<Campaigns>) -> Self {
        Self { campaigns }
    }
}

/// One partition's fulfillment state.
pub struct FulfillmentState {
    /// The decisions partition, folded up to the record being handled.
    pub fold: DecisionsFold,
    /// Requests that already have an order.
    pub placed: HashSet<String>,
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
    /// The order for a valid grant, unless one exists already.
    pub fn fulfil(
        &self,
        placed: &mut HashSet<String>,
        d: CouponDecision,
        now_ms: i64,
    ) -> Option<OrderEvent> {
        if !placed.insert(d.request_id.clone()) {
            return None;
        }
        Some(OrderEvent {
            order_id: order_id(&d.campaign_id, &d.request_id),
            request_id: d.request_id,
            session_id: d.session_id,
            user_id: d.user_id,
            campaign_id: d.campaign_id,
            trace_id: d.trace_id,
            event_time_ms: now_ms,
            prompt_time_ms: d.prompt_time_ms,
            locale: d.locale,
            outcome: OrderOutcome::Placed,
            items: d.items,
            total_cents: d.total_cents,
            credit_cents: d.credit_cents,
            to_pay_cents: (d.total_cents - d.credit_cents).max(0),
            reason: None,
        })
    }
}

impl Stage for FulfillmentStage {
    type State = FulfillmentState;

    fn name(&self) -> &'static str {
        "fulfillment"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Decisions]
    }

    fn restore_from(&self) -> Option<Topic> {
        Some(Topic::Orders)
    }

    fn replays(&self) -> Option<Topic> {
        Some(Topic::Decisions)
    }

    fn new_state(&self, _partition: i32) -> FulfillmentState {
        FulfillmentState {
            fold: DecisionsFold::new(Arc::clone(&self.campaigns)),
            placed: HashSet::new(),
        }
    }

    fn restore(&self, st: &mut FulfillmentState, record: &Record) {
        if let Record::Order(order) = record {
            st.placed.insert(order.request_id.clone());
        }
    }

    fn replay(&self, st: &mut FulfillmentState, record: &Record) {
        st.fold.apply(record);
    }

    fn handle(&self, st: &mut FulfillmentState, record: Record, now_ms: i64) -> Step {
        match (st.fold.apply(&record), record) {
            (Effect::Granted(_), Record::Decision(d)) => self
                .fulfil(&mut st.placed, d, now_ms)
                .map(|o| vec![Emit::new(Topic::Orders, Record::Order(o))])
                .unwrap_or_default()
                .into(),
            (Effect::Returned(amount), Record::Treasury(t)) => {
                let forward = TreasuryRecord {
                    kind: TreasuryKind::LeaseReturn,
                    amount,
                    event_time_ms: now_ms,
                    ..t
                };
                vec![Emit::new(Topic::Treasury, Record::Treasury(forward))].into()
            }
            _ => Step::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::DecisionOutcome;

    fn granted(request: &str) -> CouponDecision {
        CouponDecision {
            request_id: request.into(),
            session_id: String::new(),
            user_id: "u1".into(),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            prompt_time_ms: 0,
            locale: "en".into(),
            outcome: DecisionOutcome::Granted,
            items: vec![],
            total_cents: 3_000,
            credit_cents: 2_000,
            reason: None,
        }
    }

    #[test]
    fn order_ids_are_stable_and_distinct() {
        assert_eq!(order_id("c", "r1"), order_id("c", "r1"));
        assert_ne!(order_id("c", "r1"), order_id("c", "r2"));
        assert_ne!(order_id("c", "r1"), order_id("c2", "r1"));
        assert_eq!(order_id("c", "r1").len(), 18);
    }

    fn stage() -> FulfillmentStage {
        FulfillmentStage::new(crate::ledger::decisions::tests::campaigns(1))
    }

    #[test]
    fn one_order_per_request() {
        let mut placed = HashSet::new();
        let o = stage().fulfil(&mut placed, granted("r1"), 0).unwrap();
        assert_eq!(o.to_pay_cents, 1_000);
        assert!(stage().fulfil(&mut placed, granted("r1"), 0).is_none());
    }

    #[test]
    fn only_valid_grants_become_orders_and_valid_returns_go_to_the_treasury() {
        use crate::ledger::decisions::tests::movement;
        let s = stage();
        let mut st = s.new_state(0);
        let grant = |r: &str, u: &str| {
            let mut d = granted(r);
            d.user_id = u.into();
            Record::Decision(d)
        };
        // No allowance yet: the grant is invalid.
        assert_eq!(s.handle(&mut st, grant("r0", "u0"), 0), Step::default());
        assert_eq!(
            s.handle(&mut st, movement("l1", TreasuryKind::LeaseCredit, 3_000), 0),
            Step::default()
        );
        let placed = s.handle(&mut st, grant("r1", "u1"), 0);
        assert!(matches!(&placed.emits[..], [e] if e.topic == Topic::Orders));
        // Beyond the allowance, a second grant (say a zombie's) is no order.
        assert_eq!(s.handle(&mut st, grant("r2", "u2"), 0), Step::default());
        assert_eq!(s.handle(&mut st, grant("r1", "u1"), 0), Step::default());
        // Only 1,000 is unused: a return of more is not forwarded.
        assert_eq!(
            s.handle(&mut st, movement("x1", TreasuryKind::LeaseReturn, 1_500), 0),
            Step::default()
        );
        let forwarded = s.handle(&mut st, movement("x2", TreasuryKind::LeaseReturn, 1_000), 0);
        assert!(
            matches!(&forwarded.emits[..], [e] if e.topic == Topic::Treasury
            && matches!(&e.record, Record::Treasury(t) if t.amount == 1_000 && t.request_id == "x2"))
        );
    }
}
