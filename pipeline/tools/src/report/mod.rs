//! `chatcart report`: what happened in one campaign, read back from the
//! analytics views in ClickHouse, as plain-text tables for the terminal and
//! as a self-contained HTML page with charts.
//!
//! # Layout
//! - this file: the time range (`--from`, `--to`) and the number formats
//!   every output shares;
//! - [`data`]: the queries, and the [`CampaignReport`] they fill;
//! - [`front_door`]: what the gateways admitted and shed, and the waits
//!   they promised against the waits that happened;
//! - [`tables`]: the key figures as tables;
//! - [`text`]: tables laid out as plain text for the terminal;
//! - [`scale`]: scales and ticks for the charts' axes;
//! - [`svg`]: the two kinds of chart, drawn as SVG;
//! - [`charts`]: the report's four charts;
//! - [`html`]: the page that holds the tables and charts.

pub mod charts;
pub mod data;
pub mod front_door;
pub mod html;
pub mod scale;
pub mod svg;
pub mod tables;
pub mod text;

use std::time::{Duration, UNIX_EPOCH};

pub use data::{CampaignReport, Request, fetch};

/// Seconds since the epoch, as ClickHouse's `DateTime` holds them.
pub type Secs = u32;

/// A `--from` / `--to` value: RFC 3339 (`2025-01-29T12:00:00Z`,
/// `2025-01-29T20:00:00+08:00`) or `YYYY-MM-DD HH:MM:SS`, read as UTC.
pub fn parse_time(text: &str) -> Result<Secs, String> {
    let text = text.trim();
    let hint = "expected RFC 3339 such as 2025-01-29T12:00:00Z or 2025-01-29T20:00:00+08:00, or `2025-01-29 12:00:00` (UTC)";
    // humantime reads UTC only; a numeric offset is applied here.
    let (local, offset_secs) = split_offset(text).ok_or_else(|| format!("`{text}`: {hint}"))?;
    let time =
        humantime::parse_rfc3339_weak(local).map_err(|e| format!("`{text}`: {e}; {hint}"))?;
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("`{text}` is before 1970"))?
        .as_secs();
    let utc = i64::try_from(secs).unwrap_or(i64::MAX) - offset_secs;
    Secs::try_from(utc)
        .map_err(|_| format!("`{text}` is outside 1970 to 2106, which ClickHouse's DateTime holds"))
}

/// Splits a trailing `+HH:MM` / `-HH:MM` off `text`; returns the rest and
/// the offset in seconds (0 when there is none). `None` for a malformed
/// offset.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    // The date part alone is 19 bytes; anything shorter has no offset.
    let Some(at) = text.len().checked_sub(6).filter(|at| *at >= 19) else {
        return Some((text, 0));
    };
    let (local, suffix) = text.split_at_checked(at)?;
    let bytes = suffix.as_bytes();
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Some((text, 0)),
    };
    if bytes[3] != b':' {
        return None;
    }
    let hours: i64 = suffix.get(1..3)?.parse().ok()?;
    let minutes: i64 = suffix.get(4..6)?.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

/// `2025-01-29 12:00:05` (UTC).
pub fn format_time(secs: Secs) -> String {
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.into()))
        .to_string();
    stamp.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `12:00:05`, for chart ticks.
pub fn format_clock(secs: Secs) -> String {
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// `1 h 2 min 5 s`, for lengths of time.
pub fn format_span(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

/// A count with thousands separated: `12,345`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_in_both_spellings() {
        let expected = 1_738_152_000; // 2025-01-29T12:00:00Z
        assert_eq!(parse_time("2025-01-29T12:00:00Z"), Ok(expected));
        assert_eq!(parse_time("2025-01-29 12:00:00"), Ok(expected));
        assert_eq!(parse_time(" 2025-01-29T12:00:00 "), Ok(expected));
        assert_eq!(parse_time("2025-01-29T12:00:00.750Z"), Ok(expected));
        assert_eq!(parse_time("2025-01-29T20:00:00+08:00"), Ok(expected));
        assert_eq!(parse_time("2025-01-29T07:30:00-04:30"), Ok(expected));
        assert_eq!(parse_time("2025-01-29T12:00:00+00:00"), Ok(expected));
    }

    #[test]
    fn bad_times_say_what_is_expected() {
        for bad in [
            "",
            "yesterday",
            "2025-01-29",
            "2025/01/29 12:00:00",
            "2025-01-29 25:00:00",
            "2025-01-29T12:00:00+8",
            "2025-01-29T12:00:00+08:99",
            "1969-12-31 23:59:59",
            "2200-01-01 00:00:00",
            "2025-01-29 12:00:00 UTC",
        ] {
            let err = parse_time(bad).expect_err(bad);
            assert!(err.contains(&format!("`{}`", bad.trim())), "{bad}: {err}");
        }
        assert!(
            parse_time("later")
                .unwrap_err()
                .contains("2025-01-29T12:00:00Z")
        );
        assert!(
            parse_time("2200-01-01 00:00:00")
                .unwrap_err()
                .contains("2106")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(format_time(1_738_152_005), "2025-01-29 12:00:05");
        assert_eq!(format_clock(1_738_152_005), "12:00:05");
        assert_eq!(format_span(3), "3 s");
        assert_eq!(format_span(125), "2 min 5 s");
        assert_eq!(format_span(7_260), "2 h 1 min");
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(1_500), "1,500");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }
}
