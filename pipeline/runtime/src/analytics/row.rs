//! The `events` row for one Kafka record, and the `campaigns` rows for the
//! configured campaigns. Prompt text and reply text are never stored.
//!
//! `latency_ms` is a wait: for a reply, how long the person waited; for a
//! gateway's decision, the wait it estimated (and, if it admitted the
//! request, promised).

use connectors::{CampaignRow, EventRow};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use schemas::{Item, Record, code};

use crate::Context;
use ledger::campaign::Campaigns;
use stages::Topic;

/// The stage that writes each kind of record.
fn stage_of(record: &Record) -> &'static str {
    match record {
        Record::Prompt(_) => "front-end",
        Record::Intent(_) => "intent",
        Record::Decision(_) | Record::Treasury(_) => "coupon",
        Record::Order(_) => "fulfillment",
        Record::Reply(_) => "reply",
        Record::Gateway(_) => "gateway",
    }
}

fn items(row: &mut EventRow, items: &[Item]) {
    row.item_skus = items.iter().map(|i| i.sku.clone()).collect();
    row.item_quantities = items.iter().map(|i| i.quantity).collect();
}

/// The row for one Kafka record. `default_campaign` stands in for a
/// prompt's empty campaign id, as the intent stage does.
pub fn row(ctx: &Context, default_campaign: &str, message: &BorrowedMessage<'_>) -> EventRow {
    let topic = ctx.topics.topic_of(message.topic());
    let payload = message.payload().unwrap_or_default();
    let mut row = EventRow {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        event_time_ms: message.timestamp().to_millis().unwrap_or_default(),
        ..EventRow::default()
    };
    if topic == Some(Topic::Dlq) {
        let header = |key: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|hd| hd.key == key)
                    .and_then(|hd| hd.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        row.kind = "dead_letter".into();
        row.stage = header("chatcart.stage").unwrap_or_default();
        row.reason = header("chatcart.error").unwrap_or_default();
        return row;
    }
    let decoded = match topic {
        Some(Topic::Prompts) => ctx.codec.decode_prompt(payload).map(Record::Prompt),
        _ => ctx.codec.decode(payload),
    };
    let record = match decoded {
        Ok(record) => record,
        Err(e) => {
            row.kind = "undecodable".into();
            row.reason = e.to_string();
            return row;
        }
    };
    row.request_id = record.request_id().to_owned();
    row.user_id = record.user_id().to_owned();
    row.stage = stage_of(&record).into();
    row.kind = record.kind().into();
    let (campaign, trace, event_time, prompt_time) = match &record {
        Record::Prompt(r) => {
            row.locale = r.locale.clone().unwrap_or_default();
            let campaign = if r.campaign_id.is_empty() {
                default_campaign
            } else {
                r.campaign_id.as_str()
            };
            (campaign, &r.trace_id, r.event_time_ms, r.event_time_ms)
        }
        Record::Intent(r) => {
            items(&mut row, &r.items);
            row.locale = r.locale.clone();
            row.outcome = code(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            (
                r.campaign_id.as_str(),
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Decision(r) => {
            items(&mut row, &r.items);
            row.locale = r.locale.clone();
            row.outcome = code(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            row.credit_cents = r.credit_cents;
            (
                r.campaign_id.as_str(),
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Order(r) => {
            items(&mut row, &r.items);
            row.locale = r.locale.clone();
            row.outcome = code(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.total_cents = r.total_cents;
            row.credit_cents = r.credit_cents;
            (
                r.campaign_id.as_str(),
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Reply(r) => {
            row.locale = r.locale.clone();
            row.outcome = code(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            row.credit_cents = r.credit_cents;
            (
                r.campaign_id.as_str(),
                &r.trace_id,
                r.event_time_ms,
                r.prompt_time_ms,
            )
        }
        Record::Gateway(r) => {
            row.outcome = code(r.outcome);
            row.reason = r.reason.clone().unwrap_or_default();
            // The one wait a decision has is the estimate; the reply's row
            // holds the wait that happened.
            row.latency_ms = r.estimated_wait_ms.unwrap_or_default().max(0);
            let campaign = if r.campaign_id.is_empty() {
                default_campaign
            } else {
                r.campaign_id.as_str()
            };
            row.campaign_id = campaign.to_owned();
            row.trace_id = r.trace_id.clone();
            row.event_time_ms = r.event_time_ms;
            return row;
        }
        Record::Treasury(r) => {
            row.outcome = code(r.kind);
            row.resource = r.resource.clone();
            row.credit_cents = r.amount;
            (
                r.campaign_id.as_str(),
                &r.trace_id,
                r.event_time_ms,
                r.event_time_ms,
            )
        }
    };
    row.campaign_id = campaign.to_owned();
    row.trace_id = trace.clone();
    if event_time > 0 {
        row.event_time_ms = event_time;
    }
    row.latency_ms = (row.event_time_ms - prompt_time).max(0);
    row
}

/// One `campaigns` row per configured campaign, stamped `now_ms`.
pub fn campaign_rows(campaigns: &Campaigns, now_ms: i64) -> Vec<CampaignRow> {
    campaigns
        .iter()
        .map(|c| CampaignRow {
            campaign_id: c.id.clone(),
            budget_cents: c.budget_cents,
            per_user_limit: c.per_user_limit,
            starts_at_ms: c.starts_ms,
            ends_at_ms: c.ends_ms,
            stock_skus: c.stock.keys().cloned().collect(),
            stock_units: c.stock.values().copied().collect(),
            recorded_at_ms: now_ms,
        })
        .collect()
}
