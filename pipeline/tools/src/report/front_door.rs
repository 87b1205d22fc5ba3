//! The front door in the report: what the gateways were offered, admitted
//! and shed (`front_door_per_second`), and the waits they promised against
//! the waits that happened (`kept_promises`, `promises_per_minute`), from
//! `connectors/migrations/0004_front_door_views.sql`. A campaign whose
//! requests never came through a gateway has no front door. Its tables are
//! in [`super::tables`].

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::Secs;

/// Rows of the per-minute promises table: the busiest minutes.
pub const PROMISE_MINUTES: u64 = 20;

/// Requests the gateways decided on within one bucket (`time` is its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Offered {
    pub time: Secs,
    pub offered: u64,
    pub admitted: u64,
    pub shed: u64,
    /// Shed because the estimate was over `gateway.max_wait_secs`.
    pub shed_over_max_wait: u64,
    /// Shed because a stage was stalled.
    pub shed_stalled: u64,
    /// Shed because an idle stage had no rate yet.
    pub shed_no_estimate: u64,
    /// Admitted and told at once that the free orders were handed out.
    pub told_used_up: u64,
}

/// Promised against actual waits of the admitted requests answered, over
/// one minute (`minute`), or the whole range (`minute` 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Promises {
    pub minute: Secs,
    pub answered: u64,
    pub expired: u64,
    /// Answered later than promised.
    pub late: u64,
    pub promised_p50_ms: i64,
    pub promised_p99_ms: i64,
    pub waited_p50_ms: i64,
    pub waited_p99_ms: i64,
    pub over_promise_p50_ms: i64,
    pub over_promise_p99_ms: i64,
}

/// The front door over the report's range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontDoor {
    /// Per bucket of the report's step.
    pub offered: Vec<Offered>,
    pub totals: Offered,
    /// The second with the most requests offered.
    pub peak: Option<Offered>,
    /// Over the whole range.
    pub promises: Promises,
    /// The minutes with the most answers, in time order.
    pub busiest_minutes: Vec<Promises>,
}

const OFFERED: &str = "toUInt64(sum(offered)), toUInt64(sum(admitted)), toUInt64(sum(shed)), toUInt64(sum(shed_over_max_wait)), toUInt64(sum(shed_stalled)), toUInt64(sum(shed_no_estimate)), toUInt64(sum(told_used_up))";
const IN_RANGE: &str = "campaign_id = ? AND toUInt32(second) BETWEEN ? AND ?";

/// What to read: a campaign's range `from`..=`to`, in buckets of `step`
/// seconds, at most `max_points` of them.
#[derive(Debug, Clone, Copy)]
pub struct Span<'a> {
    pub campaign: &'a str,
    pub from: Secs,
    pub to: Secs,
    pub step: u32,
    pub max_points: u64,
}

/// The front door over `span`; `None` when no gateway decided on any of
/// the campaign's requests in it.
pub async fn read(client: &Client, span: Span<'_>) -> clickhouse::error::Result<Option<FrontDoor>> {
    let Span {
        campaign,
        from,
        to,
        step,
        max_points,
    } = span;
    let offered: Vec<Offered> = client
        .query(&format!("SELECT toUInt32(intDiv(toUInt32(second), ?) * ?) AS t, {OFFERED} FROM front_door_per_second WHERE {IN_RANGE} GROUP BY t ORDER BY t LIMIT ?"))
        .bind(step)
        .bind(step)
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(max_points)
        .fetch_all()
        .await?;
    if offered.is_empty() {
        return Ok(None);
    }
    let totals = offered.iter().fold(
        Offered {
            time: from,
            ..Offered::default()
        },
        |a, b| Offered {
            time: a.time,
            offered: a.offered + b.offered,
            admitted: a.admitted + b.admitted,
            shed: a.shed + b.shed,
            shed_over_max_wait: a.shed_over_max_wait + b.shed_over_max_wait,
            shed_stalled: a.shed_stalled + b.shed_stalled,
            shed_no_estimate: a.shed_no_estimate + b.shed_no_estimate,
            told_used_up: a.told_used_up + b.told_used_up,
        },
    );
    let peak = client
        .query(&format!("SELECT toUInt32(second), {OFFERED} FROM front_door_per_second WHERE {IN_RANGE} GROUP BY second ORDER BY sum(offered) DESC, second LIMIT 1"))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .fetch_optional()
        .await?;
    let promises = client
        .query("SELECT toUInt32(0), toUInt64(count()), toUInt64(countIf(reply_outcome = 'expired')), toUInt64(countIf(over_promise_ms > 0)), toInt64(quantileExact(0.5)(promised_ms)), toInt64(quantileExact(0.99)(promised_ms)), toInt64(quantileExact(0.5)(waited_ms)), toInt64(quantileExact(0.99)(waited_ms)), toInt64(quantileExact(0.5)(over_promise_ms)), toInt64(quantileExact(0.99)(over_promise_ms)) FROM kept_promises WHERE campaign_id = ? AND intDiv(admitted_ms, 1000) BETWEEN ? AND ?")
        .bind(campaign)
        .bind(from)
        .bind(to)
        .fetch_one::<Promises>()
        .await?;
    let minutes = "campaign_id = ? AND toUInt32(minute) + 59 >= ? AND toUInt32(minute) <= ?";
    let mut busiest_minutes: Vec<Promises> = client
        .query(&format!("SELECT toUInt32(minute), toUInt64(answered), toUInt64(expired), toUInt64(late), toInt64(promised_p50_ms), toInt64(promised_p99_ms), toInt64(waited_p50_ms), toInt64(waited_p99_ms), toInt64(over_promise_p50_ms), toInt64(over_promise_p99_ms) FROM promises_per_minute WHERE {minutes} ORDER BY answered DESC, minute LIMIT ?"))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(PROMISE_MINUTES)
        .fetch_all()
        .await?;
    busiest_minutes.sort_by_key(|p| p.minute);
    Ok(Some(FrontDoor {
        offered,
        totals,
        peak,
        promises,
        busiest_minutes,
    }))
}
