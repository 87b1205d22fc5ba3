//! The codec through its public API: round trips of every record type,
//! fingerprints, schema evolution, and the three prompt encodings.

mod common;

use chatcart_schemas::codec::{
    DECISION_SCHEMA, INTENT_SCHEMA, ORDER_SCHEMA, PROMPT_SCHEMA, REPLY_SCHEMA, TREASURY_SCHEMA,
};
use chatcart_schemas::*;
use common::*;

fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

#[test]
fn codec_is_shareable() {
    assert_send_sync::<Codec>();
    assert_send_sync::<CodecError>();
}

#[test]
fn every_record_type_round_trips() {
    let codec = Codec::new();
    for record in all_records() {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01], "{}", record.kind());
        assert_eq!(codec.decode(&bytes).unwrap(), record, "{}", record.kind());
    }
}

#[test]
fn encode_into_appends_and_matches_encode() {
    let codec = Codec::new();
    let mut buf = b"keep".to_vec();
    for record in all_records() {
        buf.truncate(4);
        codec.encode_into(&record, &mut buf).unwrap();
        assert_eq!(&buf[..4], b"keep");
        assert_eq!(buf[4..], codec.encode(&record).unwrap()[..]);
    }
}

#[test]
fn header_carries_rabin_fingerprint_of_canonical_form() {
    let codec = Codec::new();
    let cases = [
        (Record::Prompt(prompt()), PROMPT_SCHEMA),
        (all_records().remove(2), INTENT_SCHEMA),
        (all_records().remove(4), DECISION_SCHEMA),
        (all_records().remove(5), ORDER_SCHEMA),
        (all_records().remove(6), REPLY_SCHEMA),
        (all_records().remove(8), TREASURY_SCHEMA),
    ];
    for (record, schema) in cases {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(bytes[..10], header_of(schema)[..], "{}", record.kind());
    }
}

#[test]
fn prompt_datum_layout_matches_the_schema_field_order() {
    // Guards the hand-built datums the rejection tests rely on.
    let codec = Codec::new();
    let mut bytes = header_of(PROMPT_SCHEMA);
    bytes.extend(prompt_datum("req-1", "好".as_bytes()));
    let p = codec.decode_prompt(&bytes).unwrap();
    assert_eq!(p.text, "好");
    assert_eq!(p.event_time_ms, 42);
    assert_eq!(p.locale, None);
}

#[test]
fn schemas_document_every_field_and_share_one_item_definition() {
    let mut items = Vec::new();
    for json in [
        PROMPT_SCHEMA,
        INTENT_SCHEMA,
        DECISION_SCHEMA,
        ORDER_SCHEMA,
        REPLY_SCHEMA,
        TREASURY_SCHEMA,
    ] {
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(doc["namespace"], "chatcart");
        for field in doc["fields"].as_array().unwrap() {
            assert!(field["doc"].is_string(), "no doc on {}", field["name"]);
            if field["name"] == "items" {
                items.push(field["type"]["items"].clone());
            }
        }
    }
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| *i == items[0]));
    for field in items[0]["fields"].as_array().unwrap() {
        assert!(field["doc"].is_string(), "no doc on Item.{}", field["name"]);
    }
}

#[test]
fn older_prompt_version_resolves_with_locale_none() {
    let codec = Codec::new().register_writer_schema(PROMPT_V1).unwrap();
    let mut bytes = header_of(PROMPT_V1);
    bytes.extend(v1_datum());
    let expected = Prompt {
        reply_partition: None,
        deadline_ms: None,
        request_id: "req-old".into(),
        session_id: "sess-old".into(),
        user_id: "user-old".into(),
        campaign_id: String::new(),
        trace_id: "trace-old".into(),
        event_time_ms: 1_600_000_000_000,
        text: "一杯美式".into(),
        locale: None,
    };
    assert_eq!(
        codec.decode(&bytes).unwrap(),
        Record::Prompt(expected.clone())
    );
    assert_eq!(codec.decode_prompt(&bytes).unwrap(), expected);

    // Without the registration the same bytes are an unknown version.
    let err = Codec::new().decode(&bytes).unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownFingerprint { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("register"), "{err}");
}

/// Records written before deadlines existed (the bundled version 1 schemas)
/// still decode, without any registration, as records without a deadline.
#[test]
fn records_of_the_bundled_earlier_schemas_decode_without_a_deadline() {
    let codec = Codec::new();
    let earlier = [
        ("Prompt", include_str!("../avro/v1/prompt.avsc")),
        ("IntentEvent", include_str!("../avro/v1/intent.avsc")),
        ("CouponDecision", include_str!("../avro/v1/decision.avsc")),
        ("Reply", include_str!("../avro/v1/reply.avsc")),
    ];
    let mut decoded = 0;
    for record in all_records() {
        let Some((_, schema)) = earlier.iter().find(|(kind, _)| *kind == record.kind()) else {
            continue;
        };
        let bytes = written_with(schema, &record);
        assert_ne!(bytes, codec.encode(&record).unwrap(), "{}", record.kind());
        assert_eq!(codec.decode(&bytes).unwrap(), record, "{}", record.kind());
        decoded += 1;
    }
    assert!(decoded >= 4, "only {decoded} records had an earlier schema");

    // A deadline and the `expired` reply survive the current schemas.
    let mut with_deadline = prompt();
    with_deadline.deadline_ms = Some(1_700_000_000_123);
    let bytes = codec
        .encode(&Record::Prompt(with_deadline.clone()))
        .unwrap();
    assert_eq!(codec.decode_prompt(&bytes).unwrap(), with_deadline);
    let mut expired = all_records()
        .into_iter()
        .find(|r| matches!(r, Record::Reply(_)))
        .expect("a sample reply");
    if let Record::Reply(r) = &mut expired {
        r.outcome = ReplyOutcome::Expired;
    }
    let bytes = codec.encode(&expired).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), expired);
    let json = br#"{"request_id":"r","user_id":"u","text":"t","deadline_ms":5}"#;
    assert_eq!(codec.decode_prompt(json).unwrap().deadline_ms, Some(5));
}

#[test]
fn registering_the_current_schema_keeps_the_direct_path() {
    let codec = Codec::new().register_writer_schema(REPLY_SCHEMA).unwrap();
    for record in all_records() {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), record);
    }
}

#[test]
fn writer_schema_registration_errors() {
    let err = Codec::new()
        .register_writer_schema(
            r#"{"type":"record","name":"Other","namespace":"acme","fields":[]}"#,
        )
        .unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownRecordType { ref name } if name == "acme.Other"),
        "{err}"
    );

    let err = Codec::new()
        .register_writer_schema("{not json")
        .unwrap_err();
    assert!(matches!(err, CodecError::SchemaParse { .. }), "{err}");

    // `text` as an int cannot be resolved to the current string field.
    let incompatible = PROMPT_V1.replace(
        r#"{"name": "text", "type": "string"}"#,
        r#"{"name": "text", "type": "int"}"#,
    );
    assert_ne!(incompatible, PROMPT_V1);
    let err = Codec::new()
        .register_writer_schema(&incompatible)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::IncompatibleSchema {
                record: "Prompt",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn confluent_wire_format_with_registered_ids() {
    let codec = Codec::new()
        .with_confluent_schema(7, PROMPT_SCHEMA)
        .unwrap()
        .with_confluent_schema(3, PROMPT_V1)
        .unwrap();

    let current = codec.encode(&Record::Prompt(prompt())).unwrap();
    assert_eq!(
        codec.decode_prompt(&confluent(7, &current[10..])).unwrap(),
        prompt()
    );

    let old = codec.decode_prompt(&confluent(3, &v1_datum())).unwrap();
    assert_eq!(old.request_id, "req-old");
    assert_eq!(old.locale, None);

    let err = codec
        .decode_prompt(&confluent(8, &current[10..]))
        .unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownSchemaId { id: 8 }),
        "{err}"
    );
    assert!(err.to_string().contains("codec.confluent_schemas"), "{err}");

    let err = codec.decode_prompt(&[0, 0, 0]).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Truncated {
                expected: Some(5),
                present: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn confluent_schema_must_be_a_readable_prompt() {
    let err = Codec::new()
        .with_confluent_schema(1, INTENT_SCHEMA)
        .unwrap_err();
    assert!(
        matches!(err, CodecError::IncompatibleSchema { .. }),
        "{err}"
    );
    let err = Codec::new().with_confluent_schema(1, "[").unwrap_err();
    assert!(matches!(err, CodecError::SchemaParse { .. }), "{err}");
    assert!(err.to_string().contains("Confluent schema id 1"), "{err}");
}

#[test]
fn json_prompts() {
    let codec = Codec::new();

    let minimal = codec
        .decode_prompt(br#"{"request_id":"r","user_id":"u","text":"hi"}"#)
        .unwrap();
    assert_eq!(
        minimal,
        Prompt {
            reply_partition: None,
            deadline_ms: None,
            request_id: "r".into(),
            session_id: String::new(),
            user_id: "u".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 0,
            text: "hi".into(),
            locale: None,
        }
    );

    let full = codec
        .decode_prompt(
            r#"{"request_id":"req-1","session_id":"sess-9","user_id":"user-42",
                "campaign_id":"double-11","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
                "event_time_ms":1700000000123,"text":"我要两杯大杯珍珠奶茶，少冰","locale":"zh",
                "client":{"app":"web","version":[1,2]},"extra":null}"#
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(full, prompt());

    let mut with_bom = b"\xEF\xBB\xBF \r\n\t".to_vec();
    with_bom.extend_from_slice(br#"{"request_id":"r","user_id":"u","text":"","locale":null} "#);
    let p = codec.decode_prompt(&with_bom).unwrap();
    assert_eq!(
        (p.request_id.as_str(), p.text.as_str(), p.locale),
        ("r", "", None)
    );
}

#[test]
fn codec_debug_lists_registrations_without_data() {
    let codec = Codec::new()
        .register_writer_schema(PROMPT_V1)
        .unwrap()
        .with_confluent_schema(9, PROMPT_SCHEMA)
        .unwrap();
    let shown = format!("{codec:?}");
    assert!(shown.contains("confluent_ids: [9]"), "{shown}");
    // The current prompt schema, the bundled earlier one and PROMPT_V1.
    assert_eq!(shown.matches("Prompt:").count(), 3, "{shown}");
}
