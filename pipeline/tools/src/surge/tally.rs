//! What a surge saw come back: one answer per request, how long each person
//! waited from the moment their prompt was *meant* to be sent, what they were
//! told, and how sends, answers and waits spread over time.
//!
//! Pure: the receiver feeds it records with their arrival time, so the tests
//! can drive it with made-up clocks.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use schemas::{Record, ReplyOutcome};
use serde::Serialize;

/// Longest latency the histogram tells apart (one hour); longer ones are
/// counted as one hour, and the report's `max` says so by being exactly it.
pub const MAX_LATENCY_MS: u64 = 3_600_000;

/// Longest run whose per-second series is kept (a week); later seconds
/// are counted in the last one, so the series stays bounded.
const MAX_SECONDS: usize = 7 * 24 * 3600;

/// Minutes of sending whose latency is told apart (a day); requests due
/// later are counted in the last one. Each minute's histogram keeps two
/// significant digits (a few KiB), so a day of them stays small.
const MAX_MINUTES: usize = 24 * 60;

/// One answer seen on the final topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenAnswer<'a> {
    pub request_id: &'a str,
    /// When the request was meant to be sent (the prompt's event time).
    pub intended_ms: i64,
    /// What the person was told; `None` when the final topic carries the
    /// prompts themselves (the benchmark's no-op relay).
    pub outcome: Option<SeenOutcome<'a>>,
}

/// The part of a reply the tally counts.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenOutcome<'a> {
    pub outcome: ReplyOutcome,
    pub reason: Option<&'a str>,
    pub credit_cents: i64,
}

impl<'a> SeenAnswer<'a> {
    /// The answer a record on the final topic carries, if it is one.
    pub fn of(record: &'a Record) -> Option<Self> {
        match record {
            Record::Reply(r) => Some(Self {
                request_id: &r.request_id,
                intended_ms: r.prompt_time_ms,
                outcome: Some(SeenOutcome {
                    outcome: r.outcome,
                    reason: r.reason.as_deref(),
                    credit_cents: r.credit_cents,
                }),
            }),
            Record::Prompt(p) => Some(Self {
                request_id: &p.request_id,
                intended_ms: p.event_time_ms,
                outcome: None,
            }),
            _ => None,
        }
    }
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Quantiles {
    /// The quantiles of `h`, whose exact maximum is `max` (all zero when
    /// `h` is empty).
    pub fn of(h: &Histogram<u64>, max: u64) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max,
            mean: h.mean(),
        }
    }
}

/// One second of the run: deliveries sent and requests first answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Second {
    pub second: u64,
    pub sent: u64,
    pub answered: u64,
}

/// Latency of the requests due in one minute of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinuteLatency {
    /// Minutes from the start of the run to the requests' intended send time.
    pub minute: u64,
    /// Requests due in this minute answered so far.
    pub answered: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// Counts answers; every figure is bounded by the number of requests.
pub struct Tally {
    start_ms: i64,
    /// Bit `seq` is set once request `seq` is answered.
    answered: Vec<u64>,
    distinct: u64,
    duplicates: u64,
    latency: Histogram<u64>,
    /// Exact, where the histogram's is rounded to its precision.
    max_ms: u64,
    outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    credit_cents: i64,
    sent: Vec<u64>,
    answers: Vec<u64>,
    /// Latency by the minute a request was due: the minute a person sent
    /// in, not the one the answer came in, so a backlog shows where it began.
    minutes: Vec<Histogram<u32>>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl Tally {
    /// A tally for a run that started at `start_ms` (Unix milliseconds).
    pub fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            answered: Vec::new(),
            distinct: 0,
            duplicates: 0,
            latency: Histogram::new_with_max(MAX_LATENCY_MS, 3)
                .expect("3 significant digits up to an hour is a valid histogram"),
            max_ms: 0,
            outcomes: BTreeMap::new(),
            credit_cents: 0,
            sent: Vec::new(),
            answers: Vec::new(),
            minutes: Vec::new(),
            first_ms: None,
            last_ms: None,
        }
    }

    fn second(&self, at_ms: i64) -> usize {
        (((at_ms - self.start_ms).max(0) / 1000) as usize).min(MAX_SECONDS)
    }

    fn bump(series: &mut Vec<u64>, second: usize) {
        if series.len() <= second {
            series.resize(second + 1, 0);
        }
        series[second] += 1;
    }

    /// Counts one delivery sent at `at_ms`.
    pub fn sent(&mut self, at_ms: i64) {
        let s = self.second(at_ms);
        Self::bump(&mut self.sent, s);
    }

    /// Counts request `seq`'s answer, arrived at `at_ms`. Returns false
    /// when the request was already answered (a duplicate answer).
    pub fn answer(&mut self, seq: u64, answer: &SeenAnswer<'_>, at_ms: i64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.answered.len() <= word {
            self.answered.resize(word + 1, 0);
        }
        if self.answered[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.answered[word] |= bit;
        self.distinct += 1;
        let waited = (at_ms - answer.intended_ms).max(0) as u64;
        self.latency.saturating_record(waited.min(MAX_LATENCY_MS));
        self.max_ms = self.max_ms.max(waited.min(MAX_LATENCY_MS));
        let minute =
            (((answer.intended_ms - self.start_ms).max(0) / 60_000) as usize).min(MAX_MINUTES);
        while self.minutes.len() <= minute {
            self.minutes.push(
                Histogram::new_with_max(MAX_LATENCY_MS, 2)
                    .expect("2 significant digits up to an hour is a valid histogram"),
            );
        }
        self.minutes[minute].saturating_record(waited.min(MAX_LATENCY_MS));
        if let Some(o) = &answer.outcome {
            let reasons = self.outcomes.entry(schemas::code(o.outcome)).or_default();
            *reasons
                .entry(o.reason.unwrap_or_default().to_owned())
                .or_default() += 1;
            if o.outcome == ReplyOutcome::OrderPlaced {
                self.credit_cents += o.credit_cents;
            }
        }
        let s = self.second(at_ms);
        Self::bump(&mut self.answers, s);
        self.first_ms.get_or_insert(at_ms);
        self.last_ms = Some(self.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        true
    }

    /// Distinct requests answered.
    pub fn answered(&self) -> u64 {
        self.distinct
    }

    /// Answers for requests already answered.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Whether request `seq` has been answered.
    pub fn is_answered(&self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        self.answered.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Latency quantiles of the answered requests.
    pub fn quantiles(&self) -> Quantiles {
        Quantiles::of(&self.latency, self.max_ms)
    }

    /// Answers by outcome code, then reason (empty for orders placed).
    pub fn outcomes(&self) -> &BTreeMap<String, BTreeMap<String, u64>> {
        &self.outcomes
    }

    /// Credit granted to the orders placed.
    pub fn credit_cents(&self) -> i64 {
        self.credit_cents
    }

    /// The run second by second, up to the last send or answer.
    pub fn seconds(&self) -> Vec<Second> {
        let len = self.sent.len().max(self.answers.len());
        (0..len)
            .map(|s| Second {
                second: s as u64,
                sent: self.sent.get(s).copied().unwrap_or_default(),
                answered: self.answers.get(s).copied().unwrap_or_default(),
            })
            .collect()
    }

    /// Latency of the answered requests by the minute they were due, up
    /// to the last minute with an answer. Quantiles are within 1%.
    pub fn minutes(&self) -> Vec<MinuteLatency> {
        self.minutes
            .iter()
            .enumerate()
            .map(|(minute, h)| MinuteLatency {
                minute: minute as u64,
                answered: h.len(),
                p50_ms: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.5)
                },
                p99_ms: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                },
                max_ms: h.max(),
            })
            .collect()
    }

    /// Milliseconds from the start to the last first answer.
    pub fn last_answer_after_ms(&self) -> Option<i64> {
        self.last_ms.map(|l| l - self.start_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(outcome: ReplyOutcome, reason: Option<&str>, credit: i64) -> SeenAnswer<'_> {
        SeenAnswer {
            request_id: "r",
            intended_ms: 1_000,
            outcome: Some(SeenOutcome {
                outcome,
                reason,
                credit_cents: credit,
            }),
        }
    }

    #[test]
    fn counts_each_request_once_and_duplicates_apart() {
        let mut t = Tally::new(0);
        let a = reply(ReplyOutcome::OrderPlaced, None, 500);
        assert!(t.answer(3, &a, 1_010));
        assert!(!t.answer(3, &a, 1_020));
        assert!(t.answer(200, &a, 1_030));
        assert_eq!((t.answered(), t.duplicates()), (2, 1));
        assert_eq!(t.credit_cents(), 1_000, "a duplicate answer grants nothing");
        assert!(t.is_answered(3) && t.is_answered(200) && !t.is_answered(4));
    }

    #[test]
    fn latency_is_from_the_intended_send_time() {
        let mut t = Tally::new(0);
        for (seq, waited) in [(0, 10), (1, 20), (2, 30), (3, 4_000)] {
            let a = reply(ReplyOutcome::Denied, Some("budget_exhausted"), 0);
            t.answer(seq, &a, 1_000 + waited);
        }
        let q = t.quantiles();
        assert_eq!((q.p50, q.max), (20, 4_000));
        // An answer "before" its intended time (clock skew) counts as 0, not as a wrap-around.
        t.answer(9, &reply(ReplyOutcome::Denied, None, 0), 900);
        assert_eq!(t.quantiles().max, 4_000);
    }

    #[test]
    fn outcomes_by_reason_and_per_second_series() {
        let mut t = Tally::new(10_000);
        t.sent(10_100);
        t.sent(11_900);
        t.sent(12_000);
        t.answer(
            0,
            &reply(ReplyOutcome::Denied, Some("budget_exhausted"), 0),
            12_500,
        );
        t.answer(
            1,
            &reply(ReplyOutcome::Rejected, Some("no_items"), 0),
            12_600,
        );
        let codes: Vec<_> = t.outcomes().keys().cloned().collect();
        assert_eq!(codes, ["denied", "rejected"]);
        assert_eq!(t.outcomes()["denied"]["budget_exhausted"], 1);
        let s = t.seconds();
        assert_eq!(s.iter().map(|s| s.sent).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(s.iter().map(|s| s.answered).collect::<Vec<_>>(), [0, 0, 2]);
        assert_eq!(t.last_answer_after_ms(), Some(2_600));
    }

    #[test]
    fn latency_per_minute_is_by_the_minute_a_request_was_due() {
        let mut t = Tally::new(1_000);
        let due = |ms: i64| SeenAnswer {
            request_id: "r",
            intended_ms: ms,
            outcome: None,
        };
        // Minute 0: waits of 100 and 300 ms; minute 2: one of 5 s that
        // arrives in minute 3. Minute 1 has nothing.
        t.answer(0, &due(1_000), 1_100);
        t.answer(1, &due(60_999), 61_299);
        t.answer(2, &due(121_000), 186_000);
        let m = t.minutes();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].minute, m[0].answered), (0, 2));
        let near = |v: u64, want: u64| v.abs_diff(want) * 100 <= want;
        assert!(near(m[0].p50_ms, 100) && near(m[0].max_ms, 300), "{m:?}");
        assert_eq!(
            m[1],
            MinuteLatency {
                minute: 1,
                ..MinuteLatency::default()
            }
        );
        assert_eq!(m[2].answered, 1);
        assert!(near(m[2].p99_ms, 65_000), "{m:?}");
        // A duplicate answer is not a second wait.
        t.answer(0, &due(1_000), 90_000);
        assert_eq!(t.minutes()[0].answered, 2);
        // Requests due after a day fold into its last minute.
        t.answer(3, &due(1_000 + 3 * 86_400_000), 1_100 + 3 * 86_400_000);
        assert_eq!(t.minutes().len(), MAX_MINUTES + 1);
    }

    #[test]
    fn relayed_prompts_count_without_outcomes() {
        let prompt = Record::Prompt(schemas::Prompt {
            reply_partition: None,
            deadline_ms: None,
            request_id: "x-1".into(),
            session_id: String::new(),
            user_id: "u".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 5,
            text: "hi".into(),
            locale: None,
        });
        let answer = SeenAnswer::of(&prompt).expect("a prompt is an answer of the relay");
        let mut t = Tally::new(0);
        t.answer(1, &answer, 12);
        assert_eq!(t.quantiles().max, 7);
        assert!(t.outcomes().is_empty());
    }

    #[test]
    fn a_very_late_answer_is_capped_not_lost() {
        let mut t = Tally::new(0);
        t.answer(
            0,
            &reply(ReplyOutcome::Denied, None, 0),
            1_000 + 10 * MAX_LATENCY_MS as i64,
        );
        assert_eq!(t.answered(), 1);
        assert!(t.quantiles().max >= MAX_LATENCY_MS);
        // Seconds past a week fold into the last one instead of growing the series.
        assert!(t.seconds().len() <= MAX_SECONDS + 1);
    }
}
