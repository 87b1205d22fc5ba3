//! Records, schemas and hand-built Avro bytes shared by the integration tests.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::{Schema, writer::datum::GenericDatumWriter};
use chatcart_schemas::*;

pub const MARKER: &str = "PERSONAL-MARKER-我的地址是秘密";

/// The prompt schema as front-ends published it before `locale` existed.
pub const PROMPT_V1: &str = r#"{
  "type": "record", "name": "Prompt", "namespace": "chatcart",
  "fields": [
    {"name": "request_id", "type": "string"},
    {"name": "session_id", "type": "string"},
    {"name": "user_id", "type": "string"},
    {"name": "campaign_id", "type": "string"},
    {"name": "trace_id", "type": "string"},
    {"name": "event_time_ms", "type": "long"},
    {"name": "text", "type": "string"}
  ]
}"#;

pub fn prompt() -> Prompt {
    Prompt {
        reply_partition: None,
        deadline_ms: None,
        request_id: "req-1".into(),
        session_id: "sess-9".into(),
        user_id: "user-42".into(),
        campaign_id: "double-11".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        event_time_ms: 1_700_000_000_123,
        text: "我要两杯大杯珍珠奶茶，少冰".into(),
        locale: Some("zh".into()),
    }
}

pub fn items() -> Vec<Item> {
    vec![
        Item {
            sku: "milk-tea".into(),
            quantity: 2,
            options: BTreeMap::from([
                ("size".to_string(), "large".to_string()),
                ("冰量".to_string(), "少冰".to_string()),
            ]),
            unit_price_cents: 1_800,
        },
        Item {
            sku: "egg-tart".into(),
            quantity: 1,
            options: BTreeMap::new(),
            unit_price_cents: -5,
        },
    ]
}

pub fn all_records() -> Vec<Record> {
    vec![
        Record::Prompt(prompt()),
        Record::Prompt(Prompt {
            locale: None,
            campaign_id: String::new(),
            ..prompt()
        }),
        Record::Intent(IntentEvent {
            reply_partition: None,
            deadline_ms: None,
            request_id: "req-1".into(),
            session_id: "sess-9".into(),
            user_id: "user-42".into(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_200,
            prompt_time_ms: 1_700_000_000_123,
            locale: "zh".into(),
            outcome: IntentOutcome::Extracted,
            items: items(),
            coupon_code: Some("WELCOME".into()),
            total_cents: 3_595,
            reason: None,
        }),
        Record::Intent(IntentEvent {
            reply_partition: None,
            deadline_ms: None,
            request_id: "req-2".into(),
            session_id: String::new(),
            user_id: "user-43".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 0,
            prompt_time_ms: i64::MIN,
            locale: "en".into(),
            outcome: IntentOutcome::Rejected,
            items: vec![],
            coupon_code: None,
            total_cents: 0,
            reason: Some("not_a_purchase".into()),
        }),
        Record::Decision(CouponDecision {
            reply_partition: None,
            deadline_ms: None,
            request_id: "req-1".into(),
            session_id: "sess-9".into(),
            user_id: "user-42".into(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_300,
            prompt_time_ms: 1_700_000_000_123,
            locale: "zh".into(),
            outcome: DecisionOutcome::Denied,
            items: items(),
            total_cents: 3_595,
            credit_cents: 0,
            reason: Some("budget_exhausted".into()),
        }),
        Record::Order(OrderEvent {
            reply_partition: None,
            request_id: "req-1".into(),
            session_id: "sess-9".into(),
            user_id: "user-42".into(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_400,
            prompt_time_ms: 1_700_000_000_123,
            locale: "zh".into(),
            order_id: "ord-req-1".into(),
            outcome: OrderOutcome::Placed,
            items: items(),
            total_cents: 3_595,
            credit_cents: 500,
            to_pay_cents: 3_095,
            reason: None,
        }),
        Record::Reply(Reply {
            request_id: "req-1".into(),
            session_id: "sess-9".into(),
            user_id: "user-42".into(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_500,
            prompt_time_ms: 1_700_000_000_123,
            locale: "zh".into(),
            outcome: ReplyOutcome::OrderPlaced,
            reason: None,
            text: "已下单：两杯大杯珍珠奶茶，优惠 5.00 元，还需支付 30.95 元。".into(),
            order_id: Some("ord-req-1".into()),
            credit_cents: 500,
            to_pay_cents: 3_095,
            latency_ms: 377,
        }),
        Record::Reply(Reply {
            request_id: "req-2".into(),
            session_id: "s".into(),
            user_id: "user-43".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 10,
            prompt_time_ms: 5,
            locale: "en".into(),
            outcome: ReplyOutcome::OrderFailed,
            reason: Some("out_of_stock".into()),
            text: "Sorry, egg tarts are sold out.".into(),
            order_id: None,
            credit_cents: 0,
            to_pay_cents: 0,
            latency_ms: 5,
        }),
        Record::Treasury(TreasuryRecord {
            request_id: "lease-7".into(),
            user_id: String::new(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_600,
            kind: TreasuryKind::LeaseReturn,
            resource: "stock:milk-tea".into(),
            partition: 11,
            amount: i64::MAX,
        }),
        Record::Gateway(GatewayDecision {
            request_id: "req-3".into(),
            session_id: "s".into(),
            user_id: "user-44".into(),
            campaign_id: "double-11".into(),
            trace_id: "t".into(),
            event_time_ms: 1_700_000_000_700,
            instance: 2,
            outcome: GatewayOutcome::Admitted,
            reason: Some("free_orders_used_up".into()),
            position: 1_234,
            estimated_wait_ms: Some(4_500),
        }),
        Record::Gateway(GatewayDecision {
            request_id: "req-4".into(),
            session_id: String::new(),
            user_id: "user-45".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 1_700_000_000_800,
            instance: 0,
            outcome: GatewayOutcome::Shed,
            reason: Some("pipeline_stalled".into()),
            position: 0,
            estimated_wait_ms: None,
        }),
    ]
}

/// Avro `long` (and the length prefix of strings): zig-zag varint.
pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn put_str(out: &mut Vec<u8>, bytes: &[u8]) {
    put_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// A Prompt datum under the current schema, written field by field, with
/// `text` given as raw bytes so that invalid UTF-8 can be produced.
pub fn prompt_datum(request_id: &str, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, request_id.as_bytes());
    put_str(&mut out, b"sess");
    put_str(&mut out, b"user-1");
    put_str(&mut out, b"");
    put_str(&mut out, b"");
    put_long(&mut out, 42);
    put_str(&mut out, text);
    put_long(&mut out, 0); // locale: union branch 0, null
    put_long(&mut out, 0); // deadline_ms: null
    put_long(&mut out, 0); // reply_partition: null
    out
}

pub fn header_of(schema_json: &str) -> Vec<u8> {
    let schema = Schema::parse_str(schema_json).expect("test schema parses");
    let mut header = vec![0xC3, 0x01];
    header.extend_from_slice(&schema.fingerprint::<Rabin>().bytes);
    header
}

pub fn confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// A Prompt datum written by apache-avro with the old (locale-less) schema.
pub fn v1_datum() -> Vec<u8> {
    let schema = Schema::parse_str(PROMPT_V1).expect("old prompt schema parses");
    let value = Value::Record(vec![
        ("request_id".into(), Value::String("req-old".into())),
        ("session_id".into(), Value::String("sess-old".into())),
        ("user_id".into(), Value::String("user-old".into())),
        ("campaign_id".into(), Value::String("".into())),
        ("trace_id".into(), Value::String("trace-old".into())),
        ("event_time_ms".into(), Value::Long(1_600_000_000_000)),
        ("text".into(), Value::String("一杯美式".into())),
    ]);
    GenericDatumWriter::builder(&schema)
        .build()
        .expect("writer for the old prompt schema")
        .write_value_to_vec(value)
        .expect("old prompt datum encodes")
}

/// The single-object bytes `record` has when written with `schema_json`, an
/// earlier version of its schema: the fields that version lacks are left out.
pub fn written_with(schema_json: &str, record: &Record) -> Vec<u8> {
    let schema = Schema::parse_str(schema_json).expect("earlier schema parses");
    let value = match record {
        Record::Prompt(r) => apache_avro::to_value(r),
        Record::Intent(r) => apache_avro::to_value(r),
        Record::Decision(r) => apache_avro::to_value(r),
        Record::Order(r) => apache_avro::to_value(r),
        Record::Reply(r) => apache_avro::to_value(r),
        Record::Treasury(r) => apache_avro::to_value(r),
        Record::Gateway(r) => apache_avro::to_value(r),
    }
    .expect("record converts to an Avro value");
    let Value::Record(fields) = value else {
        panic!("a record converts to an Avro record");
    };
    let known =
        serde_json::from_str::<serde_json::Value>(schema_json).expect("schema is JSON")["fields"]
            .as_array()
            .expect("a record schema has fields")
            .iter()
            .map(|f| f["name"].as_str().expect("a field has a name").to_owned())
            .collect::<Vec<_>>();
    let fields = fields
        .into_iter()
        .filter(|(name, _)| known.contains(name))
        .collect();
    let value = Value::Record(fields)
        .resolve(&schema)
        .expect("the record fits the earlier schema");
    let mut bytes = header_of(schema_json);
    bytes.extend(
        GenericDatumWriter::builder(&schema)
            .build()
            .expect("writer for the earlier schema")
            .write_value_to_vec(value)
            .expect("datum encodes"),
    );
    bytes
}
