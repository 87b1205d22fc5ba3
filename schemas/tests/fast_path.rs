//! The codec's fast path (serde_avro_fast) against apache-avro, the library
//! it stands in for: for random records of every type, both write the same
//! bytes and each reads what the other wrote; and on damaged datums the fast
//! path never accepts what apache-avro rejects, nor reads a different value.

mod common;

use std::fmt::Debug;
use std::sync::LazyLock;

use apache_avro::schema::ResolvedSchema;
use apache_avro::{GenericSingleObjectReader, Schema};
use chatcart_schemas::codec::{
    DECISION_SCHEMA, INTENT_SCHEMA, ORDER_SCHEMA, PROMPT_SCHEMA, REPLY_SCHEMA, TREASURY_SCHEMA,
};
use chatcart_schemas::*;
use common::*;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One schema as each library parses it.
struct Both {
    apache: Schema,
    fast: serde_avro_fast::Schema,
}

fn both(json: &str) -> Both {
    Both {
        apache: Schema::parse_str(json).expect("apache-avro parses the schema"),
        fast: json.parse().expect("serde_avro_fast parses the schema"),
    }
}

static PROMPT: LazyLock<Both> = LazyLock::new(|| both(PROMPT_SCHEMA));
static INTENT: LazyLock<Both> = LazyLock::new(|| both(INTENT_SCHEMA));
static DECISION: LazyLock<Both> = LazyLock::new(|| both(DECISION_SCHEMA));
static ORDER: LazyLock<Both> = LazyLock::new(|| both(ORDER_SCHEMA));
static REPLY: LazyLock<Both> = LazyLock::new(|| both(REPLY_SCHEMA));
static TREASURY: LazyLock<Both> = LazyLock::new(|| both(TREASURY_SCHEMA));

/// The schema of `record`'s type, and whatever `f` makes of it and the
/// record's inner value.
macro_rules! with_inner {
    ($record:expr, |$value:ident, $schema:ident| $body:expr) => {
        match $record {
            Record::Prompt($value) => {
                let $schema = &*PROMPT;
                $body
            }
            Record::Intent($value) => {
                let $schema = &*INTENT;
                $body
            }
            Record::Decision($value) => {
                let $schema = &*DECISION;
                $body
            }
            Record::Order($value) => {
                let $schema = &*ORDER;
                $body
            }
            Record::Reply($value) => {
                let $schema = &*REPLY;
                $body
            }
            Record::Treasury($value) => {
                let $schema = &*TREASURY;
                $body
            }
        }
    };
}

/// The datum as apache-avro's serde writer makes it (what the codec wrote
/// before it had a fast path).
fn apache_datum<T: Serialize>(value: &T, schema: &Schema) -> Vec<u8> {
    let names = ResolvedSchema::new(schema).expect("schema names resolve");
    let mut out = Vec::new();
    apache_avro::write_avro_datum_ref(schema, names.get_names(), value, &mut out)
        .expect("apache-avro writes the record");
    out
}

/// A complete single-object message as apache-avro reads it, header checked.
fn apache_read<T: DeserializeOwned>(bytes: &[u8], schema: &Schema) -> T {
    let reader = GenericSingleObjectReader::builder()
        .schema(schema.clone())
        .build()
        .expect("reader for the schema");
    let mut rest = bytes;
    let value = reader
        .read_deser::<T>(&mut rest)
        .expect("apache-avro reads the message");
    assert!(rest.is_empty(), "{} bytes left", rest.len());
    value
}

/// What the fast path makes of a datum: the value and how many bytes were
/// left, or `None` if it is rejected.
fn fast_read<T: DeserializeOwned>(
    datum: &[u8],
    schema: &serde_avro_fast::Schema,
) -> Option<(T, usize)> {
    let mut state = serde_avro_fast::de::DeserializerState::from_slice(datum, schema);
    let value = T::deserialize(state.deserializer()).ok()?;
    let mut rest = state.into_reader();
    let left = std::io::BufRead::fill_buf(&mut rest)
        .expect("a slice reads")
        .len();
    Some((value, left))
}

/// Same for apache-avro, without a header.
fn apache_read_datum<T: DeserializeOwned>(datum: &[u8], schema: &Schema) -> Option<(T, usize)> {
    let reader = GenericSingleObjectReader::builder()
        .schema(schema.clone())
        .header(Vec::new())
        .build()
        .expect("reader for the schema");
    let mut rest = datum;
    let value = reader.read_deser::<T>(&mut rest).ok()?;
    Some((value, rest.len()))
}

fn check_same_bytes<T>(codec: &Codec, record: &Record, value: &T, schema: &Both)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let expected = apache_datum(value, &schema.apache);
    let fast = serde_avro_fast::to_datum_vec(
        value,
        &mut serde_avro_fast::ser::SerializerConfig::new(&schema.fast),
    )
    .expect("serde_avro_fast writes the record");
    assert_eq!(fast, expected, "{}: serde_avro_fast datum", record.kind());

    let encoded = codec.encode(record).expect("codec writes the record");
    let mut header = vec![0xC3, 0x01];
    header.extend_from_slice(schema.fast.rabin_fingerprint());
    assert_eq!(encoded[..10], header[..], "{}: header", record.kind());
    assert_eq!(
        encoded[10..],
        expected[..],
        "{}: codec datum",
        record.kind()
    );

    // Each reads what the other wrote.
    assert_eq!(&apache_read::<T>(&encoded, &schema.apache), value);
    assert_eq!(
        fast_read::<T>(&expected, &schema.fast),
        Some((apache_read::<T>(&encoded, &schema.apache), 0))
    );
    let mut apache_message = header;
    apache_message.extend_from_slice(&expected);
    assert_eq!(
        &codec
            .decode(&apache_message)
            .expect("codec reads apache-avro's message"),
        record
    );
}

/// Damaged datums: whatever the fast path accepts, apache-avro accepts too,
/// with the same value and the same bytes left over. `_like` names the type.
fn check_damaged<T>(_like: &T, datum: &[u8], schema: &Both) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + PartialEq + Debug,
{
    if let Some(fast) = fast_read::<T>(datum, &schema.fast) {
        let apache = apache_read_datum::<T>(datum, &schema.apache);
        prop_assert_eq!(Some(fast), apache, "datum {:02X?}", datum);
    }
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,40}",
        "[\u{4e00}-\u{9fa5}，。！？]{0,30}",
        ".{0,16}",
        any::<String>(),
    ]
}

fn ids() -> impl Strategy<Value = [String; 5]> {
    [text(), text(), text(), text(), text()]
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(
        (
            text(),
            any::<i32>(),
            proptest::collection::btree_map(text(), text(), 0..4),
            any::<i64>(),
        )
            .prop_map(|(sku, quantity, options, unit_price_cents)| Item {
                sku,
                quantity,
                options,
                unit_price_cents,
            }),
        0..5,
    )
}

fn record() -> BoxedStrategy<Record> {
    let times = (any::<i64>(), any::<i64>(), any::<i64>());
    let prompt = (ids(), any::<i64>(), text(), proptest::option::of(text())).prop_map(
        |(
            [request_id, session_id, user_id, campaign_id, trace_id],
            event_time_ms,
            text,
            locale,
        )| {
            Record::Prompt(Prompt {
                request_id,
                session_id,
                user_id,
                campaign_id,
                trace_id,
                event_time_ms,
                text,
                locale,
            })
        },
    );
    let intent = (
        ids(),
        times,
        text(),
        prop_oneof![
            Just(IntentOutcome::Extracted),
            Just(IntentOutcome::Rejected)
        ],
        items(),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(
                [request_id, session_id, user_id, campaign_id, trace_id],
                (event_time_ms, prompt_time_ms, total_cents),
                locale,
                outcome,
                items,
                coupon_code,
                reason,
            )| {
                Record::Intent(IntentEvent {
                    request_id,
                    session_id,
                    user_id,
                    campaign_id,
                    trace_id,
                    event_time_ms,
                    prompt_time_ms,
                    locale,
                    outcome,
                    items,
                    coupon_code,
                    total_cents,
                    reason,
                })
            },
        );
    let decision = (
        ids(),
        times,
        text(),
        prop_oneof![
            Just(DecisionOutcome::Granted),
            Just(DecisionOutcome::Denied),
            Just(DecisionOutcome::Released),
        ],
        items(),
        any::<i64>(),
        proptest::option::of(text()),
    )
        .prop_map(
            |(
                [request_id, session_id, user_id, campaign_id, trace_id],
                (event_time_ms, prompt_time_ms, total_cents),
                locale,
                outcome,
                items,
                credit_cents,
                reason,
            )| {
                Record::Decision(CouponDecision {
                    request_id,
                    session_id,
                    user_id,
                    campaign_id,
                    trace_id,
                    event_time_ms,
                    prompt_time_ms,
                    locale,
                    outcome,
                    items,
                    total_cents,
                    credit_cents,
                    reason,
                })
            },
        );
    let order = (
        ids(),
        times,
        (text(), text()),
        prop_oneof![Just(OrderOutcome::Placed), Just(OrderOutcome::Failed)],
        items(),
        (any::<i64>(), any::<i64>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(
                [request_id, session_id, user_id, campaign_id, trace_id],
                (event_time_ms, prompt_time_ms, total_cents),
                (locale, order_id),
                outcome,
                items,
                (credit_cents, to_pay_cents),
                reason,
            )| {
                Record::Order(OrderEvent {
                    request_id,
                    session_id,
                    user_id,
                    campaign_id,
                    trace_id,
                    event_time_ms,
                    prompt_time_ms,
                    locale,
                    order_id,
                    outcome,
                    items,
                    total_cents,
                    credit_cents,
                    to_pay_cents,
                    reason,
                })
            },
        );
    let reply = (
        ids(),
        times,
        (text(), text()),
        prop_oneof![
            Just(ReplyOutcome::OrderPlaced),
            Just(ReplyOutcome::OrderFailed),
            Just(ReplyOutcome::Denied),
            Just(ReplyOutcome::Rejected),
        ],
        (proptest::option::of(text()), proptest::option::of(text())),
        (any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |(
                [request_id, session_id, user_id, campaign_id, trace_id],
                (event_time_ms, prompt_time_ms, latency_ms),
                (locale, text),
                outcome,
                (reason, order_id),
                (credit_cents, to_pay_cents),
            )| {
                Record::Reply(Reply {
                    request_id,
                    session_id,
                    user_id,
                    campaign_id,
                    trace_id,
                    event_time_ms,
                    prompt_time_ms,
                    locale,
                    outcome,
                    reason,
                    text,
                    order_id,
                    credit_cents,
                    to_pay_cents,
                    latency_ms,
                })
            },
        );
    let treasury = (
        ids(),
        any::<i64>(),
        prop_oneof![
            Just(TreasuryKind::LeaseRequest),
            Just(TreasuryKind::LeaseReturn),
            Just(TreasuryKind::LeaseCredit),
        ],
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(
            |(
                [request_id, user_id, campaign_id, trace_id, resource],
                event_time_ms,
                kind,
                partition,
                amount,
            )| {
                Record::Treasury(TreasuryRecord {
                    request_id,
                    user_id,
                    campaign_id,
                    trace_id,
                    event_time_ms,
                    kind,
                    resource,
                    partition,
                    amount,
                })
            },
        );
    // Boxed: unboxed, the value tree of this union needs more stack than a
    // test thread has in a debug build.
    prop_oneof![
        prompt.boxed(),
        intent.boxed(),
        decision.boxed(),
        order.boxed(),
        reply.boxed(),
        treasury.boxed(),
    ]
    .boxed()
}

/// One way of damaging a datum.
#[derive(Debug, Clone)]
enum Damage {
    /// Replace the byte at (this modulo the length) with the given one.
    Set(usize, u8),
    /// Cut the datum to (this modulo its length) bytes.
    Cut(usize),
    /// Insert the bytes at (this modulo the length).
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Set(at, b)),
            1 => any::<usize>().prop_map(Damage::Cut),
            2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..11))
                .prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
        ],
        1..4,
    )
}

fn apply(datum: &mut Vec<u8>, damage: &[Damage]) {
    for d in damage {
        let len = datum.len().max(1);
        match d {
            Damage::Set(at, b) => {
                if let Some(byte) = datum.get_mut(at % len) {
                    *byte = *b;
                }
            }
            Damage::Cut(at) => datum.truncate(at % len),
            Damage::Insert(at, bytes) => {
                let at = (at % len).min(datum.len());
                datum.splice(at..at, bytes.iter().copied());
            }
        }
    }
}

#[test]
fn fixtures_are_byte_identical() {
    let codec = Codec::new();
    for record in all_records() {
        with_inner!(&record, |value, schema| check_same_bytes(
            &codec, &record, value, schema
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn random_records_are_byte_identical(record in record()) {
        let codec = Codec::new();
        with_inner!(&record, |value, schema| check_same_bytes(&codec, &record, value, schema));
    }
}

proptest! {
    // About one damaged datum in ten still decodes; those are the cases that
    // count, so this property gets more of them.
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn damaged_datums_are_read_alike(record in record(), damage in damage()) {
        // Sets apache-avro's process-wide allocation cap, as in production.
        let codec = Codec::new();
        let mut datum = codec.encode(&record).unwrap().split_off(10);
        apply(&mut datum, &damage);
        with_inner!(&record, |value, schema| check_damaged(value, &datum, schema))?;
    }
}
