//! Every reason code the pipeline gives, spelt once: why an intent was
//! rejected, why a grant was denied, why an order failed, why a gateway
//! shed a request. They travel on `commerce.intents`, `commerce.decisions`,
//! `commerce.orders` and `chat.gateway.decisions`, are
//! counted by the analytics views and pick the reply's template, so a reader
//! of any topic, and every crate that writes one, agree on them.

use std::fmt;

use serde::Serialize;

/// Why a prompt orders nothing (`commerce.intents`, `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// A greeting, question, refund, cancellation, tracking request…
    NotAPurchase,
    /// A purchase of something the catalog does not have.
    UnknownItem,
    /// A purchase that names nothing to buy (or only zero of something).
    NoItem,
    /// More of an item than one order may contain.
    QuantityLimit,
    /// Neither a purchase nor anything else recognisable.
    NotUnderstood,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::NotAPurchase,
        Rejection::UnknownItem,
        Rejection::NoItem,
        Rejection::QuantityLimit,
        Rejection::NotUnderstood,
    ];

    /// The code carried on `commerce.intents` and in replies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejection::NotAPurchase => "not_a_purchase",
            Rejection::UnknownItem => "unknown_item",
            Rejection::NoItem => "no_item",
            Rejection::QuantityLimit => "quantity_limit",
            Rejection::NotUnderstood => "not_understood",
        }
    }

    /// The rejection with this code.
    pub fn parse(code: &str) -> Option<Rejection> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Denied: the campaign's budget is used up.
pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
/// Denied: the user already had their credited order(s).
pub const ALREADY_USED: &str = "already_used";
/// Denied: no configured campaign covers this request (unknown campaign, or
/// none of its items are eligible, or too little of them for the credit).
pub const NOT_ELIGIBLE: &str = "not_eligible";
/// Denied: the request was made before the campaign started or after it
/// ended.
pub const CAMPAIGN_NOT_ACTIVE: &str = "campaign_not_active";

/// Any stage: the request's deadline passed before the stage read it, so
/// it ends with nothing charged (an intent rejected, credit denied, or an
/// order failed and its credit released). Its reply is
/// [`ReplyOutcome::Expired`](crate::ReplyOutcome::Expired).
pub const EXPIRED: &str = "expired";

/// Whether a request whose deadline is `deadline_ms` has expired at `now_ms`.
pub fn is_expired(deadline_ms: Option<i64>, now_ms: i64) -> bool {
    deadline_ms.is_some_and(|d| now_ms > d)
}

/// Gateway, shed: the estimated wait was over `gateway.max_wait_secs`.
pub const OVER_MAX_WAIT: &str = "over_max_wait";
/// Gateway, shed: a stage made no progress for `gateway.stall_secs`.
pub const PIPELINE_STALLED: &str = "pipeline_stalled";
/// Gateway, shed: a stage idle until now has a backlog and has not yet
/// committed, so its wait cannot be told (the first second of a surge).
pub const NO_ESTIMATE_YET: &str = "no_estimate_yet";
/// Gateway, admitted: the person was told at once that the campaign's free
/// orders are all handed out.
pub const FREE_ORDERS_USED_UP: &str = "free_orders_used_up";

/// Order failed: a SKU of the order has no stock left anywhere.
pub const OUT_OF_STOCK: &str = "out_of_stock";
/// Order failed: a SKU of the order is not sold (any more).
pub const SKU_UNAVAILABLE: &str = "sku_unavailable";
/// Order failed: the campaign stopped taking orders.
pub const CAMPAIGN_CLOSED: &str = "campaign_closed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_round_trip_through_their_codes() {
        for r in Rejection::ALL {
            assert_eq!(Rejection::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).expect("serialises"),
                serde_json::Value::from(r.as_str())
            );
        }
        assert_eq!(Rejection::parse("nope"), None);
    }
}
