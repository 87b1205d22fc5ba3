//! The analytics sink's reads and writes: inserting a batch of rows as one
//! statement, reading back how far each (topic, partition) has been stored,
//! recording campaign settings, and telling a server that is unavailable
//! from one that refuses the data.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{CampaignRow, EventRow};

/// Why an insert failed, which decides what the sink does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not reached, overloaded, or missing something that comes back
    /// (a table, a user): wait and retry the same rows.
    Unavailable(String),
    /// The server refused the rows themselves: some row in them may be
    /// poison.
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unavailable(e) => write!(f, "ClickHouse unavailable: {e}"),
            Failure::Refused(e) => write!(f, "ClickHouse refused the rows: {e}"),
        }
    }
}

/// Server error codes that say nothing about the rows: the same insert may
/// succeed later. Any other exception the server raises on an insert is
/// taken as a refusal of the data.
const TRANSIENT_CODES: &[u32] = &[
    3,    // UNEXPECTED_END_OF_FILE (connection cut mid-request)
    16,   // NO_SUCH_COLUMN_IN_TABLE (schema not migrated yet)
    60,   // UNKNOWN_TABLE
    81,   // UNKNOWN_DATABASE
    159,  // TIMEOUT_EXCEEDED
    164,  // READONLY
    192,  // UNKNOWN_USER
    193,  // WRONG_PASSWORD
    194,  // REQUIRED_PASSWORD
    201,  // QUOTA_EXPIRED
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    203,  // NO_FREE_CONNECTION
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    225,  // NO_ZOOKEEPER
    236,  // ABORTED
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY
    243,  // NOT_ENOUGH_SPACE
    252,  // TOO_MANY_PARTS
    285,  // TOO_FEW_LIVE_REPLICAS
    319,  // UNKNOWN_STATUS_OF_INSERT
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    439,  // CANNOT_SCHEDULE_TASK
    497,  // ACCESS_DENIED
    516,  // AUTHENTICATION_FAILED
    999,  // KEEPER_EXCEPTION
    1000, // POCO_EXCEPTION
];

/// The `Code: N` of a server exception message.
fn code_of(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sorts an insert error into [`Failure`].
pub fn classify(error: &clickhouse::error::Error) -> Failure {
    use clickhouse::error::Error as E;
    // With its causes and a hint: this is what `/health` reports.
    let text = crate::clickhouse_message(error);
    match error {
        E::Network(_) | E::TimedOut => Failure::Unavailable(text),
        E::BadResponse(message) => match code_of(message) {
            Some(code) if !TRANSIENT_CODES.contains(&code) => Failure::Refused(text),
            // No code: an HTTP error from something in front of the server.
            _ => Failure::Unavailable(text),
        },
        // The client could not encode a row: that row is the problem.
        _ => Failure::Refused(text),
    }
}

/// Inserts `rows` as one INSERT (all or none of them land). With a `token`
/// (servers from 22.2), a repeat of the same insert is dropped by the
/// server.
pub async fn insert_events(
    client: &Client,
    rows: &[EventRow],
    token: Option<&str>,
    timeout: Duration,
) -> Result<(), Failure> {
    if rows.is_empty() {
        return Ok(());
    }
    let attempt = async {
        let mut insert = client
            .insert::<EventRow>("events")
            .await?
            .with_timeouts(Some(timeout), Some(timeout));
        if let Some(token) = token {
            insert = insert.with_setting("insert_deduplication_token", token);
        }
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    };
    attempt.await.map_err(|e| classify(&e))
}

#[derive(Debug, Row, Deserialize)]
struct Held {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The highest offset `events` holds for each (topic, partition) of
/// `topics`. A partition with no rows is absent.
pub async fn stored_positions(
    client: &Client,
    topics: &[&str],
) -> Result<HashMap<(String, i32), i64>, Failure> {
    let held: Vec<Held> = client
        // `topic IN (subquery)` lets the primary key skip every other
        // topic's rows (`has(?, topic)` read the whole table: 0.6 s at 11.6M
        // rows against 12 ms, measured); 18.16 has no `IN` of an array.
        .query("SELECT topic, partition, max(offset) FROM events WHERE topic IN (SELECT arrayJoin(?)) GROUP BY topic, partition")
        .bind(topics)
        .fetch_all()
        .await
        .map_err(|e| match classify(&e) {
            // A read cannot be refused for its data.
            Failure::Refused(e) => Failure::Unavailable(e),
            other => other,
        })?;
    Ok(held
        .into_iter()
        .map(|h| ((h.topic, h.partition), h.offset))
        .collect())
}

/// Records the campaigns' settings (a newer row supersedes an older one).
pub async fn record_campaigns(client: &Client, rows: &[CampaignRow]) -> Result<(), Failure> {
    let attempt = async {
        let mut insert = client.insert::<CampaignRow>("campaigns").await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    };
    attempt.await.map_err(|e| classify(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    #[test]
    fn server_exceptions_are_sorted_by_code() {
        let refused = E::BadResponse(
            "Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero".into(),
        );
        assert!(matches!(classify(&refused), Failure::Refused(_)));
        let parse = E::BadResponse("Code: 27. DB::Exception: Cannot parse input".into());
        assert!(matches!(classify(&parse), Failure::Refused(_)));
        for transient in [
            "Code: 252, e.displayText() = DB::Exception: Too many parts",
            "Code: 60. DB::Exception: Table chatcart.events doesn't exist",
            "Code: 241. DB::Exception: Memory limit (total) exceeded",
            "502 Bad Gateway",
        ] {
            let e = E::BadResponse(transient.into());
            assert!(
                matches!(classify(&e), Failure::Unavailable(_)),
                "{transient}"
            );
        }
        assert!(matches!(classify(&E::TimedOut), Failure::Unavailable(_)));
    }

    #[test]
    fn codes_are_read_from_old_and_new_message_formats() {
        assert_eq!(code_of("Code: 62, e.displayText() = x"), Some(62));
        assert_eq!(code_of("Code: 241. DB::Exception"), Some(241));
        assert_eq!(code_of("no code here"), None);
    }
}
