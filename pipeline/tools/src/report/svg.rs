//! Charts drawn as static SVG, so the HTML report shows them with no script
//! and nothing fetched: a line chart (time on the x axis, series as
//! polylines, optional vertical markers) and a horizontal bar chart. Both
//! have labelled ticks and a legend, and draw a "no data" panel instead of
//! an empty frame when there is nothing to draw.
//!
//! Every drawn series element carries `data-series`, and every chart
//! `data-chart`, so the page's render check (and a person with the
//! inspector) can find them.

use std::fmt::Write as _;

use super::scale::{Scale, short_number, time_ticks, value_ticks};

/// `text` safe inside HTML or SVG text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Width of every chart, in SVG units (pixels at 100%).
pub const WIDTH: f64 = 960.0;
const LINE_HEIGHT: f64 = 320.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 48.0;

/// One line of a [`LineChart`]; `segments` are drawn apart (a gap in the
/// data is not bridged).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub label: String,
    pub colour: &'static str,
    pub segments: Vec<Vec<(f64, f64)>>,
}

/// A vertical line at `x`, labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub name: &'static str,
    pub x: f64,
    pub label: String,
}

/// Series over time.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// `data-chart`.
    pub chart: &'static str,
    pub title: String,
    pub y_label: String,
    /// The time axis, in seconds.
    pub x: (f64, f64),
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub y_format: fn(f64) -> String,
    /// The y axis reaches at least this high (e.g. the whole budget).
    pub y_at_least: f64,
}

impl LineChart {
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.segments.iter().flatten());
        let (lo, hi) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        if !lo.is_finite() {
            return no_data(self.chart, &self.title, "no data in this range");
        }
        let ticks = value_ticks(lo.min(0.0), hi.max(self.y_at_least), 5);
        let y_domain = (ticks[0], ticks[ticks.len() - 1]);
        let (width, height) = (WIDTH, LINE_HEIGHT);
        let xs = Scale::new(self.x, (LEFT, width - RIGHT));
        let ys = Scale::new(y_domain, (height - BOTTOM, TOP));
        let mut svg = open(self.chart, &self.title, height);
        let _ = write!(
            svg,
            r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}"/>"#,
            width - LEFT - RIGHT,
            height - TOP - BOTTOM
        );
        for v in &ticks {
            let y = ys.map(*v);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                width - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                escape(&(self.y_format)(*v))
            );
        }
        for (t, label) in time_ticks(xs.domain().0, xs.domain().1, 8) {
            let x = xs.map(t);
            let base = height - BOTTOM;
            let _ = write!(
                svg,
                r#"<line class="axis" x1="{x:.1}" y1="{base:.1}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                base + 5.0,
                base + 18.0,
                escape(&label)
            );
        }
        axes(&mut svg, &self.y_label, "time (UTC)", height);
        for s in &self.series {
            for segment in s.segments.iter().filter(|seg| !seg.is_empty()) {
                let mut pts = String::with_capacity(segment.len() * 14);
                for (x, y) in segment {
                    let _ = write!(pts, "{:.1},{:.1} ", xs.map(*x), ys.map(*y));
                }
                let _ = write!(
                    svg,
                    r#"<polyline data-series="{}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round" points="{}"/>"#,
                    s.name,
                    s.colour,
                    pts.trim_end()
                );
            }
        }
        for m in &self.markers {
            let x = xs.map(m.x);
            // Labels near the right edge would run off the chart.
            let anchor = if x > width * 0.7 { "end" } else { "start" };
            let dx = if anchor == "end" { -4.0 } else { 4.0 };
            let _ = write!(
                svg,
                r#"<line data-series="{}" class="marker" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="marker-label" x="{:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                m.name,
                height - BOTTOM,
                x + dx,
                TOP + 14.0,
                escape(&m.label)
            );
        }
        let legend: Vec<(&str, &str)> = self
            .series
            .iter()
            .map(|s| (s.label.as_str(), s.colour))
            .collect();
        write_legend(&mut svg, &legend);
        svg.push_str("</svg>");
        svg
    }
}

/// One bar of a [`BarChart`]; its colour is its series'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub series: &'static str,
    pub label: String,
    pub value: u64,
}

/// Horizontal bars, one per labelled value.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub chart: &'static str,
    pub title: String,
    pub x_label: String,
    pub bars: Vec<Bar>,
    /// `(series, label, colour)` for each series, in legend order.
    pub legend: Vec<(&'static str, String, &'static str)>,
}

const BAR_ROW: f64 = 24.0;
const BAR_LABELS: f64 = 320.0;

impl BarChart {
    pub fn to_svg(&self) -> String {
        let max = self.bars.iter().map(|b| b.value).max().unwrap_or(0);
        if max == 0 {
            return no_data(self.chart, &self.title, "no data in this range");
        }
        let height = TOP + BAR_ROW * self.bars.len() as f64 + BOTTOM;
        let ticks = value_ticks(0.0, max as f64, 6);
        let right = WIDTH - RIGHT - 60.0;
        let xs = Scale::new((0.0, ticks[ticks.len() - 1]), (BAR_LABELS, right));
        let mut svg = open(self.chart, &self.title, height);
        let base = height - BOTTOM;
        for v in &ticks {
            let x = xs.map(*v);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{base:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                base + 18.0,
                escape(&short_number(*v))
            );
        }
        for (i, bar) in self.bars.iter().enumerate() {
            let y = TOP + BAR_ROW * i as f64;
            let colour = self
                .legend
                .iter()
                .find(|(s, _, _)| *s == bar.series)
                .map_or("#888888", |l| l.2);
            let end = xs.map(bar.value as f64);
            let _ = write!(
                svg,
                r#"<text class="bar-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect data-series="{}" x="{BAR_LABELS}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text class="bar-value" x="{:.1}" y="{:.1}">{}</text>"#,
                BAR_LABELS - 8.0,
                y + BAR_ROW * 0.65,
                escape(&truncate(&bar.label, 44)),
                bar.series,
                y + 3.0,
                // A bar of 1 among millions still shows.
                (end - BAR_LABELS).max(1.0),
                BAR_ROW - 6.0,
                end.max(BAR_LABELS + 1.0) + 6.0,
                y + BAR_ROW * 0.65,
                super::format_count(bar.value)
            );
        }
        axes_bars(&mut svg, &self.x_label, height);
        let legend: Vec<(&str, &str)> = self
            .legend
            .iter()
            .filter(|(s, _, _)| self.bars.iter().any(|b| b.series == *s))
            .map(|(_, l, c)| (l.as_str(), *c))
            .collect();
        write_legend(&mut svg, &legend);
        svg.push_str("</svg>");
        svg
    }
}

/// A chart with nothing to draw: the frame and `message`, no series.
pub fn no_data(chart: &str, title: &str, message: &str) -> String {
    let height = 120.0;
    let mut svg = open(chart, title, height);
    let _ = write!(
        svg,
        r#"<rect class="plot" x="1" y="1" width="{:.1}" height="{:.1}"/><text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></svg>"#,
        WIDTH - 2.0,
        height - 2.0,
        WIDTH / 2.0,
        height / 2.0 + 5.0,
        escape(message)
    );
    svg
}

fn open(chart: &str, title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" data-chart="{}" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" role="img" aria-label="{t}"><title>{t}</title>"#,
        escape(chart),
        t = escape(title)
    )
}

fn axes(svg: &mut String, y_label: &str, x_label: &str, height: f64) {
    let base = height - BOTTOM;
    let mid = (TOP + base) / 2.0;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base:.1}"/><line class="axis" x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}"/><text class="axis-label" x="16" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 16 {mid:.1})">{}</text><text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        WIDTH - RIGHT,
        escape(y_label),
        (LEFT + WIDTH - RIGHT) / 2.0,
        height - 8.0,
        escape(x_label)
    );
}

fn axes_bars(svg: &mut String, x_label: &str, height: f64) {
    let base = height - BOTTOM;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{BAR_LABELS}" y1="{TOP}" x2="{BAR_LABELS}" y2="{base:.1}"/><line class="axis" x1="{BAR_LABELS}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}"/><text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        WIDTH - RIGHT - 60.0,
        (BAR_LABELS + WIDTH - RIGHT - 60.0) / 2.0,
        height - 8.0,
        escape(x_label)
    );
}

/// Legend entries in a row along the top.
fn write_legend(svg: &mut String, entries: &[(&str, &str)]) {
    let mut x = LEFT;
    svg.push_str(r#"<g class="legend">"#);
    for (label, colour) in entries {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="14" width="14" height="10" fill="{colour}"/><text x="{:.1}" y="23">{}</text>"#,
            x + 19.0,
            escape(label)
        );
        // An estimate of the label's width: no fonts to measure with.
        x += 19.0 + 7.5 * label.chars().count() as f64 + 18.0;
    }
    svg.push_str("</g>");
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            chart: "throughput",
            title: "t <&>".into(),
            y_label: "per second".into(),
            x: (0.0, 10.0),
            series: vec![Series {
                name: "prompts",
                label: "prompts".into(),
                colour: "#123456",
                segments: vec![points],
            }],
            markers: vec![Marker {
                name: "exhaustion",
                x: 5.0,
                label: "ran out <now>".into(),
            }],
            y_format: short_number,
            y_at_least: 0.0,
        }
    }

    #[test]
    fn line_charts_place_points_inside_the_plot() {
        let svg = line(vec![(0.0, 0.0), (10.0, 100.0)]).to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-chart="throughput""#));
        // (0, 0) is the bottom left corner, (10, 100) the top right.
        let expected = format!(
            r##"data-series="prompts" fill="none" stroke="#123456" stroke-width="1.6" stroke-linejoin="round" points="{LEFT:.1},{:.1} {:.1},{TOP:.1}""##,
            LINE_HEIGHT - BOTTOM,
            WIDTH - RIGHT
        );
        assert!(svg.contains(&expected), "{svg}");
        assert!(svg.contains(r#"data-series="exhaustion""#));
        assert!(svg.contains("ran out &lt;now&gt;") && svg.contains("t &lt;&amp;&gt;"));
        assert!(!svg.contains("<now>"));

        // A flat line at 0 still gets an axis up to `y_at_least`.
        let mut flat = line(vec![(0.0, 0.0), (10.0, 0.0)]);
        flat.y_at_least = 200.0;
        let svg = flat.to_svg();
        assert!(
            svg.contains(">200</text>") && svg.contains(">0</text>"),
            "{svg}"
        );
    }

    #[test]
    fn empty_charts_say_so() {
        for svg in [
            line(Vec::new()).to_svg(),
            BarChart {
                chart: "outcomes",
                title: "o".into(),
                x_label: "requests".into(),
                bars: Vec::new(),
                legend: Vec::new(),
            }
            .to_svg(),
        ] {
            assert!(svg.contains("no data in this range"), "{svg}");
            assert!(svg.contains("data-chart=") && !svg.contains("data-series"));
        }
    }

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let chart = BarChart {
            chart: "outcomes",
            title: "o".into(),
            x_label: "requests".into(),
            bars: vec![
                Bar {
                    series: "replies",
                    label: "<b>order_placed</b>".into(),
                    value: 1_000_000,
                },
                Bar {
                    series: "denials",
                    label: "budget_exhausted".into(),
                    value: 1,
                },
            ],
            legend: vec![("replies", "replies".into(), "#111111")],
        };
        let svg = chart.to_svg();
        assert!(svg.contains("&lt;b&gt;order_placed&lt;/b&gt;"), "{svg}");
        // 1,000,000 is the last tick, so its bar spans the whole axis.
        let full = WIDTH - RIGHT - 60.0 - BAR_LABELS;
        assert!(
            svg.contains(&format!(
                r##"width="{full:.1}" height="18.0" fill="#111111""##
            )),
            "{svg}"
        );
        // An unlisted series falls back to grey; a tiny bar stays visible.
        assert!(
            svg.contains(r##"width="1.0" height="18.0" fill="#888888""##),
            "{svg}"
        );
        assert_eq!(svg.matches("data-series=").count(), 2);
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("蛋挞蛋挞蛋挞", 3), "蛋挞…");
    }
}
