//! The maths of the charts: a linear scale from data to SVG coordinates,
//! round tick values for value axes, whole-unit ticks with labels for time
//! axes, and short tick labels.

use super::{Secs, format_clock};

/// A linear map from data values (the domain) to SVG coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    /// An empty or reversed domain (one value, or none) is widened to one
    /// unit, so everything still maps to a finite coordinate.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        let (mut d0, mut d1) = domain;
        if !d0.is_finite() || !d1.is_finite() {
            (d0, d1) = (0.0, 1.0);
        }
        if d1 <= d0 {
            d1 = d0 + 1.0;
        }
        Self {
            d0,
            d1,
            r0: range.0,
            r1: range.1,
        }
    }

    pub fn map(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }

    pub fn domain(&self) -> (f64, f64) {
        (self.d0, self.d1)
    }
}

/// Round tick values (steps of 1, 2 or 5 × 10ⁿ, never below 1) from at or
/// below `lo` to at or above `hi`, about `target` of them.
pub fn value_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    } else {
        (0.0, 1.0)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
        .max(1.0);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    // Multiplying (rather than adding up steps) keeps the values round.
    (0..=(last - first) as i64)
        .map(|i| (first + i as f64) * step)
        .collect()
}

/// Tick spacings for time axes, in seconds.
const TIME_STEPS: [u32; 22] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
    86_400, 172_800, 604_800, 2_592_000, 31_536_000,
];

/// Ticks on a time axis from `lo` to `hi` (seconds), about `target` of
/// them at whole seconds, minutes, hours or days, each with its label.
pub fn time_ticks(lo: f64, hi: f64, target: usize) -> Vec<(f64, String)> {
    let span = (hi - lo).max(1.0);
    let step = TIME_STEPS
        .into_iter()
        .find(|s| span / f64::from(*s) <= target.max(1) as f64)
        .unwrap_or(TIME_STEPS[TIME_STEPS.len() - 1]);
    let step_f = f64::from(step);
    let first = (lo / step_f).ceil() as i64;
    let last = (hi / step_f).floor() as i64;
    (first..=last)
        .filter_map(|i| {
            let t = i as f64 * step_f;
            let secs = Secs::try_from(i * i64::from(step)).ok()?;
            let label = if step >= 86_400 {
                super::format_time(secs)[..10].to_owned()
            } else if step >= 60 {
                format_clock(secs)[..5].to_owned()
            } else {
                format_clock(secs)
            };
            Some((t, label))
        })
        .collect()
}

/// A value on an axis, shortened: `950`, `12.5k`, `3.2M`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| s.trim_end_matches(".0").to_owned();
    if a >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else {
        trim(format!("{v:.1}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_ends_to_ends_and_survive_a_single_value() {
        let s = Scale::new((10.0, 20.0), (100.0, 300.0));
        assert_eq!(s.map(10.0), 100.0);
        assert_eq!(s.map(15.0), 200.0);
        assert_eq!(s.map(20.0), 300.0);
        // Inverted ranges (y grows downwards in SVG).
        let y = Scale::new((0.0, 50.0), (276.0, 44.0));
        assert_eq!(y.map(0.0), 276.0);
        assert_eq!(y.map(50.0), 44.0);
        for degenerate in [(5.0, 5.0), (9.0, 1.0), (f64::NAN, 1.0)] {
            let s = Scale::new(degenerate, (0.0, 100.0));
            let (d0, d1) = s.domain();
            assert!(d1 > d0, "{degenerate:?}");
            assert!(s.map(d0).is_finite() && s.map(d1).is_finite());
        }
    }

    #[test]
    fn value_ticks_are_round_and_cover_the_data() {
        assert_eq!(value_ticks(0.0, 1_500.0, 5), [0.0, 500.0, 1_000.0, 1_500.0]);
        assert_eq!(
            value_ticks(0.0, 1_501.0, 5),
            [0.0, 500.0, 1_000.0, 1_500.0, 2_000.0]
        );
        assert_eq!(value_ticks(0.0, 3.0, 5), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(value_ticks(0.0, 0.0, 5), [0.0, 1.0]);
        assert_eq!(
            value_ticks(-120.0, 80.0, 4),
            [-150.0, -100.0, -50.0, 0.0, 50.0, 100.0]
        );
        let t = value_ticks(0.0, 15_000_000.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert!(
            *t.last().unwrap_or(&0.0) >= 15_000_000.0 && t.len() <= 7,
            "{t:?}"
        );
    }

    #[test]
    fn time_ticks_pick_whole_units() {
        let t0 = 1_738_152_000.0; // 12:00:00
        let ticks = time_ticks(t0 + 1.0, t0 + 4.0, 8);
        assert_eq!(
            ticks.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
            ["12:00:01", "12:00:02", "12:00:03", "12:00:04"]
        );
        let ticks = time_ticks(t0, t0 + 3_600.0, 8);
        assert_eq!(ticks[0], (t0, "12:00".to_owned()));
        assert_eq!(ticks.len(), 7, "{ticks:?}"); // every 10 minutes
        assert_eq!(ticks[1].1, "12:10");
        let ticks = time_ticks(t0, t0 + 20.0 * 86_400.0, 8);
        assert!(
            ticks
                .iter()
                .all(|t| t.1.len() == 10 && t.1.starts_with("2025-")),
            "{ticks:?}"
        );
    }

    #[test]
    fn numbers_shorten() {
        assert_eq!(short_number(950.0), "950");
        assert_eq!(short_number(12_500.0), "12.5k");
        assert_eq!(short_number(20_000.0), "20k");
        assert_eq!(short_number(3_200_000.0), "3.2M");
        assert_eq!(short_number(0.5), "0.5");
    }
}
