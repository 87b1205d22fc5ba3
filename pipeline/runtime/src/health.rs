//! Whether each long-running part of the process can do its work, and
//! whether it is ready to: what [`crate::ops`] answers a supervisor or a
//! load balancer with.
//!
//! A part reports itself unhealthy with a reason (the analytics sink while
//! ClickHouse refuses its inserts) and healthy again when it recovers; and
//! not ready while it cannot work yet without anything being wrong (waiting
//! for the broker, restoring a partition). `GET /health` answers `200` with
//! `ok` when every part is healthy and `503` with one `part: reason` line
//! per unhealthy part otherwise. Reasons never contain prompt text.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// The health of every part of the process.
#[derive(Debug, Default)]
pub struct Health {
    /// Unhealthy parts and why; bounded by the number of parts.
    unhealthy: Mutex<BTreeMap<&'static str, String>>,
    /// Parts not ready yet and why; bounded likewise.
    waiting: Mutex<BTreeMap<&'static str, String>>,
}

impl Health {
    /// Marks `part` unhealthy; logged when it changes from healthy.
    pub fn unhealthy(&self, part: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        let mut map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(part) {
            tracing::warn!(part, %reason, "unhealthy");
        }
        map.insert(part, reason);
    }

    /// Marks `part` healthy; logged when it was not.
    pub fn healthy(&self, part: &'static str) {
        let mut map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.remove(part).is_some() {
            tracing::info!(part, "healthy again");
        }
    }

    /// Whether `part` is healthy now.
    pub fn is_healthy(&self, part: &str) -> bool {
        !self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(part)
    }

    /// Marks `part` not ready, for `reason` (logged at debug: it is no
    /// fault).
    pub fn not_ready(&self, part: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::debug!(part, %reason, "not ready");
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(part, reason);
    }

    /// Marks `part` ready.
    pub fn ready(&self, part: &'static str) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(part);
    }

    /// Why the process is not ready: one `part: reason` line per part that
    /// is unhealthy or not ready yet; empty when it is ready.
    pub fn not_ready_because(&self) -> String {
        let unhealthy = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        unhealthy
            .iter()
            .chain(waiting.iter())
            .map(|(part, reason)| format!("{part}: {reason}\n"))
            .collect()
    }

    /// The status line and body `GET /health` answers with.
    pub fn report(&self) -> (&'static str, String) {
        let map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return ("200 OK", "ok\n".to_owned());
        }
        let body = map
            .iter()
            .map(|(part, reason)| format!("{part}: {reason}\n"))
            .collect();
        ("503 Service Unavailable", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_unhealthy_until_it_says_otherwise() {
        let h = Health::default();
        assert_eq!(h.report().0, "200 OK");
        h.unhealthy("analytics", "ClickHouse unavailable: connection refused");
        h.unhealthy("analytics", "ClickHouse unavailable: timeout");
        let (status, body) = h.report();
        assert_eq!(status, "503 Service Unavailable");
        assert_eq!(body, "analytics: ClickHouse unavailable: timeout\n");
        assert!(!h.is_healthy("analytics"));
        h.healthy("analytics");
        assert_eq!(h.report().0, "200 OK");
    }

    #[test]
    fn not_ready_is_not_unhealthy() {
        let h = Health::default();
        h.not_ready("kafka", "waiting for the broker");
        assert_eq!(h.report().0, "200 OK", "alive while it waits");
        assert_eq!(h.not_ready_because(), "kafka: waiting for the broker\n");
        h.unhealthy("analytics", "down");
        assert_eq!(
            h.not_ready_because(),
            "analytics: down\nkafka: waiting for the broker\n"
        );
        h.ready("kafka");
        h.healthy("analytics");
        assert_eq!(h.not_ready_because(), "");
    }
}
