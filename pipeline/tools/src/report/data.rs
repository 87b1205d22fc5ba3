//! What the report shows, read from the analytics views
//! (`connectors/migrations/0003_surge_views.sql`, and the front door's in
//! [`super::front_door`]) for one campaign and one
//! time range. Every value reaches the SQL as a bound parameter, and every
//! column is cast to the type its field has, since rows are read by
//! position (RowBinary).
//!
//! Reads are bounded: a series has at most [`MAX_POINTS`] points; a longer
//! range is aggregated in SQL into buckets of a minute, an hour or a day.

use anyhow::Context as _;
use clickhouse::{Client, Row};
use connectors::{ClickHouseConfig, ConnectorError};
use serde::Deserialize;

use super::Secs;

/// Most points one time series may have.
pub const MAX_POINTS: u64 = 50_000;
/// Bucket lengths, shortest first, a series is aggregated into.
const STEPS: [u32; 4] = [1, 60, 3_600, 86_400];
/// Rows of the per-minute latency table: the busiest minutes.
pub const BUSIEST_MINUTES: u64 = 20;
/// Users in the top-users table.
pub const TOP_USERS: u64 = 10;
/// Distinct (stage, kind, outcome, reason) rows read; far above what the
/// pipeline writes, so in practice all of them.
const MAX_OUTCOMES: u64 = 1_000;
/// Campaigns listed when the one asked for has no data.
const LISTED_CAMPAIGNS: u64 = 20;

/// What to report on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `--campaign`; `None`: `default_campaign`.
    pub campaign: Option<String>,
    /// The first configured campaign, where prompts naming none belong.
    pub default_campaign: String,
    /// `--from` / `--to`, inclusive; `None`: where the campaign's data starts / ends.
    pub from: Option<Secs>,
    pub to: Option<Secs>,
}

/// Seconds `from..=to`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub from: Secs,
    pub to: Secs,
}

impl Range {
    /// Length in seconds, both ends included.
    pub fn secs(&self) -> u64 {
        u64::from(self.to.saturating_sub(self.from)) + 1
    }

    /// The shortest bucket length that keeps a series over this range
    /// within [`MAX_POINTS`].
    pub fn step(&self) -> u32 {
        let len = self.secs();
        STEPS
            .into_iter()
            .find(|s| len.div_ceil(u64::from(*s)) <= MAX_POINTS)
            .unwrap_or(STEPS[STEPS.len() - 1])
    }
}

/// Requests at each stage within one bucket (`time` is its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Funnel {
    pub time: Secs,
    pub prompts: u64,
    pub intents_extracted: u64,
    pub intents_rejected: u64,
    pub grants: u64,
    pub denials: u64,
    pub releases: u64,
    pub orders_placed: u64,
    pub orders_failed: u64,
    pub replies: u64,
}

/// Reply latency quantiles of one minute (or, in longer buckets, the
/// highest of its minutes' quantiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Latency {
    pub minute: Secs,
    pub replies: u64,
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub p99_ms: i64,
    pub p999_ms: i64,
    pub max_ms: i64,
}

/// The campaign's budget over its whole life (`budget_status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Budget {
    pub budget_cents: i64,
    pub granted_cents: i64,
    pub released_cents: i64,
    pub spent_cents: i64,
    pub remaining_cents: i64,
    pub grants: u64,
    pub releases: u64,
    pub budget_denials: u64,
    pub first_grant_at: Secs,
    pub last_grant_at: Secs,
    pub budget_exhausted_at: Secs,
}

/// A `DateTime` of 0 means "never" in the views.
fn when(secs: Secs) -> Option<Secs> {
    (secs > 0).then_some(secs)
}

impl Budget {
    /// When the first request was denied for want of budget.
    pub fn exhausted_at(&self) -> Option<Secs> {
        when(self.budget_exhausted_at)
    }

    pub fn first_grant(&self) -> Option<Secs> {
        when(self.first_grant_at)
    }

    pub fn last_grant(&self) -> Option<Secs> {
        when(self.last_grant_at)
    }
}

/// The last minute of `budget_burn_per_minute` up to the range's end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct BurnMinute {
    pub minute: Secs,
    pub burn_cents: i64,
    pub remaining_cents: i64,
    pub projected_exhaustion: Secs,
}

impl BurnMinute {
    /// When the budget runs out if it keeps burning at this minute's rate.
    pub fn projected(&self) -> Option<Secs> {
        when(self.projected_exhaustion)
    }
}

/// Credit granted and released within one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Credit {
    pub time: Secs,
    pub granted_cents: i64,
    pub released_cents: i64,
}

/// One SKU's stock over the campaign's whole life (`stock_by_sku`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Stock {
    pub sku: String,
    pub stock_units: i64,
    pub leased_units: i64,
    pub sold_units: i64,
    pub out_of_stock_orders: i64,
}

/// Requests with one (stage, kind, outcome, reason) in the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Deserialize)]
pub struct OutcomeCount {
    pub stage: String,
    pub kind: String,
    pub outcome: String,
    pub reason: String,
    pub requests: u64,
    pub first_seen: Secs,
    pub last_seen: Secs,
}

/// One person over the campaign's whole life (`top_users`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Row, Deserialize)]
pub struct User {
    pub user_id: String,
    pub prompts: u64,
    pub purchases_asked: u64,
    pub grants: u64,
    pub denials: u64,
    pub orders_placed: u64,
    pub first_seen: Secs,
    pub last_seen: Secs,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignReport {
    pub campaign: String,
    pub database: String,
    /// The range reported on.
    pub range: Range,
    /// Where the campaign's data starts and ends.
    pub span: Range,
    /// Bucket length of `funnel` and `credit`, in seconds.
    pub step: u32,
    pub funnel: Vec<Funnel>,
    pub totals: Funnel,
    /// The second with the most prompts.
    pub peak: Option<Funnel>,
    /// Latency of the minute holding the peak second.
    pub peak_latency: Option<Latency>,
    /// Bucket length of `latency` (60 unless the range is very long).
    pub latency_step: u32,
    pub latency: Vec<Latency>,
    /// The busiest minutes by replies, in time order.
    pub busiest_minutes: Vec<Latency>,
    /// Minutes with replies in the range.
    pub latency_minutes: u64,
    pub budget: Option<Budget>,
    pub burn: Option<BurnMinute>,
    /// Spent before the range starts (granted less released).
    pub spent_before_cents: i64,
    pub credit: Vec<Credit>,
    pub stock: Vec<Stock>,
    /// SKUs whose stock the campaign limits (the others are unlimited).
    pub limited_skus: Vec<String>,
    pub outcomes: Vec<OutcomeCount>,
    pub top_users: Vec<User>,
    /// What the gateways admitted and shed; `None` when no request came
    /// through one.
    pub front_door: Option<super::front_door::FrontDoor>,
}

/// Reads the report for `request` from the configured ClickHouse.
pub async fn fetch(config: &ClickHouseConfig, request: &Request) -> anyhow::Result<CampaignReport> {
    let client = config.client();
    let campaign = request
        .campaign
        .clone()
        .unwrap_or_else(|| request.default_campaign.clone());
    // Errors go through ConnectorError: a clickhouse error's message
    // repeats its cause, which it also chains, so it would read twice.
    let at = || {
        format!(
            "reading the analytics views from ClickHouse at {}, database {} (check --clickhouse-url and --database; `chatcart migrate` creates the views)",
            config.shown_url(),
            config.database
        )
    };
    let (first, last, seconds) = client
        .query("SELECT toUInt32(min(second)), toUInt32(max(second)), count() FROM funnel_per_second WHERE campaign_id = ?")
        .bind(&campaign)
        .fetch_one::<(Secs, Secs, u64)>()
        .await
        .map_err(ConnectorError::from)
        .with_context(at)?;
    if seconds == 0 {
        let known = campaigns(&client)
            .await
            .map_err(ConnectorError::from)
            .with_context(at)?;
        anyhow::bail!(no_such_campaign(
            request,
            &campaign,
            &config.database,
            &known
        ));
    }
    let span = Range {
        from: first,
        to: last,
    };
    let range = Range {
        from: request.from.unwrap_or(span.from),
        to: request.to.unwrap_or(span.to),
    };
    if range.from > range.to {
        anyhow::bail!(
            "the range starts ({}) after it ends ({}); the campaign's data runs from {} to {} (UTC)",
            super::format_time(range.from),
            super::format_time(range.to),
            super::format_time(span.from),
            super::format_time(span.to)
        );
    }
    let mut report = CampaignReport {
        campaign,
        database: config.database.clone(),
        range,
        span,
        step: range.step(),
        ..CampaignReport::default()
    };
    read(&client, &mut report)
        .await
        .map_err(ConnectorError::from)
        .with_context(at)?;
    Ok(report)
}

/// The campaigns with data, the most recent first (at most
/// [`LISTED_CAMPAIGNS`] + 1, so a caller can tell there are more).
async fn campaigns(client: &Client) -> clickhouse::error::Result<Vec<String>> {
    client
        .query("SELECT campaign_id, max(event_time_ms) AS latest FROM events WHERE campaign_id != '' GROUP BY campaign_id ORDER BY latest DESC, campaign_id LIMIT ?")
        .bind(LISTED_CAMPAIGNS + 1)
        .fetch_all::<(String, i64)>()
        .await
        .map(|rows| rows.into_iter().map(|(id, _)| id).collect())
}

fn no_such_campaign(request: &Request, campaign: &str, database: &str, known: &[String]) -> String {
    let which = if request.campaign.is_some() {
        format!("campaign `{campaign}` has no records in database {database}")
    } else {
        format!(
            "the configured default campaign `{campaign}` has no records in database {database}"
        )
    };
    if known.is_empty() {
        return format!(
            "{which}, nor does any other: run the pipeline with clickhouse.url set (or `chatcart demo --clickhouse-url URL`, which writes to database chatcart_demo), or pick the database with --database"
        );
    }
    let listed = usize::try_from(LISTED_CAMPAIGNS).unwrap_or(usize::MAX);
    let mut names = known
        .iter()
        .take(listed)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > listed {
        names.push_str(", …");
    }
    format!("{which}; pass --campaign with one that has: {names} (most recent first)")
}

/// Fills `report` beyond its range and span.
async fn read(client: &Client, report: &mut CampaignReport) -> clickhouse::error::Result<()> {
    let (campaign, from, to, step) = (
        report.campaign.as_str(),
        report.range.from,
        report.range.to,
        report.step,
    );
    let funnel_columns = "toUInt64(sum(prompts)), toUInt64(sum(intents_extracted)), toUInt64(sum(intents_rejected)), toUInt64(sum(grants)), toUInt64(sum(denials)), toUInt64(sum(releases)), toUInt64(sum(orders_placed)), toUInt64(sum(orders_failed)), toUInt64(sum(replies))";
    let in_range = "campaign_id = ? AND toUInt32(second) BETWEEN ? AND ?";

    report.funnel = client
        .query(&format!("SELECT toUInt32(intDiv(toUInt32(second), ?) * ?) AS t, {funnel_columns} FROM funnel_per_second WHERE {in_range} GROUP BY t ORDER BY t LIMIT ?"))
        .bind(step)
        .bind(step)
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(MAX_POINTS)
        .fetch_all()
        .await?;
    report.totals = report.funnel.iter().fold(Funnel::default(), add);
    report.totals.time = from;
    report.peak = client
        .query(&format!("SELECT toUInt32(second), {funnel_columns} FROM funnel_per_second WHERE {in_range} GROUP BY second ORDER BY sum(prompts) DESC, second LIMIT 1"))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .fetch_optional()
        .await?;

    // Minutes that overlap the range: a minute's quantiles cannot be split.
    let minutes = "campaign_id = ? AND toUInt32(minute) + 59 >= ? AND toUInt32(minute) <= ?";
    let latency_columns = "toUInt64(replies), toInt64(p50_ms), toInt64(p90_ms), toInt64(p99_ms), toInt64(p999_ms), toInt64(max_ms)";
    report.latency_step = step.max(60);
    report.latency = client
        .query(&format!("SELECT toUInt32(intDiv(toUInt32(minute), ?) * ?) AS t, toUInt64(sum(replies)), toInt64(max(p50_ms)), toInt64(max(p90_ms)), toInt64(max(p99_ms)), toInt64(max(p999_ms)), toInt64(max(max_ms)) FROM latency_per_minute WHERE {minutes} GROUP BY t ORDER BY t LIMIT ?"))
        .bind(report.latency_step)
        .bind(report.latency_step)
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(MAX_POINTS)
        .fetch_all()
        .await?;
    report.latency_minutes = client
        .query(&format!(
            "SELECT count() FROM latency_per_minute WHERE {minutes}"
        ))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .fetch_one()
        .await?;
    report.busiest_minutes = client
        .query(&format!("SELECT toUInt32(minute), {latency_columns} FROM latency_per_minute WHERE {minutes} ORDER BY replies DESC, minute LIMIT ?"))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(BUSIEST_MINUTES)
        .fetch_all()
        .await?;
    report.busiest_minutes.sort_by_key(|l| l.minute);
    if let Some(peak) = report.peak {
        report.peak_latency = client
            .query(&format!("SELECT toUInt32(minute), {latency_columns} FROM latency_per_minute WHERE campaign_id = ? AND toUInt32(minute) = ?"))
            .bind(campaign)
            .bind(peak.time - peak.time % 60)
            .fetch_optional()
            .await?;
    }

    report.budget = client
        .query("SELECT toInt64(budget_cents), toInt64(granted_cents), toInt64(released_cents), toInt64(spent_cents), toInt64(remaining_cents), toUInt64(grants), toUInt64(releases), toUInt64(budget_denials), toUInt32(first_grant_at), toUInt32(last_grant_at), toUInt32(budget_exhausted_at) FROM budget_status WHERE campaign_id = ?")
        .bind(campaign)
        .fetch_optional()
        .await?;
    report.burn = client
        .query("SELECT toUInt32(minute), toInt64(burn_cents), toInt64(remaining_cents), toUInt32(projected_exhaustion) FROM budget_burn_per_minute WHERE campaign_id = ? AND toUInt32(minute) <= ? ORDER BY minute DESC LIMIT 1")
        .bind(campaign)
        .bind(to)
        .fetch_optional()
        .await?;
    // budget_burn_per_minute has minutes only; the burn-down is drawn at
    // the funnel's resolution from the same request steps.
    let credit =
        "campaign_id = ? AND kind = 'CouponDecision' AND outcome IN ('granted', 'released')";
    let sums = "toInt64(sumIf(credit_cents, outcome = 'granted')), toInt64(sumIf(credit_cents, outcome = 'released'))";
    let (granted, released) = client
        .query(&format!(
            "SELECT {sums} FROM request_steps WHERE {credit} AND intDiv(event_time_ms, 1000) < ?"
        ))
        .bind(campaign)
        .bind(from)
        .fetch_one::<(i64, i64)>()
        .await?;
    report.spent_before_cents = granted - released;
    report.credit = client
        .query(&format!("SELECT toUInt32(intDiv(intDiv(event_time_ms, 1000), ?) * ?) AS t, {sums} FROM request_steps WHERE {credit} AND intDiv(event_time_ms, 1000) BETWEEN ? AND ? GROUP BY t ORDER BY t LIMIT ?"))
        .bind(step)
        .bind(step)
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(MAX_POINTS)
        .fetch_all()
        .await?;

    report.limited_skus = client
        .query("SELECT stock_skus FROM campaign_settings WHERE campaign_id = ?")
        .bind(campaign)
        .fetch_optional::<Vec<String>>()
        .await?
        .unwrap_or_default();
    report.stock = client
        .query("SELECT sku, toInt64(stock_units), toInt64(leased_units), toInt64(sold_units), toInt64(out_of_stock_orders) FROM stock_by_sku WHERE campaign_id = ? ORDER BY sku LIMIT ?")
        .bind(campaign)
        .bind(MAX_OUTCOMES)
        .fetch_all()
        .await?;

    report.outcomes = client
        .query(&format!("SELECT stage, kind, outcome, reason, toUInt64(sum(requests)) AS n, toUInt32(min(second)), toUInt32(max(second)) FROM outcomes_per_second WHERE {in_range} GROUP BY stage, kind, outcome, reason ORDER BY n DESC, stage, kind, outcome, reason LIMIT ?"))
        .bind(campaign)
        .bind(from)
        .bind(to)
        .bind(MAX_OUTCOMES)
        .fetch_all()
        .await?;
    report.top_users = client
        .query("SELECT user_id, toUInt64(prompts), toUInt64(purchases_asked), toUInt64(grants), toUInt64(denials), toUInt64(orders_placed), toUInt32(first_seen), toUInt32(last_seen) FROM top_users WHERE campaign_id = ? ORDER BY prompts DESC, user_id LIMIT ?")
        .bind(campaign)
        .bind(TOP_USERS)
        .fetch_all()
        .await?;
    let span = super::front_door::Span {
        campaign,
        from,
        to,
        step,
        max_points: MAX_POINTS,
    };
    report.front_door = super::front_door::read(client, span).await?;
    Ok(())
}

fn add(a: Funnel, b: &Funnel) -> Funnel {
    Funnel {
        time: a.time,
        prompts: a.prompts + b.prompts,
        intents_extracted: a.intents_extracted + b.intents_extracted,
        intents_rejected: a.intents_rejected + b.intents_rejected,
        grants: a.grants + b.grants,
        denials: a.denials + b.denials,
        releases: a.releases + b.releases,
        orders_placed: a.orders_placed + b.orders_placed,
        orders_failed: a.orders_failed + b.orders_failed,
        replies: a.replies + b.replies,
    }
}

/// A two-second report of campaign `campaign` with nothing in it, for the
/// layout tests to fill in.
#[cfg(test)]
pub(super) fn empty_report(campaign: &str) -> CampaignReport {
    let range = Range {
        from: 1_738_152_000,
        to: 1_738_152_002,
    };
    CampaignReport {
        campaign: campaign.into(),
        database: "chatcart_demo".into(),
        range,
        span: range,
        step: 1,
        latency_step: 60,
        ..CampaignReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ranges_are_read_in_longer_buckets() {
        let range = |len: u32| Range {
            from: 1_000,
            to: 1_000 + len - 1,
        };
        assert_eq!(range(1).step(), 1);
        assert_eq!(range(50_000).step(), 1);
        assert_eq!(range(50_001).step(), 60);
        assert_eq!(range(50_000 * 60).step(), 60);
        assert_eq!(range(50_000 * 60 + 1).step(), 3_600);
        assert_eq!(range(u32::MAX - 1_000).step(), 86_400);
        assert_eq!(Range { from: 5, to: 4 }.secs(), 1);
    }

    #[test]
    fn an_unknown_campaign_lists_the_known_ones() {
        let mut request = Request {
            campaign: Some("nope".into()),
            ..Request::default()
        };
        let msg = no_such_campaign(&request, "nope", "db", &["a".into(), "b".into()]);
        assert!(
            msg.contains("campaign `nope` has no records in database db"),
            "{msg}"
        );
        assert!(msg.contains("--campaign with one that has: a, b"), "{msg}");
        let many: Vec<String> = (0..=LISTED_CAMPAIGNS).map(|i| format!("c{i}")).collect();
        let msg = no_such_campaign(&request, "nope", "db", &many);
        assert!(msg.contains("c19, …") && !msg.contains("c20"), "{msg}");
        request.campaign = None;
        let msg = no_such_campaign(&request, "spring", "db", &[]);
        assert!(msg.contains("default campaign `spring`"), "{msg}");
        assert!(msg.contains("chatcart demo --clickhouse-url"), "{msg}");
    }
}
