//! Rejection of every kind of malformed prompt or record, each with the
//! right error variant, and without personal data in any message.

mod common;

use chatcart_schemas::codec::{MAX_ID_BYTES, MAX_TEXT_BYTES, PROMPT_SCHEMA};
use chatcart_schemas::*;
use common::*;

#[test]
fn rejects_empty_input() {
    let codec = Codec::new();
    assert!(matches!(codec.decode(&[]), Err(CodecError::Empty)));
    assert!(matches!(codec.decode_prompt(&[]), Err(CodecError::Empty)));
}

#[test]
fn rejects_truncated_single_object_header() {
    let codec = Codec::new();
    let bytes = codec.encode(&Record::Prompt(prompt())).unwrap();
    for len in [1, 2, 9] {
        let err = codec.decode_prompt(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { expected: Some(10), present, .. } if present == len),
            "{err}"
        );
        assert!(matches!(
            codec.decode(&bytes[..len]),
            Err(CodecError::Truncated { .. })
        ));
    }
}

#[test]
fn rejects_truncated_datum() {
    let codec = Codec::new();
    for record in all_records() {
        let bytes = codec.encode(&record).unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 11] {
            let err = codec.decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, CodecError::Truncated { expected: None, .. }),
                "{} cut at {cut}: {err}",
                record.kind()
            );
        }
    }
    // Header complete, datum entirely missing.
    let bytes = codec.encode(&Record::Prompt(prompt())).unwrap();
    let err = codec.decode_prompt(&bytes[..10]).unwrap_err();
    assert!(
        matches!(err, CodecError::Truncated { present: 0, .. }),
        "{err}"
    );
}

#[test]
fn rejects_trailing_bytes() {
    let codec = Codec::new();
    let mut bytes = codec.encode(&Record::Prompt(prompt())).unwrap();
    bytes.extend_from_slice(&[0, 0]);
    let err = codec.decode(&bytes).unwrap_err();
    assert!(
        matches!(err, CodecError::TrailingBytes { extra: 2, .. }),
        "{err}"
    );
}

#[test]
fn rejects_unknown_fingerprint() {
    let codec = Codec::new();
    let mut bytes = codec.encode(&Record::Prompt(prompt())).unwrap();
    bytes[2..10].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3]);
    let err = codec.decode_prompt(&bytes).unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownFingerprint { fingerprint } if fingerprint == [0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3]),
        "{err}"
    );
    assert!(err.to_string().contains("DE AD BE EF 00 01 02 03"), "{err}");
}

#[test]
fn rejects_wrong_magic() {
    let codec = Codec::new();
    for bytes in [
        &b"\xC3\x02rest"[..],
        b"\x01abc",
        b"  [1,2]",
        b"hello",
        b"\xEF\xBB\xBF",
    ] {
        let err = codec.decode_prompt(bytes).unwrap_err();
        assert!(
            matches!(err, CodecError::UnrecognisedEncoding { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("C3 01") && msg.contains("Confluent") && msg.contains('{'),
            "{msg}"
        );
    }
    let err = codec.decode(b"\x01abc").unwrap_err();
    assert!(
        matches!(err, CodecError::UnrecognisedEncoding { ref first_bytes, .. } if first_bytes == "01 61 62 63"),
        "{err}"
    );
    // JSON and Confluent are prompt-only encodings.
    assert!(matches!(
        codec.decode(br#"{"request_id":"r"}"#),
        Err(CodecError::UnrecognisedEncoding { .. })
    ));
}

#[test]
fn rejects_invalid_utf8_in_string_field() {
    let codec = Codec::new()
        .with_confluent_schema(5, PROMPT_SCHEMA)
        .unwrap();
    let datum = prompt_datum("req-1", b"ok \xFF\xFE not utf-8");
    let mut single = header_of(PROMPT_SCHEMA);
    single.extend_from_slice(&datum);
    for bytes in [single, confluent(5, &datum)] {
        let err = codec.decode_prompt(&bytes).unwrap_err();
        assert!(
            matches!(err, CodecError::InvalidUtf8 { record: "Prompt" }),
            "{err}"
        );
    }
    // The resolving path (older writer schema) reports it the same way.
    let codec = Codec::new().with_confluent_schema(3, PROMPT_V1).unwrap();
    let mut old = datum.clone();
    old.pop(); // PROMPT_V1 has no locale
    let err = codec.decode_prompt(&confluent(3, &old)).unwrap_err();
    assert!(matches!(err, CodecError::InvalidUtf8 { .. }), "{err}");
}

#[test]
fn rejects_invalid_avro() {
    let codec = Codec::new();
    let mut bytes = header_of(PROMPT_SCHEMA);
    let mut datum = prompt_datum("req-1", b"text");
    *datum.last_mut().unwrap() = 0x08; // locale: union branch 4 does not exist
    bytes.extend_from_slice(&datum);
    let err = codec.decode_prompt(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::InvalidAvro {
                record: "Prompt",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_invalid_json() {
    let codec = Codec::new();
    for bad in [
        &br#"{"request_id":"r","user_id":"u","text":"hi""#[..],
        br#"{"request_id":"r","user_id":"u","text":"hi"} trailing"#,
        br#"{"request_id":"r","user_id":"u","text":42}"#,
        b"{\"request_id\":\"r\",\"user_id\":\"u\",\"text\":\"\xFF\"}",
    ] {
        let err = codec.decode_prompt(bad).unwrap_err();
        assert!(
            matches!(err, CodecError::InvalidJson { line: 1, .. }),
            "{err}"
        );
    }
}

#[test]
fn rejects_missing_or_empty_required_fields() {
    let codec = Codec::new();
    let err = codec
        .decode_prompt(br#"{"user_id":"u","text":"hi"}"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::MissingField {
                field: "request_id"
            }
        ),
        "{err}"
    );
    let err = codec
        .decode_prompt(br#"{"request_id":"r","text":"hi"}"#)
        .unwrap_err();
    assert!(
        matches!(err, CodecError::MissingField { field: "user_id" }),
        "{err}"
    );
    let err = codec
        .decode_prompt(br#"{"request_id":"r","user_id":"u"}"#)
        .unwrap_err();
    assert!(
        matches!(err, CodecError::MissingField { field: "text" }),
        "{err}"
    );
    let err = codec
        .decode_prompt(br#"{"request_id":null,"user_id":"u","text":"hi"}"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::MissingField {
                field: "request_id"
            }
        ),
        "{err}"
    );

    // Avro cannot omit a field, but it can send it empty.
    let mut bytes = header_of(PROMPT_SCHEMA);
    bytes.extend(prompt_datum("", b"hi"));
    let err = codec.decode_prompt(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::MissingField {
                field: "request_id"
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_oversize_and_control_characters() {
    let codec = Codec::new();
    let encode = |p: Prompt| codec.encode(&Record::Prompt(p)).unwrap();

    let text = "好".repeat(MAX_TEXT_BYTES / 3 + 1);
    let err = codec
        .decode_prompt(&encode(Prompt {
            text: text.clone(),
            ..prompt()
        }))
        .unwrap_err();
    assert!(
        matches!(err, CodecError::FieldTooLong { field: "text", max: 4096, actual } if actual == text.len()),
        "{err}"
    );
    // Exactly at the limit is fine.
    let at_limit = "a".repeat(MAX_TEXT_BYTES);
    assert!(
        codec
            .decode_prompt(&encode(Prompt {
                text: at_limit,
                ..prompt()
            }))
            .is_ok()
    );

    let err = codec
        .decode_prompt(&encode(Prompt {
            user_id: "u".repeat(MAX_ID_BYTES + 1),
            ..prompt()
        }))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::FieldTooLong {
                field: "user_id",
                max: 128,
                ..
            }
        ),
        "{err}"
    );

    let err = codec
        .decode_prompt(&encode(Prompt {
            request_id: "req\n1".into(),
            ..prompt()
        }))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::ControlCharacter {
                field: "request_id",
                offset: 3
            }
        ),
        "{err}"
    );
    let err = codec
        .decode_prompt(br#"{"request_id":"r","user_id":"u\u0000","text":"hi"}"#)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::ControlCharacter {
                field: "user_id",
                offset: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_other_record_types_as_prompts() {
    let codec = Codec::new();
    let intent = all_records().remove(2);
    let err = codec
        .decode_prompt(&codec.encode(&intent).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::NotAPrompt {
                found: "IntentEvent"
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_never_contain_the_prompt_text() {
    let codec = Codec::new().with_confluent_schema(2, PROMPT_V1).unwrap();
    let marked = Prompt {
        text: MARKER.into(),
        ..prompt()
    };
    let mut errors = vec![
        // Fails validation for another reason.
        codec
            .decode_prompt(
                &codec
                    .encode(&Record::Prompt(Prompt {
                        request_id: String::new(),
                        ..marked.clone()
                    }))
                    .unwrap(),
            )
            .unwrap_err(),
        codec
            .decode_prompt(
                &codec
                    .encode(&Record::Prompt(Prompt {
                        user_id: "\u{7}".into(),
                        ..marked.clone()
                    }))
                    .unwrap(),
            )
            .unwrap_err(),
        codec
            .decode_prompt(
                &codec
                    .encode(&Record::Prompt(Prompt {
                        text: MARKER.repeat(200),
                        ..marked.clone()
                    }))
                    .unwrap(),
            )
            .unwrap_err(),
    ];
    // The marker in a field of the wrong type, in a broken document, or
    // followed by garbage.
    for json in [
        format!(r#"{{"request_id":"r","user_id":"u","text":"x","event_time_ms":"{MARKER}"}}"#),
        format!(
            r#"{{"request_id":"r","user_id":"u","text":"{MARKER}","event_time_ms":"{MARKER}"}}"#
        ),
        format!(r#"{{"request_id":"r","user_id":["{MARKER}"],"text":"{MARKER}"}}"#),
        format!(r#"{{"text":"{MARKER}","user_id":"u"}}"#),
        format!(r#"{{"text":"{MARKER}" "#),
        format!(r#"{{"request_id":"r","user_id":"u","text":"{MARKER}"}} {MARKER}"#),
    ] {
        errors.push(codec.decode_prompt(json.as_bytes()).unwrap_err());
    }
    // An old-version datum whose bytes do not fit: resolution and
    // deserialisation errors can embed values, which must not leak.
    let mut datum = Vec::new();
    put_str(&mut datum, b"r");
    put_str(&mut datum, b"s");
    put_str(&mut datum, b"u");
    put_str(&mut datum, b"");
    put_str(&mut datum, b"");
    put_long(&mut datum, 1);
    put_str(&mut datum, &MARKER.as_bytes()[..MARKER.len() - 1]);
    errors.push(codec.decode_prompt(&confluent(2, &datum)).unwrap_err());
    // Marker bytes where the writer expected something else.
    let mut bytes = header_of(PROMPT_SCHEMA);
    bytes.extend(prompt_datum("r", MARKER.as_bytes()));
    bytes.extend_from_slice(MARKER.as_bytes());
    errors.push(codec.decode_prompt(&bytes).unwrap_err());
    bytes.truncate(bytes.len() - MARKER.len() - 4);
    errors.push(codec.decode_prompt(&bytes).unwrap_err());

    for err in errors {
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(MARKER), "{shown}");
        assert!(!shown.contains("PERSONAL"), "{shown}");
    }
}

/// A length prefix claiming a huge string is refused instead of allocated.
#[test]
fn huge_declared_length_is_refused() {
    let codec = Codec::new();
    let mut bytes = codec.encode(&Record::Prompt(prompt())).unwrap();
    // Replace the first field's length with 64 MiB (zig-zag varint): below
    // apache-avro's own 512 MiB default, above the codec's cap.
    bytes.truncate(10);
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x40]);
    let err = codec.decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("allocate"), "{err}");
}
