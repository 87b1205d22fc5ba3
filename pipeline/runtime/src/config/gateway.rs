//! The `[gateway]` section: how `chatcart gateway` listens, which reply
//! partition it reads, when it sheds load, and the limits that keep a slow
//! or hostile client from holding resources without bound.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// `chatcart gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `HOST:PORT` to serve HTTP on.
    pub listen: String,
    /// This instance's partition of `chat.gateway.replies` (below
    /// `kafka.partitions`): replies to the requests it accepts are copied
    /// there and it reads only that partition. Each running instance needs
    /// its own; a restarted instance takes its old one back.
    pub instance: i32,
    /// A request whose estimated wait is longer is answered `429` at once,
    /// with when to try again, and not published.
    pub max_wait_secs: u64,
    /// A request whose estimated wait is longer first gets a `queued`
    /// event with its position and the estimate.
    pub queued_after_ms: u64,
    /// Added to the promised wait to make the prompt's deadline: the time
    /// the pipeline has beyond the estimate before the request expires.
    pub deadline_slack_secs: u64,
    /// A stage whose committed offset on a partition has not moved for this
    /// long while it has a backlog counts as stalled: new requests for that
    /// partition are shed.
    pub stall_secs: u64,
    /// How often each stage's lag is read, in milliseconds.
    pub sample_ms: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Open connections at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests (streams and waits) open at once; more get `503`.
    pub max_open_requests: usize,
    /// Requests tracked at once, in flight or answered and kept for
    /// `keep_answers_secs`, so a repeated or resumed request is recognised.
    pub max_tracked_requests: usize,
    /// How long an answer is kept for a client that reconnects.
    pub keep_answers_secs: u64,
    /// Longest a stream or `?wait=` may stay open; it then ends with the
    /// request's URL to resume from.
    pub max_stream_secs: u64,
    /// Longest a client may take to send its request body.
    pub body_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            instance: 0,
            max_wait_secs: 20,
            queued_after_ms: 1_000,
            deadline_slack_secs: 10,
            stall_secs: 5,
            sample_ms: 250,
            max_body_bytes: 16 * 1024,
            max_connections: 10_000,
            max_open_requests: 20_000,
            max_tracked_requests: 200_000,
            keep_answers_secs: 600,
            max_stream_secs: 120,
            body_timeout_secs: 10,
        }
    }
}

impl GatewayConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }

    pub fn queued_after(&self) -> Duration {
        Duration::from_millis(self.queued_after_ms)
    }

    pub fn deadline_slack(&self) -> Duration {
        Duration::from_secs(self.deadline_slack_secs)
    }

    pub fn stall(&self) -> Duration {
        Duration::from_secs(self.stall_secs)
    }

    pub fn sample_every(&self) -> Duration {
        Duration::from_millis(self.sample_ms)
    }

    pub fn keep_answers(&self) -> Duration {
        Duration::from_secs(self.keep_answers_secs)
    }

    pub fn max_stream(&self) -> Duration {
        Duration::from_secs(self.max_stream_secs)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// How long a request without an answer is followed: its promise, the
    /// slack, and a stream's time to spare.
    pub fn pending_for(&self) -> Duration {
        self.max_wait() + self.deadline_slack() + self.max_stream()
    }

    /// Checks every value against `partitions`, the pipeline's partition count.
    pub fn validate(&self, partitions: i32) -> Result<(), ConfigError> {
        if !(0..partitions).contains(&self.instance) {
            return Err(invalid(
                "gateway.instance",
                format!(
                    "must be between 0 and kafka.partitions - 1 ({})",
                    partitions - 1
                ),
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 8] = [
            ("gateway.max_wait_secs", self.max_wait_secs, 1, 3_600),
            (
                "gateway.queued_after_ms",
                self.queued_after_ms,
                0,
                3_600_000,
            ),
            (
                "gateway.deadline_slack_secs",
                self.deadline_slack_secs,
                1,
                3_600,
            ),
            ("gateway.stall_secs", self.stall_secs, 1, 3_600),
            ("gateway.sample_ms", self.sample_ms, 50, 60_000),
            (
                "gateway.keep_answers_secs",
                self.keep_answers_secs,
                1,
                86_400,
            ),
            ("gateway.max_stream_secs", self.max_stream_secs, 1, 3_600),
            ("gateway.body_timeout_secs", self.body_timeout_secs, 1, 600),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(invalid(key, format!("must be between {min} and {max}")));
            }
        }
        let sizes: [(&'static str, usize, usize, usize); 4] = [
            ("gateway.max_body_bytes", self.max_body_bytes, 256, 1 << 20),
            (
                "gateway.max_connections",
                self.max_connections,
                1,
                1_000_000,
            ),
            (
                "gateway.max_open_requests",
                self.max_open_requests,
                1,
                1_000_000,
            ),
            (
                "gateway.max_tracked_requests",
                self.max_tracked_requests,
                1,
                10_000_000,
            ),
        ];
        for (key, value, min, max) in sizes {
            if !(min..=max).contains(&value) {
                return Err(invalid(key, format!("must be between {min} and {max}")));
            }
        }
        if self.listen.trim().is_empty() {
            return Err(invalid("gateway.listen", "must be HOST:PORT"));
        }
        Ok(())
    }
}
