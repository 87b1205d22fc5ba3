//! What a front-end's prompt must be, whatever its encoding: the JSON shape
//! of front-ends without Avro, and the limits on ids and text that keep
//! Kafka keys and state bounded.

use super::{MAX_ID_BYTES, MAX_TEXT_BYTES};
use crate::error::{CodecError, redact_quoted};
use crate::records::Prompt;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The JSON document in `bytes`, if it starts (after an optional BOM and
/// ASCII whitespace) with `{`.
pub(super) fn json_start(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let first = body.iter().position(|b| !b.is_ascii_whitespace())?;
    (body[first] == b'{').then_some(body)
}

/// The JSON shape front-ends send. Fields are optional here so that a missing
/// required field is reported by name rather than by serde's position.
#[derive(serde::Deserialize)]
struct JsonPrompt {
    request_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
    campaign_id: Option<String>,
    trace_id: Option<String>,
    event_time_ms: Option<i64>,
    text: Option<String>,
    locale: Option<String>,
    deadline_ms: Option<i64>,
    reply_partition: Option<i32>,
}

pub(super) fn prompt_from_json(json: &[u8]) -> Result<Prompt, CodecError> {
    let parsed: JsonPrompt = serde_json::from_slice(json).map_err(|e| {
        let message = e.to_string();
        // The position is reported separately; serde_json appends it too.
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        CodecError::InvalidJson {
            message: redact_quoted(message),
            line: e.line(),
            column: e.column(),
        }
    })?;
    let required = |value: Option<String>, field: &'static str| {
        value.ok_or(CodecError::MissingField { field })
    };
    Ok(Prompt {
        request_id: required(parsed.request_id, "request_id")?,
        user_id: required(parsed.user_id, "user_id")?,
        text: required(parsed.text, "text")?,
        session_id: parsed.session_id.unwrap_or_default(),
        campaign_id: parsed.campaign_id.unwrap_or_default(),
        trace_id: parsed.trace_id.unwrap_or_default(),
        event_time_ms: parsed.event_time_ms.unwrap_or(0),
        locale: parsed.locale,
        deadline_ms: parsed.deadline_ms,
        reply_partition: parsed.reply_partition,
    })
}

/// Checks what every prompt must satisfy, whatever its encoding.
pub(super) fn validate_prompt(prompt: &Prompt) -> Result<(), CodecError> {
    validate_id("request_id", &prompt.request_id)?;
    validate_id("user_id", &prompt.user_id)?;
    if prompt.text.len() > MAX_TEXT_BYTES {
        return Err(CodecError::FieldTooLong {
            field: "text",
            max: MAX_TEXT_BYTES,
            actual: prompt.text.len(),
        });
    }
    Ok(())
}

fn validate_id(field: &'static str, value: &str) -> Result<(), CodecError> {
    if value.is_empty() {
        return Err(CodecError::MissingField { field });
    }
    if value.len() > MAX_ID_BYTES {
        return Err(CodecError::FieldTooLong {
            field,
            max: MAX_ID_BYTES,
            actual: value.len(),
        });
    }
    if let Some((offset, _)) = value.char_indices().find(|(_, c)| c.is_control()) {
        return Err(CodecError::ControlCharacter { field, offset });
    }
    Ok(())
}
