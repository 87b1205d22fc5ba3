//! What a surge reports: sent, answered, outcomes by reason, latency
//! quantiles, budget used and throughput over time, as a terminal table
//! or as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::front_door::FrontDoorReport;
use super::profile::Profile;
use super::tally::{MinuteLatency, Quantiles, Second, Tally};
use super::traffic::Kind;
use ledger::campaign::yuan;
use runtime::config::Settings;

/// How far the sender fell behind its schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Behind {
    /// Deliveries sent more than 10 ms after their intended time.
    pub late_sends: u64,
    /// The latest any delivery went out, in milliseconds.
    pub max_late_ms: f64,
}

/// What the sender did.
#[derive(Debug, Clone, Default)]
pub struct Sending {
    pub sent: u64,
    pub requests: u64,
    pub kinds: BTreeMap<Kind, u64>,
    pub failed_sends: u64,
    pub send_secs: f64,
    pub behind: Behind,
}

/// The campaign budget the surge spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BudgetSpent {
    pub campaign_budget_cents: i64,
    /// Credit of the orders placed, as the replies told it.
    pub used_cents: i64,
}

/// A surge's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SurgeReport {
    pub run: String,
    pub profile: String,
    pub planned_secs: f64,
    /// Deliveries sent, exact duplicates included.
    pub sent: u64,
    /// Distinct requests among them.
    pub requests: u64,
    /// Deliveries by what they were (purchase, chatter, duplicate, …).
    pub kinds: BTreeMap<Kind, u64>,
    /// Deliveries the broker did not acknowledge.
    pub failed_sends: u64,
    /// Distinct requests answered.
    pub answered: u64,
    /// Requests with no answer when the run stopped waiting.
    pub unanswered: u64,
    /// Answers beyond the first for a request (the pipeline promises none).
    pub duplicate_answers: u64,
    /// Answers by outcome, then reason.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    /// From each request's intended send time to its answer.
    pub latency_ms: Quantiles,
    pub behind: Behind,
    pub send_secs: f64,
    /// From the start to the last answer.
    pub elapsed_secs: f64,
    /// Answers per second over the whole run.
    pub answered_per_sec: f64,
    pub budget: BudgetSpent,
    pub seconds: Vec<Second>,
    /// Latency by the minute the requests were due.
    pub minutes: Vec<MinuteLatency>,
    /// Through a gateway: what was admitted, shed and promised.
    pub front_door: Option<FrontDoorReport>,
}

impl SurgeReport {
    pub(super) fn new(
        run: &str,
        profile: &Profile,
        settings: &Settings,
        tally: &Tally,
        sending: Sending,
    ) -> Self {
        let elapsed_secs = tally
            .last_answer_after_ms()
            .map_or(sending.send_secs, |ms| ms as f64 / 1e3);
        Self {
            run: run.to_owned(),
            profile: profile.name().to_owned(),
            planned_secs: profile.duration().as_secs_f64(),
            sent: sending.sent,
            requests: sending.requests,
            kinds: sending.kinds,
            failed_sends: sending.failed_sends,
            answered: tally.answered(),
            unanswered: sending.requests.saturating_sub(tally.answered()),
            duplicate_answers: tally.duplicates(),
            outcomes: tally.outcomes().clone(),
            latency_ms: tally.quantiles(),
            behind: sending.behind,
            send_secs: sending.send_secs,
            elapsed_secs,
            answered_per_sec: tally.answered() as f64 / elapsed_secs.max(1e-3),
            budget: BudgetSpent {
                campaign_budget_cents: settings.campaigns.first().map_or(0, |c| c.budget_cents),
                used_cents: tally.credit_cents(),
            },
            seconds: tally.seconds(),
            minutes: tally.minutes(),
            front_door: None,
        }
    }

    /// Every request answered exactly once, every delivery acknowledged.
    pub fn complete(&self) -> bool {
        self.unanswered == 0 && self.duplicate_answers == 0 && self.failed_sends == 0
    }
}

/// At most this many rows of the throughput table; longer runs are shown
/// in wider steps (the JSON keeps every second).
const THROUGHPUT_ROWS: usize = 12;

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for SurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: u64| thousands(v);
        writeln!(
            f,
            "surge {} ({}, planned {:.0} s)",
            self.run, self.profile, self.planned_secs
        )?;
        writeln!(
            f,
            "  sent              {} deliveries, {} requests in {:.1} s",
            n(self.sent),
            n(self.requests),
            self.send_secs
        )?;
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, v)| format!("{} {}", schemas::code(k), n(*v)))
            .collect();
        writeln!(f, "  traffic           {}", kinds.join(", "))?;
        if self.failed_sends > 0 {
            writeln!(f, "  NOT ACKNOWLEDGED  {}", n(self.failed_sends))?;
        }
        if self.behind.late_sends > 0 {
            writeln!(
                f,
                "  sender behind     {} deliveries went out >10 ms late (at most {:.0} ms); their latency counts from when they were due",
                n(self.behind.late_sends),
                self.behind.max_late_ms
            )?;
        } else {
            writeln!(
                f,
                "  sender behind     never (every delivery within 10 ms of its time)"
            )?;
        }
        writeln!(
            f,
            "  answered          {} of {} ({} unanswered, {} duplicate answers)",
            n(self.answered),
            n(self.requests),
            n(self.unanswered),
            n(self.duplicate_answers)
        )?;
        for (outcome, reasons) in &self.outcomes {
            for (reason, count) in reasons {
                let reason = if reason.is_empty() { "-" } else { reason };
                writeln!(f, "    {outcome:<14} {reason:<22} {:>10}", n(*count))?;
            }
        }
        let q = &self.latency_ms;
        writeln!(
            f,
            "  latency (ms)      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            q.p50, q.p90, q.p99, q.p999, q.max
        )?;
        if let Some(front) = &self.front_door {
            write!(f, "{front}")?;
        }
        let b = &self.budget;
        writeln!(
            f,
            "  budget used       {} of {} ({:.1}%)",
            yuan(b.used_cents),
            yuan(b.campaign_budget_cents),
            100.0 * b.used_cents as f64 / b.campaign_budget_cents.max(1) as f64
        )?;
        writeln!(
            f,
            "  throughput        {:.0} answers/s over {:.1} s",
            self.answered_per_sec, self.elapsed_secs
        )?;
        let step = self.seconds.len().div_ceil(THROUGHPUT_ROWS).max(1);
        writeln!(
            f,
            "  {:>13}  {:>10}  {:>10}",
            "second", "sent/s", "answered/s"
        )?;
        for rows in self.seconds.chunks(step) {
            let (from, to) = (rows[0].second, rows[0].second + rows.len() as u64);
            let per = |v: u64| v as f64 / rows.len() as f64;
            writeln!(
                f,
                "  {:>13}  {:>10.0}  {:>10.0}",
                format!("{from}–{to}"),
                per(rows.iter().map(|r| r.sent).sum()),
                per(rows.iter().map(|r| r.answered).sum())
            )?;
        }
        if self.minutes.len() > 1 {
            // Quantiles of different minutes cannot be merged, so a long
            // run shows every `step`-th minute rather than folded ones.
            let step = self.minutes.len().div_ceil(THROUGHPUT_ROWS).max(1);
            writeln!(
                f,
                "  {:>13}  {:>10}  {:>8}  {:>8}  {:>8}{}",
                "minute due",
                "answered",
                "p50 ms",
                "p99 ms",
                "max ms",
                if step > 1 {
                    format!("  (one minute in {step})")
                } else {
                    String::new()
                }
            )?;
            for m in self.minutes.iter().step_by(step) {
                writeln!(
                    f,
                    "  {:>13}  {:>10}  {:>8}  {:>8}  {:>8}",
                    m.minute,
                    n(m.answered),
                    m.p50_ms,
                    m.p99_ms,
                    m.max_ms
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separates_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(15_000_000), "15,000,000");
    }

    #[test]
    fn the_table_folds_long_runs_into_a_few_rows() {
        let report = SurgeReport {
            seconds: (0..100)
                .map(|s| Second {
                    second: s,
                    sent: 10,
                    answered: 5,
                })
                .collect(),
            ..SurgeReport::default()
        };
        let text = report.to_string();
        let rows = text.lines().filter(|l| l.contains('–')).count();
        assert!(rows <= THROUGHPUT_ROWS, "{rows} rows:\n{text}");
        assert!(text.contains("0–9"), "{text}");
        let first: Vec<&str> = text
            .lines()
            .find(|l| l.contains("0–9"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert_eq!(first, ["0–9", "10", "5"], "per-second averages:\n{text}");
    }

    #[test]
    fn latency_by_minute_is_shown_for_runs_longer_than_a_minute() {
        let minute = |m: u64| MinuteLatency {
            minute: m,
            answered: 100,
            p50_ms: 10 + m,
            p99_ms: 1_000 + m,
            max_ms: 2_000,
        };
        let one = SurgeReport {
            minutes: vec![minute(0)],
            ..SurgeReport::default()
        };
        assert!(!one.to_string().contains("minute due"));
        let long = SurgeReport {
            minutes: (0..30).map(minute).collect(),
            ..SurgeReport::default()
        };
        let text = long.to_string();
        assert!(text.contains("(one minute in 3)"), "{text}");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|l| !l.contains("minute due"))
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 10, "{text}");
        assert_eq!(rows[1], ["3", "100", "13", "1003", "2000"], "{text}");
    }

    #[test]
    fn incomplete_runs_are_not_complete() {
        let ok = SurgeReport::default();
        assert!(ok.complete());
        let missing = SurgeReport {
            unanswered: 1,
            ..SurgeReport::default()
        };
        assert!(!missing.complete());
        let twice = SurgeReport {
            duplicate_answers: 1,
            ..SurgeReport::default()
        };
        assert!(!twice.complete());
    }
}
