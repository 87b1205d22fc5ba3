//! Benchmark of the codec on the records the pipeline moves most, in memory.
//!
//! ```sh
//! cargo bench -p chatcart-schemas --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `encode/<kind>/<variant>`: encoding one record, single-object header
//!   included; every stage does this once per record it emits.
//! - `decode/<kind>/<variant>`: decoding those bytes; every stage does this
//!   once per record it consumes.
//!
//! `<variant>` is `codec` (the [`Codec`], what the pipeline calls),
//! `apache_avro` or `serde_avro_fast` (the two libraries' serde paths, as the
//! codec uses or used them), so the libraries are compared under the same
//! load on this shared machine.
//! - `decode_prompt/avro`: [`Codec::decode_prompt`] of the prompt, what the
//!   intent stage and the analytics sink call (decode plus validation).
//!
//! Throughput is in records per second. The records are shaped like campaign
//! traffic: UUID request ids, 32-hex trace ids, a Chinese prompt of about 20
//! characters, two order lines with options.

use std::collections::BTreeMap;
use std::hint::black_box;

use apache_avro::GenericSingleObjectReader;
use apache_avro::schema::ResolvedSchema;
use chatcart_schemas::codec::{
    DECISION_SCHEMA, GATEWAY_DECISION_SCHEMA, INTENT_SCHEMA, ORDER_SCHEMA, PROMPT_SCHEMA,
    REPLY_SCHEMA, TREASURY_SCHEMA,
};
use chatcart_schemas::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;
use serde::de::DeserializeOwned;

const REQUEST: &str = "7f3c9e2a-5b1d-4c8e-9a6f-2d4b8e1c0a93";
const SESSION: &str = "sess-b41f2c9d";
const USER: &str = "user-0001842";
const CAMPAIGN: &str = "spring-festival-2027";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PROMPT_MS: i64 = 1_795_000_000_123;

fn items() -> Vec<Item> {
    vec![
        Item {
            sku: "milk-tea".into(),
            quantity: 2,
            options: BTreeMap::from([
                ("size".to_string(), "large".to_string()),
                ("ice".to_string(), "less".to_string()),
                ("sugar".to_string(), "half".to_string()),
            ]),
            unit_price_cents: 1_800,
        },
        Item {
            sku: "egg-tart".into(),
            quantity: 4,
            options: BTreeMap::new(),
            unit_price_cents: 850,
        },
    ]
}

/// One record of each kind the pipeline moves most, in pipeline order.
fn records() -> Vec<(&'static str, Record)> {
    vec![
        (
            "prompt",
            Record::Prompt(Prompt {
                reply_partition: None,
                deadline_ms: None,
                request_id: REQUEST.into(),
                session_id: SESSION.into(),
                user_id: USER.into(),
                campaign_id: CAMPAIGN.into(),
                trace_id: TRACE.into(),
                event_time_ms: PROMPT_MS,
                text: "帮我买两杯大杯珍珠奶茶少冰半糖，再来四个蛋挞".into(),
                locale: Some("zh".into()),
            }),
        ),
        (
            "intent",
            Record::Intent(IntentEvent {
                reply_partition: None,
                deadline_ms: None,
                request_id: REQUEST.into(),
                session_id: SESSION.into(),
                user_id: USER.into(),
                campaign_id: CAMPAIGN.into(),
                trace_id: TRACE.into(),
                event_time_ms: PROMPT_MS + 4,
                prompt_time_ms: PROMPT_MS,
                locale: "zh".into(),
                outcome: IntentOutcome::Extracted,
                items: items(),
                coupon_code: Some("SPRING50".into()),
                total_cents: 7_000,
                reason: None,
            }),
        ),
        (
            "decision",
            Record::Decision(CouponDecision {
                reply_partition: None,
                deadline_ms: None,
                request_id: REQUEST.into(),
                session_id: SESSION.into(),
                user_id: USER.into(),
                campaign_id: CAMPAIGN.into(),
                trace_id: TRACE.into(),
                event_time_ms: PROMPT_MS + 9,
                prompt_time_ms: PROMPT_MS,
                locale: "zh".into(),
                outcome: DecisionOutcome::Granted,
                items: items(),
                total_cents: 7_000,
                credit_cents: 500,
                reason: None,
            }),
        ),
        (
            "order",
            Record::Order(OrderEvent {
                reply_partition: None,
                request_id: REQUEST.into(),
                session_id: SESSION.into(),
                user_id: USER.into(),
                campaign_id: CAMPAIGN.into(),
                trace_id: TRACE.into(),
                event_time_ms: PROMPT_MS + 15,
                prompt_time_ms: PROMPT_MS,
                locale: "zh".into(),
                order_id: format!("ord-{REQUEST}"),
                outcome: OrderOutcome::Placed,
                items: items(),
                total_cents: 7_000,
                credit_cents: 500,
                to_pay_cents: 6_500,
                reason: None,
            }),
        ),
        (
            "reply",
            Record::Reply(Reply {
                request_id: REQUEST.into(),
                session_id: SESSION.into(),
                user_id: USER.into(),
                campaign_id: CAMPAIGN.into(),
                trace_id: TRACE.into(),
                event_time_ms: PROMPT_MS + 21,
                prompt_time_ms: PROMPT_MS,
                locale: "zh".into(),
                outcome: ReplyOutcome::OrderPlaced,
                reason: None,
                text: "已下单：两杯大杯珍珠奶茶、四个蛋挞，优惠 5.00 元，还需支付 65.00 元。"
                    .into(),
                order_id: Some(format!("ord-{REQUEST}")),
                credit_cents: 500,
                to_pay_cents: 6_500,
                latency_ms: 21,
            }),
        ),
    ]
}

/// One schema as each library has it, for the library-level variants.
struct Libs {
    apache: apache_avro::Schema,
    fast: serde_avro_fast::Schema,
    header: Vec<u8>,
}

impl Libs {
    fn new(json: &str) -> Libs {
        let apache = apache_avro::Schema::parse_str(json).expect("bundled schema parses");
        let fast: serde_avro_fast::Schema = json.parse().expect("bundled schema parses");
        let mut header = vec![0xC3, 0x01];
        header.extend_from_slice(fast.rabin_fingerprint());
        Libs {
            apache,
            fast,
            header,
        }
    }
}

/// The three ways of encoding and decoding one record, each run right after
/// the others so that they share the machine's load:
///
/// - `codec`: [`Codec::encode`] / [`Codec::decode`], what the pipeline calls;
/// - `apache_avro`: apache-avro's serde writer and reader with the names
///   resolved once, as the codec used them before serde_avro_fast;
/// - `serde_avro_fast`: serde_avro_fast with a schema parsed once.
///
/// The library variants write the header and check it, as the codec does.
fn bench_kind<T>(c: &mut Criterion, kind: &str, record: &Record, value: &T, schema_json: &str)
where
    T: Serialize + DeserializeOwned,
{
    let codec = Codec::new();
    let libs = Libs::new(schema_json);
    let names = ResolvedSchema::new(&libs.apache).expect("bundled schema resolves");
    let reader = GenericSingleObjectReader::builder()
        .schema(libs.apache.clone())
        .header(Vec::new())
        .build()
        .expect("reader for a bundled schema");
    let bytes = codec.encode(record).expect("bench record encodes");

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("{kind}/codec"), |b| {
        b.iter(|| codec.encode(black_box(record)))
    });
    g.bench_function(format!("{kind}/apache_avro"), |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(&libs.header);
            apache_avro::write_avro_datum_ref(
                &libs.apache,
                names.get_names(),
                black_box(value),
                &mut out,
            )
            .map(|_| out)
        })
    });
    g.bench_function(format!("{kind}/serde_avro_fast"), |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(&libs.header);
            let mut config = serde_avro_fast::ser::SerializerConfig::new(&libs.fast);
            serde_avro_fast::to_datum(black_box(value), out, &mut config)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("{kind}/codec"), |b| {
        b.iter(|| codec.decode(black_box(&bytes)))
    });
    g.bench_function(format!("{kind}/apache_avro"), |b| {
        b.iter(|| {
            let (header, mut datum) = black_box(&bytes[..]).split_at(10);
            assert_eq!(header, libs.header);
            let value = reader.read_deser::<T>(&mut datum);
            assert!(datum.is_empty());
            value
        })
    });
    g.bench_function(format!("{kind}/serde_avro_fast"), |b| {
        b.iter(|| {
            let (header, datum) = black_box(&bytes[..]).split_at(10);
            assert_eq!(header, libs.header);
            let mut state = serde_avro_fast::de::DeserializerState::from_slice(datum, &libs.fast);
            let value = T::deserialize(state.deserializer());
            let mut rest = state.into_reader();
            assert!(std::io::BufRead::fill_buf(&mut rest).is_ok_and(|r| r.is_empty()));
            value
        })
    });
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    for (kind, record) in records() {
        match &record {
            Record::Prompt(r) => bench_kind(c, kind, &record, r, PROMPT_SCHEMA),
            Record::Intent(r) => bench_kind(c, kind, &record, r, INTENT_SCHEMA),
            Record::Decision(r) => bench_kind(c, kind, &record, r, DECISION_SCHEMA),
            Record::Order(r) => bench_kind(c, kind, &record, r, ORDER_SCHEMA),
            Record::Reply(r) => bench_kind(c, kind, &record, r, REPLY_SCHEMA),
            Record::Treasury(r) => bench_kind(c, kind, &record, r, TREASURY_SCHEMA),
            Record::Gateway(r) => bench_kind(c, kind, &record, r, GATEWAY_DECISION_SCHEMA),
        }
    }

    let codec = Codec::new();
    let mut g = c.benchmark_group("decode_prompt");
    g.throughput(Throughput::Elements(1));
    let bytes = codec.encode(&records()[0].1).expect("bench prompt encodes");
    g.bench_function("avro", |b| {
        b.iter(|| codec.decode_prompt(black_box(&bytes)))
    });
    g.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
