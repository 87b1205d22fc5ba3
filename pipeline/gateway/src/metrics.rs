//! What the gateway counts for `/metrics`: every request it decided on, by
//! decision and reason, and the waits it promised to those it admitted.
//! Served by the process's operations endpoint (`runtime.health_listen`),
//! like a stage's.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A decision and its reason code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionReason {
    /// `admitted` or `shed`.
    pub decision: &'static str,
    /// A fixed code (`over_max_wait`, `free_orders_used_up`, …) or `none`.
    pub reason: &'static str,
}

/// The gateway's series.
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    requests: Family<DecisionReason, Counter>,
    promised: Histogram,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            // From 50 ms doubling to about 100 s: a promise is at least the
            // pipeline's base latency and at most gateway.max_wait_secs.
            promised: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
        }
    }
}

impl GatewayMetrics {
    /// Registers the series in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_requests",
            "Requests the gateway decided on, by decision (admitted, shed) and reason",
            self.requests.clone(),
        );
        registry.register(
            "gateway_promised_wait_seconds",
            "The wait promised to each admitted request (its queued event's estimate)",
            self.promised.clone(),
        );
    }

    /// Counts one decision; `wait` is the promise made to an admitted one.
    pub fn decided(&self, admitted: bool, reason: Option<&'static str>, wait: Option<Duration>) {
        let decision = if admitted { "admitted" } else { "shed" };
        self.requests
            .get_or_create(&DecisionReason {
                decision,
                reason: reason.unwrap_or("none"),
            })
            .inc();
        if let (true, Some(wait)) = (admitted, wait) {
            self.promised.observe(wait.as_secs_f64());
        }
    }
}
