//! The report's key figures as [`Table`]s, shared by both outputs: laid out
//! as plain text by [`super::text`] and as HTML tables by [`super::html`].

use super::data::{BUSIEST_MINUTES, CampaignReport, Latency, MAX_POINTS, TOP_USERS};
use super::{Secs, format_clock, format_count, format_span, format_time};
use ledger::campaign::yuan;

/// A titled table. Without headers it is a list of `name`, `value` rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub title: String,
    /// What the figures cover, or why some are missing.
    pub note: Option<String>,
    pub headers: Vec<&'static str>,
    /// Columns aligned right (numbers).
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn list(title: &str, note: Option<String>) -> Self {
        Self {
            title: title.to_owned(),
            note,
            numeric: vec![false, false],
            ..Self::default()
        }
    }

    pub(super) fn grid(
        title: &str,
        note: Option<String>,
        columns: &[(&'static str, bool)],
    ) -> Self {
        Self {
            title: title.to_owned(),
            note,
            headers: columns.iter().map(|c| c.0).collect(),
            numeric: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.into());
    }

    pub(super) fn pair(&mut self, name: &str, value: impl Into<String>) {
        self.rows.push(vec![name.to_owned(), value.into()]);
    }
}

/// Rows of the top-reasons table.
const TOP_REASONS: usize = 15;

/// A time in the report's range: the clock alone when the range lies
/// within one day, else date and clock.
fn at(report: &CampaignReport, secs: Secs) -> String {
    if report.range.from / 86_400 == report.range.to / 86_400
        && secs / 86_400 == report.range.from / 86_400
    {
        format_clock(secs)
    } else {
        format_time(secs)
    }
}

fn n(v: u64) -> String {
    format_count(v)
}

fn ms(v: i64) -> String {
    format!("{v} ms")
}

/// Every table of the report, in order.
pub fn all(report: &CampaignReport) -> Vec<Table> {
    let mut tables = vec![
        overview(report),
        funnel(report),
        budget(report),
        peak(report),
    ];
    tables.extend([latency(report)]);
    tables.extend(front_door(report));
    tables.extend([stock(report), reasons(report), users(report)]);
    tables
}

fn overview(report: &CampaignReport) -> Table {
    let r = report;
    let mut t = Table::list("Report", None);
    t.pair("campaign", r.campaign.clone());
    t.pair("database", r.database.clone());
    let whole = if r.range == r.span {
        "the campaign's whole span in the data".to_owned()
    } else {
        format!(
            "the campaign's data runs from {} to {}",
            format_time(r.span.from),
            format_time(r.span.to)
        )
    };
    t.pair(
        "range (UTC)",
        format!(
            "{} to {} ({}; {whole})",
            format_time(r.range.from),
            format_time(r.range.to),
            format_span(r.range.secs())
        ),
    );
    let resolution = if r.step == 1 {
        "per second".to_owned()
    } else {
        format!(
            "per {} s, summed in ClickHouse: the range is longer than {} seconds",
            r.step,
            format_count(MAX_POINTS)
        )
    };
    t.pair("time series", resolution);
    t
}

fn funnel(report: &CampaignReport) -> Table {
    let f = &report.totals;
    let note = (f.prompts == 0).then(|| "no requests in this range".to_owned());
    let mut t = Table::grid(
        "Funnel: requests in the range",
        note,
        &[("stage", false), ("outcome", false), ("requests", true)],
    );
    for (stage, outcome, v) in [
        ("prompts", "", f.prompts),
        ("intent", "extracted", f.intents_extracted),
        ("intent", "rejected", f.intents_rejected),
        ("coupon", "granted", f.grants),
        ("coupon", "denied", f.denials),
        ("coupon", "released", f.releases),
        ("order", "placed", f.orders_placed),
        ("order", "failed", f.orders_failed),
        ("replies", "", f.replies),
    ] {
        t.row([stage.to_owned(), outcome.to_owned(), n(v)]);
    }
    t
}

fn budget(report: &CampaignReport) -> Table {
    let Some(b) = report.budget else {
        return Table::list(
            "Budget: whole campaign",
            Some("no coupon decisions recorded for this campaign".to_owned()),
        );
    };
    let mut t = Table::list("Budget: whole campaign", None);
    let share = |cents: i64| {
        if b.budget_cents > 0 {
            format!(
                " ({:.1}% of the budget)",
                100.0 * cents as f64 / b.budget_cents as f64
            )
        } else {
            String::new()
        }
    };
    t.pair("budget", yuan(b.budget_cents));
    t.pair("granted", yuan(b.granted_cents));
    t.pair(
        "released",
        format!(
            "{} (credit of failed orders, given back)",
            yuan(b.released_cents)
        ),
    );
    t.pair(
        "spent",
        format!("{}{}", yuan(b.spent_cents), share(b.spent_cents)),
    );
    t.pair(
        "remaining",
        format!("{}{}", yuan(b.remaining_cents), share(b.remaining_cents)),
    );
    t.pair(
        "grants / releases",
        format!("{} / {}", n(b.grants), n(b.releases)),
    );
    t.pair("denied for budget", n(b.budget_denials));
    let never = || "none".to_owned();
    t.pair(
        "first grant",
        b.first_grant().map_or_else(never, format_time),
    );
    t.pair("last grant", b.last_grant().map_or_else(never, format_time));
    match b.exhausted_at() {
        Some(when) => t.pair(
            "budget ran out at",
            format!("{} (first request denied for budget)", format_time(when)),
        ),
        None => t.pair("budget ran out at", "not exhausted"),
    }
    if let Some(burn) = report.burn {
        t.pair(
            "latest minute's burn",
            format!(
                "{} in the minute from {}",
                yuan(burn.burn_cents),
                format_time(burn.minute)
            ),
        );
        if let (None, Some(when)) = (b.exhausted_at(), burn.projected()) {
            t.pair(
                "projected to run out",
                format!("{} at that rate", format_time(when)),
            );
        }
    }
    t
}

fn peak(report: &CampaignReport) -> Table {
    let Some(p) = report.peak.filter(|p| p.prompts > 0) else {
        return Table::list("Peak second", Some("no prompts in this range".to_owned()));
    };
    let mut t = Table::list("Peak second: the most prompts", None);
    t.pair("at", format_time(p.time));
    t.pair("prompts", n(p.prompts));
    t.pair("intents", n(p.intents_extracted + p.intents_rejected));
    t.pair("grants + denials", n(p.grants + p.denials));
    t.pair("orders", n(p.orders_placed + p.orders_failed));
    t.pair("replies", n(p.replies));
    let latency = report.peak_latency.map_or_else(
        || "no replies in that minute".to_owned(),
        |l| {
            format!(
                "p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} replies)",
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.p999_ms),
                ms(l.max_ms),
                n(l.replies)
            )
        },
    );
    t.pair(
        &format!(
            "latency, minute from {}",
            format_clock(p.time - p.time % 60)
        ),
        latency,
    );
    t
}

fn latency(report: &CampaignReport) -> Table {
    let shown = report.busiest_minutes.len() as u64;
    let note = if shown == 0 {
        Some("no replies in this range".to_owned())
    } else if report.latency_minutes > shown {
        Some(format!(
            "the {BUSIEST_MINUTES} busiest of {} minutes, in time order",
            format_count(report.latency_minutes)
        ))
    } else {
        Some("every minute with replies".to_owned())
    };
    let mut t = Table::grid(
        "Reply latency per minute",
        note,
        &[
            ("minute", false),
            ("replies", true),
            ("p50", true),
            ("p90", true),
            ("p99", true),
            ("p99.9", true),
            ("max", true),
        ],
    );
    for l in &report.busiest_minutes {
        let Latency {
            minute,
            replies,
            p50_ms,
            p90_ms,
            p99_ms,
            p999_ms,
            max_ms,
        } = *l;
        t.row([
            at(report, minute),
            n(replies),
            ms(p50_ms),
            ms(p90_ms),
            ms(p99_ms),
            ms(p999_ms),
            ms(max_ms),
        ]);
    }
    t
}

fn stock(report: &CampaignReport) -> Table {
    let note = if report.stock.is_empty() {
        "no SKU ordered or limited"
    } else {
        "whole campaign; leased: units moved to partitions' allowances"
    };
    let mut t = Table::grid(
        "Stock by SKU",
        Some(note.to_owned()),
        &[
            ("sku", false),
            ("stock", true),
            ("leased", true),
            ("sold", true),
            ("left", true),
            ("out-of-stock orders", true),
        ],
    );
    for s in &report.stock {
        let limited = report.limited_skus.contains(&s.sku);
        let (stock, left) = if limited {
            (
                s.stock_units.to_string(),
                (s.stock_units - s.sold_units).to_string(),
            )
        } else {
            ("unlimited".to_owned(), "-".to_owned())
        };
        t.row([
            s.sku.clone(),
            stock,
            s.leased_units.to_string(),
            s.sold_units.to_string(),
            left,
            s.out_of_stock_orders.to_string(),
        ]);
    }
    t
}

fn reasons(report: &CampaignReport) -> Table {
    let with_reason: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| !o.reason.is_empty())
        .collect();
    let note = if with_reason.is_empty() {
        "no rejections, denials or failures in this range".to_owned()
    } else {
        format!("in the range; the {TOP_REASONS} most frequent")
    };
    let mut t = Table::grid(
        "Top reasons",
        Some(note),
        &[
            ("stage", false),
            ("record", false),
            ("outcome", false),
            ("reason", false),
            ("requests", true),
            ("first seen", false),
            ("last seen", false),
        ],
    );
    for o in with_reason.into_iter().take(TOP_REASONS) {
        t.row([
            o.stage.clone(),
            o.kind.clone(),
            o.outcome.clone(),
            o.reason.clone(),
            n(o.requests),
            at(report, o.first_seen),
            at(report, o.last_seen),
        ]);
    }
    t
}

fn users(report: &CampaignReport) -> Table {
    let mut t = Table::grid(
        &format!("Top {TOP_USERS} users by prompts"),
        Some("whole campaign".to_owned()),
        &[
            ("user", false),
            ("prompts", true),
            ("asked to buy", true),
            ("grants", true),
            ("denials", true),
            ("orders", true),
            ("first seen", false),
            ("last seen", false),
        ],
    );
    for u in &report.top_users {
        t.row([
            u.user_id.clone(),
            n(u.prompts),
            n(u.purchases_asked),
            n(u.grants),
            n(u.denials),
            n(u.orders_placed),
            format_time(u.first_seen),
            format_time(u.last_seen),
        ]);
    }
    t
}

fn share_of(part: u64, whole: u64) -> String {
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

/// The front door's tables: load, and promises kept.
fn front_door(report: &CampaignReport) -> Vec<Table> {
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
    load.pair("admitted (published)", share_of(t.admitted, t.offered));
    load.pair("shed (429, not published)", share_of(t.shed, t.offered));
    load.pair(
        "  over gateway.max_wait_secs",
        share_of(t.shed_over_max_wait, t.offered),
    );
    load.pair("  a stage stalled", share_of(t.shed_stalled, t.offered));
    load.pair(
        "  no estimate yet (surge from idle)",
        share_of(t.shed_no_estimate, t.offered),
    );
    load.pair(
        "told the free orders were used up",
        share_of(t.told_used_up, t.admitted),
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
            share_of(p.late, p.answered),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{Budget, Funnel, empty_report};
    use crate::report::text::render_text;

    fn report() -> CampaignReport {
        empty_report("demo-1")
    }

    #[test]
    fn the_budget_says_when_it_ran_out_or_that_it_did_not() {
        let mut r = report();
        r.budget = Some(Budget {
            budget_cents: 150_000,
            spent_cents: 150_000,
            budget_exhausted_at: 1_738_152_001,
            ..Budget::default()
        });
        let text = render_text(&r);
        assert!(
            text.contains(
                "budget ran out at  2025-01-29 12:00:01 (first request denied for budget)"
            ),
            "{text}"
        );
        assert!(text.contains("¥1500.00 (100.0% of the budget)"), "{text}");
        r.budget = r.budget.map(|b| Budget {
            budget_exhausted_at: 0,
            ..b
        });
        assert!(render_text(&r).contains("budget ran out at  not exhausted"));
        r.budget = None;
        assert!(render_text(&r).contains("no coupon decisions recorded"));
    }

    #[test]
    fn an_empty_range_says_so_instead_of_showing_blank_tables() {
        let text = render_text(&report());
        for expected in [
            "no requests in this range",
            "no prompts in this range",
            "no replies in this range",
            "range (UTC)  2025-01-29 12:00:00 to 2025-01-29 12:00:02 (3 s; the campaign's whole span in the data)",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
        assert!(!text.contains("minute  replies"), "{text}");
    }

    #[test]
    fn totals_and_the_peak_are_shown() {
        let mut r = report();
        r.totals = Funnel {
            prompts: 1_500,
            replies: 1_500,
            ..Funnel::default()
        };
        r.peak = Some(Funnel {
            time: 1_738_152_001,
            prompts: 1_500,
            ..Funnel::default()
        });
        let text = render_text(&r);
        assert!(text.contains("  prompts                1,500\n"), "{text}");
        assert!(
            text.contains("latency, minute from 12:00:00  no replies in that minute"),
            "{text}"
        );
    }
}
