//! Synthetic chat traffic for `chatcart surge`: what a population of
//! people types during a campaign, as [`Prompt`]s ready to publish.
//!
//! Which person sends is Zipf-distributed, so a few send a lot and most
//! send once or twice, as in a real surge. Each new request is a purchase
//! of one item, several items, chatter that buys nothing, or a purchase of
//! something the catalog does not have, in Chinese or English (see
//! `phrase`). Two kinds of repetition load the pipeline's idempotence:
//! a *repeat* is the same person sending the same text again as a new
//! request (people press send twice, or re-ask when a reply is slow), and
//! a *duplicate* is the same request delivered again byte for byte, as a
//! retrying front-end does.
//!
//! Memory stays bounded whatever the run length: repeats and duplicates
//! are drawn from rings of the most recent requests, and nothing is kept
//! per user. Pure and seeded: the same mix, run and seed make the same
//! deliveries.

mod phrase;
mod words;

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use schemas::Prompt;
use serde::{Deserialize, Serialize};

use extract::catalog::Catalog;
use phrase::{Line, Phrasebook, Phrased};

/// How many recent requests duplicates and repeats are drawn from.
pub const RING: usize = 1_024;

/// Most people a population may have.
pub const MAX_USERS: u64 = 100_000_000;

/// What the traffic is made of. Shares are probabilities: `duplicate_share`
/// of all deliveries are duplicates; `repeat_share` of the new requests
/// are repeats; `chatter_share`, `unknown_share` and `multi_item_share` of
/// the remaining (freshly typed) requests are chatter, unknown items and
/// multi-item purchases, and the rest single-item purchases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// People in the population; which one sends is Zipf-distributed
    /// (heavy tail).
    pub users: u64,
    /// The Zipf exponent: the larger, the more the heaviest senders send.
    pub zipf_exponent: f64,
    /// Share of fresh requests typed in Chinese; the rest are English.
    pub chinese_share: f64,
    /// Purchases of 2–3 different items in one prompt.
    pub multi_item_share: f64,
    /// Not a purchase: greetings, "where is my order", refunds.
    pub chatter_share: f64,
    /// Items not in the catalog: "帮我买一台拖拉机", "buy me a unicorn".
    pub unknown_share: f64,
    /// The same person sends the same purchase text again as a new
    /// request: the repeated "帮我买".
    pub repeat_share: f64,
    /// An exact duplicate delivery of an earlier request (same request id
    /// and bytes), as a retrying front-end sends.
    pub duplicate_share: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            users: 100_000,
            zipf_exponent: 1.1,
            chinese_share: 0.6,
            multi_item_share: 0.12,
            chatter_share: 0.08,
            unknown_share: 0.04,
            repeat_share: 0.10,
            duplicate_share: 0.02,
        }
    }
}

/// Why a traffic mix or run was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrafficError {
    #[error("mix.users must be between 1 and 100,000,000; got {got}")]
    Users { got: u64 },
    #[error(
        "mix.zipf_exponent must be above 0 and at most 5 (1.1 is a typical heavy tail); got {got}"
    )]
    ZipfExponent { got: f64 },
    #[error("mix.{field} must be between 0 and 1; got {got}")]
    Share { field: &'static str, got: f64 },
    #[error(
        "mix.chatter_share + mix.unknown_share + mix.multi_item_share must be at most 1, as they are shares of the same requests; got {sum}: lower one of them"
    )]
    SharesAboveOne { sum: f64 },
    #[error(
        "mix.multi_item_share must be 0 with a catalog of one SKU, as a multi-item prompt names different SKUs; got {got}"
    )]
    MultiItemNeedsSkus { got: f64 },
    #[error(
        "the run name must be 1 to 64 ASCII letters, digits, '.', '_' or '-' (it starts every request id); got {run:?}"
    )]
    Run { run: String },
}

impl Mix {
    pub fn validate(&self) -> Result<(), TrafficError> {
        if !(1..=MAX_USERS).contains(&self.users) {
            return Err(TrafficError::Users { got: self.users });
        }
        let s = self.zipf_exponent;
        if !(s.is_finite() && s > 0.0 && s <= 5.0) {
            return Err(TrafficError::ZipfExponent { got: s });
        }
        for (field, got) in [
            ("chinese_share", self.chinese_share),
            ("multi_item_share", self.multi_item_share),
            ("chatter_share", self.chatter_share),
            ("unknown_share", self.unknown_share),
            ("repeat_share", self.repeat_share),
            ("duplicate_share", self.duplicate_share),
        ] {
            if !(0.0..=1.0).contains(&got) {
                return Err(TrafficError::Share { field, got });
            }
        }
        let sum = self.chatter_share + self.unknown_share + self.multi_item_share;
        // A hair over 1 is how 0.7 + 0.2 + 0.1 adds up in floating point.
        if sum > 1.0 + 1e-9 {
            return Err(TrafficError::SharesAboveOne { sum });
        }
        Ok(())
    }
}

/// What a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One catalog item.
    Purchase,
    /// Two or three different catalog items.
    MultiItem,
    /// Not a purchase.
    Chatter,
    /// A purchase of something not in the catalog.
    Unknown,
    /// A new request repeating an earlier purchase's text, by its sender.
    Repeat,
    /// An earlier request delivered again unchanged.
    Duplicate,
}

/// One prompt to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub prompt: Prompt,
    pub kind: Kind,
    /// The request's sequence number (a duplicate carries its original's).
    pub seq: u64,
}

/// A request made, as the rings keep it.
#[derive(Debug, Clone)]
struct Sent {
    delivery: Delivery,
    /// What it orders, for the tests to read back (and for a repeat to
    /// order again).
    lines: Vec<Line>,
}

/// The most recent requests, oldest first.
#[derive(Debug, Clone, Default)]
struct Ring(VecDeque<Sent>);

impl Ring {
    fn push(&mut self, sent: Sent) {
        if self.0.len() == RING {
            self.0.pop_front();
        }
        self.0.push_back(sent);
    }

    fn any(&self, rng: &mut SmallRng) -> Option<&Sent> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(rng.random_range(0..self.0.len()))
    }
}

/// The traffic generator.
#[derive(Debug, Clone)]
pub struct Traffic {
    mix: Mix,
    run: String,
    rng: SmallRng,
    users: Zipf<f64>,
    phrasebook: Phrasebook,
    /// Every recent request, for duplicates.
    recent: Ring,
    /// Recent purchases, for repeats.
    purchases: Ring,
    next_seq: u64,
}

impl Traffic {
    /// `run` names the run: request ids are `"{run}-{seq}"`, user ids
    /// `"{run}-u{rank}"` (so users of one run never collide with an earlier
    /// run's, which matters because each user gets one free order per
    /// campaign), sessions `"{run}-s{rank}"`.
    pub fn new(catalog: &Catalog, mix: Mix, run: &str, seed: u64) -> Result<Self, TrafficError> {
        mix.validate()?;
        check_run(run)?;
        let phrasebook = Phrasebook::new(catalog);
        if phrasebook.skus() < 2 && mix.multi_item_share > 0.0 {
            return Err(TrafficError::MultiItemNeedsSkus {
                got: mix.multi_item_share,
            });
        }
        // Checked above: users ≥ 1 and the exponent positive.
        let users = Zipf::new(mix.users as f64, mix.zipf_exponent).map_err(|_| {
            TrafficError::ZipfExponent {
                got: mix.zipf_exponent,
            }
        })?;
        Ok(Self {
            mix,
            run: run.to_owned(),
            rng: SmallRng::seed_from_u64(seed),
            users,
            phrasebook,
            recent: Ring::default(),
            purchases: Ring::default(),
            next_seq: 0,
        })
    }

    /// How many distinct requests have been made so far (= next new seq).
    pub fn requests(&self) -> u64 {
        self.next_seq
    }

    /// The next delivery, to be sent with `event_time_ms` (its intended
    /// send time). New requests get the next seq (0, 1, 2, …); a
    /// duplicate re-sends one of the last [`RING`] requests unchanged,
    /// original event time and request id included (before the first
    /// request there is nothing to duplicate, so a new request is made).
    pub fn next(&mut self, event_time_ms: i64) -> Delivery {
        self.step(event_time_ms).delivery
    }

    fn step(&mut self, event_time_ms: i64) -> Sent {
        if self.rng.random_bool(self.mix.duplicate_share)
            && let Some(sent) = self.recent.any(&mut self.rng)
        {
            let mut sent = sent.clone();
            sent.delivery.kind = Kind::Duplicate;
            return sent;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let request_id = format!("{}-{seq}", self.run);
        let repeated = if self.rng.random_bool(self.mix.repeat_share) {
            self.purchases.any(&mut self.rng).cloned()
        } else {
            None
        };
        let sent = match repeated {
            Some(original) => {
                let prompt = Prompt {
                    trace_id: request_id.clone(),
                    request_id,
                    event_time_ms,
                    ..original.delivery.prompt
                };
                Sent {
                    delivery: Delivery {
                        prompt,
                        kind: Kind::Repeat,
                        seq,
                    },
                    lines: original.lines,
                }
            }
            None => self.fresh(request_id, seq, event_time_ms),
        };
        self.recent.push(sent.clone());
        if matches!(
            sent.delivery.kind,
            Kind::Purchase | Kind::MultiItem | Kind::Repeat
        ) {
            self.purchases.push(sent.clone());
        }
        sent
    }

    /// A newly typed request from a Zipf-chosen person.
    fn fresh(&mut self, request_id: String, seq: u64, event_time_ms: i64) -> Sent {
        let rank = (self.users.sample(&mut self.rng) as u64).clamp(1, self.mix.users);
        // Per request rather than per person: a share per person would
        // swing with whichever language the few heaviest senders drew.
        let zh = self.rng.random_bool(self.mix.chinese_share);
        let p: f64 = self.rng.random();
        let (m, c, u) = (
            self.mix.multi_item_share,
            self.mix.chatter_share,
            self.mix.unknown_share,
        );
        let book = &self.phrasebook;
        let rng = &mut self.rng;
        let (kind, (text, lines)): (Kind, Phrased) = if p < c {
            (Kind::Chatter, book.chatter(rng, zh))
        } else if p < c + u {
            (Kind::Unknown, book.unknown(rng, zh))
        } else if p < c + u + m {
            (Kind::MultiItem, book.multi(rng, zh))
        } else {
            (Kind::Purchase, book.purchase(rng, zh))
        };
        let run = &self.run;
        Sent {
            delivery: Delivery {
                prompt: Prompt {
                    reply_partition: None,
                    deadline_ms: None,
                    trace_id: request_id.clone(),
                    request_id,
                    session_id: format!("{run}-s{rank}"),
                    user_id: format!("{run}-u{rank}"),
                    campaign_id: String::new(),
                    event_time_ms,
                    text,
                    locale: None,
                },
                kind,
                seq,
            },
            lines,
        }
    }
}

/// Checks a run name: it starts every request and user id of the run.
pub fn check_run(run: &str) -> Result<(), TrafficError> {
    let ok = (1..=64).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TrafficError::Run {
            run: run.to_owned(),
        })
    }
}

/// The sequence number of a request id this run made, or None.
pub fn seq_of(run: &str, request_id: &str) -> Option<u64> {
    let digits = request_id.strip_prefix(run)?.strip_prefix('-')?;
    // Only the form `next` writes: no sign, no leading zero.
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
