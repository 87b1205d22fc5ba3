//! What goes over HTTP: the prompt a front-end posts (checked, with errors
//! that name the field), the JSON errors, the events of a stream and the
//! words people read in them, in Chinese and English.

use std::time::Duration;

use axum::http::StatusCode;
use schemas::{Codec, CodecError, Prompt, Reply};

use crate::admission::Overload;
use serde::Serialize;
use serde_json::{Value, json};

/// A refusal: the status, a `snake_case` code, the field it is about and
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
    /// Extra members of the JSON body.
    pub extra: Vec<(&'static str, Value)>,
}

impl Refusal {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            field,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }

    /// The JSON body: `{"error", "field", "message", …}`.
    pub fn body(&self) -> Value {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        for (k, v) in &self.extra {
            body[*k] = v.clone();
        }
        body
    }
}

fn bad(code: &'static str, field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, code, Some(field), message)
}

/// The prompt in a POST body, checked as the intent stage checks a JSON
/// prompt, plus what only the gateway can check.
pub fn parse_prompt(
    codec: &Codec,
    body: &[u8],
    campaigns: &[String],
    now_ms: i64,
) -> Result<Prompt, Refusal> {
    if std::str::from_utf8(body).is_err() {
        return Err(bad(
            "invalid_utf8",
            "body",
            "the body is not valid UTF-8; send the JSON as UTF-8",
        ));
    }
    let trimmed = body.trim_ascii_start();
    if !trimmed.starts_with(b"{") {
        return Err(bad(
            "not_a_json_object",
            "body",
            "send one JSON object, e.g. {\"request_id\":\"r-1\",\"user_id\":\"u-1\",\"text\":\"帮我买2杯奶茶\"}",
        ));
    }
    let mut prompt = codec.decode_prompt(body).map_err(|e| match e {
        CodecError::MissingField { field } => bad(
            "missing_field",
            field,
            format!("`{field}` is required and must not be empty"),
        ),
        CodecError::FieldTooLong { field, max, actual } => bad(
            "field_too_long",
            field,
            format!("`{field}` is {actual} bytes; at most {max} are allowed"),
        ),
        CodecError::ControlCharacter { field, offset } => bad(
            "control_character",
            field,
            format!("`{field}` has a control character at byte {offset}; remove it"),
        ),
        CodecError::InvalidJson {
            message,
            line,
            column,
        } => bad(
            "invalid_json",
            "body",
            format!("not valid JSON at line {line} column {column}: {message}"),
        ),
        other => bad("invalid_prompt", "body", other.to_string()),
    })?;
    if !prompt.campaign_id.is_empty() && !campaigns.contains(&prompt.campaign_id) {
        return Err(bad(
            "unknown_campaign",
            "campaign_id",
            format!(
                "no campaign `{}` runs here; leave it out for the current campaign",
                prompt.campaign_id
            ),
        ));
    }
    if prompt.event_time_ms < 0 {
        return Err(bad(
            "invalid_time",
            "event_time_ms",
            "must be milliseconds since the Unix epoch",
        ));
    }
    if prompt.deadline_ms.is_some_and(|d| d <= now_ms) {
        return Err(bad(
            "deadline_passed",
            "deadline_ms",
            "the deadline has already passed",
        ));
    }
    if prompt.event_time_ms == 0 {
        prompt.event_time_ms = now_ms;
    }
    Ok(prompt)
}

/// `zh` or `en` for the person who sent `prompt`.
pub fn language(prompt: &Prompt) -> &'static str {
    stages::intent::locale(prompt.locale.as_deref(), &prompt.text)
}

/// Whole seconds, rounded up, as people are told them.
pub fn secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// The `queued` event: where the request stands.
pub fn queued(request_id: &str, position: i64, wait: Duration, lang: &str, used_up: bool) -> Value {
    let s = secs(wait);
    let mut text = if lang == "zh" {
        format!(
            "活动太火爆了，您前面还有 {position} 个请求，预计等待约 {s} 秒。不用重复发送，结果会在这里告诉您。"
        )
    } else {
        format!(
            "The campaign is very busy: {position} requests are ahead of yours and the wait is about {s} s. No need to send it again; the answer will appear here."
        )
    };
    if used_up {
        text.push_str(if lang == "zh" {
            "另外，本次活动的免单额度已经全部发出（订单失败时会有少量退回），这单很可能无法免单。"
        } else {
            " Also, the campaign's free orders have all been handed out (a few come back when orders fail), so this one will most likely not be free."
        });
    }
    let mut event = json!({
        "request_id": request_id,
        "position": position,
        "estimated_wait_secs": s,
        "text": text,
    });
    if used_up {
        event["free_orders"] = json!("used_up");
    }
    event
}

/// The `final` event, or the `?wait=` body: the reply's fields.
pub fn final_answer(reply: &Reply) -> Value {
    serde_json::to_value(reply).unwrap_or_else(|_| json!({"request_id": reply.request_id}))
}

/// The `429` refusal: too busy to queue the request, and when to retry.
pub fn busy(why: Overload, retry_after: Duration, max_wait: Duration, lang: &str) -> Refusal {
    let (retry, max) = (secs(retry_after), secs(max_wait));
    let zh = lang == "zh";
    let (text, message) = match why {
        Overload::OverMaxWait(_) if zh => (
            format!(
                "活动太火爆了，现在排队预计要超过 {max} 秒，这次没有为您排队。请 {retry} 秒后再试。"
            ),
            "not admitted: the estimated wait is over gateway.max_wait_secs; retry after Retry-After seconds",
        ),
        Overload::OverMaxWait(_) => (
            format!(
                "The campaign is very busy: the wait would be over {max} s, so your request was not queued. Please try again in {retry} s."
            ),
            "not admitted: the estimated wait is over gateway.max_wait_secs; retry after Retry-After seconds",
        ),
        Overload::Stalled if zh => (
            format!("下单处理暂时停滞，这次没有为您排队。请 {retry} 秒后再试。"),
            "not admitted: a stage has made no progress for gateway.stall_secs; retry after Retry-After seconds",
        ),
        Overload::Stalled => (
            format!(
                "Orders are held up for the moment, so your request was not queued. Please try again in {retry} s."
            ),
            "not admitted: a stage has made no progress for gateway.stall_secs; retry after Retry-After seconds",
        ),
        Overload::NoEstimateYet if zh => (
            format!(
                "请求刚刚大量涌入，还无法估计等待时间，这次没有为您排队。请 {retry} 秒后再试。"
            ),
            "not admitted: requests just began pouring in and the wait cannot be estimated yet; retry after Retry-After seconds",
        ),
        Overload::NoEstimateYet => (
            format!(
                "Requests have just begun pouring in and the wait cannot be told yet, so your request was not queued. Please try again in {retry} s."
            ),
            "not admitted: requests just began pouring in and the wait cannot be estimated yet; retry after Retry-After seconds",
        ),
    };
    let mut r = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "too_busy", None, message)
        .with("retry_after_secs", json!(retry))
        .with("text", json!(text));
    if let Some(wait) = why.wait() {
        r = r.with("estimated_wait_secs", json!(secs(wait)));
    }
    r
}

/// The `pending` event that ends a stream before the answer: where to
/// resume.
pub fn pending(request_id: &str, url: &str) -> Value {
    json!({"request_id": request_id, "status": "pending", "url": url})
}

/// A request's resume URL.
pub fn url_of(request_id: &str) -> String {
    let mut out = String::from("/v1/prompts/");
    for b in request_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How an event is named on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Queued,
    Final,
    Pending,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Final => "final",
            EventKind::Pending => "pending",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Prompt, Refusal> {
        parse_prompt(&Codec::new(), body, &["spring".to_owned()], 1_000)
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases: [(&[u8], &str, &str); 9] = [
            (b"\xff\xfe{}", "invalid_utf8", "body"),
            (b"[1,2]", "not_a_json_object", "body"),
            (b"{\"request_id\": ", "invalid_json", "body"),
            (
                br#"{"user_id":"u","text":"t"}"#,
                "missing_field",
                "request_id",
            ),
            (
                br#"{"request_id":"r","text":"t"}"#,
                "missing_field",
                "user_id",
            ),
            (
                br#"{"request_id":"r","user_id":"u\u0007","text":"t"}"#,
                "control_character",
                "user_id",
            ),
            (
                br#"{"request_id":"r","user_id":"u","text":"t","campaign_id":"nope"}"#,
                "unknown_campaign",
                "campaign_id",
            ),
            (
                br#"{"request_id":"r","user_id":"u","text":"t","deadline_ms":999}"#,
                "deadline_passed",
                "deadline_ms",
            ),
            (
                br#"{"request_id":"r","user_id":"u","text":"t","event_time_ms":-5}"#,
                "invalid_time",
                "event_time_ms",
            ),
        ];
        for (body, code, field) in cases {
            let r = parse(body).expect_err(code);
            assert_eq!(
                (r.code, r.field),
                (code, Some(field)),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert_eq!(r.body()["field"], field);
        }
        let long = format!(
            r#"{{"request_id":"{}","user_id":"u","text":"t"}}"#,
            "x".repeat(129)
        );
        let r = parse(long.as_bytes()).expect_err("too long");
        assert_eq!((r.code, r.field), ("field_too_long", Some("request_id")));
        // The text of a prompt never appears in an error.
        let r = parse(br#"{"request_id":"r","user_id":"u","text":"secret stuff", "x": }"#)
            .expect_err("bad");
        assert!(!r.message.contains("secret"), "{}", r.message);
    }

    #[test]
    fn a_good_prompt_gets_its_time_and_keeps_the_rest() {
        let p = parse(
            br#"{"request_id":"r","user_id":"u","text":"two lattes","campaign_id":"spring"}"#,
        )
        .expect("valid");
        assert_eq!(p.event_time_ms, 1_000);
        assert_eq!(p.campaign_id, "spring");
        assert_eq!(language(&p), "en");
    }

    #[test]
    fn texts_say_where_a_request_stands_in_both_languages() {
        let q = queued("r1", 120, Duration::from_millis(7_200), "zh", true);
        assert_eq!(q["estimated_wait_secs"], 8);
        assert!(
            q["text"]
                .as_str()
                .is_some_and(|t| t.contains("120") && t.contains("8 秒") && t.contains("免单"))
        );
        let b = busy(
            Overload::OverMaxWait(Duration::from_secs(31)),
            Duration::from_secs(11),
            Duration::from_secs(20),
            "en",
        );
        assert_eq!(b.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            b.body()["text"]
                .as_str()
                .is_some_and(|t| t.contains("20 s") && t.contains("11 s"))
        );
        assert_eq!(b.body()["estimated_wait_secs"], 31);
        // Without an estimate, each reason says its own thing in each
        // language, and no wait is made up.
        let mut texts = std::collections::BTreeSet::new();
        for why in [Overload::Stalled, Overload::NoEstimateYet] {
            for lang in ["zh", "en"] {
                let b = busy(why, Duration::from_secs(1), Duration::from_secs(20), lang);
                assert!(b.body().get("estimated_wait_secs").is_none());
                let text = b.body()["text"].as_str().expect("a text").to_owned();
                assert!(text.contains('1'), "{text}");
                texts.insert(text);
            }
        }
        assert_eq!(texts.len(), 4);
        assert_eq!(url_of("a b/é"), "/v1/prompts/a%20b%2F%C3%A9");
    }
}
