//! How a consumer group is doing on one partition, by Burrow's evaluation
//! rules over a window of readings: what `chatcart lag` prints. Pure, so
//! each rule is tested on its own.
//!
//! The rules, in the order they are applied:
//! 1. the committed offset went backwards: `Rewind` (offsets were reset);
//! 2. the lag was zero at some reading: `Ok`;
//! 3. the committed offset never moved while there was lag: `Stop` when
//!    the group has no members (nobody is consuming), else `Stall`
//!    (someone holds the partition and does nothing);
//! 4. the offset moved but the lag never fell: `Warn` (falling behind);
//! 5. otherwise `Ok` (catching up, or keeping up).

use serde::Serialize;

use super::Position;

/// A partition's state, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Rewind,
    Stall,
    Stop,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Rewind => "REWIND",
            Status::Stall => "STALL",
            Status::Stop => "STOP",
        }
    }
}

/// Evaluates `window`, the readings of one partition oldest first, for a
/// group that has `members` members now.
pub fn evaluate(window: &[Position], members: usize) -> Status {
    if window.windows(2).any(|w| w[1].committed < w[0].committed) {
        return Status::Rewind;
    }
    if window.is_empty() || window.iter().any(|p| p.lag() == 0) {
        return Status::Ok;
    }
    let (first, last) = (window[0], window[window.len() - 1]);
    if first.committed == last.committed {
        return if members == 0 {
            Status::Stop
        } else {
            Status::Stall
        };
    }
    if window.windows(2).all(|w| w[1].lag() >= w[0].lag()) {
        return Status::Warn;
    }
    Status::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(readings: &[(i64, i64)]) -> Vec<Position> {
        readings
            .iter()
            .map(|&(committed, end)| Position { committed, end })
            .collect()
    }

    #[test]
    fn each_rule_gives_its_status() {
        // Keeping up: the lag touched zero.
        assert_eq!(evaluate(&window(&[(0, 5), (5, 5), (5, 9)]), 1), Status::Ok);
        // Catching up: moving, and the lag fell.
        assert_eq!(
            evaluate(&window(&[(0, 100), (40, 120), (90, 130)]), 1),
            Status::Ok
        );
        // Falling behind: moving, the lag never fell.
        assert_eq!(
            evaluate(&window(&[(0, 100), (10, 120), (20, 130)]), 1),
            Status::Warn
        );
        // Held and not moving, with lag.
        assert_eq!(
            evaluate(&window(&[(50, 100), (50, 120), (50, 130)]), 2),
            Status::Stall
        );
        // Nobody consuming.
        assert_eq!(evaluate(&window(&[(50, 100), (50, 100)]), 0), Status::Stop);
        // Reset backwards, whatever else.
        assert_eq!(evaluate(&window(&[(50, 100), (0, 100)]), 1), Status::Rewind);
        // Nothing to go on.
        assert_eq!(evaluate(&[], 0), Status::Ok);
        assert!(Status::Stop > Status::Warn && Status::Warn > Status::Ok);
    }
}
