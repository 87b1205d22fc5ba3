//! What a surge through `chatcart gateway` saw at the front door: how many
//! requests were offered, admitted and shed, how soon each person heard
//! first (a `queued` or `final` event, or a refusal), and whether admitted
//! requests were answered within the wait they were promised.
//!
//! Pure: the sender feeds it what each request got, with times relative
//! to when the request was due.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::tally::{MAX_LATENCY_MS, Quantiles};

/// The goals an overload run is held to (the gateway's promise).
pub const FIRST_ANSWER_P99_MS: u64 = 1_000;
pub const OVER_PROMISE_P99_MS: u64 = 2_000;

/// How one request went, in milliseconds from when it was due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Heard {
    /// Admitted: its first event, the wait it was promised (when told),
    /// and its final answer (`None`: the stream ended without one).
    Admitted {
        first_ms: u64,
        promised_ms: Option<u64>,
        final_ms: Option<u64>,
        /// The final answer was `expired`: on time, but nothing done.
        expired: bool,
        /// Times the client asked again at the request's URL because a
        /// stream ended before its final event.
        resumes: u32,
    },
    /// Refused with `status` (429: shed) after `ms`.
    Refused { status: u16, ms: u64 },
    /// No answer at all (a transport error or timeout).
    Lost,
}

/// Counts of one surge's requests at the front door.
pub struct FrontDoor {
    offered: u64,
    admitted: u64,
    queued: u64,
    finals: u64,
    expired: u64,
    refused: BTreeMap<u16, u64>,
    lost: u64,
    /// Admitted requests that needed at least one resume.
    resumed: u64,
    first: Histogram<u64>,
    /// How much later than promised the final answer came (0 when on time).
    over_promise: Histogram<u64>,
    /// Promise of a request told nothing: answered within this.
    implicit_promise_ms: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_max(MAX_LATENCY_MS, 2)
        .expect("2 significant digits up to an hour is a valid histogram")
}

impl FrontDoor {
    /// A tally where a request given no `queued` event was promised an
    /// answer within `implicit_promise_ms` (the gateway's `queued_after_ms`).
    pub fn new(implicit_promise_ms: u64) -> Self {
        Self {
            offered: 0,
            admitted: 0,
            queued: 0,
            finals: 0,
            expired: 0,
            refused: BTreeMap::new(),
            lost: 0,
            resumed: 0,
            first: histogram(),
            over_promise: histogram(),
            implicit_promise_ms,
        }
    }

    pub fn record(&mut self, heard: Heard) {
        self.offered += 1;
        match heard {
            Heard::Admitted {
                first_ms,
                promised_ms,
                final_ms,
                expired,
                resumes,
            } => {
                self.admitted += 1;
                self.resumed += u64::from(resumes > 0);
                if expired && final_ms.is_some() {
                    self.expired += 1;
                }
                self.first.saturating_record(first_ms.min(MAX_LATENCY_MS));
                if promised_ms.is_some() {
                    self.queued += 1;
                }
                if let Some(done) = final_ms {
                    self.finals += 1;
                    let promise = promised_ms.unwrap_or(self.implicit_promise_ms);
                    self.over_promise
                        .saturating_record(done.saturating_sub(promise).min(MAX_LATENCY_MS));
                }
            }
            Heard::Refused { status, ms } => {
                *self.refused.entry(status).or_default() += 1;
                self.first.saturating_record(ms.min(MAX_LATENCY_MS));
            }
            Heard::Lost => self.lost += 1,
        }
    }

    /// The figures, with goodput over `secs` and, when known, the
    /// pipeline's capacity to hold it against.
    pub fn report(&self, secs: f64, capacity: Option<f64>) -> FrontDoorReport {
        let q = |h: &Histogram<u64>| Quantiles::of(h, h.max());
        // Expired answers keep the promise but do nothing for the person.
        let goodput = (self.finals - self.expired) as f64 / secs.max(1e-3);
        FrontDoorReport {
            offered: self.offered,
            admitted: self.admitted,
            queued: self.queued,
            shed: self.refused.get(&429).copied().unwrap_or(0),
            refused: self.refused.clone(),
            lost: self.lost,
            resumed: self.resumed,
            finals: self.finals,
            expired: self.expired,
            unanswered_admitted: self.admitted - self.finals,
            first_answer_ms: q(&self.first),
            over_promise_ms: q(&self.over_promise),
            goodput_per_sec: goodput,
            capacity_per_sec: capacity,
        }
    }
}

/// The front door's figures, as printed and as JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrontDoorReport {
    pub offered: u64,
    pub admitted: u64,
    /// Admitted with a `queued` event first.
    pub queued: u64,
    /// Refused `429`.
    pub shed: u64,
    /// Refusals by HTTP status (429 included).
    pub refused: BTreeMap<u16, u64>,
    /// Requests that got no answer at all.
    pub lost: u64,
    /// Admitted requests whose stream ended before the final answer and
    /// that were asked for again at their URL.
    pub resumed: u64,
    /// Admitted requests with their `final` event.
    pub finals: u64,
    /// Of those, answered `expired`.
    pub expired: u64,
    pub unanswered_admitted: u64,
    /// From when a request was due to the first thing it heard.
    pub first_answer_ms: Quantiles,
    /// How much later than its promise an admitted request was answered.
    pub over_promise_ms: Quantiles,
    /// Final answers other than `expired`, per second over the run.
    pub goodput_per_sec: f64,
    pub capacity_per_sec: Option<f64>,
}

impl FrontDoorReport {
    /// The goals, each with whether it was met (`None`: not measurable).
    pub fn goals(&self) -> Vec<(&'static str, Option<bool>)> {
        vec![
            // A request that heard nothing at all never had a first answer.
            (
                "p99 to first answer ≤ 1 s",
                Some(self.first_answer_ms.p99 <= FIRST_ANSWER_P99_MS && self.lost == 0),
            ),
            (
                "p99 final − promised ≤ 2 s",
                (self.finals > 0).then_some(self.over_promise_ms.p99 <= OVER_PROMISE_P99_MS),
            ),
            (
                "goodput ≥ 0.9 × capacity",
                self.capacity_per_sec
                    .map(|c| self.goodput_per_sec >= 0.9 * c),
            ),
            (
                "every admitted request answered once",
                Some(self.unanswered_admitted == 0 && self.lost == 0),
            ),
        ]
    }
}

impl fmt::Display for FrontDoorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(
            f,
            "  front door        offered {}, admitted {} ({} queued first, {} resumed), shed {}, refused [{}], no answer {}",
            self.offered,
            self.admitted,
            self.queued,
            self.resumed,
            self.shed,
            refused.join(", "),
            self.lost
        )?;
        let (a, b) = (&self.first_answer_ms, &self.over_promise_ms);
        writeln!(
            f,
            "  first answer (ms) p50 {}  p90 {}  p99 {}  max {}",
            a.p50, a.p90, a.p99, a.max
        )?;
        writeln!(
            f,
            "  final − promised  p50 {}  p90 {}  p99 {}  max {} ms ({} of {} admitted answered, {} of them expired)",
            b.p50, b.p90, b.p99, b.max, self.finals, self.admitted, self.expired
        )?;
        match self.capacity_per_sec {
            Some(c) => writeln!(
                f,
                "  goodput           {:.0} final answers/s but expired ({:.2} of the capacity {c:.0}/s)",
                self.goodput_per_sec,
                self.goodput_per_sec / c.max(1e-9)
            )?,
            None => writeln!(
                f,
                "  goodput           {:.0} final answers/s",
                self.goodput_per_sec
            )?,
        }
        for (goal, met) in self.goals() {
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            writeln!(f, "    {verdict:<7} {goal}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shed_and_admitted_requests_are_held_to_their_promises() {
        let mut t = FrontDoor::new(1_000);
        t.record(Heard::Refused { status: 429, ms: 3 });
        t.record(Heard::Refused { status: 409, ms: 2 });
        t.record(Heard::Admitted {
            first_ms: 40,
            promised_ms: Some(5_000),
            final_ms: Some(4_000),
            expired: false,
            resumes: 0,
        });
        t.record(Heard::Admitted {
            first_ms: 30,
            promised_ms: None,
            final_ms: Some(4_500),
            expired: false,
            resumes: 0,
        });
        let r = t.report(1.0, Some(2.0));
        assert_eq!(
            (r.offered, r.admitted, r.queued, r.shed, r.finals),
            (4, 2, 1, 1, 2)
        );
        assert_eq!(r.refused[&409], 1);
        // On time, and 3.5 s late against the implicit 1 s.
        assert_eq!(r.over_promise_ms.p50, 0);
        assert!(
            (3_450..=3_550).contains(&r.over_promise_ms.max),
            "{:?}",
            r.over_promise_ms
        );
        let goals = r.goals();
        assert_eq!(goals[0].1, Some(true));
        assert_eq!(goals[1].1, Some(false), "the late one misses");
        assert_eq!(goals[2].1, Some(true));
        t.record(Heard::Lost);
        t.record(Heard::Admitted {
            first_ms: 2_000,
            promised_ms: Some(1),
            final_ms: None,
            expired: false,
            resumes: 0,
        });
        t.record(Heard::Admitted {
            first_ms: 10,
            promised_ms: Some(1_000),
            final_ms: Some(900),
            expired: true,
            resumes: 1,
        });
        let r = t.report(1.0, None);
        assert_eq!((r.unanswered_admitted, r.resumed), (1, 1));
        assert_eq!(
            (r.finals, r.expired, r.goodput_per_sec),
            (3, 1, 2.0),
            "expired is no goodput"
        );
        assert_eq!(r.goals()[0].1, Some(false), "one heard nothing");
        assert_eq!(r.goals()[3].1, Some(false));
        assert_eq!(r.goals()[2].1, None);
        assert!(r.to_string().contains("MISSED"));
    }
}
