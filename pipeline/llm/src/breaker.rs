//! The circuit breaker of the LLM fallback.
//!
//! When the endpoint is down or overloaded, every request would wait out
//! its timeout and add to the overload. After `breaker_failures` failures in
//! a row the breaker opens: no requests for `breaker_open_ms`, then exactly
//! one trial request (half-open). Its success closes the breaker; its
//! failure opens it again for another full period.

use std::time::{Duration, Instant};

/// Whether a request may go to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes, as usual.
    Closed,
    /// Yes, as the one trial after an open period; its outcome decides.
    Trial,
    /// No.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The trial request is in flight; everything else is refused.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: State,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: State::Closed { failures: 0 },
        }
    }

    /// Whether requests are refused at `now`: open, or on trial.
    pub fn is_open(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::HalfOpen => true,
        }
    }

    /// Decides for one request at `now`. Ask only for a request that will
    /// start: a [`Admit::Trial`] must be followed by [`Breaker::record`] for
    /// it, or the breaker stays half-open.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed { .. } => Admit::Closed,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen;
                Admit::Trial
            }
            State::Open { .. } | State::HalfOpen => Admit::Refused,
        }
    }

    /// Records the outcome of an admitted request; returns true when this
    /// opened the breaker.
    pub fn record(&mut self, admitted: Admit, success: bool, now: Instant) -> bool {
        if success {
            self.state = State::Closed { failures: 0 };
            return false;
        }
        match (self.state, admitted) {
            (State::HalfOpen, Admit::Trial) => {
                self.state = State::Open {
                    until: now + self.open_for,
                };
                true
            }
            (State::Closed { failures }, _) => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    self.state = State::Open {
                        until: now + self.open_for,
                    };
                    true
                } else {
                    self.state = State::Closed { failures };
                    false
                }
            }
            // A request admitted before the breaker opened failed late; the
            // breaker is already open (or on trial) for its reasons.
            (State::Open { .. } | State::HalfOpen, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = Breaker::new(3, OPEN);
        assert!(!b.record(Admit::Closed, false, t));
        assert!(!b.record(Admit::Closed, false, t));
        assert!(
            !b.record(Admit::Closed, true, t),
            "success resets the count"
        );
        assert!(!b.record(Admit::Closed, false, t));
        assert!(!b.record(Admit::Closed, false, t));
        assert_eq!(b.admit(t), Admit::Closed);
        assert!(b.record(Admit::Closed, false, t), "third in a row opens");
        assert_eq!(b.admit(t), Admit::Refused);
        assert_eq!(b.admit(t + OPEN - Duration::from_millis(1)), Admit::Refused);
    }

    #[test]
    fn one_trial_then_closed_or_open_again() {
        let t = Instant::now();
        let mut b = Breaker::new(1, OPEN);
        assert!(b.record(Admit::Closed, false, t));
        let later = t + OPEN;
        assert_eq!(b.admit(later), Admit::Trial);
        assert_eq!(b.admit(later), Admit::Refused, "one trial at a time");
        assert!(
            b.record(Admit::Trial, false, later),
            "a failed trial reopens"
        );
        assert_eq!(b.admit(later + OPEN / 2), Admit::Refused);
        let again = later + OPEN;
        assert_eq!(b.admit(again), Admit::Trial);
        assert!(!b.record(Admit::Trial, true, again));
        assert_eq!(b.admit(again), Admit::Closed);
    }

    #[test]
    fn late_failures_do_not_extend_an_open_period() {
        let t = Instant::now();
        let mut b = Breaker::new(1, OPEN);
        b.record(Admit::Closed, false, t);
        assert!(!b.record(Admit::Closed, false, t + OPEN / 2));
        assert_eq!(b.admit(t + OPEN), Admit::Trial);
    }
}
