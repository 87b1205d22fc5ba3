//! The report as one self-contained HTML page: inline CSS, the charts as
//! inline SVG, the tables, and nothing loaded from anywhere else, so the
//! file can be mailed or opened offline.
//!
//! A small inline script measures each chart once the page has loaded and
//! writes what it found into `<pre id="render-check">` (hidden). The charts
//! do not need it; it lets a headless browser prove they were drawn.

use std::fmt::Write as _;

use super::data::CampaignReport;
use super::svg::escape;
use super::tables::{self, Table};
use super::{charts, format_time};

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
p.note { color: #6b7280; margin: 0 0 6px; }
table { border-collapse: collapse; margin-bottom: 8px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #9ca3af; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody th { font-weight: 600; white-space: nowrap; }
figure { margin: 0 0 12px; }
svg { max-width: 100%; height: auto; font: 12px system-ui, sans-serif; }
svg .plot { fill: #f9fafb; stroke: #e5e7eb; }
svg .grid { stroke: #e5e7eb; }
svg .axis { stroke: #6b7280; }
svg .tick, svg .bar-value { fill: #374151; }
svg .axis-label { fill: #374151; font-weight: 600; }
svg .marker { stroke: #dc2626; stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .marker-label { fill: #dc2626; font-weight: 600; }
svg .empty { fill: #6b7280; font-size: 15px; }
.charts, .tables { display: grid; gap: 8px; }
"#;

/// Measures every chart's series and writes the result as JSON into
/// `#render-check`: per chart, its drawn size and, per series, how many
/// elements and points were drawn and the largest bounding box.
const RENDER_CHECK: &str = r#"
(function () {
  function measure() {
    var out = {};
    var charts = document.querySelectorAll('svg[data-chart]');
    for (var i = 0; i < charts.length; i++) {
      var svg = charts[i];
      var box = svg.getBoundingClientRect();
      var chart = { width: box.width, height: box.height, series: {} };
      var drawn = svg.querySelectorAll('[data-series]');
      for (var j = 0; j < drawn.length; j++) {
        var el = drawn[j];
        var name = el.getAttribute('data-series');
        var s = chart.series[name] || (chart.series[name] = { elements: 0, points: 0, width: 0, height: 0 });
        var b = el.getBBox();
        s.elements += 1;
        s.points += el.points ? el.points.numberOfItems : 1;
        s.width = Math.max(s.width, b.width);
        s.height = Math.max(s.height, b.height);
      }
      out[svg.getAttribute('data-chart')] = chart;
    }
    document.getElementById('render-check').textContent = JSON.stringify(out);
    document.body.setAttribute('data-rendered', 'true');
  }
  measure();
  window.addEventListener('load', measure);
})();
"#;

fn table_html(out: &mut String, table: &Table) {
    let _ = write!(out, "<section><h2>{}</h2>", escape(&table.title));
    if let Some(note) = &table.note {
        let _ = write!(out, r#"<p class="note">{}</p>"#, escape(note));
    }
    if table.rows.is_empty() {
        out.push_str("</section>");
        return;
    }
    out.push_str("<table>");
    let class = |i: usize| {
        if table.numeric.get(i).copied().unwrap_or(false) {
            r#" class="num""#
        } else {
            ""
        }
    };
    if !table.headers.is_empty() {
        out.push_str("<thead><tr>");
        for (i, h) in table.headers.iter().enumerate() {
            let _ = write!(out, "<th{}>{}</th>", class(i), escape(h));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            // A list's first column names its row.
            let tag = if table.headers.is_empty() && i == 0 {
                "th"
            } else {
                "td"
            };
            let _ = write!(out, "<{tag}{}>{}</{tag}>", class(i), escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
}

/// The report as a complete HTML document.
pub fn render_html(report: &CampaignReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("chatcart report: {}", report.campaign);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><style>{STYLE}</style></head><body>"#,
        escape(&title)
    );
    let _ = write!(
        out,
        r#"<h1>{}</h1><p class="note">{} to {} UTC, database {}</p>"#,
        escape(&title),
        format_time(report.range.from),
        format_time(report.range.to),
        escape(&report.database)
    );
    let mut tables = tables::all(report).into_iter();
    // The overview and the funnel first, then the charts, then the rest.
    out.push_str(r#"<div class="tables">"#);
    for table in tables.by_ref().take(2) {
        table_html(&mut out, &table);
    }
    out.push_str(r#"</div><div class="charts">"#);
    for (chart, heading, svg) in charts::all(report) {
        let _ = write!(
            out,
            r#"<section><h2>{}</h2><figure id="chart-{chart}">{svg}</figure></section>"#,
            escape(&heading)
        );
    }
    out.push_str(r#"</div><div class="tables">"#);
    for table in tables {
        table_html(&mut out, &table);
    }
    let _ = write!(
        out,
        r#"</div><pre id="render-check" hidden></pre><script>{RENDER_CHECK}</script></body></html>"#
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{User, empty_report};

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("奶茶 ¥20"), "奶茶 ¥20");
    }

    fn report() -> CampaignReport {
        CampaignReport {
            top_users: vec![User {
                user_id: "<img src=x onerror=alert(1)>".into(),
                prompts: 3,
                ..User::default()
            }],
            ..empty_report("<camp\"aign>")
        }
    }

    #[test]
    fn data_from_the_views_is_escaped() {
        let html = render_html(&report());
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<camp"));
        assert!(html.contains("chatcart report: &lt;camp&quot;aign&gt;"));
    }

    #[test]
    fn the_page_is_self_contained_and_holds_every_chart() {
        let html = render_html(&report());
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        for chart in charts::CHARTS {
            assert!(
                html.contains(&format!(r#"data-chart="{chart}""#)),
                "{chart}"
            );
        }
        // Nothing is fetched: no external scripts, styles, fonts or images.
        for needle in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
            assert!(!html.contains(needle), "{needle}");
        }
        assert_eq!(html.matches("<script>").count(), 1);
        assert!(html.contains(r#"<pre id="render-check" hidden></pre>"#));
    }
}
