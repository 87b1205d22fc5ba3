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
//! promised, and the request is shed.

use std::time::Duration;

use runtime::lag::{Lags, STAGES};

/// How often stages commit (the runner's auto-commit interval).
const COMMIT_INTERVAL_SECS: f64 = 1.0;

/// What the gateway says to a new request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Publish it. `position` requests are ahead of it at the first stage;
    /// `wait` is the estimate.
    Admit { position: i64, wait: Duration },
    /// Answer `429`: the estimate is over the limit (`wait`), or a stage is
    /// stalled (`wait` is `None`). Try again after `retry_after`.
    /// `position` requests were ahead of it at the first stage.
    Shed {
        position: i64,
        wait: Option<Duration>,
        retry_after: Duration,
    },
}

/// The limits admission works within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_wait: Duration,
    pub stall: Duration,
}

/// Decides for a request on `partition`, with `ahead` requests this
/// gateway admitted there since the lags were read, given `base`, the
/// pipeline's latency when nothing is queued.
pub fn admit(
    lags: &Lags,
    partition: usize,
    ahead: i64,
    base: Duration,
    limits: Limits,
) -> Admission {
    let mut wait = base.as_secs_f64();
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
                wait: None,
                retry_after: limits.max_wait,
            };
        }
        let Some(progress) = lags.progress(stage, partition) else {
            continue;
        };
        if progress.rate <= 0.0 {
            // Idle until now: the backlog just appeared, nothing to divide by.
            continue;
        }
        // What a stage did in the last commit interval is not committed
        // yet. While it keeps up, its lag is no more than that: about a
        // second of arrivals (the rate of commits over five seconds trails
        // the arrivals when traffic rises, from idle by far). Beyond that
        // it is behind, works at its rate, and the lag less one second of
        // that rate is its queue.
        let keeping_up =
            lag as f64 <= 1.5 * progress.arrival.max(progress.rate) * COMMIT_INTERVAL_SECS;
        if keeping_up {
            continue;
        }
        let rate = progress.rate.min(fair_share(lags, stage));
        let queued = (lag as f64 - rate * COMMIT_INTERVAL_SECS).max(0.0);
        wait += queued / rate.max(f64::MIN_POSITIVE);
    }
    let wait = Duration::from_secs_f64(wait.min(1e6));
    if wait > limits.max_wait {
        // By then the backlog ahead has shrunk to what the limit allows.
        let retry_after = (wait - limits.max_wait).clamp(Duration::from_secs(1), limits.max_wait);
        return Admission::Shed {
            position,
            wait: Some(wait),
            retry_after,
        };
    }
    Admission::Admit { position, wait }
}

/// A stage's rate over all partitions, shared among those it is behind
/// on. One partition's own rate is noisy (a stage works its partitions in
/// bursts), and admitting where the noise happens to be high would promise
/// too little; the share is steadier, and the lower of the two is used.
fn fair_share(lags: &Lags, stage: usize) -> f64 {
    let (mut total, mut behind) = (0.0, 0usize);
    for p in 0..lags.partitions() {
        let Some(progress) = lags.progress(stage, p) else {
            continue;
        };
        total += progress.rate;
        let lag = lags.lag(stage, p) as f64;
        if lag > 1.5 * progress.arrival.max(progress.rate) * COMMIT_INTERVAL_SECS {
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
        match admit(&lags(6, 100, 1_100), 0, 0, base, LIMITS) {
            Admission::Admit { position, wait } => {
                assert_eq!(position, 1_100);
                assert!((wait.as_secs_f64() - 10.5).abs() < 1e-6, "{wait:?}");
            }
            other => panic!("{other:?}"),
        }
        // This gateway's own admissions since the sample count too.
        let Admission::Admit { position, wait } = admit(&lags(6, 100, 1_100), 0, 500, base, LIMITS)
        else {
            panic!("admitted");
        };
        assert_eq!(position, 1_600);
        assert!((wait.as_secs_f64() - 15.5).abs() < 1e-6, "{wait:?}");
        // Another partition has nothing queued: the base latency.
        assert_eq!(
            admit(&lags(6, 100, 1_100), 1, 0, base, LIMITS),
            Admission::Admit {
                position: 0,
                wait: base
            }
        );
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
        let Admission::Admit { wait, .. } = admit(&lags, 0, 0, Duration::ZERO, LIMITS) else {
            panic!("admitted");
        };
        assert!(
            (wait.as_secs_f64() - 10.0).abs() < 1e-6,
            "(2,200 − 200) / 200: {wait:?}"
        );
    }

    #[test]
    fn a_lag_of_about_a_second_of_arrivals_is_no_queue() {
        // Traffic just rose: commits over two seconds trail the arrivals,
        // and the lag is what the last commit interval hides.
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
            admit(&lags, 0, 0, base, LIMITS),
            Admission::Admit {
                position: 40,
                wait: base
            }
        );
    }

    #[test]
    fn over_the_limit_or_stalled_is_shed() {
        let base = Duration::from_millis(500);
        match admit(&lags(6, 100, 3_100), 0, 0, base, LIMITS) {
            Admission::Shed {
                position,
                wait: Some(wait),
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
            admit(&lags(6, 0, 10), 0, 0, base, LIMITS),
            Admission::Shed {
                position: 10,
                wait: None,
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
            admit(&idle, 0, 0, base, LIMITS),
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
