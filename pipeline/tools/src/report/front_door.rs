//! The front door in the report: what the gateways were offered, admitted
//! and shed (`front_door_per_second`), and the waits they promised against
//! the waits that happened (`kept_promises`, `promises_per_minute`), from
//! `connectors/migrations/0004_front_door_views.sql`. A campaign whose
//! requests never came through a gateway has no front door, and the report
//! says so.

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::data::{CampaignReport, MAX_POINTS};
use super::tables::Table;
use super::{Secs, format_count, format_time};

/// Rows of the per-minute promises table: the busiest minutes.
pub const PROMISE_MINUTES: u64 = 20;

/// Requests the gateways decided on within one bucket (`time` is its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Offered {
    pub time: Secs,
    pub offered: u64,
    pub admitted: u64,
    pub shed: u64,
    /// Shed because a stage was stalled (the rest: the estimate was over
    /// `gateway.max_wait_secs`).
    pub shed_stalled: u64,
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

const OFFERED: &str = "toUInt64(sum(offered)), toUInt64(sum(admitted)), toUInt64(sum(shed)), toUInt64(sum(shed_stalled)), toUInt64(sum(told_used_up))";
const IN_RANGE: &str = "campaign_id = ? AND toUInt32(second) BETWEEN ? AND ?";

/// The front door of `report`'s campaign and range; `None` when no gateway
/// decided on any of its requests in the range.
pub async fn read(
    client: &Client,
    report: &CampaignReport,
) -> clickhouse::error::Result<Option<FrontDoor>> {
    let (campaign, from, to, step) = (
        report.campaign.as_str(),
        report.range.from,
        report.range.to,
        report.step,
    );
    let offered: Vec<Offered> = client
        .query(&format!("SELECT toUInt32(intDiv(toUInt32(second), ?) * ?) AS t, {OFFERED} FROM front_door_per_second WHERE {IN_RANGE} GROUP BY t ORDER BY t LIMIT ?"))
        .bind(step)
        .bind(step)
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(MAX_POINTS)
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
            shed_stalled: a.shed_stalled + b.shed_stalled,
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

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        format_count(part)
    } else {
        format!(
            "{} ({:.1}%)",
            format_count(part),
            100.0 * part as f64 / whole as f64
        )
    }
}

fn ms(v: i64) -> String {
    format!("{v} ms")
}

/// The front door's tables: load, and promises kept.
pub fn tables(report: &CampaignReport) -> Vec<Table> {
    let Some(door) = &report.front_door else {
        return vec![Table::list(
            "Front door",
            Some("no request came through a gateway in this range".to_owned()),
        )];
    };
    let t = &door.totals;
    let mut load = Table::list(
        "Front door: requests offered to the gateways",
        Some("every POST decided on; a request offered again after a 429 counts again".to_owned()),
    );
    load.pair("offered", format_count(t.offered));
    load.pair("admitted (published)", share(t.admitted, t.offered));
    load.pair("shed (429, not published)", share(t.shed, t.offered));
    load.pair(
        "  over gateway.max_wait_secs",
        share(t.shed - t.shed_stalled, t.offered),
    );
    load.pair("  a stage stalled", share(t.shed_stalled, t.offered));
    load.pair(
        "told the free orders were used up",
        share(t.told_used_up, t.admitted),
    );
    if let Some(p) = door.peak {
        load.pair(
            "peak second",
            format!(
                "{}: {} offered, {} admitted, {} shed",
                format_time(p.time),
                format_count(p.offered),
                format_count(p.admitted),
                format_count(p.shed)
            ),
        );
    }
    let mut promises = Table::grid(
        "Front door: promised against actual waits",
        Some(
            "admitted requests answered, by the minute they were admitted; waited: from the gateway's decision to the reply; late: waited longer than promised"
                .to_owned(),
        ),
        &[
            ("minute", false),
            ("answered", true),
            ("late", true),
            ("expired", true),
            ("promised p50", true),
            ("promised p99", true),
            ("waited p50", true),
            ("waited p99", true),
            ("over p50", true),
            ("over p99", true),
        ],
    );
    let rows = std::iter::once(("whole range".to_owned(), &door.promises)).chain(
        door.busiest_minutes
            .iter()
            .map(|m| (format_time(m.minute), m)),
    );
    for (when, p) in rows {
        promises.row([
            when,
            format_count(p.answered),
            share(p.late, p.answered),
            format_count(p.expired),
            ms(p.promised_p50_ms),
            ms(p.promised_p99_ms),
            ms(p.waited_p50_ms),
            ms(p.waited_p99_ms),
            ms(p.over_promise_p50_ms),
            ms(p.over_promise_p99_ms),
        ]);
    }
    vec![load, promises]
}
