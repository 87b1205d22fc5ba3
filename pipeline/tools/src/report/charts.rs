//! The report's four charts, built from a [`CampaignReport`]: throughput by stage,
//! reply latency quantiles, the budget burn-down with the moment it ran out
//! (or is projected to), and the outcomes of the range's requests.
//!
//! Counts per bucket are drawn as steps (a bucket's value holds across the
//! bucket), so one second or one minute of data is a visible line rather
//! than a single point.

use super::data::{CampaignReport, Funnel, Latency};
use super::front_door::Offered;
use super::scale::short_number;
use super::svg::{Bar, BarChart, LineChart, Marker, Series};
use super::{Secs, format_clock, format_time};

/// `data-chart` of each chart, in page order.
pub const CHARTS: [&str; 4] = ["throughput", "latency", "budget", "outcomes"];

/// Bars per kind of outcome; the rest are in the tables.
const BARS_PER_SERIES: usize = 10;

const BLUE: &str = "#2563eb";
const GREEN: &str = "#16a34a";
const ORANGE: &str = "#ea580c";
const PURPLE: &str = "#9333ea";
const RED: &str = "#dc2626";
const GREY: &str = "#6b7280";
const TEAL: &str = "#0d9488";

/// Every chart as `(data-chart, heading, svg)`.
pub fn all(report: &CampaignReport) -> Vec<(&'static str, String, String)> {
    let throughput = throughput(report);
    let latency = latency(report);
    let budget = budget(report);
    let outcomes = outcomes(report);
    vec![
        (CHARTS[0], throughput.title.clone(), throughput.to_svg()),
        (CHARTS[1], latency.title.clone(), latency.to_svg()),
        (CHARTS[2], budget.title.clone(), budget.to_svg()),
        (CHARTS[3], outcomes.title.clone(), outcomes.to_svg()),
    ]
}

/// The range widened to whole buckets of `step` seconds.
fn domain(report: &CampaignReport, step: u32) -> (f64, f64) {
    let step = u64::from(step.max(1));
    let from = u64::from(report.range.from);
    let to = u64::from(report.range.to);
    ((from - from % step) as f64, (to - to % step + step) as f64)
}

/// Per-bucket counts as steps from `lo` to `hi`; buckets without a row are 0.
pub fn histogram(buckets: &[(Secs, f64)], step: u32, lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let step = f64::from(step);
    let mut points = Vec::with_capacity(buckets.len() * 2 + 4);
    let mut at = lo;
    for (t, v) in buckets {
        let t = f64::from(*t);
        if t > at {
            points.extend([(at, 0.0), (t, 0.0)]);
        }
        points.extend([(t, *v), (t + step, *v)]);
        at = t + step;
    }
    if at < hi && !points.is_empty() {
        points.extend([(at, 0.0), (hi, 0.0)]);
    }
    points
}

/// Per-bucket values as steps, split where buckets are missing (no replies
/// in a minute means no latency, not a latency of 0).
pub fn segments(buckets: &[(Secs, f64)], step: u32) -> Vec<Vec<(f64, f64)>> {
    let step = f64::from(step);
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut end = f64::NAN;
    for (t, v) in buckets {
        let t = f64::from(*t);
        if t != end || out.is_empty() {
            out.push(Vec::new());
        }
        if let Some(segment) = out.last_mut() {
            segment.extend([(t, *v), (t + step, *v)]);
        }
        end = t + step;
    }
    out
}

fn per(step: u32) -> &'static str {
    match step {
        1 => "second",
        60 => "minute",
        3_600 => "hour",
        _ => "day",
    }
}

pub fn throughput(report: &CampaignReport) -> LineChart {
    let (lo, hi) = domain(report, report.step);
    let series = |name, label: &str, colour, f: fn(&Funnel) -> u64| {
        let buckets: Vec<(Secs, f64)> = report
            .funnel
            .iter()
            .map(|b| (b.time, f(b) as f64))
            .collect();
        Series {
            name,
            label: label.to_owned(),
            colour,
            segments: vec![histogram(&buckets, report.step, lo, hi)],
        }
    };
    let mut gateway = Vec::new();
    if let Some(door) = &report.front_door {
        let line = |name, label: &str, colour, f: fn(&Offered) -> u64| {
            let buckets: Vec<(Secs, f64)> =
                door.offered.iter().map(|b| (b.time, f(b) as f64)).collect();
            Series {
                name,
                label: label.to_owned(),
                colour,
                segments: vec![histogram(&buckets, report.step, lo, hi)],
            }
        };
        gateway = vec![
            line("offered", "offered to the gateways", TEAL, |b| b.offered),
            line("shed", "shed (429)", RED, |b| b.shed),
        ];
    }
    LineChart {
        chart: CHARTS[0],
        title: format!("Throughput by stage (requests per {})", per(report.step)),
        y_label: format!("requests per {}", per(report.step)),
        x: (lo, hi),
        series: gateway
            .into_iter()
            .chain([
                series("prompts", "prompts", BLUE, |b| b.prompts),
                series("intents", "intents", PURPLE, |b| {
                    b.intents_extracted + b.intents_rejected
                }),
                series("decisions", "grants + denials", ORANGE, |b| {
                    b.grants + b.denials
                }),
                series("orders", "orders", GREEN, |b| {
                    b.orders_placed + b.orders_failed
                }),
                series("replies", "replies", GREY, |b| b.replies),
            ])
            .collect(),
        markers: Vec::new(),
        y_format: short_number,
        y_at_least: 0.0,
    }
}

pub fn latency(report: &CampaignReport) -> LineChart {
    let step = report.latency_step;
    let (lo, hi) = domain(report, step);
    let series = |name, label: &str, colour, f: fn(&Latency) -> i64| {
        let buckets: Vec<(Secs, f64)> = report
            .latency
            .iter()
            .map(|l| (l.minute, f(l) as f64))
            .collect();
        Series {
            name,
            label: label.to_owned(),
            colour,
            segments: segments(&buckets, step),
        }
    };
    let title = if step == 60 {
        "Reply latency per minute".to_owned()
    } else {
        format!(
            "Reply latency per {} (the highest of its minutes' quantiles)",
            per(step)
        )
    };
    LineChart {
        chart: CHARTS[1],
        title,
        y_label: "milliseconds".to_owned(),
        x: (lo, hi),
        series: vec![
            series("p50", "p50", BLUE, |l| l.p50_ms),
            series("p90", "p90", GREEN, |l| l.p90_ms),
            series("p99", "p99", ORANGE, |l| l.p99_ms),
            series("p999", "p99.9", RED, |l| l.p999_ms),
        ],
        markers: Vec::new(),
        y_format: short_number,
        y_at_least: 0.0,
    }
}

fn yuan(cents: f64) -> String {
    let sign = if cents < 0.0 { "-" } else { "" };
    format!("{sign}¥{}", short_number(cents.abs() / 100.0))
}

pub fn budget(report: &CampaignReport) -> LineChart {
    let step = report.step;
    let (lo, hi) = domain(report, step);
    let mut title = "Budget burn-down: remaining credit".to_owned();
    let mut chart = LineChart {
        chart: CHARTS[2],
        title: String::new(),
        y_label: "remaining budget".to_owned(),
        x: (lo, hi),
        series: Vec::new(),
        markers: Vec::new(),
        y_format: yuan,
        y_at_least: 0.0,
    };
    let Some(budget) = report.budget.filter(|b| b.budget_cents > 0) else {
        chart.title = format!("{title} (no budget recorded for this campaign)");
        return chart;
    };
    chart.y_at_least = budget.budget_cents as f64;
    let mut remaining = (budget.budget_cents - report.spent_before_cents) as f64;
    let mut points = vec![(lo, remaining)];
    for c in &report.credit {
        let t = f64::from(c.time);
        points.push((t, remaining));
        remaining -= (c.granted_cents - c.released_cents) as f64;
        points.push((t + f64::from(step), remaining));
    }
    if points.last().is_some_and(|p| p.0 < hi) {
        points.push((hi, remaining));
    }
    chart.series.push(Series {
        name: "remaining",
        label: "remaining".to_owned(),
        colour: BLUE,
        segments: vec![points],
    });
    let mark = match (
        budget.exhausted_at(),
        report.burn.and_then(|b| b.projected()),
    ) {
        (Some(at), _) => Some((at, "budget ran out at")),
        (None, Some(at)) => Some((at, "projected to run out at")),
        (None, None) => None,
    };
    if let Some((at, what)) = mark {
        let x = f64::from(at);
        if (lo..=hi).contains(&x) {
            chart.markers.push(Marker {
                name: "exhaustion",
                x,
                label: format!("{what} {}", format_clock(at)),
            });
        } else {
            title = format!(
                "{title} ({what} {} UTC, outside this range)",
                format_time(at)
            );
        }
    }
    chart.title = title;
    chart
}

pub fn outcomes(report: &CampaignReport) -> BarChart {
    let kinds: [(&str, &str, &str, &str); 4] = [
        ("replies", "Reply", "", "reply"),
        ("denials", "CouponDecision", "denied", "denied"),
        ("failures", "OrderEvent", "failed", "order failed"),
        ("rejections", "IntentEvent", "rejected", "not ordered"),
    ];
    let mut bars = Vec::new();
    for (series, kind, outcome, prefix) in kinds {
        // `report.outcomes` is sorted by requests, most first.
        let rows = report
            .outcomes
            .iter()
            .filter(|o| o.kind == kind && (outcome.is_empty() || o.outcome == outcome))
            .take(BARS_PER_SERIES);
        for o in rows {
            let what = match (outcome.is_empty(), o.reason.is_empty()) {
                (true, true) => o.outcome.clone(),
                (true, false) => format!("{}: {}", o.outcome, o.reason),
                (false, _) => o.reason.clone(),
            };
            bars.push(Bar {
                series,
                label: format!("{prefix} · {what}"),
                value: o.requests,
            });
        }
    }
    BarChart {
        chart: CHARTS[3],
        title: "Outcomes by reason (requests)".to_owned(),
        x_label: "requests".to_owned(),
        bars,
        legend: vec![
            ("replies", "replies".to_owned(), BLUE),
            ("denials", "coupon denials".to_owned(), ORANGE),
            ("failures", "order failures".to_owned(), RED),
            ("rejections", "intents not ordered".to_owned(), PURPLE),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{Budget, Credit, OutcomeCount, Range};

    #[test]
    fn histograms_fill_gaps_with_zero() {
        let h = histogram(&[(10, 5.0), (13, 2.0)], 1, 9.0, 16.0);
        assert_eq!(
            h,
            [
                (9.0, 0.0),
                (10.0, 0.0),
                (10.0, 5.0),
                (11.0, 5.0),
                (11.0, 0.0),
                (13.0, 0.0),
                (13.0, 2.0),
                (14.0, 2.0),
                (14.0, 0.0),
                (16.0, 0.0)
            ]
        );
        assert!(histogram(&[], 1, 0.0, 10.0).is_empty());
        assert!(h.windows(2).all(|w| w[0].0 <= w[1].0), "x never goes back");
    }

    #[test]
    fn segments_break_at_missing_buckets() {
        let s = segments(&[(0, 1.0), (60, 2.0), (180, 3.0)], 60);
        assert_eq!(
            s,
            [
                vec![(0.0, 1.0), (60.0, 1.0), (60.0, 2.0), (120.0, 2.0)],
                vec![(180.0, 3.0), (240.0, 3.0)]
            ]
        );
        assert!(segments(&[], 60).is_empty());
    }

    fn report() -> CampaignReport {
        CampaignReport {
            campaign: "c".into(),
            range: Range {
                from: 1_000,
                to: 1_009,
            },
            step: 1,
            latency_step: 60,
            ..CampaignReport::default()
        }
    }

    #[test]
    fn an_empty_report_draws_no_data_panels() {
        for (chart, _, svg) in all(&report()) {
            assert!(svg.contains(&format!(r#"data-chart="{chart}""#)), "{svg}");
            assert!(svg.contains("no data in this range"), "{chart}: {svg}");
        }
        assert!(budget(&report()).title.contains("no budget recorded"));
    }

    #[test]
    fn the_burn_down_marks_where_the_budget_ran_out() {
        let mut r = report();
        r.budget = Some(Budget {
            budget_cents: 10_000,
            budget_exhausted_at: 1_004,
            ..Budget::default()
        });
        r.spent_before_cents = 1_000;
        r.credit = vec![
            Credit {
                time: 1_002,
                granted_cents: 6_000,
                released_cents: 0,
            },
            Credit {
                time: 1_003,
                granted_cents: 3_500,
                released_cents: 500,
            },
        ];
        let chart = budget(&r);
        assert_eq!(
            chart.series[0].segments[0],
            [
                (1_000.0, 9_000.0),
                (1_002.0, 9_000.0),
                (1_003.0, 3_000.0),
                (1_003.0, 3_000.0),
                (1_004.0, 0.0),
                (1_010.0, 0.0)
            ]
        );
        assert_eq!(chart.markers[0].x, 1_004.0);
        assert!(chart.markers[0].label.starts_with("budget ran out at "));
        let svg = chart.to_svg();
        assert!(svg.contains(r#"data-series="exhaustion""#), "{svg}");

        // Outside the range: said in the title instead.
        r.budget = r.budget.map(|b| Budget {
            budget_exhausted_at: 5_000,
            ..b
        });
        let chart = budget(&r);
        assert!(chart.markers.is_empty());
        assert!(
            chart
                .title
                .ends_with("(budget ran out at 1970-01-01 01:23:20 UTC, outside this range)"),
            "{}",
            chart.title
        );
    }

    #[test]
    fn outcome_bars_group_by_kind_and_escape_reasons() {
        let mut r = report();
        let row = |kind: &str, outcome: &str, reason: &str, requests| OutcomeCount {
            stage: "s".into(),
            kind: kind.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            requests,
            ..OutcomeCount::default()
        };
        r.outcomes = vec![
            row("Reply", "OrderPlaced", "", 500),
            row("CouponDecision", "denied", "budget_exhausted", 400),
            row("Reply", "Denied", "<script>", 300),
            row("CouponDecision", "granted", "", 200),
            row("OrderEvent", "failed", "out_of_stock", 20),
        ];
        let chart = outcomes(&r);
        let labels: Vec<&str> = chart.bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "reply · OrderPlaced",
                "reply · Denied: <script>",
                "denied · budget_exhausted",
                "order failed · out_of_stock"
            ]
        );
        let svg = chart.to_svg();
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<rect data-series=").count(), 4);
    }
}
