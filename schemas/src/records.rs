//! The typed records carried on every chatcart topic.
//!
//! Each struct here has an Avro schema of the same shape under `schemas/avro/`
//! (the `.avsc` file is the contract for other languages; these types are the
//! contract for Rust). Every record carries the request it belongs to, the
//! user (which is also the Kafka key, so all of a user's records share a
//! partition), the campaign, its event time and a trace id.
//!
//! Outcomes are closed sets and so are Rust enums (Avro enums on the wire);
//! reasons are open sets that grow with the product and so travel as strings
//! (`snake_case` codes such as `budget_exhausted`), which keeps old readers
//! working when a new reason appears.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A shopping prompt as a chat front-end publishes it to `chat.prompts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Unique per request; replies and orders are keyed to it.
    pub request_id: String,
    /// The chat session, so a front-end can route the reply.
    pub session_id: String,
    /// The person; also the Kafka key.
    pub user_id: String,
    /// Campaign the prompt was sent under; empty means "the default campaign".
    pub campaign_id: String,
    /// Propagated to every record that follows from this prompt.
    pub trace_id: String,
    /// When the front-end sent the prompt (Unix milliseconds).
    pub event_time_ms: i64,
    /// What the person typed. Untrusted, personal data: never logged above debug.
    pub text: String,
    /// `zh` or `en` when the front-end knows it; detected from the text otherwise.
    pub locale: Option<String>,
    /// When the answer stops being wanted (Unix milliseconds): a stage that
    /// reads the request later ends it as [`ReplyOutcome::Expired`], with
    /// nothing charged. `None`: no deadline.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// The partition of `chat.gateway.replies` that a copy of the reply
    /// goes to, set by the gateway instance that accepted the request so
    /// that it alone reads the reply. `None`: `chat.replies` only.
    #[serde(default)]
    pub reply_partition: Option<i32>,
}

/// One line of an order: what, how many, and with which options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Catalog id, e.g. `milk-tea`.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: i32,
    /// Option name to value, e.g. `size` → `large`.
    pub options: BTreeMap<String, String>,
    /// Catalog price of one unit, in cents, at the time of extraction.
    pub unit_price_cents: i64,
}

/// Whether the intent stage understood a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOutcome {
    /// Items were found; the request goes on to the coupon stage.
    Extracted,
    /// Not a purchase or not understood; terminal, answered by the reply stage.
    Rejected,
}

/// What the intent stage made of a prompt, on `commerce.intents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentEvent {
    pub request_id: String,
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    /// When this record was made (Unix milliseconds).
    pub event_time_ms: i64,
    /// When the prompt was sent, carried along for end-to-end latency.
    pub prompt_time_ms: i64,
    /// `zh` or `en`: the language the reply will be written in.
    pub locale: String,
    /// The prompt's deadline, carried along.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// The prompt's reply partition, carried along.
    #[serde(default)]
    pub reply_partition: Option<i32>,
    pub outcome: IntentOutcome,
    pub items: Vec<Item>,
    /// A coupon code the person named, if any.
    pub coupon_code: Option<String>,
    /// Sum of quantity × unit price over the items, in cents.
    pub total_cents: i64,
    /// Why the prompt was rejected (`not_understood`, `not_a_purchase`, …).
    pub reason: Option<String>,
}

/// The coupon stage's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// Credit was granted; the request goes on to fulfillment.
    Granted,
    /// No credit; terminal, answered by the reply stage.
    Denied,
    /// The credit of an earlier grant for this request is given back,
    /// because its order failed.
    Released,
}

/// A coupon decision, on `commerce.decisions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponDecision {
    pub request_id: String,
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    pub event_time_ms: i64,
    pub prompt_time_ms: i64,
    pub locale: String,
    /// The prompt's deadline, carried along.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    /// The prompt's reply partition, carried along.
    #[serde(default)]
    pub reply_partition: Option<i32>,
    pub outcome: DecisionOutcome,
    pub items: Vec<Item>,
    pub total_cents: i64,
    /// Credit granted, in cents (0 when denied).
    pub credit_cents: i64,
    /// Why credit was denied (`budget_exhausted`, `already_used`, …).
    pub reason: Option<String>,
}

/// Whether an order was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    Placed,
    Failed,
}

/// An order, on `commerce.orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub request_id: String,
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    pub event_time_ms: i64,
    pub prompt_time_ms: i64,
    pub locale: String,
    /// The prompt's reply partition, carried along.
    #[serde(default)]
    pub reply_partition: Option<i32>,
    /// Derived from the request id, so a redelivered decision names the same order.
    pub order_id: String,
    pub outcome: OrderOutcome,
    pub items: Vec<Item>,
    pub total_cents: i64,
    pub credit_cents: i64,
    /// What the person still pays: total minus credit.
    pub to_pay_cents: i64,
    /// Why the order failed (`out_of_stock`, …).
    pub reason: Option<String>,
}

/// The kind of answer a person got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyOutcome {
    /// An order was placed (with or without credit).
    OrderPlaced,
    /// The order could not be placed.
    OrderFailed,
    /// Campaign credit was denied.
    Denied,
    /// The prompt was not understood as a purchase.
    Rejected,
    /// The prompt's deadline passed before the pipeline was done with it:
    /// nothing was charged and no credit was used.
    Expired,
}

/// The one final answer to a request, on `chat.replies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub request_id: String,
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    pub event_time_ms: i64,
    pub prompt_time_ms: i64,
    pub locale: String,
    pub outcome: ReplyOutcome,
    /// The precise reason behind a denial, rejection or failure.
    pub reason: Option<String>,
    /// The text shown to the person, in `locale`.
    pub text: String,
    pub order_id: Option<String>,
    pub credit_cents: i64,
    pub to_pay_cents: i64,
    /// `event_time_ms - prompt_time_ms`: how long the person waited.
    pub latency_ms: i64,
}

/// What a treasury record does to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreasuryKind {
    /// On the treasury: a partition asks for a lease, sized by the fold.
    LeaseRequest,
    /// On a decisions partition, then on the treasury: a partition hands
    /// unused allowance back.
    LeaseReturn,
    /// On a decisions partition: a lease the treasury granted becomes part
    /// of the partition's allowance.
    LeaseCredit,
}

/// A movement of campaign budget (or stock) between the treasury and a
/// partition: lease requests and returns on the one-partition
/// `campaign.treasury` topic, lease credits and returns on a
/// `commerce.decisions` partition. What each one does is decided by folding
/// its topic in log order (see the pipeline's `ledger` module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreasuryRecord {
    /// The lease id (request, credit) or return id: unique, so a repeated
    /// record is counted once.
    pub request_id: String,
    /// Empty: leases belong to partitions, not people.
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    pub event_time_ms: i64,
    pub kind: TreasuryKind,
    /// `budget`, or `stock:<sku>`.
    pub resource: String,
    /// The pipeline partition the lease is for.
    pub partition: i32,
    /// Cents of budget or units of stock: 0 in a request (the treasury fold
    /// sizes the lease), the lease size in a credit, the amount returned.
    pub amount: i64,
}

/// Whether a gateway published a request it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayOutcome {
    /// Published to `chat.prompts`; the pipeline answers it.
    Admitted,
    /// Answered `429` at once and not published.
    Shed,
}

/// What a `chatcart gateway` instance did with one request, on
/// `chat.gateway.decisions`: the record of the front door's load, read by
/// analytics only (no stage and no audit reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDecision {
    pub request_id: String,
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub trace_id: String,
    /// When the gateway decided (Unix milliseconds).
    pub event_time_ms: i64,
    /// The gateway instance (`gateway.instance`).
    pub instance: i32,
    pub outcome: GatewayOutcome,
    /// Shed: [`OVER_MAX_WAIT`](crate::reason::OVER_MAX_WAIT),
    /// [`PIPELINE_STALLED`](crate::reason::PIPELINE_STALLED) or
    /// [`NO_ESTIMATE_YET`](crate::reason::NO_ESTIMATE_YET); admitted:
    /// [`FREE_ORDERS_USED_UP`](crate::reason::FREE_ORDERS_USED_UP) when the
    /// person was told so at once.
    pub reason: Option<String>,
    /// Requests ahead of this one at the first stage.
    pub position: i64,
    /// Admitted: the wait promised. Shed: the estimate that was over the
    /// limit, `None` when there was none.
    pub estimated_wait_ms: Option<i64>,
}

/// The `snake_case` code of an outcome or kind (`granted`, `order_placed`,
/// `lease_credit`, …): the text it has in JSON and in the analytics tables.
pub fn code(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Any record of any chatcart topic, as the codec decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Prompt(Prompt),
    Intent(IntentEvent),
    Decision(CouponDecision),
    Order(OrderEvent),
    Reply(Reply),
    Treasury(TreasuryRecord),
    Gateway(GatewayDecision),
}

impl Record {
    /// The request this record belongs to.
    pub fn request_id(&self) -> &str {
        match self {
            Record::Prompt(r) => &r.request_id,
            Record::Intent(r) => &r.request_id,
            Record::Decision(r) => &r.request_id,
            Record::Order(r) => &r.request_id,
            Record::Reply(r) => &r.request_id,
            Record::Treasury(r) => &r.request_id,
            Record::Gateway(r) => &r.request_id,
        }
    }

    /// The trace the request's records share across stages (the prompt's
    /// `trace_id`, or its request id when the front-end set none).
    pub fn trace_id(&self) -> &str {
        match self {
            Record::Prompt(r) if r.trace_id.is_empty() => &r.request_id,
            Record::Prompt(r) => &r.trace_id,
            Record::Intent(r) => &r.trace_id,
            Record::Decision(r) => &r.trace_id,
            Record::Order(r) => &r.trace_id,
            Record::Reply(r) => &r.trace_id,
            Record::Treasury(r) => &r.trace_id,
            Record::Gateway(r) => &r.trace_id,
        }
    }

    /// The person; the Kafka key of the record.
    pub fn user_id(&self) -> &str {
        match self {
            Record::Prompt(r) => &r.user_id,
            Record::Intent(r) => &r.user_id,
            Record::Decision(r) => &r.user_id,
            Record::Order(r) => &r.user_id,
            Record::Reply(r) => &r.user_id,
            Record::Treasury(r) => &r.user_id,
            Record::Gateway(r) => &r.user_id,
        }
    }

    /// The record type's name, as in its Avro schema.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Prompt(_) => "Prompt",
            Record::Intent(_) => "IntentEvent",
            Record::Decision(_) => "CouponDecision",
            Record::Order(_) => "OrderEvent",
            Record::Reply(_) => "Reply",
            Record::Treasury(_) => "TreasuryRecord",
            Record::Gateway(_) => "GatewayDecision",
        }
    }
}
