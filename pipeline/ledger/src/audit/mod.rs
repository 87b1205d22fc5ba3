//! The auditor's checks: re-fold every log from the beginning and check
//! every promise the pipeline makes. Pure: [`audit`] checks records already
//! read (`chatcart audit` reads them from Kafka first; the simulation hands
//! over its in-memory logs). The integration and fault tests end with it.
//!
//! # Layout
//! - `checks`: the checks, each promise one; grant and lease validity come
//!   from the ledger's folds, folded exactly as the stages fold them.
//! - `orders`: the orders log through the stock fold (which order decides
//!   a request, stock returns) and the stock check.
//! - `totals`: the figures per campaign the analytics views must match.
//! - here: the logs and the printed table.

mod checks;
mod orders;
mod totals;

use std::fmt;

use schemas::{IntentEvent, OrderEvent, Prompt, Record, Reply, TreasuryRecord};

pub use checks::audit;
pub use totals::Totals;

/// Up to three examples, for a failing check's detail.
fn examples<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.into_iter().collect();
    let shown: Vec<&str> = all.iter().take(3).copied().collect();
    if all.len() > shown.len() {
        format!(
            "{} (and {} more)",
            shown.join(", "),
            all.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

fn check(name: &'static str, bad: &[&str], ok_detail: String, what: &str) -> Check {
    if bad.is_empty() {
        Check {
            name,
            ok: true,
            detail: ok_detail,
        }
    } else {
        Check {
            name,
            ok: false,
            detail: format!("{} {what}: {}", bad.len(), examples(bad.iter().copied())),
        }
    }
}

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
    /// `(partition, record)`: all of `commerce.orders`, orders and stock
    /// lease movements, in log order within each partition, for the stock
    /// fold.
    pub order_log: Vec<(i32, Record)>,
    pub replies: Vec<Reply>,
    /// `campaign.treasury`, in log order.
    pub treasury: Vec<TreasuryRecord>,
}

impl Logs {
    /// Every order record of `commerce.orders`, repeats included.
    pub fn orders(&self) -> impl Iterator<Item = &OrderEvent> {
        self.order_log.iter().filter_map(|(_, r)| match r {
            Record::Order(o) => Some(o),
            _ => None,
        })
    }
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
pub struct AuditReport {
    pub checks: Vec<Check>,
    /// Figures worth seeing next to the checks (not pass/fail).
    pub figures: Vec<(&'static str, String)>,
    /// Per campaign, counted as the analytics views count.
    pub totals: std::collections::BTreeMap<String, Totals>,
}

impl AuditReport {
    /// Whether every check passed.
    pub fn clean(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl fmt::Display for AuditReport {
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
