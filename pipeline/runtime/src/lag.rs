//! How far each stage is behind, per partition, and how fast it is moving:
//! the numbers the gateway's admission estimates a wait from and an
//! operator scales by.
//!
//! A [`LagSampler`] reads, for every stage's consumer group, the committed
//! offset of each input partition and the partition's end (its high
//! watermark), without joining the group. A [`Lags`] keeps the last
//! samples and turns them into backlogs and rates; it is pure, so the
//! arithmetic is tested without a broker. A [`LagProbe`] reads them on
//! demand, for `/metrics`; [`status`] judges a window of them as Burrow
//! does.
//!
//! Two things to know when reading the numbers. Committed offsets trail
//! what a stage has handled by up to one auto-commit interval (1 s), so a
//! busy stage always shows about a second of traffic as lag. And on Tansu
//! 0.6 a partition's end, as ListOffsets reports it, is the first offset of
//! its last batch, so lag is a lower bound by up to one batch.

pub mod groups;
pub mod status;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use connectors::ConnectorError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use stages::{StageId, Topic};

use crate::Settings;
use crate::topics::TopicNames;

/// The stages whose lag is sampled, in flow order, with their inputs.
pub const STAGES: [(StageId, &[Topic]); 4] = [
    (StageId::Intent, &[Topic::Prompts]),
    (StageId::Coupon, &[Topic::Intents, Topic::Orders]),
    (StageId::Fulfillment, &[Topic::Decisions]),
    (
        StageId::Reply,
        &[Topic::Intents, Topic::Decisions, Topic::Orders],
    ),
];

/// One reading of every stage's position, partition by partition.
#[derive(Debug, Clone, PartialEq)]
pub struct LagSample {
    /// When it was read.
    pub at: Instant,
    /// Per stage of [`STAGES`], per partition: offsets committed (summed
    /// over the stage's inputs), and where those inputs end.
    pub stages: Vec<Vec<Position>>,
}

/// Where a stage stands on one partition (summed over its inputs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub committed: i64,
    pub end: i64,
}

impl Position {
    /// Records not yet committed: the backlog.
    pub fn lag(self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

/// Reads [`LagSample`]s. Blocking: call [`LagSampler::sample`] from a
/// blocking thread.
pub struct LagSampler {
    partitions: i32,
    topics: TopicNames,
    /// One client per stage group (it never joins: it only fetches the
    /// group's committed offsets), and one for the watermarks.
    groups: Vec<BaseConsumer>,
    watermarks: BaseConsumer,
    timeout: Duration,
}

impl LagSampler {
    pub fn new(settings: &Settings) -> Result<Self, ConnectorError> {
        let kafka = &settings.kafka;
        let groups = STAGES
            .iter()
            .map(|(stage, _)| {
                let mut cfg = kafka.client_config();
                cfg.set(
                    "group.id",
                    format!("{}.{}", kafka.group_prefix, stage.name()),
                )
                .set("enable.auto.commit", "false");
                cfg.create().map_err(ConnectorError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            partitions: kafka.partitions,
            topics: TopicNames::new(kafka),
            groups,
            watermarks: kafka.client_config().create()?,
            timeout: Duration::from_secs(5),
        })
    }

    /// Reads every stage's committed offsets and every input's end.
    pub fn sample(&self) -> Result<LagSample, ConnectorError> {
        let inputs = [
            Topic::Prompts,
            Topic::Intents,
            Topic::Decisions,
            Topic::Orders,
        ];
        let mut ends = Vec::with_capacity(inputs.len());
        for topic in inputs {
            let name = self.topics.name(topic);
            let mut per = Vec::with_capacity(self.partitions as usize);
            for p in 0..self.partitions {
                per.push(self.watermarks.fetch_watermarks(name, p, self.timeout)?.1);
            }
            ends.push((topic, per));
        }
        let end_of = |topic: Topic, p: usize| {
            ends.iter()
                .find(|(t, _)| *t == topic)
                .map_or(0, |(_, per)| per[p])
        };
        let mut stages = Vec::with_capacity(STAGES.len());
        for ((_, inputs), group) in STAGES.iter().zip(&self.groups) {
            let mut tpl = TopicPartitionList::new();
            for topic in *inputs {
                for p in 0..self.partitions {
                    tpl.add_partition(self.topics.name(*topic), p);
                }
            }
            let committed = group.committed_offsets(tpl, self.timeout)?;
            let mut per = vec![Position::default(); self.partitions as usize];
            for topic in *inputs {
                let name = self.topics.name(*topic);
                for (p, at) in per.iter_mut().enumerate() {
                    // A group that never committed starts at the beginning.
                    let offset = committed
                        .find_partition(name, p as i32)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .unwrap_or(0);
                    at.committed += offset;
                    at.end += end_of(*topic, p);
                }
            }
            stages.push(per);
        }
        Ok(LagSample {
            at: Instant::now(),
            stages,
        })
    }
}

/// The last samples, turned into backlogs and rates.
#[derive(Debug, Clone)]
pub struct Lags {
    samples: VecDeque<LagSample>,
    /// Rates are measured over about this long.
    window: Duration,
}

impl Lags {
    /// Rates over `window` (a few commit intervals smooths the steps
    /// committed offsets move in).
    pub fn new(window: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            window,
        }
    }

    /// Adds a sample; keeps only those needed for the window.
    pub fn push(&mut self, sample: LagSample) {
        self.samples.push_back(sample);
        while self.samples.len() > 2
            && self.samples[1].at + self.window
                <= self.samples.back().map_or(self.samples[1].at, |s| s.at)
        {
            self.samples.pop_front();
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&LagSample> {
        self.samples.back()
    }

    /// How many partitions the samples cover.
    pub fn partitions(&self) -> usize {
        self.latest()
            .and_then(|s| s.stages.first())
            .map_or(0, Vec::len)
    }

    /// Backlog of stage `stage` (an index of [`STAGES`]) on partition `p`.
    pub fn lag(&self, stage: usize, p: usize) -> i64 {
        self.latest()
            .and_then(|s| s.stages.get(stage)?.get(p).copied())
            .map_or(0, Position::lag)
    }

    /// How fast stage `stage` works partition `p` and how fast records
    /// arrive there (`None` with fewer than two samples).
    pub fn progress(&self, stage: usize, p: usize) -> Option<Progress> {
        let at = |s: &LagSample| s.stages.get(stage)?.get(p).copied();
        let newest = self.samples.back()?;
        let now = at(newest)?;
        // Per second between the newest sample and the newest one at least
        // `over` older (or the oldest kept).
        let per_sec = |over: Duration, of: fn(Position) -> i64| {
            let then = self.before(over)?;
            let secs = newest.at.duration_since(then.at).as_secs_f64();
            let before = at(then)?;
            (secs > 0.0).then(|| (of(now) - of(before)).max(0) as f64 / secs)
        };
        let then = at(self.before(RATE_OVER)?)?;
        let done = now.committed - then.committed;
        Some(Progress {
            rate: per_sec(RATE_OVER, |x| x.committed)?,
            recent: per_sec(RECENT_OVER, |x| x.committed)?,
            arrival: per_sec(ARRIVAL_OVER, |x| x.end)?,
            busy: done > 0 && then.lag() >= done,
        })
    }

    /// The newest sample at least `over` older than the newest (or the
    /// oldest kept).
    fn before(&self, over: Duration) -> Option<&LagSample> {
        let newest = self.samples.back()?;
        self.samples
            .iter()
            .rev()
            .find(|s| newest.at.duration_since(s.at) >= over)
            .or(self.samples.front())
    }
}

/// Reads the stages' lags when asked (for `/metrics`), at most once every
/// [`LagProbe::FRESH`], and keeps the last minute of readings for the
/// rates. The sampler is made at the first reading, so a process whose
/// endpoint is never scraped opens no extra clients.
pub struct LagProbe {
    settings: Settings,
    state: std::sync::Mutex<ProbeState>,
}

struct ProbeState {
    sampler: Option<LagSampler>,
    lags: Lags,
}

impl LagProbe {
    /// A scrape storm reads the broker once in this long.
    pub const FRESH: Duration = Duration::from_secs(2);

    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: std::sync::Mutex::new(ProbeState {
                sampler: None,
                lags: Lags::new(Duration::from_secs(60)),
            }),
        }
    }

    /// The lags, read now unless the last reading is fresh. Blocking: call
    /// it from a blocking thread.
    pub fn read(&self) -> Result<Lags, ConnectorError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = state
            .lags
            .latest()
            .is_some_and(|s| s.at.elapsed() < Self::FRESH);
        if !fresh {
            if state.sampler.is_none() {
                state.sampler = Some(LagSampler::new(&self.settings)?);
            }
            if let Some(sampler) = &state.sampler {
                let sample = sampler.sample()?;
                state.lags.push(sample);
            }
        }
        Ok(state.lags.clone())
    }
}

/// Committed offsets move in steps of the commit interval (1 s), and a
/// stage serving several partitions works each in bursts, so a rate of work
/// is read over five seconds (or the whole window, if shorter).
const RATE_OVER: Duration = Duration::from_secs(5);
/// The rate of work just now: two commit intervals, so at least one commit.
const RECENT_OVER: Duration = Duration::from_secs(2);
/// Ends move with every record, so the arrival rate is read over a second.
const ARRIVAL_OVER: Duration = Duration::from_secs(1);

impl Lags {
    /// How long stage `stage` has had a backlog on partition `p` without
    /// its committed offset moving (zero when it has none or it moved in
    /// the newest sample). An idle stage that just received a record is
    /// not stalled.
    pub fn stalled_for(&self, stage: usize, p: usize) -> Duration {
        let at = |s: &LagSample| s.stages.get(stage)?.get(p).copied();
        let Some(newest) = self.samples.back() else {
            return Duration::ZERO;
        };
        let Some(now) = at(newest) else {
            return Duration::ZERO;
        };
        let mut since = newest.at;
        for s in self.samples.iter().rev() {
            match at(s) {
                Some(x) if x.committed == now.committed && x.lag() > 0 => since = s.at,
                _ => break,
            }
        }
        newest.at.duration_since(since)
    }
}

/// How a stage moves on one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Records committed per second (over the last five seconds).
    pub rate: f64,
    /// Records committed per second over the last two seconds: sooner to
    /// follow a change, noisier.
    pub recent: f64,
    /// Records arriving per second (over the last second).
    pub arrival: f64,
    /// Whether everything committed over the five seconds was queued
    /// already at their start: the stage worked from a backlog the whole
    /// time, so `rate` is what it can do. Otherwise it waited for records
    /// part of the time and `rate` tells only how many came.
    pub busy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, committed: i64, end: i64) -> LagSample {
        LagSample {
            at,
            stages: vec![vec![Position { committed, end }]; STAGES.len()],
        }
    }

    #[test]
    fn rates_and_stillness_come_from_the_window() {
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(3));
        lags.push(sample(t0, 0, 100));
        assert_eq!(lags.progress(0, 0), None, "one sample is no rate");
        lags.push(sample(t0 + Duration::from_secs(1), 100, 300));
        lags.push(sample(t0 + Duration::from_secs(2), 300, 600));
        let p = lags.progress(0, 0).expect("a rate");
        assert!((p.rate - 150.0).abs() < 1e-9, "over the window: {p:?}");
        assert!((p.recent - 150.0).abs() < 1e-9, "over two seconds: {p:?}");
        assert!((p.arrival - 300.0).abs() < 1e-9, "over one second: {p:?}");
        assert!(!p.busy, "300 done, but only 100 were queued: {p:?}");
        assert_eq!(lags.lag(0, 0), 300);
        assert_eq!(lags.stalled_for(0, 0), Duration::ZERO, "it moved");
        // Stalled: the offset stays while the end grows.
        for s in 3..=6 {
            lags.push(sample(
                t0 + Duration::from_secs(s),
                300,
                600 + 100 * s as i64,
            ));
        }
        let p = lags.progress(0, 0).expect("a rate");
        assert_eq!(p.rate, 0.0);
        assert_eq!(lags.lag(0, 0), 900);
        assert_eq!(lags.stalled_for(0, 0), Duration::from_secs(3));
        assert!(lags.samples.len() <= 5, "bounded by the window");
        // A committed offset past a (lower-bound) end is no negative lag.
        assert_eq!(
            Position {
                committed: 10,
                end: 7
            }
            .lag(),
            0
        );
    }

    #[test]
    fn a_stage_is_busy_only_when_its_backlog_covered_its_work() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // 50/s for five seconds out of a backlog of 1,000: its capacity.
        let mut lags = Lags::new(Duration::from_secs(8));
        for s in 0..=5 {
            lags.push(sample(at(s), 50 * s as i64, 1_000));
        }
        let p = lags.progress(0, 0).expect("a rate");
        assert!(p.busy && (p.rate - 50.0).abs() < 1e-9, "{p:?}");
        // A record a second, each handled as it came: the rate is the
        // traffic's, not what the stage can do.
        let mut quiet = Lags::new(Duration::from_secs(8));
        for s in 0..=5 {
            quiet.push(sample(at(s), s as i64, s as i64 + 1));
        }
        let p = quiet.progress(0, 0).expect("a rate");
        assert!(!p.busy && (p.rate - 1.0).abs() < 1e-9, "{p:?}");
    }
}
