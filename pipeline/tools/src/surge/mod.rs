//! `chatcart surge`: makes a surge of chat prompts at a target rate profile
//! and measures how the pipeline answers it.
//!
//! # Layout
//! - [`profile`]: target send rates over time (constant, ramp, spike, the
//!   spring-festival shape) and each request's intended send time.
//! - [`traffic`]: what people type: heavy-tailed (Zipf) senders, Chinese and
//!   English prompts worded from the catalog so the extractor reads them as
//!   meant, chatter, unknown items, repeats and duplicate deliveries.
//! - [`drive`]: sends on schedule and reads the answers, with a progress bar;
//!   [`via_gateway`]: sends through `chatcart gateway` instead.
//! - [`front_door`]: what the gateway admitted, shed and promised.
//! - [`tally`]: counts answers and latencies (from the intended send time).
//! - [`report`]: the figures, as a table or JSON.

pub mod drive;
pub mod front_door;
pub mod profile;
pub mod report;
pub mod tally;
pub mod traffic;
pub mod via_gateway;

use std::time::Duration;

pub use drive::{Surge, run};
pub use profile::Profile;
pub use report::SurgeReport;
pub use traffic::Mix;

/// The rate profiles `chatcart surge` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// `--rate` requests/s for `--duration`.
    Constant,
    /// From `--from` to `--to` requests/s over `--duration`.
    Ramp,
    /// `--rate` with bursts at `--peak` lasting `--burst`, every `--every`.
    Spike,
    /// The seed campaign's first day, `--time-scale` times faster and
    /// `--scale` times the volume (`--duration` cuts it short).
    SpringFestival,
}

/// How fast to send, as `chatcart surge` and `chatcart demo` take it.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The shape of the send rate over time.
    #[arg(long, value_enum, default_value_t = Shape::Constant)]
    pub profile: Shape,
    /// Requests per second (constant; the baseline of spike).
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Starting rate of a ramp.
    #[arg(long, value_name = "RATE", default_value_t = 100.0)]
    pub from: f64,
    /// Final rate of a ramp.
    #[arg(long, value_name = "RATE", default_value_t = 2_000.0)]
    pub to: f64,
    /// Rate during a spike's bursts.
    #[arg(long, value_name = "RATE", default_value_t = 5_000.0)]
    pub peak: f64,
    /// Time between the starts of a spike's bursts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub every: Duration,
    /// Length of each burst.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub burst: Duration,
    /// How long to send (spring-festival: cut the day short; default whole day).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// spring-festival: how many times faster than real time (3600: an hour a second).
    #[arg(long, default_value_t = 3_600.0)]
    pub time_scale: f64,
    /// spring-festival: the share of the real volume (0.001: 15,000 of its 15 million).
    #[arg(long, default_value_t = 0.001)]
    pub scale: f64,
}

impl ProfileArgs {
    /// The profile these arguments describe.
    pub fn profile(&self) -> Result<Profile, profile::ProfileError> {
        let duration = self.duration.unwrap_or(Duration::from_secs(60));
        match self.profile {
            Shape::Constant => Profile::constant(self.rate, duration),
            Shape::Ramp => Profile::ramp(self.from, self.to, duration),
            Shape::Spike => Profile::spike(self.rate, self.peak, self.every, self.burst, duration),
            Shape::SpringFestival => {
                let day = Profile::spring_festival(self.time_scale, self.scale)?;
                Ok(match self.duration {
                    Some(d) => day.truncate(d),
                    None => day,
                })
            }
        }
    }
}

/// Who sends what, as `chatcart surge` takes it (the rest of [`Mix`] keeps
/// its defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct MixArgs {
    /// People in the population; who sends is Zipf-distributed.
    #[arg(long, default_value_t = Mix::default().users)]
    pub users: u64,
    /// Zipf exponent of who sends: higher means a few people send more.
    #[arg(long, default_value_t = Mix::default().zipf_exponent)]
    pub zipf_exponent: f64,
    /// Share of prompts in Chinese (the rest in English).
    #[arg(long, default_value_t = Mix::default().chinese_share)]
    pub chinese_share: f64,
    /// Share of deliveries that repeat an earlier one exactly (a retrying front-end).
    #[arg(long, default_value_t = Mix::default().duplicate_share)]
    pub duplicate_share: f64,
}

impl MixArgs {
    pub fn mix(&self) -> Mix {
        Mix {
            users: self.users,
            zipf_exponent: self.zipf_exponent,
            chinese_share: self.chinese_share,
            duplicate_share: self.duplicate_share,
            ..Mix::default()
        }
    }
}
