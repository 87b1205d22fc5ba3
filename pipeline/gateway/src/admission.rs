//! Whether a new request is admitted, and the wait it is promised: pure
//! arithmetic over the stages' lags ([`runtime::lag::Lags`]), so it is
//! tested without a broker.
//!
//! A request joins the queue of its partition at every stage in turn, so
//! its wait is the sum, over the stages, of the backlog a stage has on
//! that partition divided by the rate it works that partition at, plus the
//! pipeline's own latency when nothing is queued. Committed offsets trail
//! the work by up to one commit interval, so a stage's backlog is first
//! reduced by what it does in that interval. A stage that has a backlog on
//! the partition and has not moved for `stall` is stalled: no wait can be
//! promised, and the request is shed. So is one behind a stage that was
//! idle until a moment ago and has more than a few requests queued: until
//! it commits, nothing tells how fast it works. A few queued at a stage
//! that was waiting for work are no queue: its rate was only the traffic's.
//!
//! What the sum cannot see (a stage's uneven pace, lease waits, the LLM
//! fallback) is learnt from the answers: [`Overrun`] adds to each promise
//! with a queue what recent answers needed beyond their estimates.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use runtime::lag::{Lags, Progress, STAGES};

/// How often stages commit (the runner's auto-commit interval).
const COMMIT_INTERVAL_SECS: f64 = 1.0;
/// The most a partition's backlog may be at a stage that was not busy for
/// the whole rate window (so its rate says nothing of what it can do) and
/// still be promised the base latency.
const IDLE_BACKLOG: i64 = 20;

/// What the gateway says to a new request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Publish it. `position` requests are ahead of it at the first stage;
    /// `wait` is the estimate, `margin` of it learnt from earlier answers.
    Admit {
        position: i64,
        wait: Duration,
        margin: Duration,
    },
    /// Answer `429`, for `why`, and say to try again after `retry_after`.
    /// `position` requests were ahead of it at the first stage.
    Shed {
        position: i64,
        why: Overload,
        retry_after: Duration,
    },
}

/// Why a request is shed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Overload {
    /// The estimated wait is over `gateway.max_wait_secs`.
    OverMaxWait(Duration),
    /// A stage with a backlog has not moved for `gateway.stall_secs`.
    Stalled,
    /// A stage idle until now has a backlog and no rate to tell its wait.
    NoEstimateYet,
}

impl Overload {
    /// The estimate, when there is one.
    pub fn wait(self) -> Option<Duration> {
        match self {
            Overload::OverMaxWait(wait) => Some(wait),
            Overload::Stalled | Overload::NoEstimateYet => None,
        }
    }

    /// The reason code recorded for it.
    pub fn reason(self) -> &'static str {
        match self {
            Overload::OverMaxWait(_) => schemas::reason::OVER_MAX_WAIT,
            Overload::Stalled => schemas::reason::PIPELINE_STALLED,
            Overload::NoEstimateYet => schemas::reason::NO_ESTIMATE_YET,
        }
    }
}

/// The limits admission works within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_wait: Duration,
    pub stall: Duration,
}

/// Decides for a request on `partition`, with `ahead` requests this
/// gateway admitted there since the lags were read, given `base`, the
/// pipeline's latency when nothing is queued, and `margin`, what answers
/// have recently needed beyond their estimates when there was a queue.
pub fn admit(
    lags: &Lags,
    partition: usize,
    ahead: i64,
    base: Duration,
    margin: Duration,
    limits: Limits,
) -> Admission {
    let mut wait = base.as_secs_f64();
    let mut behind = false;
    let position = lags.lag(0, partition) + ahead;
    for stage in 0..STAGES.len() {
        let extra = if stage == 0 { ahead } else { 0 };
        let lag = lags.lag(stage, partition) + extra;
        if lag == 0 {
            continue;
        }
        if lags.stalled_for(stage, partition) >= limits.stall {
            return Admission::Shed {
                position,
                why: Overload::Stalled,
                retry_after: limits.max_wait,
            };
        }
        let progress = lags.progress(stage, partition);
        if lag <= IDLE_BACKLOG && !progress.is_some_and(|p| p.busy) {
            // A few requests at a stage that was waiting for work part of
            // the rate window: the traffic of a quiet moment. Its rate is
            // how many came, not what it can do, and dividing by it would
            // promise a long wait for a short queue.
            continue;
        }
        let Some(progress) = progress.filter(|p| p.rate > 0.0) else {
            // Idle until now, with more than a few queued: the start of a
            // surge from idle, whose wait nobody can tell until the
            // stage's first commit (within a second). Promising the base
            // latency would be a lie.
            return Admission::Shed {
                position,
                why: Overload::NoEstimateYet,
                retry_after: Duration::from_secs(1),
            };
        };
        let share = busy_share(lags, stage);
        if keeping_up(lag, progress, share) {
            continue;
        }
        let rate = progress.rate.min(fair_share(lags, stage, share));
        let queued = (lag as f64 - rate * COMMIT_INTERVAL_SECS).max(0.0);
        wait += queued / rate.max(f64::MIN_POSITIVE);
        behind = true;
    }
    // The margin was learnt behind a queue; the base latency already
    // covers an answer without one.
    let margin = if behind { margin } else { Duration::ZERO };
    wait += margin.as_secs_f64();
    let wait = Duration::from_secs_f64(wait.min(1e6));
    if wait > limits.max_wait {
        // By then the backlog ahead has shrunk to what the limit allows.
        let retry_after = (wait - limits.max_wait).clamp(Duration::from_secs(1), limits.max_wait);
        return Admission::Shed {
            position,
            why: Overload::OverMaxWait(wait),
            retry_after,
        };
    }
    Admission::Admit {
        position,
        wait,
        margin,
    }
}

/// What a stage did in the last commit interval is not committed yet.
/// While it keeps up, its lag is no more than that: a second of its work
/// now (the two-second rate: the five-second one trails when traffic
/// rises). Beyond that it is behind, works at its rate, and the lag less
/// one second of that rate is its queue. Arrivals are no measure of the
/// work: at the start of a surge they are many times what a stage can do.
/// Nor is one partition's rate while the stage takes its partitions in
/// bursts: over two seconds a partition may get the whole stage's rate,
/// and a second and a half of that is several seconds of its share. So the
/// rate is held to `share`, the stage's rate shared among the partitions
/// it has a backlog on.
fn keeping_up(lag: i64, progress: Progress, share: f64) -> bool {
    let rate = progress.recent.max(progress.rate).min(share);
    lag as f64 <= 1.5 * rate * COMMIT_INTERVAL_SECS
}

/// A stage's rate over all partitions, shared among those with more than
/// a few records queued (infinite when none has).
fn busy_share(lags: &Lags, stage: usize) -> f64 {
    let (mut total, mut queued) = (0.0, 0usize);
    for p in 0..lags.partitions() {
        total += lags.progress(stage, p).map_or(0.0, |g| g.rate);
        if lags.lag(stage, p) > IDLE_BACKLOG {
            queued += 1;
        }
    }
    if queued == 0 {
        return f64::INFINITY;
    }
    total / queued as f64
}

/// A stage's rate over all partitions, shared among those it is behind
/// on. One partition's own rate is noisy (a stage works its partitions in
/// bursts), and admitting where the noise happens to be high would promise
/// too little; the share is steadier, and the lower of the two is used.
/// `busy` is the stage's [`busy_share`].
fn fair_share(lags: &Lags, stage: usize, busy: f64) -> f64 {
    let (mut total, mut behind) = (0.0, 0usize);
    for p in 0..lags.partitions() {
        let Some(progress) = lags.progress(stage, p) else {
            continue;
        };
        total += progress.rate;
        if !keeping_up(lags.lag(stage, p), progress, busy) {
            behind += 1;
        }
    }
    if behind == 0 {
        return f64::INFINITY;
    }
    total / behind as f64
}

/// The pipeline's latency when nothing is queued, learnt from the answers
/// to requests that were admitted without a queue. It rises at once and
/// falls slowly (a tenth, then a hundredth of the difference), so it
/// follows the slow answers rather than the typical one: a request told
/// nothing must still be answered within its promise.
#[derive(Debug, Clone, Copy)]
pub struct BaseLatency {
    secs: f64,
}

impl Default for BaseLatency {
    fn default() -> Self {
        Self { secs: 0.5 }
    }
}

impl BaseLatency {
    /// Folds in one observed latency; it stays within 10 s.
    pub fn observe(&mut self, latency: Duration) {
        let x = latency.as_secs_f64().min(60.0);
        let step = if x > self.secs { 0.1 } else { 0.01 };
        self.secs = (self.secs + step * (x - self.secs)).clamp(0.0, 10.0);
    }

    pub fn get(self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

/// The most answers an [`Overrun`] holds: 30 s of answers at well over
/// ten thousand a second, about 400 KB.
const OVERRUNS: usize = 16_384;
/// Older answers say little about the pipeline now.
const OVERRUN_AGE: Duration = Duration::from_secs(30);
/// Fewer answers than this teach nothing yet.
const OVERRUN_MIN: usize = 20;
/// Answers between two workings-out of the margin.
const OVERRUN_EVERY: usize = 64;
/// How much later than estimated the answers to queued requests came,
/// learnt from those of the last 30 s. The margin it gives is their 99th
/// percentile: added to a promise, it leaves about one answer in a
/// hundred late. The window is a time, not a count: a promise is kept or
/// broken a whole queue later (up to `max_wait_secs`), so the margin must
/// remember lateness for at least that long, not for the last couple of
/// seconds of answers. (Less a second's allowance, the 99th percentile of
/// lateness at ten times the capacity was 3.2 s in one run; without it,
/// 2.1 s: the margin trails the pipeline by the length of its queue, so
/// what it allows for is spent already.)
/// Shortfalls are measured against the estimate without the margin, so the
/// margin does not feed on itself.
#[derive(Debug, Default)]
pub struct Overrun {
    /// When each answer came, and how many seconds after its estimate
    /// (negative when early); oldest first.
    recent: VecDeque<(Instant, f64)>,
    margin: Duration,
    /// Answers since the margin was last worked out.
    fresh: usize,
}

impl Overrun {
    /// Folds in an answer at `now` that came `shortfall` seconds after
    /// its estimate.
    pub fn observe(&mut self, now: Instant, shortfall: f64) {
        if self.recent.len() == OVERRUNS {
            self.recent.pop_front();
        }
        self.recent
            .push_back((now, shortfall.clamp(-3_600.0, 3_600.0)));
        self.fresh += 1;
        if self.fresh >= OVERRUN_EVERY {
            self.update(now);
        }
    }

    /// The margin to add to a promise made at `now`.
    pub fn margin(&mut self, now: Instant) -> Duration {
        if self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > OVERRUN_AGE)
        {
            self.update(now);
        }
        self.margin
    }

    fn update(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > OVERRUN_AGE)
        {
            self.recent.pop_front();
        }
        self.fresh = 0;
        if self.recent.len() < OVERRUN_MIN {
            self.margin = Duration::ZERO;
            return;
        }
        // Selection, not a sort: linear in the window, tens of
        // microseconds for a full one, every 64 answers.
        let mut shortfalls: Vec<f64> = self.recent.iter().map(|(_, s)| *s).collect();
        let at = (shortfalls.len() * 99).div_ceil(100) - 1;
        let (_, q99, _) = shortfalls.select_nth_unstable_by(at, f64::total_cmp);
        self.margin = Duration::from_secs_f64(q99.clamp(0.0, 3_600.0));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use runtime::lag::{LagSample, Position};

    use super::*;

    const LIMITS: Limits = Limits {
        max_wait: Duration::from_secs(20),
        stall: Duration::from_secs(5),
    };

    /// Lags after `secs` one-second samples in which the intent stage
    /// committed `rate`/s on partition 0 while `backlog` stayed queued.
    fn lags(secs: u64, rate: i64, backlog: i64) -> Lags {
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for s in 0..=secs {
            let committed = rate * s as i64;
            let mut stages = vec![vec![Position::default(); 2]; STAGES.len()];
            stages[0][0] = Position {
                committed,
                end: committed + backlog,
            };
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s),
                stages,
            });
        }
        lags
    }

    #[test]
    fn the_wait_is_the_backlog_over_the_rate_beyond_one_commit_interval() {
        let base = Duration::from_millis(500);
        // 1,100 queued at 100/s: 100 of them are committed-offset lag.
        match admit(&lags(6, 100, 1_100), 0, 0, base, Duration::ZERO, LIMITS) {
            Admission::Admit { position, wait, .. } => {
                assert_eq!(position, 1_100);
                assert!((wait.as_secs_f64() - 10.5).abs() < 1e-6, "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
        // This gateway's own admissions since the sample count too.
        let Admission::Admit { position, wait, .. } =
            admit(&lags(6, 100, 1_100), 0, 500, base, Duration::ZERO, LIMITS)
        else {
            panic!("admitted");
        };
        assert_eq!(position, 1_600);
        assert!((wait.as_secs_f64() - 15.5).abs() < 1e-6, "{wait:?}");
        // Another partition has nothing queued: the base latency.
        assert_eq!(
            admit(&lags(6, 100, 1_100), 1, 0, base, Duration::ZERO, LIMITS),
            Admission::Admit {
                position: 0,
                wait: base,
                margin: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_learnt_margin_is_added_behind_a_queue_only() {
        let base = Duration::from_millis(500);
        let margin = Duration::from_secs(3);
        let Admission::Admit {
            wait, margin: m, ..
        } = admit(&lags(6, 100, 1_100), 0, 0, base, margin, LIMITS)
        else {
            panic!("admitted");
        };
        assert_eq!(m, margin);
        assert!((wait.as_secs_f64() - 13.5).abs() < 1e-6, "{wait:?}");
        // Nothing queued: the base latency alone.
        assert_eq!(
            admit(&lags(6, 100, 1_100), 1, 0, base, margin, LIMITS),
            Admission::Admit {
                position: 0,
                wait: base,
                margin: Duration::ZERO
            }
        );
        // The margin counts against the limit: 10.5 s + 10 s is over 20 s.
        assert!(matches!(
            admit(
                &lags(6, 100, 1_100),
                0,
                0,
                base,
                Duration::from_secs(10),
                LIMITS
            ),
            Admission::Shed { .. }
        ));
    }

    #[test]
    fn the_margin_is_the_99th_percentile_shortfall_of_the_last_half_minute() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut o = Overrun::default();
        assert_eq!(o.margin(t0), Duration::ZERO);
        // Answers 0.5 s early, but one in fifty 4 s late.
        for i in 0..1_000 {
            o.observe(at(i), if i % 50 == 0 { 4.0 } else { -0.5 });
        }
        let m = o.margin(at(1_000)).as_secs_f64();
        assert!((m - 4.0).abs() < 1e-9, "{m}");
        // Ten seconds of answers on time at 500/s: the late ones are still
        // within the half minute, but now fewer than one in a hundred.
        for i in 0..5_000 {
            o.observe(at(1_000 + i * 2), -0.5);
        }
        assert_eq!(o.margin(at(11_000)), Duration::ZERO);
        // A late spell counts however many answers came since: a promise
        // made now is kept or broken a whole queue later.
        for i in 0..100 {
            o.observe(at(11_000 + i), 2.5);
        }
        for i in 0..5_000 {
            o.observe(at(11_100 + i * 2), -0.5);
        }
        let m = o.margin(at(21_100)).as_secs_f64();
        assert!((m - 2.5).abs() < 1e-9, "{m}");
        // Half a minute without answers behind a queue: nothing to go on.
        assert_eq!(o.margin(at(52_000)), Duration::ZERO);
    }

    #[test]
    fn a_partition_worked_in_a_burst_is_held_to_its_share_of_the_stage() {
        // Partition 0 happened to get 300/s, partition 1 100/s: both are
        // behind, so each can count on the stage's 400/s halved.
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for s in 0..=6i64 {
            let mut stages = vec![vec![Position::default(); 2]; STAGES.len()];
            stages[0][0] = Position {
                committed: 300 * s,
                end: 300 * s + 2_200,
            };
            stages[0][1] = Position {
                committed: 100 * s,
                end: 100 * s + 2_200,
            };
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s as u64),
                stages,
            });
        }
        let Admission::Admit { wait, .. } =
            admit(&lags, 0, 0, Duration::ZERO, Duration::ZERO, LIMITS)
        else {
            panic!("admitted");
        };
        assert!(
            (wait.as_secs_f64() - 10.0).abs() < 1e-6,
            "(2,200 − 200) / 200: {wait:?}"
        );
    }

    #[test]
    fn a_partition_that_just_had_the_stage_to_itself_is_not_keeping_up() {
        // The stage does 400/s, all of it on partition 0 for the last two
        // seconds; partitions 0 to 3 each have 500 queued. 500 is within
        // a second and a half of 400/s, but over four seconds of the
        // 100/s that partition 0 can count on while the others wait.
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for s in 0..=6i64 {
            let mut stages = vec![vec![Position::default(); 4]; STAGES.len()];
            for (p, position) in stages[0].iter_mut().enumerate() {
                // Each partition in turn gets the whole stage for a
                // stretch; partition 0 for the last two seconds.
                let committed = match (p, s) {
                    (0, 5..) => 400 * (s - 4),
                    (0, _) => 0,
                    (_, _) => 100 * s.min(4),
                };
                *position = Position {
                    committed,
                    end: committed + 500,
                };
            }
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s as u64),
                stages,
            });
        }
        let progress = lags.progress(0, 0).expect("a rate");
        assert!(progress.recent >= 300.0, "{progress:?}");
        match admit(&lags, 0, 0, Duration::ZERO, Duration::ZERO, LIMITS) {
            Admission::Admit { wait, .. } => {
                assert!(wait >= Duration::from_secs(2), "promised {wait:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lag_of_about_a_second_of_work_is_no_queue() {
        // Traffic just rose: commits over five seconds trail the work of
        // the last two, and the lag is what the last commit interval hides.
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for (s, committed, end) in [(0, 0, 0), (1, 0, 0), (2, 20, 60), (3, 80, 120)] {
            let mut stages = vec![vec![Position::default(); 1]; STAGES.len()];
            stages[0][0] = Position { committed, end };
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s),
                stages,
            });
        }
        let base = Duration::from_millis(300);
        assert_eq!(
            admit(&lags, 0, 0, base, Duration::ZERO, LIMITS),
            Admission::Admit {
                position: 40,
                wait: base,
                margin: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_surge_from_idle_is_no_second_of_work_and_has_no_estimate_before_a_commit() {
        // 400 arrived in the last second, the stage did 100 of them: less
        // than a second of arrivals queued, but seconds of its work.
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for (s, committed, end) in [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 100, 400)] {
            let mut stages = vec![vec![Position::default(); 1]; STAGES.len()];
            stages[0][0] = Position { committed, end };
            lags.push(LagSample {
                at: t0 + Duration::from_secs(s),
                stages,
            });
        }
        let Admission::Admit { wait, .. } =
            admit(&lags, 0, 0, Duration::ZERO, Duration::ZERO, LIMITS)
        else {
            panic!("admitted");
        };
        assert!(wait > Duration::from_secs(5), "{wait:?}");
        // Before the stage's first commit: no estimate, come back in a
        // second; a handful is a quiet moment's traffic and is admitted.
        let cold = |end| {
            let mut lags = Lags::new(Duration::from_secs(8));
            for s in 0..3 {
                let mut stages = vec![vec![Position::default(); 1]; STAGES.len()];
                stages[0][0] = Position {
                    committed: 0,
                    end: if s == 2 { end } else { 0 },
                };
                lags.push(LagSample {
                    at: t0 + Duration::from_millis(250 * s),
                    stages,
                });
            }
            admit(&lags, 0, 0, Duration::ZERO, Duration::ZERO, LIMITS)
        };
        assert_eq!(
            cold(500),
            Admission::Shed {
                position: 500,
                why: Overload::NoEstimateYet,
                retry_after: Duration::from_secs(1)
            }
        );
        assert!(matches!(cold(5), Admission::Admit { .. }));
    }

    #[test]
    fn a_few_requests_at_a_quiet_moment_are_promised_the_base_latency() {
        // A request every two seconds, each handled at once and committed
        // a second later; the stages see one, two, one and three records
        // per request. Each shows the newest as lag and a rate of a
        // fraction of a record per second: divided one by the other, the
        // four once promised a wait of seconds (35 s on a loaded machine)
        // for a queue of nothing.
        let t0 = Instant::now();
        let mut lags = Lags::new(Duration::from_secs(8));
        for half in 0..=12u64 {
            let (arrived, handled) = (half / 4 + 1, (half + 2) / 4);
            let stages = [1, 2, 1, 3]
                .iter()
                .map(|per| {
                    vec![Position {
                        committed: per * handled as i64,
                        end: per * arrived as i64,
                    }]
                })
                .collect();
            lags.push(LagSample {
                at: t0 + Duration::from_millis(500 * half),
                stages,
            });
        }
        assert_eq!(lags.lag(3, 0), 3, "the newest request is queued");
        let base = Duration::from_millis(400);
        assert_eq!(
            admit(&lags, 0, 0, base, Duration::ZERO, LIMITS),
            Admission::Admit {
                position: 1,
                wait: base,
                margin: Duration::ZERO
            }
        );
    }

    #[test]
    fn over_the_limit_or_stalled_is_shed() {
        let base = Duration::from_millis(500);
        match admit(&lags(6, 100, 3_100), 0, 0, base, Duration::ZERO, LIMITS) {
            Admission::Shed {
                position,
                why: Overload::OverMaxWait(wait),
                retry_after,
            } => {
                assert_eq!(position, 3_100);
                assert!((wait.as_secs_f64() - 30.5).abs() < 1e-6);
                assert!((retry_after.as_secs_f64() - 10.5).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
        // A backlog that has not moved for the stall time: shed, whatever
        // its size.
        assert_eq!(
            admit(&lags(6, 0, 10), 0, 0, base, Duration::ZERO, LIMITS),
            Admission::Shed {
                position: 10,
                why: Overload::Stalled,
                retry_after: LIMITS.max_wait
            }
        );
        // Not moving, but only just queued (an idle stage): admitted.
        let mut idle = lags(6, 0, 0);
        let last = idle.latest().cloned().expect("samples");
        let mut stages = last.stages.clone();
        stages[0][0].end += 1;
        idle.push(LagSample {
            at: last.at + Duration::from_millis(100),
            stages,
        });
        assert!(matches!(
            admit(&idle, 0, 0, base, Duration::ZERO, LIMITS),
            Admission::Admit { position: 1, .. }
        ));
    }

    #[test]
    fn the_base_latency_follows_the_slow_answers_within_bounds() {
        let mut b = BaseLatency::default();
        for _ in 0..2_000 {
            b.observe(Duration::from_millis(200));
        }
        assert!((b.get().as_secs_f64() - 0.2).abs() < 0.01, "{:?}", b.get());
        // One answer in ten takes a second: the estimate sits well above
        // the typical 200 ms.
        for i in 0..2_000 {
            b.observe(Duration::from_millis(if i % 10 == 0 { 1_000 } else { 200 }));
        }
        assert!(b.get() > Duration::from_millis(400), "{:?}", b.get());
        for _ in 0..500 {
            b.observe(Duration::from_secs(3_600));
        }
        assert!(b.get() <= Duration::from_secs(10));
    }
}
