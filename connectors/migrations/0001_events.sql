-- One row per Kafka record of every chatcart topic, written by the analytics
-- sink. (topic, partition, offset) names the record; the sink resumes after
-- the highest offset this table holds per (topic, partition), so each record
-- is here exactly once. No partition key: every insert is one part, so a
-- batch lands whole or not at all.
CREATE TABLE IF NOT EXISTS events (
    topic {LowCardinalityString},
    partition Int32,
    offset Int64,
    request_id String,
    user_id String,
    campaign_id {LowCardinalityString},
    stage {LowCardinalityString},
    kind {LowCardinalityString},
    outcome {LowCardinalityString},
    reason {LowCardinalityString},
    locale {LowCardinalityString},
    resource {LowCardinalityString},
    item_skus Array(String),
    item_quantities Array(Int32),
    total_cents Int64,
    credit_cents Int64,
    event_time_ms Int64,
    latency_ms Int64,
    trace_id String,
    event_date Date DEFAULT toDate(intDiv(event_time_ms, 1000))
) ENGINE = MergeTree ORDER BY (topic, partition, offset){EventsSettings};
