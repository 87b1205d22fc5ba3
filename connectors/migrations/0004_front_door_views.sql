-- Views of the front door: what the gateways were offered, admitted and
-- shed, and the waits they promised against the waits that happened.
--
-- A gateway decision is written once per offer (the gateway does not
-- redeliver), and the same request may be offered again after a `429`, so
-- these views read `events` directly: every decision row is one offer.
-- For a decision, `latency_ms` is the wait the gateway estimated: the
-- promise, for an admitted request.

CREATE VIEW IF NOT EXISTS front_door_per_second AS
SELECT
    campaign_id,
    toDateTime(intDiv(event_time_ms, 1000)) AS second,
    count() AS offered,
    countIf(outcome = 'admitted') AS admitted,
    countIf(outcome = 'shed') AS shed,
    countIf(outcome = 'shed' AND reason = 'over_max_wait') AS shed_over_max_wait,
    countIf(outcome = 'shed' AND reason = 'pipeline_stalled') AS shed_stalled,
    countIf(outcome = 'shed' AND reason = 'no_estimate_yet') AS shed_no_estimate,
    countIf(outcome = 'admitted' AND reason = 'free_orders_used_up') AS told_used_up,
    maxIf(latency_ms, outcome = 'admitted') AS max_promised_ms
FROM events
WHERE kind = 'GatewayDecision'
GROUP BY campaign_id, second;

-- One row per admitted request that has a reply: the wait promised, the
-- wait that happened (from the gateway's decision to the reply stage's
-- answer) and how the request ended.
CREATE VIEW IF NOT EXISTS kept_promises AS
SELECT
    campaign_id,
    request_id,
    admitted_ms,
    promised_ms,
    replied_ms - admitted_ms AS waited_ms,
    replied_ms - admitted_ms - promised_ms AS over_promise_ms,
    reply_outcome
FROM
(
    SELECT
        campaign_id,
        request_id,
        min(event_time_ms) AS admitted_ms,
        argMin(latency_ms, event_time_ms) AS promised_ms
    FROM events
    WHERE kind = 'GatewayDecision' AND outcome = 'admitted'
    GROUP BY campaign_id, request_id
) AS admissions
ANY INNER JOIN
(
    SELECT
        campaign_id,
        request_id,
        min(event_time_ms) AS replied_ms,
        argMin(outcome, event_time_ms) AS reply_outcome
    FROM events
    WHERE kind = 'Reply'
    GROUP BY campaign_id, request_id
) AS replies USING (campaign_id, request_id);

CREATE VIEW IF NOT EXISTS promises_per_minute AS
SELECT
    campaign_id,
    minute,
    answered,
    expired,
    late,
    promised[1] AS promised_p50_ms,
    promised[2] AS promised_p99_ms,
    waited[1] AS waited_p50_ms,
    waited[2] AS waited_p99_ms,
    over[1] AS over_promise_p50_ms,
    over[2] AS over_promise_p99_ms
FROM
(
    SELECT
        campaign_id,
        toStartOfMinute(toDateTime(intDiv(admitted_ms, 1000))) AS minute,
        count() AS answered,
        countIf(reply_outcome = 'expired') AS expired,
        countIf(over_promise_ms > 0) AS late,
        quantilesExact(0.5, 0.99)(promised_ms) AS promised,
        quantilesExact(0.5, 0.99)(waited_ms) AS waited,
        quantilesExact(0.5, 0.99)(over_promise_ms) AS over
    FROM kept_promises
    GROUP BY campaign_id, minute
);
