//! The report for the terminal: each [`Table`] laid out as aligned plain
//! text, with data that could move the cursor or change colours made
//! harmless.

use std::fmt::Write as _;

use super::data::CampaignReport;
use super::tables::{self, Table};

/// Columns a terminal gives `c`: two for East Asian wide characters.
fn char_width(c: char) -> usize {
    let wide = matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Data shown in a terminal must not move the cursor or change colours.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn pad(out: &mut String, cell: &str, to: usize, right: bool) {
    let fill = " ".repeat(to.saturating_sub(width(cell)));
    if right {
        out.push_str(&fill);
        out.push_str(cell);
    } else {
        out.push_str(cell);
        out.push_str(&fill);
    }
}

/// `table` as aligned plain text, two spaces between columns.
pub fn to_text(table: &Table) -> String {
    let mut out = format!("{}\n", printable(&table.title));
    if let Some(note) = &table.note {
        let _ = writeln!(out, "  ({})", printable(note));
    }
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let columns = cells
        .iter()
        .map(Vec::len)
        .chain([table.headers.len()])
        .max()
        .unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in cells
        .iter()
        .map(|r| r.iter().map(String::as_str).collect::<Vec<_>>())
        .chain([table.headers.clone()])
    {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let line = |out: &mut String, row: &[&str]| {
        out.push_str("  ");
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let last = i + 1 == row.len();
            let right = table.numeric.get(i).copied().unwrap_or(false);
            // No trailing blanks after a left-aligned last cell.
            pad(out, cell, if last && !right { 0 } else { widths[i] }, right);
        }
        out.push('\n');
    };
    // An empty table is its note alone.
    if !table.headers.is_empty() && !cells.is_empty() {
        line(&mut out, &table.headers);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(
            &mut out,
            &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    for row in &cells {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

/// The whole report for the terminal.
pub fn render_text(report: &CampaignReport) -> String {
    tables::all(report)
        .iter()
        .map(to_text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tables_align_numbers_right_and_wide_characters_by_width() {
        let mut t = Table::grid("T", Some("note".into()), &[("sku", false), ("sold", true)]);
        t.row(["egg-tart".into(), "40".into()]);
        t.row(["奶茶".into(), "1,500".into()]);
        assert_eq!(
            to_text(&t),
            "T\n  (note)\n  sku        sold\n  --------  -----\n  egg-tart     40\n  奶茶      1,500\n"
        );
        let mut l = Table::list("L", None);
        l.pair("a", "x\u{1b}[31m");
        assert_eq!(to_text(&l), "L\n  a  x?[31m\n");
    }
}
