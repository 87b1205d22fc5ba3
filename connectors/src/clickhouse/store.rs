//! The analytics sink's reads and writes: inserting a batch of rows as one
//! statement, reading back how far each (topic, partition) has been stored,
//! recording campaign settings, and telling a server that is unavailable
//! from one that refuses the data.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{CampaignRow, EventRow};

/// The most rows one batch of the sink may hold (`clickhouse.batch_rows`).
pub const MAX_BATCH_ROWS: usize = 1_000_000;
/// The block size an insert asks the server to parse its rows into:
/// ClickHouse's default, above [`MAX_BATCH_ROWS`].
pub const ONE_BLOCK_ROWS: usize = 1_048_576;
const _: () = assert!(MAX_BATCH_ROWS <= ONE_BLOCK_ROWS);

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
///
/// All or none holds because the server parses the rows into one block
/// (they are at most [`MAX_BATCH_ROWS`], and the insert asks for blocks of
/// [`ONE_BLOCK_ROWS`] whatever the server's profile says) and writes one
/// block as one part of a table without a partition key. The sink resumes
/// after the highest offset stored, so a batch split in two with one half
/// lost would leave a hole it never fills (`chatcart audit --clickhouse`
/// looks for one).
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
            .with_timeouts(Some(timeout), Some(timeout))
            .with_setting("max_insert_block_size", ONE_BLOCK_ROWS.to_string());
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
    let held: Vec<Held> = per_partition(
        client,
        "SELECT topic, partition, max(offset) FROM events \
         WHERE topic IN (SELECT arrayJoin(?)) GROUP BY topic, partition",
        topics,
    )
    .await?;
    Ok(held
        .into_iter()
        .map(|h| ((h.topic, h.partition), h.offset))
        .collect())
}

/// Runs `sql`, a query over the rows of `topics` (bound to its `?`)
/// grouped by topic and partition.
async fn per_partition<T>(client: &Client, sql: &str, topics: &[&str]) -> Result<Vec<T>, Failure>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    client
        // `topic IN (subquery)` lets the primary key skip every other
        // topic's rows (`has(?, topic)` read the whole table: 0.6 s at 11.6M
        // rows against 12 ms, measured); 18.16 has no `IN` of an array.
        .query(sql)
        .bind(topics)
        .fetch_all()
        .await
        .map_err(|e| match classify(&e) {
            // A read cannot be refused for its data.
            Failure::Refused(e) => Failure::Unavailable(e),
            other => other,
        })
}

/// What `events` holds of one (topic, partition): the offsets it spans and
/// how many rows and distinct offsets it has there. Stored exactly once
/// and without a gap, `distinct == rows == last - first + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub first: i64,
    pub last: i64,
    pub rows: u64,
    pub distinct: u64,
}

#[derive(Debug, Row, Deserialize)]
struct HeldExtent {
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    row_count: u64,
    distinct_offsets: u64,
}

/// The [`Extent`] of every (topic, partition) of `topics` that `events`
/// holds rows of. One scan of those topics' rows (the sink's position
/// reads only their maximum; this is for the auditor, not the sink).
pub async fn stored_extents(
    client: &Client,
    topics: &[&str],
) -> Result<HashMap<(String, i32), Extent>, Failure> {
    let held: Vec<HeldExtent> = per_partition(
        client,
        "SELECT topic, partition, min(offset) AS first_offset, max(offset) AS last_offset, \
         count() AS row_count, uniqExact(offset) AS distinct_offsets FROM events \
         WHERE topic IN (SELECT arrayJoin(?)) GROUP BY topic, partition",
        topics,
    )
    .await?;
    Ok(held
        .into_iter()
        .map(|h| {
            let extent = Extent {
                first: h.first_offset,
                last: h.last_offset,
                rows: h.row_count,
                distinct: h.distinct_offsets,
            };
            ((h.topic, h.partition), extent)
        })
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
