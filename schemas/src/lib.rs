//! Avro schemas and the typed codec for every chatcart topic. No IO.
//!
//! # Layout
//! - [`records`]: the Rust types of every record (prompt, intent, decision,
//!   order, reply, treasury, gateway decision), mirrored by the `.avsc` files in `avro/`.
//! - [`codec`]: encoding to Avro single-object encoding (used on every internal
//!   topic), and decoding of prompts from the three encodings front-ends may
//!   use: Avro single-object, Confluent wire format, or JSON.
//! - [`error`]: what can go wrong while decoding, with messages that say what
//!   to fix.
//! - [`reason`]: every reason code a record may carry, spelt once.

pub mod codec;
pub mod error;
pub mod reason;
pub mod records;

pub use codec::Codec;
pub use error::CodecError;
pub use records::*;
