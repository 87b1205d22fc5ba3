//! The typed codec: Avro single-object encoding for every internal topic, and
//! decoding of prompts from the three encodings front-ends may use.
//!
//! Single-object encoding (`C3 01`, 8-byte little-endian CRC-64-AVRO
//! fingerprint of the writer schema, Avro binary datum) makes every message
//! self-describing, so a reader can tell which schema version wrote it and
//! resolve it against the current one. Front-ends that use a Confluent schema
//! registry send `00`, a 4-byte big-endian schema id and the datum instead;
//! the ids they use are configured with [`Codec::with_confluent_schema`].
//! Front-ends without Avro send a JSON object.
//!
//! Everything that can be done once (parsing schemas, computing fingerprints,
//! resolving named types) is done when the codec is built, so the per-record
//! cost is one pass over the bytes. Records written with the current schema
//! are deserialised straight from the bytes; only records written with another
//! registered version go through apache-avro's generic `Value` to be resolved.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use apache_avro::rabin::Rabin;
use apache_avro::schema::ResolvedSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::{GenericSingleObjectReader, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{
    ACCEPTS_PROMPT, ACCEPTS_SINGLE_OBJECT, CodecError, avro_message, hex, is_eof, is_utf8,
};
use crate::records::{Prompt, Record};

mod prompt;

use prompt::{json_start, prompt_from_json, validate_prompt};

/// Avro schema of [`Prompt`] (`chatcart.Prompt`).
pub const PROMPT_SCHEMA: &str = include_str!("../avro/prompt.avsc");
/// Avro schema of [`IntentEvent`](crate::IntentEvent) (`chatcart.IntentEvent`).
pub const INTENT_SCHEMA: &str = include_str!("../avro/intent.avsc");
/// Avro schema of [`CouponDecision`](crate::CouponDecision) (`chatcart.CouponDecision`).
pub const DECISION_SCHEMA: &str = include_str!("../avro/decision.avsc");
/// Avro schema of [`OrderEvent`](crate::OrderEvent) (`chatcart.OrderEvent`).
pub const ORDER_SCHEMA: &str = include_str!("../avro/order.avsc");
/// Avro schema of [`Reply`](crate::Reply) (`chatcart.Reply`).
pub const REPLY_SCHEMA: &str = include_str!("../avro/reply.avsc");
/// Avro schema of [`TreasuryRecord`](crate::TreasuryRecord) (`chatcart.TreasuryRecord`).
pub const TREASURY_SCHEMA: &str = include_str!("../avro/treasury.avsc");
/// Avro schema of [`GatewayDecision`](crate::GatewayDecision) (`chatcart.GatewayDecision`).
pub const GATEWAY_DECISION_SCHEMA: &str = include_str!("../avro/gateway_decision.avsc");

/// Earlier versions of the schemas, still read (resolved to the current
/// ones) so that records written before an upgrade, and front-ends that
/// still write them, decode. Version 1 had no `deadline_ms`, no
/// `reply_partition` and no `expired` reply.
const EARLIER_SCHEMAS: [&str; 5] = [
    include_str!("../avro/v1/prompt.avsc"),
    include_str!("../avro/v1/intent.avsc"),
    include_str!("../avro/v1/decision.avsc"),
    include_str!("../avro/v1/order.avsc"),
    include_str!("../avro/v1/reply.avsc"),
];

/// Longest accepted `request_id` or `user_id`, in bytes: they become Kafka
/// keys and state-store keys, where unbounded keys are a memory hazard.
pub const MAX_ID_BYTES: usize = 128;
/// Longest accepted prompt `text`, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// The most one decoded field may allocate.
pub const MAX_DECODE_ALLOCATION: usize = 4 * 1024 * 1024;

/// The two bytes that start every single-object encoded message.
const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
/// Magic plus fingerprint.
const SINGLE_OBJECT_HEADER_LEN: usize = 10;
/// Magic byte plus 4-byte schema id.
const CONFLUENT_HEADER_LEN: usize = 5;

/// Which record type a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prompt,
    Intent,
    Decision,
    Order,
    Reply,
    Treasury,
    Gateway,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Prompt,
        Kind::Intent,
        Kind::Decision,
        Kind::Order,
        Kind::Reply,
        Kind::Treasury,
        Kind::Gateway,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn schema_json(self) -> &'static str {
        match self {
            Kind::Prompt => PROMPT_SCHEMA,
            Kind::Intent => INTENT_SCHEMA,
            Kind::Decision => DECISION_SCHEMA,
            Kind::Order => ORDER_SCHEMA,
            Kind::Reply => REPLY_SCHEMA,
            Kind::Treasury => TREASURY_SCHEMA,
            Kind::Gateway => GATEWAY_DECISION_SCHEMA,
        }
    }

    /// The Avro record name, which is also what [`Record::kind`] returns.
    fn name(self) -> &'static str {
        match self {
            Kind::Prompt => "Prompt",
            Kind::Intent => "IntentEvent",
            Kind::Decision => "CouponDecision",
            Kind::Order => "OrderEvent",
            Kind::Reply => "Reply",
            Kind::Treasury => "TreasuryRecord",
            Kind::Gateway => "GatewayDecision",
        }
    }

    fn of(record: &Record) -> Kind {
        match record {
            Record::Prompt(_) => Kind::Prompt,
            Record::Intent(_) => Kind::Intent,
            Record::Decision(_) => Kind::Decision,
            Record::Order(_) => Kind::Order,
            Record::Reply(_) => Kind::Reply,
            Record::Treasury(_) => Kind::Treasury,
            Record::Gateway(_) => Kind::Gateway,
        }
    }

    fn from_full_name(full_name: &str) -> Option<Kind> {
        let name = full_name.strip_prefix("chatcart.")?;
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The current schema of one record type: what records are written with and
/// what older versions are resolved to.
struct Current {
    kind: Kind,
    schema: &'static Schema,
    /// Named types of `schema`, for apache-avro's serialiser and resolver.
    resolved: ResolvedSchema<'static>,
    header: [u8; SINGLE_OBJECT_HEADER_LEN],
}

/// One registered writer schema, ready to read datums.
struct Writer {
    kind: Kind,
    /// Built with an empty expected header: headers are parsed by the codec,
    /// which needs to look the fingerprint up among several schemas.
    reader: GenericSingleObjectReader,
    /// Same parsing canonical form as the current schema, so the datum can be
    /// deserialised directly, without resolution.
    is_current: bool,
}

#[derive(Clone)]
struct Inner {
    /// Indexed by [`Kind::index`].
    current: Arc<[Current]>,
    by_fingerprint: HashMap<u64, Arc<Writer>>,
    by_confluent_id: HashMap<u32, Arc<Writer>>,
}

/// Encodes and decodes chatcart records.
///
/// Cheap to clone (one reference count); registering schemas copies only the
/// lookup tables of the codec being configured, so set it up once at startup
/// and share clones.
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fingerprints: Vec<String> = self
            .inner
            .by_fingerprint
            .iter()
            .map(|(fp, w)| format!("{}:{}", w.kind.name(), hex(&fp.to_le_bytes())))
            .collect();
        fingerprints.sort();
        let mut ids: Vec<u32> = self.inner.by_confluent_id.keys().copied().collect();
        ids.sort_unstable();
        f.debug_struct("Codec")
            .field("writer_schemas", &fingerprints)
            .field("confluent_ids", &ids)
            .finish()
    }
}

impl Codec {
    /// A codec with the six current schemas registered.
    ///
    /// The schemas are parsed once per process; later calls share them.
    pub fn new() -> Codec {
        static BUILTIN: OnceLock<Arc<Inner>> = OnceLock::new();
        let inner = BUILTIN.get_or_init(|| match Inner::builtin() {
            Ok(inner) => Arc::new(inner),
            // The schemas are compiled in and covered by tests; failing here
            // means the crate itself is broken, which no caller can handle.
            Err(e) => panic!("bundled chatcart Avro schemas are invalid: {e}"),
        });
        Codec {
            inner: Arc::clone(inner),
        }
    }

    /// Registers the writer schema a Confluent schema registry published as
    /// `id`, so prompts in Confluent wire format with that id can be decoded.
    ///
    /// The schema must be a prompt schema (any version that Avro schema
    /// resolution can read as the current `chatcart.Prompt`). Registering an
    /// id again replaces its schema.
    pub fn with_confluent_schema(
        mut self,
        id: u32,
        schema_json: &str,
    ) -> Result<Codec, CodecError> {
        let context = format!("Confluent schema id {id}");
        let schema = parse_schema(schema_json, &context)?;
        let current = &self.inner.current[Kind::Prompt.index()];
        let (_, writer) = Writer::new(schema, current, &context)?;
        Arc::make_mut(&mut self.inner)
            .by_confluent_id
            .insert(id, Arc::new(writer));
        Ok(self)
    }

    /// Registers another version of a record type's schema for single-object
    /// decoding, e.g. the version older producers still write.
    ///
    /// The record type is chosen by the schema's full name (`chatcart.Prompt`,
    /// `chatcart.IntentEvent`, …); the schema must be resolvable to that
    /// type's current schema.
    pub fn register_writer_schema(mut self, schema_json: &str) -> Result<Codec, CodecError> {
        let schema = parse_schema(schema_json, "writer schema")?;
        let full_name = match schema.name() {
            Some(name) => name.fullname(None),
            None => format!("{:?}", apache_avro::schema::SchemaKind::from(&schema)),
        };
        let Some(kind) = Kind::from_full_name(&full_name) else {
            return Err(CodecError::UnknownRecordType { name: full_name });
        };
        let current = &self.inner.current[kind.index()];
        let (fingerprint, writer) =
            Writer::new(schema, current, &format!("writer schema {full_name}"))?;
        Arc::make_mut(&mut self.inner)
            .by_fingerprint
            .entry(fingerprint)
            // The same canonical form is already known (possibly as the
            // current schema, whose entry takes the direct path): keep it.
            .or_insert_with(|| Arc::new(writer));
        Ok(self)
    }

    /// Encodes `record` with Avro single-object encoding under its current schema.
    pub fn encode(&self, record: &Record) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(record, &mut out)?;
        Ok(out)
    }

    /// Like [`Codec::encode`], but appends to `out`, so a caller can reuse one
    /// buffer. On error `out` may hold a partial record; clear it before reuse.
    pub fn encode_into(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let current = &self.inner.current[Kind::of(record).index()];
        out.extend_from_slice(&current.header);
        match record {
            Record::Prompt(r) => current.write(r, out),
            Record::Intent(r) => current.write(r, out),
            Record::Decision(r) => current.write(r, out),
            Record::Order(r) => current.write(r, out),
            Record::Reply(r) => current.write(r, out),
            Record::Treasury(r) => current.write(r, out),
            Record::Gateway(r) => current.write(r, out),
        }
    }

    /// Decodes a single-object encoded record of any type, resolving older
    /// registered versions to the current schema.
    pub fn decode(&self, bytes: &[u8]) -> Result<Record, CodecError> {
        let (writer, datum) = self.single_object(bytes, ACCEPTS_SINGLE_OBJECT)?;
        match writer.kind {
            Kind::Prompt => self.read(writer, datum).map(Record::Prompt),
            Kind::Intent => self.read(writer, datum).map(Record::Intent),
            Kind::Decision => self.read(writer, datum).map(Record::Decision),
            Kind::Order => self.read(writer, datum).map(Record::Order),
            Kind::Reply => self.read(writer, datum).map(Record::Reply),
            Kind::Treasury => self.read(writer, datum).map(Record::Treasury),
            Kind::Gateway => self.read(writer, datum).map(Record::Gateway),
        }
    }

    /// Decodes and validates a prompt in whichever encoding its first bytes
    /// announce: `C3 01` single-object, `00` Confluent wire format, or `{`
    /// JSON (after optional ASCII whitespace or a UTF-8 BOM).
    ///
    /// A JSON prompt without `event_time_ms` gets 0; the caller fills it in.
    pub fn decode_prompt(&self, bytes: &[u8]) -> Result<Prompt, CodecError> {
        let prompt = match bytes.first() {
            None => return Err(CodecError::Empty),
            Some(0xC3) => {
                let (writer, datum) = self.single_object(bytes, ACCEPTS_PROMPT)?;
                if writer.kind != Kind::Prompt {
                    return Err(CodecError::NotAPrompt {
                        found: writer.kind.name(),
                    });
                }
                self.read(writer, datum)?
            }
            Some(0x00) => {
                let (writer, datum) = self.confluent(bytes)?;
                self.read(writer, datum)?
            }
            Some(_) => match json_start(bytes) {
                Some(json) => prompt_from_json(json)?,
                None => return Err(unrecognised(bytes, ACCEPTS_PROMPT)),
            },
        };
        validate_prompt(&prompt)?;
        Ok(prompt)
    }

    /// Splits a single-object message into its registered writer schema and datum.
    fn single_object<'b>(
        &self,
        bytes: &'b [u8],
        accepted: &'static str,
    ) -> Result<(&Writer, &'b [u8]), CodecError> {
        if bytes.is_empty() {
            return Err(CodecError::Empty);
        }
        let magic_len = bytes.len().min(SINGLE_OBJECT_MAGIC.len());
        if bytes[..magic_len] != SINGLE_OBJECT_MAGIC[..magic_len] {
            return Err(unrecognised(bytes, accepted));
        }
        let Some((header, datum)) = bytes.split_first_chunk::<SINGLE_OBJECT_HEADER_LEN>() else {
            return Err(CodecError::Truncated {
                what: "Avro single-object header",
                expected: Some(SINGLE_OBJECT_HEADER_LEN),
                present: bytes.len(),
            });
        };
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&header[2..]);
        let writer = self
            .inner
            .by_fingerprint
            .get(&u64::from_le_bytes(fingerprint))
            .ok_or(CodecError::UnknownFingerprint { fingerprint })?;
        Ok((writer, datum))
    }

    /// Splits a Confluent wire-format message into its configured writer schema and datum.
    fn confluent<'b>(&self, bytes: &'b [u8]) -> Result<(&Writer, &'b [u8]), CodecError> {
        let Some((header, datum)) = bytes.split_first_chunk::<CONFLUENT_HEADER_LEN>() else {
            return Err(CodecError::Truncated {
                what: "Confluent wire-format header",
                expected: Some(CONFLUENT_HEADER_LEN),
                present: bytes.len(),
            });
        };
        let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let writer = self
            .inner
            .by_confluent_id
            .get(&id)
            .ok_or(CodecError::UnknownSchemaId { id })?;
        Ok((writer, datum))
    }

    /// Reads one datum written with `writer` as the current version of its type.
    fn read<T: DeserializeOwned>(&self, writer: &Writer, datum: &[u8]) -> Result<T, CodecError> {
        let record = writer.kind.name();
        let decode_error = |e: apache_avro::Error| {
            if is_eof(&e) {
                CodecError::Truncated {
                    what: "Avro datum",
                    expected: None,
                    present: datum.len(),
                }
            } else if is_utf8(&e) {
                CodecError::InvalidUtf8 { record }
            } else {
                CodecError::InvalidAvro {
                    record,
                    message: avro_message(&e),
                }
            }
        };
        let mut rest = datum;
        let value = if writer.is_current {
            writer
                .reader
                .read_deser::<T>(&mut rest)
                .map_err(decode_error)?
        } else {
            let current = &self.inner.current[writer.kind.index()];
            let value = writer.reader.read_value(&mut rest).map_err(decode_error)?;
            let value = value
                .resolve_with_names(current.schema, current.resolved.get_names())
                .map_err(decode_error)?;
            apache_avro::from_value::<T>(&value).map_err(decode_error)?
        };
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes {
                record,
                extra: rest.len(),
            });
        }
        Ok(value)
    }
}

impl Inner {
    /// Parses the bundled schemas. Called only through the `OnceLock` in
    /// [`Codec::new`], because it leaks the parsed schemas to make them `'static`.
    fn builtin() -> Result<Inner, CodecError> {
        // apache-avro allocates a string or array's declared length before
        // reading it; without a cap, one corrupt length prefix could ask for
        // 512 MiB. No chatcart record comes near this (Kafka's default
        // message limit is 1 MiB). The setting is process-wide and set once.
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
        let mut current = Vec::with_capacity(Kind::ALL.len());
        let mut by_fingerprint = HashMap::new();
        for kind in Kind::ALL {
            let context = format!("bundled {} schema", kind.name());
            let schema = parse_schema(kind.schema_json(), &context)?;
            let fingerprint = fingerprint(&schema);
            let mut header = [0u8; SINGLE_OBJECT_HEADER_LEN];
            header[..2].copy_from_slice(&SINGLE_OBJECT_MAGIC);
            header[2..].copy_from_slice(&fingerprint.to_le_bytes());
            let reader = empty_header_reader(schema.clone(), &context)?;
            // A `'static` schema lets the codec keep apache-avro's resolved
            // name table (which borrows the schema) instead of rebuilding it
            // for every record; apache-avro does not export an owning variant.
            let schema: &'static Schema = Box::leak(Box::new(schema));
            let resolved = ResolvedSchema::new(schema).map_err(|e| CodecError::SchemaParse {
                context,
                message: e.to_string(),
            })?;
            by_fingerprint.insert(
                fingerprint,
                Arc::new(Writer {
                    kind,
                    reader,
                    is_current: true,
                }),
            );
            current.push(Current {
                kind,
                schema,
                resolved,
                header,
            });
        }
        for json in EARLIER_SCHEMAS {
            let schema = parse_schema(json, "bundled earlier schema")?;
            let name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
            let Some(kind) = Kind::from_full_name(&name) else {
                return Err(CodecError::UnknownRecordType { name });
            };
            let context = format!("bundled earlier {name} schema");
            let (fingerprint, writer) = Writer::new(schema, &current[kind.index()], &context)?;
            by_fingerprint
                .entry(fingerprint)
                .or_insert(Arc::new(writer));
        }
        Ok(Inner {
            current: current.into(),
            by_fingerprint,
            by_confluent_id: HashMap::new(),
        })
    }
}

impl Current {
    fn write<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        apache_avro::write_avro_datum_ref(self.schema, self.resolved.get_names(), value, out)
            .map(|_| ())
            .map_err(|e| CodecError::Encode {
                record: self.kind.name(),
                message: avro_message(&e),
            })
    }
}

impl Writer {
    /// Checks that `schema` can be read as `current` and prepares to read its
    /// datums; returns its fingerprint too.
    fn new(schema: Schema, current: &Current, context: &str) -> Result<(u64, Writer), CodecError> {
        SchemaCompatibility::can_read(&schema, current.schema).map_err(|e| {
            CodecError::IncompatibleSchema {
                context: context.to_owned(),
                record: current.kind.name(),
                message: e.to_string(),
            }
        })?;
        let fingerprint = fingerprint(&schema);
        let is_current = current.header[2..] == fingerprint.to_le_bytes();
        let reader = empty_header_reader(schema, context)?;
        Ok((
            fingerprint,
            Writer {
                kind: current.kind,
                reader,
                is_current,
            },
        ))
    }
}

fn parse_schema(json: &str, context: &str) -> Result<Schema, CodecError> {
    Schema::parse_str(json).map_err(|e| CodecError::SchemaParse {
        context: context.to_owned(),
        message: e.to_string(),
    })
}

/// CRC-64-AVRO of the schema's parsing canonical form, as the single-object
/// encoding specifies.
fn fingerprint(schema: &Schema) -> u64 {
    let digest = schema.fingerprint::<Rabin>().bytes;
    let mut bytes = [0u8; 8];
    // Rabin's digest is exactly 8 bytes, already little-endian.
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

fn empty_header_reader(
    schema: Schema,
    context: &str,
) -> Result<GenericSingleObjectReader, CodecError> {
    GenericSingleObjectReader::builder()
        .schema(schema)
        .header(Vec::new())
        .build()
        .map_err(|e| CodecError::SchemaParse {
            context: context.to_owned(),
            message: e.to_string(),
        })
}

fn unrecognised(bytes: &[u8], accepted: &'static str) -> CodecError {
    CodecError::UnrecognisedEncoding {
        first_bytes: hex(&bytes[..bytes.len().min(8)]),
        accepted,
    }
}
