//! ClickHouse as the analytics store: connection settings, the rows the
//! analytics sink writes, the schema ([`migrate`]) and the reads and writes
//! the sink needs ([`store`]).
//!
//! The SQL stays within what ClickHouse 18.16 understands (the version Debian
//! ships, used in tests) so the same schema works on current servers.
//!
//! # Layout
//! - this file: [`ClickHouseConfig`] and the row types;
//! - [`migrate`]: versioned migrations, the server version and what it allows;
//! - [`store`]: inserts, the sink's resume positions, and which errors are
//!   worth retrying;
//! - [`tls`]: the HTTPS client for an `https://` URL and its CA file.

pub mod migrate;
pub mod store;
pub mod tls;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// How to reach ClickHouse and how the sink batches. Its `Debug` shows the
/// password as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://localhost:8123`, or `https://…` for
    /// ClickHouse behind TLS. Empty turns the analytics sink off.
    pub url: String,
    /// For an `https://` URL: a PEM file of the CA certificates to trust
    /// (a private CA). Empty: the public web PKI roots. Certificates are
    /// always verified.
    pub ca_file: String,
    /// Database holding chatcart's tables; created if missing.
    pub database: String,
    pub user: String,
    pub password: String,
    /// A batch is inserted once it holds this many rows…
    pub batch_rows: usize,
    /// …or once its oldest row has waited this long.
    pub batch_max_wait_ms: u64,
    /// Let the client check rows against the server's table schema. Needs a
    /// server newer than 18.16.
    pub validation: bool,
    /// Longest wait for one insert to be acknowledged before it counts as
    /// failed (and is retried).
    pub insert_timeout_ms: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            ca_file: String::new(),
            database: "chatcart".to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            batch_rows: 10_000,
            batch_max_wait_ms: 1_000,
            validation: false,
            insert_timeout_ms: 60_000,
        }
    }
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.redacted();
        f.debug_struct("ClickHouseConfig")
            .field("url", &shown.url)
            .field("ca_file", &shown.ca_file)
            .field("database", &shown.database)
            .field("user", &shown.user)
            .field("password", &shown.password)
            .field("batch_rows", &shown.batch_rows)
            .field("batch_max_wait_ms", &shown.batch_max_wait_ms)
            .field("validation", &shown.validation)
            .field("insert_timeout_ms", &shown.insert_timeout_ms)
            .finish()
    }
}

/// Returns whether `s` can be used as a ClickHouse identifier unquoted.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

impl ClickHouseConfig {
    /// Whether the analytics sink should run at all.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// Checks the values; each error names the key and what is allowed.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.enabled() && !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(ConnectorError::config(
                "clickhouse.url",
                "must start with http:// or https:// (the HTTP interface, usually port 8123, or 8443 with TLS), or be empty to turn analytics off",
            ));
        }
        if !self.ca_file.is_empty() {
            if !self.url.starts_with("https://") {
                return Err(ConnectorError::config(
                    "clickhouse.ca_file",
                    "is for an https:// clickhouse.url; remove it or use https",
                ));
            }
            tls::read_ca(&self.ca_file)?;
        }
        if !is_identifier(&self.database) {
            return Err(ConnectorError::config(
                "clickhouse.database",
                "must be a plain identifier: a letter or '_' followed by letters, digits or '_' (at most 64)",
            ));
        }
        // One batch is one block and one part, so it lands whole or not
        // at all (`store::insert_events`).
        if !(1..=store::MAX_BATCH_ROWS).contains(&self.batch_rows) {
            return Err(ConnectorError::config(
                "clickhouse.batch_rows",
                "must be between 1 and 1000000",
            ));
        }
        if !(1_000..=600_000).contains(&self.insert_timeout_ms) {
            return Err(ConnectorError::config(
                "clickhouse.insert_timeout_ms",
                "must be between 1000 and 600000",
            ));
        }
        if !(1..=600_000).contains(&self.batch_max_wait_ms) {
            return Err(ConnectorError::config(
                "clickhouse.batch_max_wait_ms",
                "must be between 1 and 600000",
            ));
        }
        Ok(())
    }

    /// The URL to show: a password in it replaced.
    pub fn shown_url(&self) -> String {
        crate::secret::redact_url(&self.url)
    }

    /// A copy to show: the password (and one in the URL) replaced.
    pub fn redacted(&self) -> Self {
        Self {
            url: self.shown_url(),
            password: if self.password.is_empty() {
                String::new()
            } else {
                crate::secret::REDACTED.to_owned()
            },
            ..self.clone()
        }
    }

    /// A client bound to the configured database. For `https://`, a CA file
    /// that cannot be read any more (it was checked when the settings
    /// loaded) leaves the client trusting no one: every request then fails
    /// with a certificate error naming `clickhouse.ca_file`.
    pub fn client(&self) -> Client {
        let client = if self.url.starts_with("https://") {
            tls::https_client(&self.ca_file).unwrap_or_else(|e| {
                tracing::error!(error = %e, "ClickHouse over https cannot trust its CA");
                tls::https_client_trusting_nothing()
            })
        } else {
            Client::default()
        };
        client
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_database(&self.database)
            .with_validation(self.validation)
    }
}

/// One Kafka record as the analytics sink stores it in `events`.
/// `(topic, partition, offset)` identifies the record. Field order is the
/// insert's column order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub request_id: String,
    pub user_id: String,
    pub campaign_id: String,
    /// The stage that wrote the record (`front-end` for prompts).
    pub stage: String,
    /// The record type, e.g. `CouponDecision`; `undecodable` for a payload
    /// no schema reads, `dead_letter` for a record of the dead-letter
    /// topic, `poison` for a row ClickHouse refused (sent to the
    /// dead-letter topic instead).
    pub kind: String,
    /// The outcome code (`granted`, `order_placed`, …), empty for prompts.
    pub outcome: String,
    /// The reason code behind a rejection, denial or failure.
    pub reason: String,
    pub locale: String,
    /// Treasury records: `budget` or `stock:<sku>`.
    pub resource: String,
    /// The items of intents, decisions and orders.
    pub item_skus: Vec<String>,
    pub item_quantities: Vec<i32>,
    pub total_cents: i64,
    /// Credit granted or released; for treasury records the amount moved
    /// (cents of budget, or units of `stock:<sku>`).
    pub credit_cents: i64,
    pub event_time_ms: i64,
    /// Milliseconds since the prompt was sent (0 for prompts themselves).
    pub latency_ms: i64,
    pub trace_id: String,
}

/// A campaign's settings as recorded in `campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct CampaignRow {
    pub campaign_id: String,
    pub budget_cents: i64,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub stock_skus: Vec<String>,
    pub stock_units: Vec<i64>,
    pub recorded_at_ms: i64,
}
