//! `chatcart audit --clickhouse`: whether the analytics sink's rows hold
//! every record of every topic it copies exactly once, with no gap.
//!
//! The sink resumes each partition after the highest offset ClickHouse
//! holds (`runtime::analytics`). That skips nothing only because each batch
//! lands whole (one INSERT, one block, one part: see `0001_events.sql` and
//! `clickhouse.batch_rows`); a batch split in two, one half lost, would
//! leave a hole below the maximum that resuming never fills. This check
//! finds such a hole, a partition stored from later than its topic's start,
//! and a record stored twice.

use std::collections::HashMap;

use connectors::clickhouse::store::{Extent, stored_extents};
use ledger::audit::Check;
use runtime::config::Settings;
use runtime::topics::TopicNames;
use stages::Topic;

/// What the check is called in the audit's table.
pub const NAME: &str = "analytics rows";
/// Failures named in the detail, at most.
const EXAMPLES: usize = 5;

/// One partition of a topic the sink copies, and what ClickHouse holds of
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub topic: String,
    pub partition: i32,
    /// The partition's first offset on the broker (its low watermark).
    pub start: i64,
    /// Its end (high watermark), a lower bound on Tansu.
    pub end: i64,
    /// `None`: no row of it yet.
    pub extent: Option<Extent>,
}

/// Checks each partition's rows: from the topic's start, each offset once,
/// none missing below the highest. Rows not stored yet are the sink's lag,
/// not a failure (wait for it to drain before auditing to check them all).
pub fn check(partitions: &[Stored]) -> Check {
    let mut problems = Vec::new();
    let (mut rows, mut behind) = (0u64, 0i64);
    for s in partitions {
        let at = format!("{}[{}]", s.topic, s.partition);
        let Some(e) = s.extent else {
            behind += (s.end - s.start).max(0);
            continue;
        };
        rows += e.rows;
        behind += (s.end - 1 - e.last).max(0);
        // Below the start is fine: retention deleted what was stored.
        if e.first > s.start {
            problems.push(format!(
                "{at} is stored from offset {}, the topic from {}: {} records skipped",
                e.first,
                s.start,
                e.first - s.start
            ));
        }
        let span = u64::try_from(e.last - e.first + 1).unwrap_or(0);
        if e.distinct < span {
            problems.push(format!(
                "{at} misses {} of offsets {}..={}",
                span - e.distinct,
                e.first,
                e.last
            ));
        }
        if e.rows > e.distinct {
            problems.push(format!("{at} has {} rows twice", e.rows - e.distinct));
        }
    }
    let ok = problems.is_empty();
    let detail = if ok {
        format!(
            "{rows} rows over {} partitions, each record once from its topic's start; {behind} records not stored yet",
            partitions.len()
        )
    } else {
        let more = problems.len().saturating_sub(EXAMPLES);
        problems.truncate(EXAMPLES);
        let tail = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        format!("{}{tail}", problems.join("; "))
    };
    Check {
        name: NAME,
        ok,
        detail,
    }
}

/// Reads what ClickHouse holds of every topic the sink copies, and where
/// each of their partitions starts and ends on the broker, and checks it.
pub async fn run(settings: &Settings) -> anyhow::Result<Check> {
    anyhow::ensure!(
        settings.clickhouse.enabled(),
        "--clickhouse needs clickhouse.url in the configuration (or CHATCART__CLICKHOUSE__URL)"
    );
    let names = TopicNames::new(&settings.kafka);
    let topics: Vec<(String, i32)> = Topic::ANALYTICS
        .iter()
        .map(|t| {
            let name = names.name(*t).to_owned();
            (name, t.partitions(settings.kafka.partitions))
        })
        .collect();
    let kafka = settings.kafka.clone();
    let wanted = topics.clone();
    let bounds = tokio::task::spawn_blocking(move || {
        wanted
            .iter()
            .map(|(t, n)| connectors::kafka::watermarks(&kafka, t, *n))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let client = settings.clickhouse.client();
    let refs: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    let mut held: HashMap<(String, i32), Extent> = stored_extents(&client, &refs)
        .await
        .map_err(|e| anyhow::anyhow!("reading the analytics rows: {e}"))?;
    let mut partitions = Vec::new();
    for ((topic, _), marks) in topics.into_iter().zip(bounds) {
        for (p, (start, end)) in (0..).zip(marks) {
            partitions.push(Stored {
                extent: held.remove(&(topic.clone(), p)),
                topic: topic.clone(),
                partition: p,
                start,
                end,
            });
        }
    }
    Ok(check(&partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(start: i64, end: i64, extent: Option<(i64, i64, u64, u64)>) -> Stored {
        Stored {
            topic: "chat.prompts".into(),
            partition: 3,
            start,
            end,
            extent: extent.map(|(first, last, rows, distinct)| Extent {
                first,
                last,
                rows,
                distinct,
            }),
        }
    }

    #[test]
    fn every_offset_once_from_the_start_is_clean_whatever_is_not_stored_yet() {
        let c = check(&[
            stored(0, 100, Some((0, 99, 100, 100))),
            stored(0, 100, Some((0, 49, 50, 50))),
            stored(0, 10, None),
            // Retention deleted offsets the sink had stored.
            stored(20, 100, Some((0, 99, 100, 100))),
        ]);
        assert!(c.ok, "{}", c.detail);
        assert!(
            c.detail.contains("250 rows over 4 partitions"),
            "{}",
            c.detail
        );
        assert!(
            c.detail.contains("60 records not stored yet"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn a_hole_a_late_start_and_a_record_twice_are_each_named() {
        let hole = check(&[stored(0, 100, Some((0, 99, 97, 97)))]);
        assert!(!hole.ok);
        assert_eq!(hole.detail, "chat.prompts[3] misses 3 of offsets 0..=99");
        let late = check(&[stored(0, 100, Some((10, 99, 90, 90)))]);
        assert_eq!(
            late.detail,
            "chat.prompts[3] is stored from offset 10, the topic from 0: 10 records skipped"
        );
        let twice = check(&[stored(0, 100, Some((0, 99, 101, 100)))]);
        assert_eq!(twice.detail, "chat.prompts[3] has 1 rows twice");
        // A hole and a duplicate that make the count look right.
        let both = check(&[stored(0, 100, Some((0, 99, 100, 99)))]);
        assert!(!both.ok);
        assert!(both.detail.contains("misses 1") && both.detail.contains("1 rows twice"));
    }

    #[test]
    fn many_failures_name_five_and_count_the_rest() {
        let all: Vec<Stored> = (0..8).map(|_| stored(0, 10, Some((0, 9, 9, 9)))).collect();
        let c = check(&all);
        assert!(!c.ok);
        assert_eq!(c.detail.matches("misses").count(), 5);
        assert!(c.detail.ends_with("; and 3 more"), "{}", c.detail);
    }
}
