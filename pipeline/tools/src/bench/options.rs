//! What `chatcart bench` is asked to do: which phases, how much, and how
//! the sustained phase picks its rate; checked before anything runs, so a
//! mistake is reported before minutes of measuring, not after.

use std::path::PathBuf;
use std::time::Duration;

use super::sustained::{Goals, WINDOW_SECS};

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Records of each throughput run.
    pub records: u64,
    /// Throughput runs of each configuration; the median counts.
    pub runs: usize,
    /// Prompts queued before the pipeline starts, for the drain phase (0: skip it).
    pub backlog: u64,
    /// How long each half-load latency phase sends.
    pub latency_for: Duration,
    /// How long to wait for a phase's last answers.
    pub drain_timeout: Duration,
    /// Where the processes' configuration and logs go.
    pub work_dir: PathBuf,
    /// Draw progress bars.
    pub progress: bool,
    /// The phases to run, in their fixed order whatever this one is.
    pub phases: Vec<Phase>,
    pub sustained: SustainedOptions,
}

/// A phase of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// One produce-and-consume hop.
    Raw,
    /// Four no-op relay processes through the pipeline's topics.
    Relay,
    /// The pipeline's five processes, flat out and at half load.
    Pipeline,
    /// A backlog queued, then drained by the pipeline.
    Backlog,
    /// The pipeline held at a fixed rate for minutes.
    Sustained,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Phase; 5] = [
        Phase::Raw,
        Phase::Relay,
        Phase::Pipeline,
        Phase::Backlog,
        Phase::Sustained,
    ];
}

/// How the sustained phase runs.
#[derive(Debug, Clone)]
pub struct SustainedOptions {
    /// The rate as a share of the pipeline phase's median burst rate.
    pub share: f64,
    /// A fixed rate instead (needed when the pipeline phase does not run).
    pub rate: Option<f64>,
    /// Sending at the rate before the measured time: whole minutes.
    pub lead_in: Duration,
    /// The measured time.
    pub duration: Duration,
    pub goals: Goals,
}

impl SustainedOptions {
    /// The rate to offer, given the pipeline's burst rate if it was measured.
    pub(super) fn rate(&self, burst: Option<f64>) -> anyhow::Result<f64> {
        match (self.rate, burst) {
            (Some(rate), _) => Ok(rate),
            (None, Some(burst)) => Ok(self.share * burst),
            (None, None) => anyhow::bail!(
                "the sustained phase needs the pipeline's burst rate: run the pipeline phase too, or give --sustained-rate"
            ),
        }
    }

    pub(super) fn check(&self, pipeline_runs: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.share > 0.0 && self.share <= 10.0,
            "--sustained-share must be above 0 and at most 10 (it is {})",
            self.share
        );
        anyhow::ensure!(
            self.rate.is_none_or(|r| r.is_finite() && r > 0.0),
            "--sustained-rate must be a positive number of requests per second"
        );
        anyhow::ensure!(
            self.lead_in.as_secs() % 60 == 0 && self.lead_in.subsec_nanos() == 0,
            "--sustained-lead-in must be whole minutes (e.g. 0s, 1m, 2m), so the measured minutes start on one; it is {:?}",
            self.lead_in
        );
        anyhow::ensure!(
            self.duration.as_secs() >= WINDOW_SECS,
            "--sustained-for must be at least {WINDOW_SECS} s, one throughput window"
        );
        if !pipeline_runs {
            self.rate(None)?;
        }
        Ok(())
    }
}
