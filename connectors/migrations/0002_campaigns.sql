-- Each campaign's settings as the pipeline ran with them, recorded by the
-- analytics sink when it starts, so views can set what was spent against the
-- budget and what was sold against the stock. A newer row (recorded_at_ms)
-- supersedes an older one.
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id String,
    budget_cents Int64,
    per_user_limit UInt32,
    starts_at_ms Int64,
    ends_at_ms Int64,
    stock_skus Array(String),
    stock_units Array(Int64),
    recorded_at_ms Int64
) ENGINE = ReplacingMergeTree(recorded_at_ms) ORDER BY campaign_id;

CREATE VIEW IF NOT EXISTS campaign_settings AS
SELECT
    campaign_id,
    argMax(budget_cents, recorded_at_ms) AS budget_cents,
    argMax(per_user_limit, recorded_at_ms) AS per_user_limit,
    argMax(starts_at_ms, recorded_at_ms) AS starts_at_ms,
    argMax(ends_at_ms, recorded_at_ms) AS ends_at_ms,
    argMax(stock_skus, recorded_at_ms) AS stock_skus,
    argMax(stock_units, recorded_at_ms) AS stock_units
FROM campaigns
GROUP BY campaign_id;
