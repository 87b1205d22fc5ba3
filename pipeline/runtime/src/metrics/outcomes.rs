//! What the pipeline decided, counted from the records its stages emit:
//! coupon decisions and the credit granted, orders placed and failed,
//! replies by outcome. These are the figures an operator compares with the
//! audit, so they are counted where the records are queued, once per
//! record a stage handled (a record handled again after a crash counts
//! again, as any Prometheus counter of work done would).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use schemas::{DecisionOutcome, OrderOutcome, Record, ReplyOutcome};
use stages::Topic;

/// An outcome and a reason code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeReason {
    pub outcome: &'static str,
    pub reason: &'static str,
}

/// A configured campaign (a grant names one; denials may not).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CampaignLabel {
    pub campaign: String,
}

/// The decision, order and reply counters.
#[derive(Debug, Default)]
pub struct Outcomes {
    decisions: Family<OutcomeReason, Counter>,
    granted_cents: Family<CampaignLabel, Counter>,
    orders: Family<OutcomeReason, Counter>,
    replies: Family<OutcomeReason, Counter>,
}

impl Outcomes {
    /// The counters, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self::default();
        registry.register(
            "decisions",
            "Coupon decisions queued, by outcome (granted, denied, released) and reason code",
            me.decisions.clone(),
        );
        registry.register(
            "granted_cents",
            "Credit granted by valid grants, in cents, by campaign (releases not subtracted)",
            me.granted_cents.clone(),
        );
        registry.register(
            "orders",
            "Orders queued, by outcome (placed, failed) and reason code",
            me.orders.clone(),
        );
        registry.register(
            "replies",
            "Replies to people queued, by outcome and reason code",
            me.replies.clone(),
        );
        me
    }

    /// Counts `record`, queued to `topic`: decisions on
    /// `commerce.decisions`, orders on `commerce.orders` and replies on
    /// `chat.replies` (the gateway's copy of a reply is not a second one).
    pub fn count(&self, record: &Record, topic: Topic) {
        match (record, topic) {
            (Record::Decision(d), Topic::Decisions) => {
                let outcome = match d.outcome {
                    DecisionOutcome::Granted => "granted",
                    DecisionOutcome::Denied => "denied",
                    DecisionOutcome::Released => "released",
                };
                self.decisions
                    .get_or_create(&OutcomeReason {
                        outcome,
                        reason: reason_label(d.reason.as_deref()),
                    })
                    .inc();
                if d.outcome == DecisionOutcome::Granted {
                    self.granted_cents
                        .get_or_create(&CampaignLabel {
                            campaign: d.campaign_id.clone(),
                        })
                        .inc_by(u64::try_from(d.credit_cents).unwrap_or(0));
                }
            }
            (Record::Order(o), Topic::Orders) => {
                let outcome = match o.outcome {
                    OrderOutcome::Placed => "placed",
                    OrderOutcome::Failed => "failed",
                };
                self.orders
                    .get_or_create(&OutcomeReason {
                        outcome,
                        reason: reason_label(o.reason.as_deref()),
                    })
                    .inc();
            }
            (Record::Reply(r), Topic::Replies) => {
                let outcome = match r.outcome {
                    ReplyOutcome::OrderPlaced => "order_placed",
                    ReplyOutcome::OrderFailed => "order_failed",
                    ReplyOutcome::Denied => "denied",
                    ReplyOutcome::Rejected => "rejected",
                    ReplyOutcome::Expired => "expired",
                };
                self.replies
                    .get_or_create(&OutcomeReason {
                        outcome,
                        reason: reason_label(r.reason.as_deref()),
                    })
                    .inc();
            }
            _ => {}
        }
    }
}

/// A reason code as a label: one of the codes the pipeline writes, `none`,
/// or `other` (so no record can make a new series).
pub fn reason_label(reason: Option<&str>) -> &'static str {
    use schemas::reason::*;
    let Some(code) = reason else {
        return "none";
    };
    if let Some(r) = Rejection::parse(code) {
        return r.as_str();
    }
    [
        BUDGET_EXHAUSTED,
        ALREADY_USED,
        NOT_ELIGIBLE,
        CAMPAIGN_NOT_ACTIVE,
        EXPIRED,
        OUT_OF_STOCK,
        SKU_UNAVAILABLE,
        CAMPAIGN_CLOSED,
        FREE_ORDERS_USED_UP,
    ]
    .into_iter()
    .find(|known| *known == code)
    .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_a_closed_set() {
        assert_eq!(reason_label(None), "none");
        assert_eq!(reason_label(Some("budget_exhausted")), "budget_exhausted");
        assert_eq!(reason_label(Some("not_a_purchase")), "not_a_purchase");
        assert_eq!(reason_label(Some("13800138000")), "other");
    }
}
