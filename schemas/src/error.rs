//! What can go wrong while encoding or decoding a record, with messages that
//! say what to fix.
//!
//! Prompts carry personal data, so no variant holds record contents: errors
//! name fields, byte counts and offsets, never values. apache-avro's messages
//! are passed on only for failures that cannot quote a value (others become a
//! summary), and serde_json's with any quoted value blanked out.

use std::fmt;

use apache_avro::error::Details;

/// What the codec accepts as the start of any record (`Codec::decode`).
pub(crate) const ACCEPTS_SINGLE_OBJECT: &str = "C3 01 (Avro single-object encoding)";

/// What the codec accepts as the start of a prompt (`Codec::decode_prompt`).
pub(crate) const ACCEPTS_PROMPT: &str = "C3 01 (Avro single-object encoding), 00 (Confluent wire format: \
     magic 0, 4-byte big-endian schema id, Avro datum) or { (a JSON object, optionally after \
     ASCII whitespace or a UTF-8 BOM)";

/// Why a record could not be encoded or decoded, or a schema not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message had no bytes at all.
    #[error(
        "empty message: expected an encoded record; check that the producer does not send \
         empty values (a tombstone or a failed serialisation)"
    )]
    Empty,

    /// The message ended before a header or datum was complete.
    #[error(
        "truncated {what}: {expected}{present} bytes present; the message was cut short or \
         written with a different schema than the one it names",
        expected = match .expected {
            Some(n) => format!("expected at least {n} bytes, "),
            None => String::new(),
        }
    )]
    Truncated {
        /// The part that was cut short, e.g. `single-object header`.
        what: &'static str,
        /// How many bytes that part needs, where known.
        expected: Option<usize>,
        /// How many bytes there were.
        present: usize,
    },

    /// A single-object header named a schema this codec does not know.
    #[error(
        "unknown Avro single-object schema fingerprint {} (CRC-64-AVRO, bytes as on the wire); \
         the writer's schema must be registered with Codec::register_writer_schema before its \
         records can be decoded",
        hex(.fingerprint)
    )]
    UnknownFingerprint {
        /// The 8 fingerprint bytes after `C3 01`, little-endian as on the wire.
        fingerprint: [u8; 8],
    },

    /// A Confluent wire-format message named a schema id that is not configured.
    #[error(
        "unknown Confluent schema id {id}; add the writer schema for id {id} to the configured \
         `codec.confluent_schemas` map (fetch it from the schema registry: \
         GET /schemas/ids/{id})"
    )]
    UnknownSchemaId {
        /// The schema id from bytes 1..5 of the message.
        id: u32,
    },

    /// The first bytes match none of the accepted encodings.
    #[error(
        "unrecognised encoding: message starts with {first_bytes}; accepted: {accepted}. \
         Check the producer's serializer settings"
    )]
    UnrecognisedEncoding {
        /// Up to the first 8 bytes, in hex.
        first_bytes: String,
        /// The encodings accepted where the error arose.
        accepted: &'static str,
    },

    /// A string field of an Avro datum held bytes that are not UTF-8.
    #[error(
        "invalid UTF-8 in a string field of a {record} datum; Avro strings must be UTF-8 \
         (send binary data as an Avro `bytes` field instead)"
    )]
    InvalidUtf8 {
        /// The record type, e.g. `Prompt`.
        record: &'static str,
    },

    /// A JSON prompt could not be parsed.
    #[error(
        "invalid JSON prompt: {message} (line {line}, column {column}); send one JSON object \
         with string fields request_id, user_id and text"
    )]
    InvalidJson {
        /// serde_json's message, with any quoted values replaced by `"…"`.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },

    /// An Avro datum did not match the writer schema it was decoded with.
    #[error(
        "invalid Avro {record} datum: {message}; check that the producer writes with the schema \
         its header names"
    )]
    InvalidAvro {
        /// The record type, e.g. `Prompt`.
        record: &'static str,
        /// apache-avro's message, or a summary where its message could quote record contents.
        message: String,
    },

    /// The datum decoded, but bytes were left over after it.
    #[error(
        "{extra} unexpected bytes after the {record} datum; the writer used a different schema \
         than the one its header names"
    )]
    TrailingBytes {
        /// The record type, e.g. `Prompt`.
        record: &'static str,
        /// How many bytes were left.
        extra: usize,
    },

    /// A record could not be encoded with its schema (a bug: the Rust type and
    /// its `.avsc` disagree).
    #[error(
        "cannot encode a {record} with its Avro schema: {message}; the Rust type and \
         schemas/avro disagree, fix whichever is wrong"
    )]
    Encode {
        /// The record type, e.g. `Prompt`.
        record: &'static str,
        /// apache-avro's message, or a summary where its message could quote record contents.
        message: String,
    },

    /// A schema given to the codec is not valid Avro schema JSON.
    #[error(
        "cannot parse {context} as an Avro schema: {message}; pass the schema JSON exactly as \
         the producer registered it"
    )]
    SchemaParse {
        /// Which schema, e.g. `Confluent schema id 7`.
        context: String,
        /// apache-avro's message.
        message: String,
    },

    /// A schema given to the codec cannot be resolved to the current schema of its type.
    #[error(
        "{context} cannot be read as the current chatcart.{record} schema: {message}; only \
         register writer schemas that are compatible under Avro schema resolution"
    )]
    IncompatibleSchema {
        /// Which schema, e.g. `Confluent schema id 7`.
        context: String,
        /// The record type it was registered for.
        record: &'static str,
        /// apache-avro's compatibility message (names types and fields only).
        message: String,
    },

    /// A writer schema's full name is not one of the chatcart record types.
    #[error(
        "writer schema {name} is not a chatcart record type; its full name must be one of \
         chatcart.Prompt, chatcart.IntentEvent, chatcart.CouponDecision, chatcart.OrderEvent, \
         chatcart.Reply or chatcart.TreasuryRecord"
    )]
    UnknownRecordType {
        /// The schema's full name (or its kind, for a schema that is not named).
        name: String,
    },

    /// A record of another type arrived where a prompt was expected.
    #[error(
        "expected a Prompt but the message holds a {found}; check that the producer writes to \
         the prompt topic only prompts"
    )]
    NotAPrompt {
        /// The record type found, e.g. `IntentEvent`.
        found: &'static str,
    },

    /// A required prompt field is missing or empty.
    #[error("prompt field `{field}` is missing or empty; the front-end must set it")]
    MissingField {
        /// The field name.
        field: &'static str,
    },

    /// A prompt field is longer than allowed.
    #[error(
        "prompt field `{field}` is {actual} bytes, more than the allowed {max}; the front-end \
         must shorten or reject it"
    )]
    FieldTooLong {
        /// The field name.
        field: &'static str,
        /// The limit in bytes (UTF-8).
        max: usize,
        /// The field's length in bytes.
        actual: usize,
    },

    /// An identifier field of a prompt contains a control character.
    #[error(
        "prompt field `{field}` contains a control character at byte {offset}; identifiers must \
         be printable (they end up in keys, logs and headers)"
    )]
    ControlCharacter {
        /// The field name.
        field: &'static str,
        /// Byte offset of the first control character.
        offset: usize,
    },
}

/// Bytes as space-separated upper-case hex pairs, e.g. `C3 01 7A`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// apache-avro's message for `err`, unless that message can embed record
/// contents (values, serde messages quoting values), which are replaced by a
/// summary so that personal data cannot reach logs through an error.
pub(crate) fn avro_message(err: &apache_avro::Error) -> String {
    match err.details() {
        Details::ReadBytes(_)
        | Details::ReadString(_)
        | Details::ReadBoolean(_)
        | Details::ReadDouble(_)
        | Details::ReadFloat(_)
        | Details::ReadFixed(..)
        | Details::ReadVariableIntegerBytes(_)
        | Details::ReadIntoBuf(_)
        | Details::IntegerOverflow
        | Details::ZagI32(..)
        | Details::ConvertI32ToUsize(..)
        | Details::ConvertI64ToUsize(..)
        | Details::ConvertU64ToUsize(..)
        | Details::MemoryAllocation { .. }
        | Details::BoolValue(_)
        | Details::GetUnionVariant { .. }
        | Details::EnumSymbolIndex { .. }
        | Details::GetEnumValue { .. }
        | Details::GetEnumUnknownIndexValue
        | Details::GetEnumSymbol(_)
        | Details::GetField(_)
        | Details::SchemaResolutionError(_)
        | Details::ConvertToUtf8(_)
        | Details::ConvertToUtf8Error(_) => err.to_string(),
        Details::DeserializeSchemaAware { value_type, .. } => format!(
            "the datum does not fit the schema while reading a {value_type} \
             (details withheld: they may quote record contents)"
        ),
        _ => "the datum does not fit the schema (details withheld: they may quote record \
              contents)"
            .to_owned(),
    }
}

/// Whether apache-avro failed because the input ran out.
pub(crate) fn is_eof(err: &apache_avro::Error) -> bool {
    let io = match err.details() {
        Details::ReadBytes(e)
        | Details::ReadString(e)
        | Details::ReadBoolean(e)
        | Details::ReadDouble(e)
        | Details::ReadFloat(e)
        | Details::ReadFixed(e, _)
        | Details::ReadVariableIntegerBytes(e)
        | Details::ReadIntoBuf(e) => e,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::UnexpectedEof
}

/// Whether apache-avro failed because a string was not UTF-8.
pub(crate) fn is_utf8(err: &apache_avro::Error) -> bool {
    matches!(
        err.details(),
        Details::ConvertToUtf8(_) | Details::ConvertToUtf8Error(_)
    )
}

/// `message` with the contents of every double-quoted string replaced by `…`.
///
/// serde's "invalid type" messages quote the offending value with Rust's
/// `Debug` format (so inner quotes are escaped); a front-end that puts the
/// prompt text into the wrong field would otherwise see it echoed into logs.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        out.push('…');
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_formats_pairs() {
        assert_eq!(hex(&[0xC3, 0x01, 0x7a]), "C3 01 7A");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn redact_quoted_hides_values_keeps_rest() {
        let msg = r#"invalid type: string "secret \"x\" here", expected i64 at line 1 column 9"#;
        let red = redact_quoted(msg);
        assert!(!red.contains("secret"));
        assert_eq!(
            red,
            r#"invalid type: string "…", expected i64 at line 1 column 9"#
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
    }

    #[test]
    fn truncated_message_mentions_counts() {
        let e = CodecError::Truncated {
            what: "single-object header",
            expected: Some(10),
            present: 4,
        };
        let s = e.to_string();
        assert!(s.contains("expected at least 10 bytes"), "{s}");
        assert!(s.contains("4 bytes present"), "{s}");
    }
}
