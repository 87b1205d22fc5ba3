//! Fulfillment stage: `commerce.decisions` → `commerce.orders`. Places the
//! order for each granted request, with an order id derived from the request
//! id, so a redelivered decision names the same order and is recognised.

use std::collections::HashSet;

use schemas::{CouponDecision, DecisionOutcome, OrderEvent, OrderOutcome, Record};

use crate::runtime::{Emit, Stage};
use crate::topics::Topic;

/// Creates orders for granted requests.
#[derive(Default)]
pub struct FulfillmentStage;

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
    /// The order for a granted decision, unless one exists already.
    pub fn fulfil(
        &self,
        placed: &mut HashSet<String>,
        d: CouponDecision,
        now_ms: i64,
    ) -> Option<OrderEvent> {
        if d.outcome != DecisionOutcome::Granted || !placed.insert(d.request_id.clone()) {
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
    /// Requests that already have an order.
    type State = HashSet<String>;

    fn name(&self) -> &'static str {
        "fulfillment"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Decisions]
    }

    fn restore_from(&self) -> Option<Topic> {
        Some(Topic::Orders)
    }

    fn new_state(&self, _partition: i32) -> HashSet<String> {
        HashSet::new()
    }

    fn restore(&self, placed: &mut HashSet<String>, record: &Record) {
        if let Record::Order(order) = record {
            placed.insert(order.request_id.clone());
        }
    }

    fn handle(&self, placed: &mut HashSet<String>, record: Record, now_ms: i64) -> Vec<Emit> {
        match record {
            Record::Decision(d) => self
                .fulfil(placed, d, now_ms)
                .map(|o| Emit::new(Topic::Orders, Record::Order(o)))
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn one_order_per_request() {
        let mut placed = HashSet::new();
        let o = FulfillmentStage
            .fulfil(&mut placed, granted("r1"), 0)
            .unwrap();
        assert_eq!(o.to_pay_cents, 1_000);
        assert!(
            FulfillmentStage
                .fulfil(&mut placed, granted("r1"), 0)
                .is_none()
        );
    }

    #[test]
    fn denials_are_not_fulfilled() {
        let mut d = granted("r1");
        d.outcome = DecisionOutcome::Denied;
        assert!(FulfillmentStage.fulfil(&mut HashSet::new(), d, 0).is_none());
    }
}
