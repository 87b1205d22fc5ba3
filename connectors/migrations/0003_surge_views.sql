-- Views for watching a surge. They read `events` at query time rather than
-- being materialised: a materialised view is written after the source part,
-- not atomically with it, so a failed view write followed by the sink's
-- retry would count rows twice, whereas `events` holds every record once.
--
-- Stages are at least once between topics (a stage that crashes may write a
-- record again), so every view counts requests, not rows: `request_steps`
-- keeps the first record of each (request, record kind, outcome).

CREATE VIEW IF NOT EXISTS request_steps AS
SELECT
    campaign_id,
    request_id,
    kind,
    outcome,
    argMin(user_id, offset) AS user_id,
    argMin(stage, offset) AS stage,
    argMin(reason, offset) AS reason,
    argMin(resource, offset) AS resource,
    argMin(item_skus, offset) AS item_skus,
    argMin(item_quantities, offset) AS item_quantities,
    argMin(total_cents, offset) AS total_cents,
    argMin(credit_cents, offset) AS credit_cents,
    argMin(latency_ms, offset) AS latency_ms,
    min(event_time_ms) AS event_time_ms
FROM events
WHERE kind NOT IN ('undecodable', 'dead_letter', 'poison')
GROUP BY campaign_id, request_id, kind, outcome;

CREATE VIEW IF NOT EXISTS funnel_per_second AS
SELECT
    campaign_id,
    toDateTime(intDiv(event_time_ms, 1000)) AS second,
    countIf(kind = 'Prompt') AS prompts,
    countIf(kind = 'IntentEvent' AND outcome = 'extracted') AS intents_extracted,
    countIf(kind = 'IntentEvent' AND outcome = 'rejected') AS intents_rejected,
    countIf(kind = 'CouponDecision' AND outcome = 'granted') AS grants,
    countIf(kind = 'CouponDecision' AND outcome = 'denied') AS denials,
    countIf(kind = 'CouponDecision' AND outcome = 'released') AS releases,
    countIf(kind = 'OrderEvent' AND outcome = 'placed') AS orders_placed,
    countIf(kind = 'OrderEvent' AND outcome = 'failed') AS orders_failed,
    countIf(kind = 'Reply') AS replies
FROM request_steps
WHERE kind != 'TreasuryRecord'
GROUP BY campaign_id, second;

CREATE VIEW IF NOT EXISTS outcomes_per_second AS
SELECT
    campaign_id,
    toDateTime(intDiv(event_time_ms, 1000)) AS second,
    stage,
    kind,
    outcome,
    reason,
    count() AS requests
FROM request_steps
WHERE kind != 'TreasuryRecord'
GROUP BY campaign_id, second, stage, kind, outcome, reason;

CREATE VIEW IF NOT EXISTS reasons AS
SELECT
    campaign_id,
    stage,
    kind,
    outcome,
    reason,
    count() AS requests,
    toDateTime(intDiv(min(event_time_ms), 1000)) AS first_seen,
    toDateTime(intDiv(max(event_time_ms), 1000)) AS last_seen
FROM request_steps
WHERE reason != '' AND kind != 'TreasuryRecord'
GROUP BY campaign_id, stage, kind, outcome, reason;

CREATE VIEW IF NOT EXISTS latency_per_minute AS
SELECT
    campaign_id,
    minute,
    replies,
    q[1] AS p50_ms,
    q[2] AS p90_ms,
    q[3] AS p99_ms,
    q[4] AS p999_ms,
    max_ms
FROM
(
    SELECT
        campaign_id,
        toStartOfMinute(toDateTime(intDiv(event_time_ms, 1000))) AS minute,
        count() AS replies,
        quantilesExact(0.5, 0.9, 0.99, 0.999)(latency_ms) AS q,
        max(latency_ms) AS max_ms
    FROM request_steps
    WHERE kind = 'Reply'
    GROUP BY campaign_id, minute
);

CREATE VIEW IF NOT EXISTS budget_burn_per_minute AS
SELECT
    campaign_id,
    minute,
    granted_cents,
    released_cents,
    spent_cents,
    budget_cents,
    budget_cents - spent_cents AS remaining_cents,
    granted_cents - released_cents AS burn_cents,
    if(granted_cents > released_cents AND budget_cents > spent_cents,
       toDateTime(toUInt32(minute) + 60 + intDiv((budget_cents - spent_cents) * 60, granted_cents - released_cents)),
       toDateTime(0)) AS projected_exhaustion
FROM
(
    SELECT
        campaign_id,
        arraySort(minutes) AS sorted_minutes,
        arraySort((x, m) -> m, granted, minutes) AS sorted_granted,
        arraySort((x, m) -> m, released, minutes) AS sorted_released,
        arrayCumSum(arrayMap((g, r) -> g - r, sorted_granted, sorted_released)) AS spent
    FROM
    (
        SELECT
            campaign_id,
            groupArray(minute) AS minutes,
            groupArray(g) AS granted,
            groupArray(r) AS released
        FROM
        (
            SELECT
                campaign_id,
                toStartOfMinute(toDateTime(intDiv(event_time_ms, 1000))) AS minute,
                sumIf(credit_cents, outcome = 'granted') AS g,
                sumIf(credit_cents, outcome = 'released') AS r
            FROM request_steps
            WHERE kind = 'CouponDecision' AND outcome IN ('granted', 'released')
            GROUP BY campaign_id, minute
        )
        GROUP BY campaign_id
    )
)
ARRAY JOIN
    sorted_minutes AS minute,
    sorted_granted AS granted_cents,
    sorted_released AS released_cents,
    spent AS spent_cents
ANY LEFT JOIN campaign_settings USING (campaign_id);

CREATE VIEW IF NOT EXISTS budget_status AS
SELECT
    campaign_id,
    budget_cents,
    granted_cents,
    released_cents,
    granted_cents - released_cents AS spent_cents,
    budget_cents - (granted_cents - released_cents) AS remaining_cents,
    grants,
    releases,
    budget_denials,
    first_grant_at,
    last_grant_at,
    budget_exhausted_at
FROM
(
    SELECT
        campaign_id,
        sumIf(credit_cents, outcome = 'granted') AS granted_cents,
        sumIf(credit_cents, outcome = 'released') AS released_cents,
        countIf(outcome = 'granted') AS grants,
        countIf(outcome = 'released') AS releases,
        countIf(outcome = 'denied' AND reason = 'budget_exhausted') AS budget_denials,
        toDateTime(intDiv(minIf(event_time_ms, outcome = 'granted'), 1000)) AS first_grant_at,
        toDateTime(intDiv(maxIf(event_time_ms, outcome = 'granted'), 1000)) AS last_grant_at,
        toDateTime(intDiv(minIf(event_time_ms, outcome = 'denied' AND reason = 'budget_exhausted'), 1000)) AS budget_exhausted_at
    FROM request_steps
    WHERE kind = 'CouponDecision'
    GROUP BY campaign_id
) AS spending
ANY LEFT JOIN campaign_settings USING (campaign_id);

CREATE VIEW IF NOT EXISTS stock_by_sku AS
SELECT
    campaign_id,
    sku,
    sum(stock) AS stock_units,
    sum(leased) AS leased_units,
    sum(sold) AS sold_units,
    sum(failed) AS out_of_stock_orders
FROM
(
    SELECT campaign_id, sku, units AS stock, toInt64(0) AS leased, toInt64(0) AS sold, toInt64(0) AS failed
    FROM campaign_settings
    ARRAY JOIN stock_skus AS sku, stock_units AS units
    UNION ALL
    SELECT campaign_id, substring(resource, 7) AS sku, toInt64(0), toInt64(credit_cents), toInt64(0), toInt64(0)
    FROM request_steps
    WHERE kind = 'TreasuryRecord' AND outcome = 'lease_credit' AND startsWith(resource, 'stock:')
    UNION ALL
    SELECT campaign_id, sku, toInt64(0), toInt64(0), toInt64(quantity), toInt64(0)
    FROM request_steps
    ARRAY JOIN item_skus AS sku, item_quantities AS quantity
    WHERE kind = 'OrderEvent' AND outcome = 'placed'
    UNION ALL
    SELECT campaign_id, sku, toInt64(0), toInt64(0), toInt64(0), toInt64(1)
    FROM request_steps
    ARRAY JOIN arrayDistinct(item_skus) AS sku
    WHERE kind = 'OrderEvent' AND outcome = 'failed' AND reason = 'out_of_stock'
)
GROUP BY campaign_id, sku;

CREATE VIEW IF NOT EXISTS top_users AS
SELECT
    campaign_id,
    user_id,
    countIf(kind = 'Prompt') AS prompts,
    countIf(kind = 'IntentEvent' AND outcome = 'extracted') AS purchases_asked,
    countIf(kind = 'CouponDecision' AND outcome = 'granted') AS grants,
    countIf(kind = 'CouponDecision' AND outcome = 'denied') AS denials,
    countIf(kind = 'OrderEvent' AND outcome = 'placed') AS orders_placed,
    toDateTime(intDiv(min(event_time_ms), 1000)) AS first_seen,
    toDateTime(intDiv(max(event_time_ms), 1000)) AS last_seen
FROM request_steps
WHERE user_id != '' AND kind != 'TreasuryRecord'
GROUP BY campaign_id, user_id;
