//! The sustained phase of `chatcart bench`: the pipeline held at a fixed
//! rate (by default half of the burst rate the pipeline phase measured) for
//! minutes, to tell a pipeline that holds a rate from one that only
//! absorbs a burst.
//!
//! The run first sends for a lead-in (whole minutes, at the same rate), so
//! that the measured windows start with the pipe full; then everything is
//! read off the surge's report: answers per 10-second window by arrival,
//! latency by the minute requests were due, and, from the readings of a
//! [`CpuSampler`](super::cpu::CpuSampler), each process's share of a core
//! per minute, so a figure that falls can be traced to the process that ran
//! out of room.
//!
//! Pure: [`Sustained::of`] takes what was measured, and its tests drive it
//! with made-up runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::cpu::{CpuReading, percent_between};
use crate::surge::SurgeReport;

/// Length of a throughput window.
pub const WINDOW_SECS: u64 = 10;

/// What "holds" means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Goals {
    /// Every window's answered/s at least this share of the offered rate.
    pub window_share: f64,
    /// The last minute's answered/s at least this share of the first's.
    pub last_over_first: f64,
    /// The last minute's p99 at most this multiple of the first's.
    pub p99_growth: f64,
}

impl Default for Goals {
    fn default() -> Self {
        Self {
            window_share: 0.9,
            last_over_first: 0.95,
            p99_growth: 1.5,
        }
    }
}

/// One measured minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Minute {
    /// Minutes from the end of the lead-in.
    pub minute: u64,
    /// Answers that arrived in it, per second.
    pub answered_per_sec: f64,
    /// Latency of the requests due in it.
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    /// Each process's CPU in it, in per cent of one core.
    pub cpu_percent: BTreeMap<String, f64>,
}

/// What the sustained phase measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sustained {
    /// Requests offered per second.
    pub rate: f64,
    /// The pipeline's burst rate the rate was taken from, if it was.
    pub burst_per_sec: Option<f64>,
    pub lead_in_secs: u64,
    /// The measured time after the lead-in.
    pub secs: u64,
    /// Answered/s per window of the measured time, by arrival (the last
    /// window may be shorter).
    pub windows: Vec<f64>,
    /// The lowest window over the rate.
    pub min_window_share: f64,
    pub windows_at_goal: usize,
    pub first_minute_per_sec: f64,
    pub last_minute_per_sec: f64,
    pub last_over_first: f64,
    /// The last measured minute's p99 over the first's.
    pub p99_last_over_first: f64,
    pub minutes: Vec<Minute>,
    pub requests: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub duplicate_answers: u64,
    pub failed_sends: u64,
    /// Deliveries that left more than 10 ms after their time: when many
    /// did, the sender (or the broker refusing it) is in the figures.
    pub late_sends: u64,
    pub goals: Goals,
    /// Which goals were missed; empty when the rate held.
    pub missed: Vec<String>,
}

impl Sustained {
    /// Reads the phase's figures off its surge `report` and the CPU
    /// `readings` (taken with `names` from the start of the surge).
    pub fn of(
        report: &SurgeReport,
        rate: f64,
        burst_per_sec: Option<f64>,
        lead_in_secs: u64,
        secs: u64,
        (names, readings): (&[String], &[CpuReading]),
        goals: Goals,
    ) -> Self {
        // The report's series has one entry per second from 0, so a range of
        // seconds is a range of the series, not a scan of all of it.
        let answered_in = |from: u64, to: u64| -> f64 {
            let n: u64 = report
                .seconds
                .iter()
                .skip(from as usize)
                .take((to - from) as usize)
                .map(|s| s.answered)
                .sum();
            n as f64 / (to - from).max(1) as f64
        };
        let (start, end) = (lead_in_secs, lead_in_secs + secs);
        let windows: Vec<f64> = (start..end)
            .step_by(WINDOW_SECS as usize)
            .map(|from| answered_in(from, (from + WINDOW_SECS).min(end)))
            .collect();
        let share = |v: f64| v / rate.max(1e-9);
        let min_window_share = windows
            .iter()
            .copied()
            .map(share)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let windows_at_goal = windows
            .iter()
            .filter(|w| share(**w) >= goals.window_share)
            .count();
        let minute = secs.min(60);
        let first_minute_per_sec = answered_in(start, start + minute);
        let last_minute_per_sec = answered_in(end - minute, end);
        let lead_in_minutes = lead_in_secs / 60;
        let minutes: Vec<Minute> = (0..secs.div_ceil(60))
            .map(|m| {
                let from = start + 60 * m;
                let to = (from + 60).min(end);
                let latency = report
                    .minutes
                    .iter()
                    .find(|l| l.minute == lead_in_minutes + m)
                    .copied()
                    .unwrap_or_default();
                Minute {
                    minute: m,
                    answered_per_sec: answered_in(from, to),
                    p50_ms: latency.p50_ms,
                    p99_ms: latency.p99_ms,
                    max_ms: latency.max_ms,
                    cpu_percent: percent_between(names, readings, from as f64, to as f64),
                }
            })
            .collect();
        let last_over_first = last_minute_per_sec / first_minute_per_sec.max(1e-9);
        let p99_last_over_first = match (minutes.first(), minutes.last()) {
            (Some(a), Some(b)) => b.p99_ms as f64 / a.p99_ms.max(1) as f64,
            _ => 0.0,
        };
        let mut missed = Vec::new();
        if windows.is_empty() || min_window_share < goals.window_share {
            missed.push(format!(
                "a window fell to {min_window_share:.2} of the rate (goal >= {})",
                goals.window_share
            ));
        }
        if last_over_first < goals.last_over_first {
            missed.push(format!(
                "the last minute answered {last_over_first:.2} of the first's rate (goal >= {})",
                goals.last_over_first
            ));
        }
        if p99_last_over_first > goals.p99_growth {
            missed.push(format!(
                "p99 grew {p99_last_over_first:.2}x from the first minute to the last (goal <= {})",
                goals.p99_growth
            ));
        }
        if !report.complete() {
            missed.push(format!(
                "{} unanswered, {} duplicate answers, {} not acknowledged",
                report.unanswered, report.duplicate_answers, report.failed_sends
            ));
        }
        Self {
            rate,
            burst_per_sec,
            lead_in_secs,
            secs,
            windows,
            min_window_share,
            windows_at_goal,
            first_minute_per_sec,
            last_minute_per_sec,
            last_over_first,
            p99_last_over_first,
            minutes,
            requests: report.requests,
            answered: report.answered,
            unanswered: report.unanswered,
            duplicate_answers: report.duplicate_answers,
            failed_sends: report.failed_sends,
            late_sends: report.behind.late_sends,
            goals,
            missed,
        }
    }

    /// Whether every goal held.
    pub fn holds(&self) -> bool {
        self.missed.is_empty()
    }

    /// The process that used the most CPU in the last minute, and how much
    /// (per cent of one core): where to look first when the rate did not
    /// hold.
    pub fn busiest_last_minute(&self) -> Option<(&str, f64)> {
        self.minutes
            .last()?
            .cpu_percent
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(name, pct)| (name.as_str(), *pct))
    }
}

/// The processes the per-minute table shows on their own; the rest (the
/// stages or relays) are summed.
const SHARED: [&str; 3] = ["broker", "clickhouse", "generator"];

impl fmt::Display for Sustained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let of_burst = self.burst_per_sec.map_or(String::new(), |b| {
            format!(
                " ({:.0}% of the pipeline's {b:.0}/s)",
                100.0 * self.rate / b.max(1e-9)
            )
        });
        writeln!(
            f,
            "  sustained: {:.0}/s{of_burst} for {} s after a {} s lead-in",
            self.rate, self.secs, self.lead_in_secs
        )?;
        let shown: Vec<String> = self
            .windows
            .iter()
            .take(30)
            .map(|w| format!("{w:.0}"))
            .collect();
        writeln!(
            f,
            "    answered/s per {WINDOW_SECS} s: {}{}",
            shown.join(" "),
            if self.windows.len() > shown.len() {
                " …"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "    lowest window {:.2} of the rate; {} of {} windows >= {}  (goal: all)",
            self.min_window_share,
            self.windows_at_goal,
            self.windows.len(),
            self.goals.window_share
        )?;
        writeln!(
            f,
            "    last minute / first minute {:.2}  (goal >= {}); p99 last / first {:.2}  (goal <= {})",
            self.last_over_first,
            self.goals.last_over_first,
            self.p99_last_over_first,
            self.goals.p99_growth
        )?;
        writeln!(
            f,
            "    {:>6} {:>11} {:>7} {:>7} {:>7}  CPU % of a core: {:>6} {:>10} {:>9} {:>7}",
            "minute",
            "answered/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "broker",
            "clickhouse",
            "generator",
            "stages"
        )?;
        for m in &self.minutes {
            let cpu = |name: &str| {
                m.cpu_percent
                    .get(name)
                    .map_or("-".to_owned(), |p| format!("{p:.0}"))
            };
            let stages: f64 = m
                .cpu_percent
                .iter()
                .filter(|(name, _)| !SHARED.contains(&name.as_str()))
                .map(|(_, p)| p)
                .sum();
            writeln!(
                f,
                "    {:>6} {:>11.0} {:>7} {:>7} {:>7}  {:>23} {:>10} {:>9} {:>7.0}",
                m.minute,
                m.answered_per_sec,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                cpu("broker"),
                cpu("clickhouse"),
                cpu("generator"),
                stages
            )?;
        }
        writeln!(
            f,
            "    answered {} of {} ({} unanswered, {} duplicate answers, {} not acknowledged, {} sent late)",
            self.answered,
            self.requests,
            self.unanswered,
            self.duplicate_answers,
            self.failed_sends,
            self.late_sends
        )?;
        if self.holds() {
            writeln!(f, "    the rate held")?;
        } else {
            writeln!(f, "    the rate did NOT hold: {}", self.missed.join("; "))?;
            if let Some((name, pct)) = self.busiest_last_minute() {
                writeln!(
                    f,
                    "    busiest process in the last minute: {name}, {pct:.0}% of a core"
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surge::tally::{MinuteLatency, Second};

    /// A run that sent `rate`/s for `secs` seconds and answered as
    /// `answered(second)` says, every request due in minute m waiting
    /// `p99(m)` at the 99th percentile.
    fn run(secs: u64, answered: impl Fn(u64) -> u64, p99: impl Fn(u64) -> u64) -> SurgeReport {
        let seconds: Vec<Second> = (0..secs)
            .map(|s| Second {
                second: s,
                sent: 100,
                answered: answered(s),
            })
            .collect();
        let total = seconds.iter().map(|s| s.answered).sum();
        SurgeReport {
            requests: total,
            answered: total,
            minutes: (0..secs.div_ceil(60))
                .map(|m| MinuteLatency {
                    minute: m,
                    answered: 6_000,
                    p50_ms: 100,
                    p99_ms: p99(m),
                    max_ms: 2 * p99(m),
                })
                .collect(),
            seconds,
            ..SurgeReport::default()
        }
    }

    fn cpu(secs: u64, broker_share: impl Fn(f64) -> f64) -> (Vec<String>, Vec<CpuReading>) {
        // Cumulative CPU seconds of a broker whose share of a core at time
        // t is `broker_share(t)`, read every 10 s.
        let mut used = 0.0;
        let readings = (0..=secs / 10)
            .map(|i| {
                let at = 10.0 * i as f64;
                if i > 0 {
                    used += 10.0 * broker_share(at - 5.0);
                }
                CpuReading {
                    at_secs: at,
                    cpu_secs: vec![Some(used), Some(0.1 * at)],
                }
            })
            .collect();
        (vec!["broker".into(), "intent".into()], readings)
    }

    #[test]
    fn a_steady_run_holds_and_the_lead_in_is_left_out() {
        // The first minute is the lead-in: answers still ramp up in it.
        let report = run(240, |s| if s < 5 { 20 } else { 100 }, |_| 900);
        let (names, readings) = cpu(240, |_| 0.3);
        let s = Sustained::of(
            &report,
            100.0,
            Some(200.0),
            60,
            180,
            (&names, &readings),
            Goals::default(),
        );
        assert_eq!(s.windows.len(), 18);
        assert!(
            s.windows.iter().all(|w| (*w - 100.0).abs() < 1e-9),
            "{:?}",
            s.windows
        );
        assert_eq!((s.windows_at_goal, s.min_window_share), (18, 1.0));
        assert_eq!(s.minutes.len(), 3);
        assert!((s.last_over_first - 1.0).abs() < 1e-9);
        assert!(s.holds(), "{:?}", s.missed);
        let m = &s.minutes[0];
        assert!((m.cpu_percent["broker"] - 30.0).abs() < 1e-6, "{m:?}");
        assert!((m.cpu_percent["intent"] - 10.0).abs() < 1e-6, "{m:?}");
        let text = s.to_string();
        assert!(
            text.contains("the rate held") && text.contains("(50% of the pipeline's 200/s)"),
            "{text}"
        );
    }

    #[test]
    fn a_broker_that_slows_down_is_caught_and_named() {
        // Answers fall off in the last two minutes while the broker's
        // share of a core climbs, and the p99 of those minutes grows.
        let report = run(
            300,
            |s| if s < 180 { 100 } else { 70 },
            |m| if m < 3 { 900 } else { 4_000 },
        );
        let (names, readings) = cpu(300, |t| 0.2 + t / 300.0);
        let s = Sustained::of(
            &report,
            100.0,
            None,
            0,
            300,
            (&names, &readings),
            Goals::default(),
        );
        assert!(!s.holds());
        assert_eq!(s.windows_at_goal, 18);
        assert!((s.min_window_share - 0.7).abs() < 1e-9);
        assert!((s.last_over_first - 0.7).abs() < 1e-9);
        assert!((s.p99_last_over_first - 4_000.0 / 900.0).abs() < 1e-9);
        assert_eq!(s.missed.len(), 3, "{:?}", s.missed);
        assert_eq!(s.busiest_last_minute().map(|b| b.0), Some("broker"));
        let text = s.to_string();
        assert!(
            text.contains("did NOT hold")
                && text.contains("busiest process in the last minute: broker"),
            "{text}"
        );
    }

    #[test]
    fn short_runs_have_a_short_last_window_and_lost_answers_count() {
        let mut report = run(25, |_| 100, |_| 50);
        report.requests += 3;
        report.unanswered = 3;
        let s = Sustained::of(&report, 100.0, None, 0, 25, (&[], &[]), Goals::default());
        assert_eq!(s.windows, [100.0, 100.0, 100.0]);
        assert_eq!(s.minutes.len(), 1);
        assert!(s.minutes[0].cpu_percent.is_empty());
        assert_eq!(s.missed.len(), 1, "{:?}", s.missed);
        assert!(s.missed[0].contains("3 unanswered"));
    }
}
