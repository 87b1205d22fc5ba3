//! Reply stage: terminal events of every stage → `chat.replies`. Writes
//! exactly one final answer per request, in the person's language, from
//! templates shipped as data (`data/replies.toml`).
//!
//! Every request ends in exactly one terminal record: a rejected intent, a
//! denial (as written, or a grant the ledger's fold refused), or an order,
//! placed or failed. So answering terminal records, each once, answers every
//! request once. Which requests were answered lately is restored from the
//! newest [`REPLY_WINDOW`] records of the stage's own output partition, so a
//! redelivery or a restart never produces a second reply, and a restore
//! reads a bounded amount however long the campaign has run.
//!
//! The stage is also the reader of the orders log, as fulfillment is of the
//! decisions log. It folds each `commerce.orders` partition with the stock
//! fold, so a placed order the fold refuses (a zombie fulfillment instance
//! sold units its partition no longer held) is answered as failed
//! `out_of_stock` and its credit released, and it forwards to the treasury
//! exactly the stock returns the fold accepted: fulfillment cannot judge
//! its own returns, as a zombie's view may be stale.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemas::{
    CouponDecision, DecisionOutcome, IntentOutcome, Item, OrderEvent, OrderOutcome, Record, Reply,
    ReplyOutcome, TreasuryKind, TreasuryRecord,
};
use serde::Deserialize;

use crate::Topic;
use crate::{Collector, Emit, OwnOutput, Plan, Replay, Restore, Stage, StageId, StatePlan};
use extract::catalog::Catalog;
use ledger::campaign::{Campaigns, yuan};
use ledger::recent::Recent;
use ledger::{DecisionsFold, Effect, ImageError, StockEffect, StockFold, stock_sku};
use schemas::reason::{EXPIRED, OUT_OF_STOCK};

/// How many of the newest answered requests a partition remembers. A
/// redelivered terminal record is younger than this: redelivery starts at
/// the committed input offsets, which trail what was handled by at most
/// `runtime.max_in_flight` records plus one commit interval of traffic, on
/// each of the three inputs. Only a replay from further back (an operator
/// resetting the group's offsets) could answer a request again.
pub const REPLY_WINDOW: usize = 1 << 17;

/// The templates shipped with chatcart.
pub const BUILT_IN: &str = include_str!("../data/replies.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Language {
    order_placed: String,
    expired: String,
    example: String,
    order_failed: BTreeMap<String, String>,
    denied: BTreeMap<String, String>,
    rejected: BTreeMap<String, String>,
}

/// Reply templates for every language chatcart answers in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    zh: Language,
    en: Language,
}

/// What a reply says, before it is put into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContent<'a> {
    pub outcome: ReplyOutcome,
    pub reason: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub items: &'a [Item],
    pub credit_cents: i64,
    pub to_pay_cents: i64,
}

impl Templates {
    /// Parses templates and checks every outcome has an `other` fallback.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t: Templates = toml::from_str(text).map_err(|e| e.to_string())?;
        for (lang, l) in [("zh", &t.zh), ("en", &t.en)] {
            for (table, map) in [
                ("order_failed", &l.order_failed),
                ("denied", &l.denied),
                ("rejected", &l.rejected),
            ] {
                if !map.contains_key("other") {
                    return Err(format!("[{lang}.{table}] needs an `other` entry"));
                }
            }
        }
        Ok(t)
    }

    /// The built-in templates.
    pub fn built_in() -> Self {
        // Checked by a unit test, so this cannot fail in a released binary.
        #[allow(clippy::expect_used)]
        Self::parse(BUILT_IN).expect("built-in reply templates are valid")
    }

    /// The reply text for `answer` in `locale` (`zh`, otherwise English).
    pub fn render(&self, catalog: &Catalog, locale: &str, answer: &ReplyContent<'_>) -> String {
        let zh = locale == "zh";
        let lang = if zh { &self.zh } else { &self.en };
        let pick = |map: &BTreeMap<String, String>| {
            answer
                .reason
                .and_then(|r| map.get(r))
                .or_else(|| map.get("other"))
                .cloned()
                .unwrap_or_default()
        };
        let template = match answer.outcome {
            ReplyOutcome::OrderPlaced => lang.order_placed.clone(),
            ReplyOutcome::OrderFailed => pick(&lang.order_failed),
            ReplyOutcome::Denied => pick(&lang.denied),
            ReplyOutcome::Rejected => pick(&lang.rejected),
            ReplyOutcome::Expired => lang.expired.clone(),
        };
        let items = answer
            .items
            .iter()
            .map(|i| format!("{} × {}", i.quantity, display_name(catalog, &i.sku, zh)))
            .collect::<Vec<_>>()
            .join(if zh { "、" } else { ", " });
        template
            .replace("{order_id}", answer.order_id.unwrap_or_default())
            .replace("{items}", &items)
            .replace("{credit}", &yuan(answer.credit_cents))
            .replace("{to_pay}", &yuan(answer.to_pay_cents))
            .replace("{reason}", answer.reason.unwrap_or_default())
            .replace("{example}", &lang.example)
    }
}

/// The catalog name of `sku` in the reply's language.
fn display_name(catalog: &Catalog, sku: &str, zh: bool) -> String {
    catalog
        .sku(sku)
        .map_or_else(|| sku.to_owned(), |s| s.display_name(zh).to_owned())
}

/// Writes the final reply for every request.
pub struct ReplyStage {
    catalog: Catalog,
    templates: Templates,
    campaigns: Arc<Campaigns>,
    /// Partitions of `chat.gateway.replies`: a route outside them is
    /// ignored (the reply is still on `chat.replies`).
    gateway_partitions: i32,
    /// Off only to inject a fault (see [`ReplyStage::forgetting_answers`]).
    restores_answers: bool,
}

impl ReplyStage {
    pub fn new(catalog: Catalog, templates: Templates, campaigns: Arc<Campaigns>) -> Self {
        Self {
            catalog,
            templates,
            campaigns,
            gateway_partitions: 0,
            restores_answers: true,
        }
    }

    /// A fault for tests: a restored partition does not know which
    /// requests it answered, so a redelivered terminal record is answered
    /// again (`tests/tests/storm.rs` shows it caught).
    pub fn forgetting_answers(mut self) -> Self {
        self.restores_answers = false;
        self
    }

    /// Copies the replies of requests that name a reply partition below
    /// `partitions` to that partition of `chat.gateway.replies`.
    pub fn with_gateway_partitions(mut self, partitions: i32) -> Self {
        self.gateway_partitions = partitions;
        self
    }

    /// Where a copy of the reply to `record` goes, if anywhere.
    fn route(&self, record: &Record) -> Option<i32> {
        let route = match record {
            Record::Intent(i) => i.reply_partition,
            Record::Decision(d) => d.reply_partition,
            Record::Order(o) => o.reply_partition,
            _ => None,
        }?;
        (0..self.gateway_partitions)
            .contains(&route)
            .then_some(route)
    }

    /// The reply a terminal record calls for, or `None` when the record is
    /// not terminal or its request was already answered.
    pub fn answer(&self, answered: &mut Recent, record: Record, now_ms: i64) -> Option<Reply> {
        let (head, answer) = match &record {
            Record::Intent(i) if i.outcome == IntentOutcome::Rejected => (
                Head::of(
                    &i.request_id,
                    &i.session_id,
                    &i.user_id,
                    &i.campaign_id,
                    &i.trace_id,
                    i.prompt_time_ms,
                    &i.locale,
                ),
                ReplyContent {
                    outcome: ReplyOutcome::Rejected,
                    reason: i.reason.as_deref(),
                    order_id: None,
                    items: &i.items,
                    credit_cents: 0,
                    to_pay_cents: 0,
                },
            ),
            Record::Decision(d) if d.outcome == DecisionOutcome::Denied => (
                Head::of(
                    &d.request_id,
                    &d.session_id,
                    &d.user_id,
                    &d.campaign_id,
                    &d.trace_id,
                    d.prompt_time_ms,
                    &d.locale,
                ),
                ReplyContent {
                    outcome: ReplyOutcome::Denied,
                    reason: d.reason.as_deref(),
                    order_id: None,
                    items: &d.items,
                    credit_cents: 0,
                    to_pay_cents: d.total_cents,
                },
            ),
            Record::Order(o) => (
                Head::of(
                    &o.request_id,
                    &o.session_id,
                    &o.user_id,
                    &o.campaign_id,
                    &o.trace_id,
                    o.prompt_time_ms,
                    &o.locale,
                ),
                ReplyContent {
                    outcome: match o.outcome {
                        OrderOutcome::Placed => ReplyOutcome::OrderPlaced,
                        OrderOutcome::Failed => ReplyOutcome::OrderFailed,
                    },
                    reason: o.reason.as_deref(),
                    order_id: Some(&o.order_id),
                    items: &o.items,
                    credit_cents: o.credit_cents,
                    to_pay_cents: o.to_pay_cents,
                },
            ),
            _ => return None,
        };
        // Whichever stage ended it, an expired request charged nothing.
        let answer = if answer.reason == Some(EXPIRED) {
            ReplyContent {
                outcome: ReplyOutcome::Expired,
                order_id: None,
                credit_cents: 0,
                to_pay_cents: 0,
                ..answer
            }
        } else {
            answer
        };
        if !answered.insert(head.request_id) {
            return None;
        }
        let text = self.templates.render(&self.catalog, head.locale, &answer);
        Some(Reply {
            request_id: head.request_id.to_owned(),
            session_id: head.session_id.to_owned(),
            user_id: head.user_id.to_owned(),
            campaign_id: head.campaign_id.to_owned(),
            trace_id: head.trace_id.to_owned(),
            event_time_ms: now_ms,
            prompt_time_ms: head.prompt_time_ms,
            locale: head.locale.to_owned(),
            outcome: answer.outcome,
            reason: answer.reason.map(str::to_owned),
            text,
            order_id: answer.order_id.map(str::to_owned),
            credit_cents: answer.credit_cents,
            to_pay_cents: answer.to_pay_cents,
            latency_ms: now_ms - head.prompt_time_ms,
        })
    }
}

/// The fields every reply copies from the record it answers.
struct Head<'a> {
    request_id: &'a str,
    session_id: &'a str,
    user_id: &'a str,
    campaign_id: &'a str,
    trace_id: &'a str,
    prompt_time_ms: i64,
    locale: &'a str,
}

impl<'a> Head<'a> {
    fn of(
        request_id: &'a str,
        session_id: &'a str,
        user_id: &'a str,
        campaign_id: &'a str,
        trace_id: &'a str,
        prompt_time_ms: i64,
        locale: &'a str,
    ) -> Self {
        Self {
            request_id,
            session_id,
            user_id,
            campaign_id,
            trace_id,
            prompt_time_ms,
            locale,
        }
    }
}

/// One partition's reply state.
pub struct ReplyState {
    /// The requests answered last, at most [`REPLY_WINDOW`].
    pub answered: Recent,
    /// The decisions partition, folded up to the record being handled, so
    /// a grant the ledger refused is answered as the denial it is.
    pub fold: DecisionsFold,
    /// The orders partition, folded up to the record being handled, so an
    /// order beyond the partition's stock is answered as failed.
    pub stock: StockFold,
}

impl Stage for ReplyStage {
    type State = ReplyState;

    fn plan(&self) -> Plan {
        Plan {
            id: StageId::Reply,
            inputs: &[Topic::Intents, Topic::Decisions, Topic::Orders],
            state: StatePlan {
                own_output: Some(OwnOutput {
                    topic: Topic::Replies,
                    window: u64::try_from(REPLY_WINDOW).ok(),
                    checkpoints: false,
                }),
                replay: &[
                    Replay {
                        input: Topic::Decisions,
                        from_checkpoints_of: Some(StageId::Coupon),
                    },
                    Replay {
                        input: Topic::Orders,
                        from_checkpoints_of: None,
                    },
                ],
            },
            wakeup: None,
        }
    }

    fn new_state(&self, _partition: i32) -> ReplyState {
        ReplyState {
            answered: Recent::new(REPLY_WINDOW),
            fold: DecisionsFold::new(Arc::clone(&self.campaigns)),
            stock: StockFold::new(Arc::clone(&self.campaigns)),
        }
    }

    fn restore(&self, st: &mut ReplyState, from: Restore<'_>) -> Result<(), ImageError> {
        match from {
            Restore::Output(Record::Reply(reply)) if self.restores_answers => {
                st.answered.insert(&reply.request_id);
            }
            // Each fold ignores the other log's records.
            Restore::Input(record) => {
                st.fold.apply(record);
                st.stock.apply(record);
            }
            Restore::InputImage(image) => {
                st.fold = DecisionsFold::from_image(Arc::clone(&self.campaigns), image)?;
            }
            Restore::Output(_) | Restore::OutputImage(_) => {}
        }
        Ok(())
    }

    fn handle(&self, st: &mut ReplyState, record: Record, now_ms: i64, out: &mut Collector) {
        let record = match record {
            Record::Treasury(t) if stock_sku(&t.resource).is_some() => {
                let record = Record::Treasury(t);
                if let (StockEffect::Returned(amount), Record::Treasury(t)) =
                    (st.stock.apply(&record), record)
                {
                    let forward = forward_return(t, amount, now_ms);
                    out.emit(Topic::Treasury, Record::Treasury(forward));
                }
                return;
            }
            Record::Decision(_) | Record::Treasury(_) => match (st.fold.apply(&record), record) {
                (Effect::Denied(refused), Record::Decision(mut d)) => {
                    if let Some(reason) = refused {
                        d.outcome = DecisionOutcome::Denied;
                        d.credit_cents = 0;
                        d.reason = Some(reason.to_owned());
                    }
                    Record::Decision(d)
                }
                _ => return,
            },
            Record::Order(_) => match (st.stock.apply(&record), record) {
                (StockEffect::Placed | StockEffect::Failed, order) => order,
                (StockEffect::Refused, Record::Order(o)) => {
                    if o.credit_cents > 0 {
                        out.emit(Topic::Decisions, Record::Decision(release(&o, now_ms)));
                    }
                    Record::Order(refused(o))
                }
                _ => return,
            },
            other => other,
        };
        let route = self.route(&record);
        if let Some(reply) = self.answer(&mut st.answered, record, now_ms) {
            // Both are acknowledged before the input's offset is stored.
            // A crash after only the reply was written loses the copy
            // (the restored state counts the request as answered); a
            // repeated copy is harmless, gateways keep the first
            // (docs/architecture.md, "The gateway").
            if let Some(partition) = route {
                let copy = Record::Reply(reply.clone());
                out.extend([Emit::to_partition(Topic::GatewayReplies, partition, copy)]);
            }
            out.emit(Topic::Replies, Record::Reply(reply));
        }
    }
}

/// A stock return the orders fold accepted, on its way to the treasury with
/// the amount the fold took.
fn forward_return(t: TreasuryRecord, amount: i64, now_ms: i64) -> TreasuryRecord {
    TreasuryRecord {
        kind: TreasuryKind::LeaseReturn,
        amount,
        event_time_ms: now_ms,
        ..t
    }
}

/// A placed order the stock fold refused, as the failed order it counts as.
fn refused(o: OrderEvent) -> OrderEvent {
    OrderEvent {
        outcome: OrderOutcome::Failed,
        to_pay_cents: 0,
        reason: Some(OUT_OF_STOCK.to_owned()),
        ..o
    }
}

/// The release of the credit of a refused order's grant. The coupon stage
/// writes the release of an order failed as written; this one only the
/// orders fold can see. The decisions fold counts one release per grant,
/// so a redelivered refused order releases nothing twice.
fn release(o: &OrderEvent, now_ms: i64) -> CouponDecision {
    CouponDecision {
        reply_partition: o.reply_partition,
        deadline_ms: None,
        request_id: o.request_id.clone(),
        session_id: o.session_id.clone(),
        user_id: o.user_id.clone(),
        campaign_id: o.campaign_id.clone(),
        trace_id: o.trace_id.clone(),
        event_time_ms: now_ms,
        prompt_time_ms: o.prompt_time_ms,
        locale: o.locale.clone(),
        outcome: DecisionOutcome::Released,
        items: o.items.clone(),
        total_cents: o.total_cents,
        credit_cents: o.credit_cents,
        reason: Some(OUT_OF_STOCK.to_owned()),
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
