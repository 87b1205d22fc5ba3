//! Any bytes as a prompt from a front-end, in whichever of the three
//! encodings its first byte announces (single-object Avro, Confluent wire
//! format, JSON): decoding never panics; what it accepts is within the
//! limits and survives a round trip through the codec; what it refuses is
//! an error whose message never carries the prompt's text.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use schemas::codec::{MAX_ID_BYTES, MAX_TEXT_BYTES, PROMPT_SCHEMA};
use schemas::{Codec, Record};

/// A Confluent schema id the codec knows, so `00` inputs reach the datum.
const CONFLUENT_ID: u32 = 1;

/// Texts shorter than this may occur in a message by chance ("id", "a").
const TEXT_WORTH_LOOKING_FOR: usize = 8;

static CODEC: LazyLock<Codec> = LazyLock::new(|| {
    Codec::new()
        .with_confluent_schema(CONFLUENT_ID, PROMPT_SCHEMA)
        .expect("the current prompt schema registers")
});

fuzz_target!(|bytes: &[u8]| {
    let codec = &*CODEC;
    match codec.decode_prompt(bytes) {
        Ok(prompt) => {
            for id in [&prompt.request_id, &prompt.user_id] {
                assert!(!id.is_empty() && id.len() <= MAX_ID_BYTES, "{id:?}");
                assert!(!id.chars().any(char::is_control), "{id:?}");
            }
            assert!(prompt.text.len() <= MAX_TEXT_BYTES);
            let record = Record::Prompt(prompt);
            let again = codec
                .decode(&codec.encode(&record).expect("an accepted prompt encodes"))
                .expect("an encoded prompt decodes");
            assert_eq!(again, record);
        }
        Err(e) => {
            let message = e.to_string();
            if let Some(text) = json_text(bytes) {
                // A text the message's own wording contains ("request_")
                // is no leak: the message for the same prompt with another
                // text says it too.
                let worded = codec
                    .decode_prompt(&with_text(bytes, "~"))
                    .err()
                    .is_some_and(|e| e.to_string().contains(&text));
                assert!(
                    text.chars().count() < TEXT_WORTH_LOOKING_FOR
                        || !message.contains(&text)
                        || worded,
                    "the error repeats the prompt's text: {message}"
                );
            }
        }
    }
});

/// The `text` field of a JSON prompt, when the bytes are one.
fn json_text(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(value.get("text")?.as_str()?.to_owned())
}

/// The JSON prompt `bytes` with its `text` replaced by `text`.
fn with_text(bytes: &[u8], text: &str) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("text".into(), text.into());
    }
    serde_json::to_vec(&value).unwrap_or_default()
}
