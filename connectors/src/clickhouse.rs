//! ClickHouse as the analytics store: connection settings, the table the
//! analytics sink writes one row per Kafka record into, and its insert path.
//!
//! The SQL here stays within what ClickHouse 18.16 understands (the version
//! Debian ships, used in tests) so the same schema works on current servers.

use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use crate::ConnectorError;

/// How to reach ClickHouse and how the sink batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://localhost:8123`. Empty turns the
    /// analytics sink off.
    pub url: String,
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
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            database: "chatcart".to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            batch_rows: 10_000,
            batch_max_wait_ms: 1_000,
            validation: false,
        }
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
        // This build's HTTP client has no TLS, so an https:// URL would only
        // fail later, at the first insert.
        if self.enabled() && !self.url.starts_with("http://") {
            return Err(ConnectorError::config(
                "clickhouse.url",
                "must start with http:// (the HTTP interface, usually port 8123; TLS is not built in), or be empty to turn analytics off",
            ));
        }
        if !is_identifier(&self.database) {
            return Err(ConnectorError::config(
                "clickhouse.database",
                "must be a plain identifier: a letter or '_' followed by letters, digits or '_' (at most 64)",
            ));
        }
        if !(1..=1_000_000).contains(&self.batch_rows) {
            return Err(ConnectorError::config(
                "clickhouse.batch_rows",
                "must be between 1 and 1000000",
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

    /// A client bound to the configured database.
    pub fn client(&self) -> Client {
        Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_database(&self.database)
            .with_validation(self.validation)
    }
}

/// One Kafka record as the analytics sink stores it. `(topic, partition,
/// offset)` identifies the record, so duplicates are recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub request_id: String,
    pub user_id: String,
    pub campaign_id: String,
    /// The stage that wrote the record (`front-end` for prompts).
    pub stage: String,
    /// The record type, e.g. `CouponDecision`, or `undecodable`.
    pub kind: String,
    /// The outcome code (`granted`, `order_placed`, …), empty for prompts.
    pub outcome: String,
    /// The reason code behind a rejection, denial or failure.
    pub reason: String,
    pub total_cents: i64,
    pub credit_cents: i64,
    pub event_time_ms: i64,
    /// Milliseconds since the prompt was sent (0 for prompts themselves).
    pub latency_ms: i64,
    pub trace_id: String,
}

/// The events table. `ReplacingMergeTree` keyed by the record's position
/// folds away any duplicate a crash between insert and offset commit leaves;
/// there is no partitioning key so every batch is one atomic insert.
const EVENTS_DDL: &str = "CREATE TABLE IF NOT EXISTS events (
    topic String,
    partition Int32,
    offset Int64,
    request_id String,
    user_id String,
    campaign_id String,
    stage String,
    kind String,
    outcome String,
    reason String,
    total_cents Int64,
    credit_cents Int64,
    event_time_ms Int64,
    latency_ms Int64,
    trace_id String,
    event_date Date DEFAULT toDate(intDiv(event_time_ms, 1000))
) ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset)";

/// Creates the database and the events table when they are missing.
pub async fn ensure_schema(config: &ClickHouseConfig) -> Result<(), ConnectorError> {
    // The database may not exist yet, so this statement runs without it.
    let server = config.client().with_database("default");
    // `database` was checked by `validate` to be a plain identifier.
    server
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            config.database
        ))
        .execute()
        .await?;
    config.client().query(EVENTS_DDL).execute().await?;
    Ok(())
}

/// Inserts `rows` as one INSERT statement (so all or none of them land).
pub async fn insert_events(client: &Client, rows: &[EventRow]) -> Result<(), ConnectorError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client
        .insert::<EventRow>("events")
        .await?
        .with_timeouts(Some(Duration::from_secs(30)), Some(Duration::from_secs(60)));
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
