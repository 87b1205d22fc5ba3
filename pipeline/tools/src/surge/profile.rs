//! Target send rates over time for `chatcart surge`, and the intended send
//! time of every request.
//!
//! A profile is piecewise linear between knots (a step is two knots at the
//! same time), so the number of requests due by any moment is a sum of
//! trapezoids, and the moment request `n` is due is the root of one
//! quadratic. The sender schedules each request at that moment rather than
//! pacing by sleeping between sends, so a slow send does not shift every
//! later request: lateness shows up as latency, not as a lower rate.
//!
//! Pure: no clock, no IO.

use std::time::Duration;

use serde::Serialize;

/// Highest rate a profile may ask for, in requests/s.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Most requests one profile may send.
pub const MAX_TOTAL: u64 = 100_000_000;

/// Longest profile (and longest `--every`, `--burst`).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most bursts a spike profile may have: each is four knots, and a
/// profile is held in memory whole.
pub const MAX_BURSTS: u64 = 100_000;

/// The spring-festival campaign's first day as reported: (hour, millions of
/// orders placed by then). See [`Profile::spring_festival`].
pub const SPRING_FESTIVAL: [(f64, f64); 10] = [
    (0.0, 0.0),
    (1.0, 0.15),
    (2.0, 0.45),
    (3.0, 1.0),
    (4.0, 2.8),
    (5.0, 5.0),
    (7.0, 8.0),
    (9.0, 10.2),
    (12.0, 12.0),
    (24.0, 15.0),
];

/// Why a profile was refused. The flags named are `chatcart surge`'s.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("{flag} must be between 0 and 1,000,000 requests/s; got {got}")]
    Rate { flag: &'static str, got: f64 },
    #[error("every rate is 0, so nothing would be sent; give {flag} a rate above 0")]
    AllZero { flag: &'static str },
    #[error(
        "{flag} must be more than 0 and at most 7 days; got {}",
        humantime::format_duration(*got)
    )]
    Duration { flag: &'static str, got: Duration },
    #[error(
        "--time-scale must be between 1 and 1,000,000 (3600 plays an hour a second); got {got}"
    )]
    TimeScale { got: f64 },
    #[error(
        "--scale must be a finite number above 0 (0.001 sends a thousandth of the reported volume); got {got}"
    )]
    Scale { got: f64 },
    #[error(
        "the spring-festival peak would be {peak:.0} requests/s, above 1,000,000; lower --scale or --time-scale"
    )]
    PeakTooHigh { peak: f64 },
    #[error(
        "--burst must be shorter than --every, or the bursts would run into each other; got --burst {} and --every {}",
        humantime::format_duration(*burst),
        humantime::format_duration(*every)
    )]
    BurstTooLong { burst: Duration, every: Duration },
    #[error(
        "--every is too short for --duration: {bursts} bursts, at most 100,000; raise --every or shorten --duration"
    )]
    TooManyBursts { bursts: u64 },
    #[error(
        "the profile would send no request at all (fewer than one is due in {}); raise the rate or the duration",
        humantime::format_duration(*duration)
    )]
    NoRequests { duration: Duration },
    #[error(
        "the profile would send {total} requests, more than 100,000,000; lower the rate, the duration or --scale"
    )]
    TooManyRequests { total: u64 },
}

/// A target send rate over time, piecewise linear between knots; a step
/// is two knots at the same time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    name: String,
    /// (seconds since start, requests/s), times non-decreasing, the first
    /// at 0.
    knots: Vec<(f64, f64)>,
    /// Requests due by each knot, so that a look-up is a binary search
    /// rather than a sum over every earlier segment.
    #[serde(skip)]
    due: Vec<f64>,
}

fn check_rate(flag: &'static str, got: f64) -> Result<f64, ProfileError> {
    if got.is_finite() && (0.0..=MAX_RATE).contains(&got) {
        Ok(got)
    } else {
        Err(ProfileError::Rate { flag, got })
    }
}

fn check_duration(flag: &'static str, got: Duration) -> Result<f64, ProfileError> {
    if got.is_zero() || got > MAX_DURATION {
        Err(ProfileError::Duration { flag, got })
    } else {
        Ok(got.as_secs_f64())
    }
}

/// The area of the segment from `a` to `b`.
fn trapezoid(a: (f64, f64), b: (f64, f64)) -> f64 {
    (b.0 - a.0) * (a.1 + b.1) / 2.0
}

impl Profile {
    /// `rate` requests/s for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Result<Self, ProfileError> {
        let rate = check_rate("--rate", rate)?;
        let end = check_duration("--duration", duration)?;
        if rate == 0.0 {
            return Err(ProfileError::AllZero { flag: "--rate" });
        }
        Self::checked("constant", vec![(0.0, rate), (end, rate)])
    }

    /// From `from` to `to` requests/s, linearly over `duration`.
    pub fn ramp(from: f64, to: f64, duration: Duration) -> Result<Self, ProfileError> {
        let from = check_rate("--from", from)?;
        let to = check_rate("--to", to)?;
        let end = check_duration("--duration", duration)?;
        if from == 0.0 && to == 0.0 {
            return Err(ProfileError::AllZero { flag: "--to" });
        }
        Self::checked("ramp", vec![(0.0, from), (end, to)])
    }

    /// `base` rate with bursts at `peak` lasting `burst`, one starting
    /// every `every` (first at `every`).
    pub fn spike(
        base: f64,
        peak: f64,
        every: Duration,
        burst: Duration,
        duration: Duration,
    ) -> Result<Self, ProfileError> {
        let base = check_rate("--rate", base)?;
        let peak = check_rate("--peak", peak)?;
        let period = check_duration("--every", every)?;
        let length = check_duration("--burst", burst)?;
        let end = check_duration("--duration", duration)?;
        if base == 0.0 && peak == 0.0 {
            return Err(ProfileError::AllZero { flag: "--peak" });
        }
        if burst >= every {
            return Err(ProfileError::BurstTooLong { burst, every });
        }
        // Bursts start at k·every for every k ≥ 1 with k·every < end.
        let bursts = (end / period).ceil() as u64 - 1;
        if bursts > MAX_BURSTS {
            return Err(ProfileError::TooManyBursts { bursts });
        }
        let mut knots = Vec::with_capacity(4 * bursts as usize + 2);
        knots.push((0.0, base));
        for k in 1..=bursts {
            let start = k as f64 * period;
            let stop = (start + length).min(end);
            knots.extend([(start, base), (start, peak), (stop, peak)]);
            if stop < end {
                knots.push((stop, base));
            }
        }
        if knots.last().is_none_or(|k| k.0 < end) {
            knots.push((end, base));
        }
        Self::checked("spike", knots)
    }

    /// The reported shape of the seed campaign's first day, compressed
    /// `time_scale` times (3600: an hour per second) and its volume
    /// multiplied by `scale`.
    ///
    /// The campaign was reported as reaching 1 million orders by hour 3,
    /// 5 million by hour 5, more than 10 million by hour 9 and 15 million
    /// on day one, fifteen times the planned volume. [`SPRING_FESTIVAL`]
    /// fills the hours in between: (0, 0), (1, 0.15), (2, 0.45), (3, 1.0),
    /// (4, 2.8), (5, 5.0), (7, 8.0), (9, 10.2), (12, 12.0), (24, 15.0), in
    /// hours and millions of requests by then. Between two of those hours
    /// the rate is constant (steps), so the cumulative count passes through
    /// every reported figure exactly; the busiest hour is hour 4 to 5, at
    /// 2.2 million an hour.
    ///
    /// A segment's rate in the compressed run is
    /// `(Δmillions · 1e6 · scale / Δhours) / (3600 / time_scale)` requests/s:
    /// with `time_scale` 3600 and `scale` 0.001 the day takes 24 s and sends
    /// 15,000 requests, at most 2,200/s.
    pub fn spring_festival(time_scale: f64, scale: f64) -> Result<Self, ProfileError> {
        if !(time_scale.is_finite() && (1.0..=1e6).contains(&time_scale)) {
            return Err(ProfileError::TimeScale { got: time_scale });
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(ProfileError::Scale { got: scale });
        }
        let seconds_per_hour = 3600.0 / time_scale;
        let mut knots = Vec::with_capacity(2 * SPRING_FESTIVAL.len());
        for pair in SPRING_FESTIVAL.windows(2) {
            let [(h0, m0), (h1, m1)] = [pair[0], pair[1]];
            let rate = (m1 - m0) * 1e6 * scale / (h1 - h0) / seconds_per_hour;
            knots.push((h0 * seconds_per_hour, rate));
            knots.push((h1 * seconds_per_hour, rate));
        }
        let peak = knots.iter().map(|k| k.1).fold(0.0, f64::max);
        if peak > MAX_RATE {
            return Err(ProfileError::PeakTooHigh { peak });
        }
        Self::checked("spring-festival", knots)
    }

    /// Checks what every profile must satisfy once its knots are laid.
    fn checked(name: &str, knots: Vec<(f64, f64)>) -> Result<Self, ProfileError> {
        let profile = Self::from_knots(name.to_owned(), knots);
        match profile.due.last().copied().map_or(0, whole) {
            0 => Err(ProfileError::NoRequests {
                duration: profile.duration(),
            }),
            total if total > MAX_TOTAL => Err(ProfileError::TooManyRequests { total }),
            _ => Ok(profile),
        }
    }

    fn from_knots(name: String, knots: Vec<(f64, f64)>) -> Self {
        let mut due = Vec::with_capacity(knots.len());
        let mut sum = 0.0;
        for (i, k) in knots.iter().enumerate() {
            if i > 0 {
                sum += trapezoid(knots[i - 1], *k);
            }
            due.push(sum);
        }
        Self { name, knots, due }
    }

    /// Only the first `duration` of the profile.
    pub fn truncate(self, duration: Duration) -> Self {
        let end = duration.as_secs_f64();
        if end >= self.end() {
            return self;
        }
        let rate = self.rate_before(end);
        let mut knots: Vec<_> = self.knots.into_iter().take_while(|k| k.0 < end).collect();
        knots.push((end, rate));
        Self::from_knots(self.name, knots)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The knots: (seconds since start, requests/s).
    pub fn knots(&self) -> &[(f64, f64)] {
        &self.knots
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.end())
    }

    fn end(&self) -> f64 {
        self.knots.last().map_or(0.0, |k| k.0)
    }

    /// The target rate at `t` seconds; at a step, the rate after it.
    /// Zero outside the profile.
    pub fn rate_at(&self, t: f64) -> f64 {
        if !(0.0..=self.end()).contains(&t) {
            return 0.0;
        }
        let i = self.knots.partition_point(|k| k.0 <= t);
        match self.knots.get(i) {
            Some(&b) => interpolate(self.knots[i - 1], b, t),
            None => self.knots.last().map_or(0.0, |k| k.1),
        }
    }

    /// The rate just before `t`: at a step, the rate before it.
    fn rate_before(&self, t: f64) -> f64 {
        let i = self.knots.partition_point(|k| k.0 < t);
        match (i.checked_sub(1), self.knots.get(i)) {
            (Some(a), Some(&b)) => interpolate(self.knots[a], b, t),
            (None, Some(b)) => b.1,
            (_, None) => self.knots.last().map_or(0.0, |k| k.1),
        }
    }

    /// ∫0..t rate: requests due by `t` seconds.
    pub fn due_by(&self, t: f64) -> f64 {
        if t.is_nan() || t <= 0.0 {
            return 0.0;
        }
        let i = self.knots.partition_point(|k| k.0 <= t);
        match self.knots.get(i) {
            Some(&b) => {
                let a = self.knots[i - 1];
                self.due[i - 1] + trapezoid(a, (t, interpolate(a, b, t)))
            }
            None => self.due.last().copied().unwrap_or(0.0),
        }
    }

    /// How many requests the whole profile sends: floor(due_by(duration)).
    pub fn total(&self) -> u64 {
        self.due.last().copied().map_or(0, whole)
    }

    /// Intended send time (seconds from start) of request `n` (0-based):
    /// the first t where due_by(t) == n, so request 0 is due at 0. None
    /// when n >= total().
    pub fn due_at(&self, n: u64) -> Option<f64> {
        if n >= self.total() {
            return None;
        }
        let n = n as f64;
        // The first knot by which n are due; the segment before it has
        // some area, so the rate is not zero throughout it.
        let j = self.due.partition_point(|d| *d < n);
        let Some(i) = j.checked_sub(1) else {
            return Some(0.0);
        };
        let Some(&(t1, r1)) = self.knots.get(j) else {
            // `total` allows for rounding, so n may be a hair past the end.
            return Some(self.end());
        };
        let (t0, r0) = self.knots[i];
        let left = n - self.due[i];
        // Solve r0·x + slope·x²/2 = left for x ≥ 0. The textbook root
        // (√(r0² + 2·slope·left) − r0) / slope loses every digit when the
        // slope is small; this form of it never subtracts, and is exactly
        // left / r0 on a flat segment.
        let slope = (r1 - r0) / (t1 - t0);
        let discriminant = (r0 * r0 + 2.0 * slope * left).max(0.0);
        let x = 2.0 * left / (r0 + discriminant.sqrt());
        Some((t0 + x).clamp(t0, t1))
    }

    pub fn peak_rate(&self) -> f64 {
        self.knots.iter().map(|k| k.1).fold(0.0, f64::max)
    }
}

/// The rate at `t` on the segment from `a` to `b`.
fn interpolate(a: (f64, f64), b: (f64, f64), t: f64) -> f64 {
    if b.0 <= a.0 {
        return b.1;
    }
    a.1 + (b.1 - a.1) * ((t - a.0) / (b.0 - a.0))
}

/// Whole requests in `due`. A rate times a duration that is whole on paper
/// (1,000/s for 10 s) may come out a hair below it in floating point, so a
/// hair is forgiven.
fn whole(due: f64) -> u64 {
    (due + 1e-9 * due.max(1.0)).floor() as u64
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
