//! What every scenario checks at its end: the auditor's verdict, one reply
//! per request, and the rows in ClickHouse.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ledger::audit::AuditReport;
use runtime::{Settings, Topic};
use schemas::{Prompt, Record, Reply, ReplyOutcome};

use crate::topics::records;

/// Runs the auditor over the test's topics, fails the test unless it is
/// clean, and returns the report and every reply.
pub async fn clean_audit(settings: &Settings) -> (AuditReport, Vec<Reply>) {
    let report = tools::audit::run(settings, Duration::from_secs(60))
        .await
        .expect("audit ran");
    assert!(report.clean(), "{report}");
    let replies = records(settings, Topic::Replies)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Reply(r) => Some(r),
            _ => None,
        })
        .collect();
    (report, replies)
}

/// Runs the auditor (`chatcart audit`'s checks) over the test's topics and
/// fails the test on any violation; also checks that exactly the published
/// requests were answered. Returns the replies.
pub async fn check_invariants(settings: &Settings, requests: &[Prompt]) -> Vec<Reply> {
    let (_, replies) = clean_audit(settings).await;
    let answered: HashSet<&str> = replies.iter().map(|r| r.request_id.as_str()).collect();
    for p in requests {
        assert!(
            answered.contains(p.request_id.as_str()),
            "request {} has no reply",
            p.request_id
        );
    }
    assert_eq!(
        replies.len(),
        requests.len(),
        "replies for requests never published"
    );
    let count = |o: ReplyOutcome| replies.iter().filter(|r| r.outcome == o).count();
    let (orders, denials, rejections) = (
        count(ReplyOutcome::OrderPlaced),
        count(ReplyOutcome::Denied),
        count(ReplyOutcome::Rejected),
    );
    let failed = count(ReplyOutcome::OrderFailed);
    let expired = count(ReplyOutcome::Expired);
    assert_eq!(
        orders + failed + denials + rejections + expired,
        requests.len()
    );
    assert!(
        orders > 0 && denials > 0 && rejections > 0,
        "{orders} {denials} {rejections}"
    );
    replies
}

/// Runs the auditor and fails the test unless it is clean; checks that every
/// published request has exactly one reply and nothing else was answered.
/// Unlike [`check_invariants`], it does not require every kind of outcome
/// to occur. Returns the report and the replies.
pub async fn audit_exactly_once(
    settings: &Settings,
    requests: &[Prompt],
) -> (AuditReport, Vec<Reply>) {
    let (report, replies) = clean_audit(settings).await;
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for r in &replies {
        *per_request.entry(r.request_id.as_str()).or_default() += 1;
    }
    let unanswered: Vec<&str> = requests
        .iter()
        .map(|p| p.request_id.as_str())
        .filter(|id| !per_request.contains_key(id))
        .take(5)
        .collect();
    assert!(
        unanswered.is_empty(),
        "requests without a reply: {unanswered:?}"
    );
    let repeated: Vec<(&str, usize)> = per_request
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .take(5)
        .collect();
    assert!(
        repeated.is_empty(),
        "requests with more than one reply: {repeated:?}"
    );
    assert_eq!(
        per_request.len(),
        requests.len(),
        "replies for requests never published"
    );
    (report, replies)
}

/// Polls ClickHouse until the events table holds `expected` distinct records
/// (or `timeout` passes); returns `(rows, distinct (topic, partition, offset))`.
pub async fn clickhouse_counts(
    settings: &Settings,
    expected: u64,
    timeout: Duration,
) -> (u64, u64) {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = events_counts(settings).await;
        if counts.1 >= expected || Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `(rows, distinct (topic, partition, offset))` in `events` right now.
pub async fn events_counts(settings: &Settings) -> (u64, u64) {
    settings
        .clickhouse
        .client()
        .query("SELECT count(), uniqExact(topic, partition, offset) FROM events")
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or((0, 0))
}
