//! The auditor: re-folds the topics from the beginning and checks every
//! promise the pipeline makes. [`audit`] is pure (it checks records already
//! read); [`run`] reads them from Kafka first. The integration and fault
//! tests end with it, and `chatcart audit` runs it against a live pipeline.
//!
//! # Layout
//! - `checks`: the checks, each promise one; grant and lease validity come
//!   from the ledger's folds, folded exactly as the stages fold them.
//! - `totals`: the figures per campaign the analytics views must match.
//! - here: the logs, reading them from Kafka, and the printed table.

mod checks;
#[cfg(test)]
mod tests;
mod totals;

use std::fmt;
use std::time::Duration;

use connectors::kafka::read_partitions;
use rdkafka::message::Message;
use schemas::{IntentEvent, OrderEvent, Prompt, Record, Reply, TreasuryRecord};

pub use checks::audit;
pub use totals::Totals;

use crate::app;
use crate::config::Settings;
use crate::topics::{Topic, TopicNames};

/// Every record of the pipeline's topics, each partition in log order.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub prompts: Vec<Prompt>,
    /// Records on `chat.prompts` that could not be decoded.
    pub undecodable_prompts: u64,
    pub dead_letters: u64,
    pub intents: Vec<IntentEvent>,
    /// `(partition, record)`: decisions and lease movements, in log order
    /// within each partition.
    pub decisions: Vec<(i32, Record)>,
    pub orders: Vec<OrderEvent>,
    /// `(partition, record)`: all of `commerce.orders`, orders and stock
    /// lease movements, in log order within each partition, for the stock
    /// fold.
    pub order_log: Vec<(i32, Record)>,
    pub replies: Vec<Reply>,
    /// `campaign.treasury`, in log order.
    pub treasury: Vec<TreasuryRecord>,
}

/// One checked promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, with examples when the check fails.
    pub detail: String,
}

/// What the auditor found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Figures worth seeing next to the checks (not pass/fail).
    pub figures: Vec<(&'static str, String)>,
    /// Per campaign, counted as the analytics views count.
    pub totals: std::collections::BTreeMap<String, Totals>,
}

impl Report {
    /// Whether every check passed.
    pub fn clean(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Reads every topic from the beginning and audits it.
pub async fn run(settings: &Settings, timeout: Duration) -> anyhow::Result<Report> {
    let settings_c = settings.clone();
    let codec = app::codec(settings)?;
    let logs =
        tokio::task::spawn_blocking(move || read_logs(&settings_c, &codec, timeout)).await??;
    Ok(audit(
        &settings.campaigns()?,
        settings.kafka.partitions,
        &logs,
    ))
}

fn read_logs(
    settings: &Settings,
    codec: &schemas::Codec,
    timeout: Duration,
) -> anyhow::Result<Logs> {
    let topics = TopicNames::new(&settings.kafka);
    let mut logs = Logs::default();
    for topic in [
        Topic::Prompts,
        Topic::Intents,
        Topic::Decisions,
        Topic::Orders,
        Topic::Replies,
        Topic::Treasury,
        Topic::Dlq,
    ] {
        let partitions: Vec<i32> = (0..topic.partitions(settings.kafka.partitions)).collect();
        // One consumer interleaves partitions but keeps each partition in
        // log order, which is all the per-partition folds need.
        read_partitions(
            &settings.kafka,
            topics.name(topic),
            &partitions,
            timeout,
            |m| {
                let payload = m.payload().unwrap_or_default();
                let record = match topic {
                    Topic::Dlq => {
                        logs.dead_letters += 1;
                        return;
                    }
                    Topic::Prompts => codec.decode_prompt(payload).ok().map(Record::Prompt),
                    _ => codec.decode(payload).ok(),
                };
                match record {
                    None if topic == Topic::Prompts => logs.undecodable_prompts += 1,
                    Some(Record::Prompt(r)) => logs.prompts.push(r),
                    Some(Record::Intent(r)) => logs.intents.push(r),
                    Some(r @ (Record::Decision(_) | Record::Treasury(_)))
                        if topic == Topic::Decisions =>
                    {
                        logs.decisions.push((m.partition(), r));
                    }
                    Some(r @ Record::Treasury(_)) if topic == Topic::Orders => {
                        logs.order_log.push((m.partition(), r));
                    }
                    Some(Record::Treasury(r)) => logs.treasury.push(r),
                    Some(Record::Order(r)) => {
                        logs.order_log
                            .push((m.partition(), Record::Order(r.clone())));
                        logs.orders.push(r);
                    }
                    Some(Record::Reply(r)) => logs.replies.push(r),
                    _ => {}
                }
            },
        )?;
    }
    Ok(logs)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chatcart audit")?;
        for c in &self.checks {
            let status = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "  {status}  {:<24} {}", c.name, c.detail)?;
        }
        for (name, value) in &self.figures {
            writeln!(f, "        {name:<24} {value}")?;
        }
        let verdict = if self.clean() {
            "clean"
        } else {
            "VIOLATIONS FOUND"
        };
        write!(f, "  {verdict}")
    }
}
