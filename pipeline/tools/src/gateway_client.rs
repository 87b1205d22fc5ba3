//! A client of `chatcart gateway`: posts a prompt and reads the answer, an
//! event stream (`queued`, `final`, `pending`) or a JSON body, noting when
//! each part arrived, and follows a stream that ended before its final
//! event. Used by `chatcart surge --via-gateway` and the tests.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub name: String,
    pub data: Value,
    /// When it arrived.
    pub at: Instant,
}

/// What came back for one request.
#[derive(Debug, Clone)]
pub enum Answered {
    /// An event stream, read to its end (or to the deadline).
    Stream(Vec<StreamEvent>),
    /// A JSON body (a refusal, or a `?wait=` answer).
    Body {
        status: u16,
        retry_after: Option<u64>,
        body: Value,
        at: Instant,
    },
}

/// Splits server-sent events out of a byte stream, chunk by chunk. Bounded:
/// an event larger than `max_event` bytes is an error.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
    max_event: usize,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        Self {
            buffer: String::new(),
            max_event,
        }
    }

    /// Adds `chunk`; returns the events it completed, as `(name, data)`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<(String, String)>, String> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut name, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            // Keep-alive comments carry no event.
            if !name.is_empty() || !data.is_empty() {
                events.push((name, data));
            }
        }
        if self.buffer.len() > self.max_event {
            return Err(format!("an event over {} bytes", self.max_event));
        }
        Ok(events)
    }
}

/// Posts `body` to `url` (or gets `url` when `body` is `None`) and reads
/// the answer until it ends or `within` has passed. An error is returned
/// only before a stream's first event; a stream cut later ends there.
pub async fn request(
    client: &reqwest::Client,
    url: &str,
    body: Option<Vec<u8>>,
    within: Duration,
) -> Result<Answered, reqwest::Error> {
    let deadline = Instant::now() + within;
    let request = match body {
        Some(b) => client
            .post(url)
            .header("content-type", "application/json")
            .body(b),
        None => client.get(url),
    };
    let mut response = request.timeout(within).send().await?;
    let status = response.status().as_u16();
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = response.text().await?;
        return Ok(Answered::Body {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            at: Instant::now(),
        });
    }
    let mut parser = SseParser::new(1 << 20);
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) | Err(_) => break,
            // Cut after it started, a stream is what arrived of it: the
            // caller can resume it ([`follow`]).
            Ok(Err(_)) if !events.is_empty() => break,
            Ok(Err(e)) => return Err(e),
        };
        let at = Instant::now();
        let Ok(parsed) = parser.push(&chunk) else {
            break;
        };
        for (name, data) in parsed {
            events.push(StreamEvent {
                name,
                data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                at,
            });
        }
    }
    Ok(Answered::Stream(events))
}

/// The most times [`follow`] asks for one request again: each answer may
/// stream for the gateway's whole `max_stream_secs`, so a few cover any
/// timeout worth setting.
pub const MAX_RESUMES: u32 = 16;

/// The pause before asking again after `409 request_being_admitted` or
/// `503` (the gateway's request slots were full): both pass.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Follows an admitted request as a chat front-end should: while its stream
/// has ended without a `final` event (the gateway's `pending` at its stream
/// limit, or a connection cut after the first event), asks again at `resume_url` and adds what
/// each answer streams, until the final answer, a lasting refusal,
/// `deadline` or [`MAX_RESUMES`]. Returns how many times it asked.
pub async fn follow(
    client: &reqwest::Client,
    resume_url: &str,
    answered: &mut Result<Answered, reqwest::Error>,
    deadline: Instant,
) -> u32 {
    let mut resumes = 0;
    while resumes < MAX_RESUMES {
        // A refusal or an empty stream was never admitted: nothing to follow.
        let Ok(Answered::Stream(events)) = answered else {
            break;
        };
        if events.is_empty() || events.iter().any(|e| e.name == "final") {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        resumes += 1;
        match request(client, resume_url, None, left).await {
            Ok(Answered::Stream(more)) => events.extend(more),
            Ok(Answered::Body {
                status: 409 | 503, ..
            }) => tokio::time::sleep(RETRY_PAUSE.min(left)).await,
            Ok(Answered::Body { .. }) | Err(_) => break,
        }
    }
    resumes
}

/// `endpoint/request_id`, the id escaped as one path segment: where a
/// request posted to `endpoint` is asked for again.
pub fn resume_url(endpoint: &str, request_id: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut url) => {
            if let Ok(mut path) = url.path_segments_mut() {
                path.push(request_id);
            }
            url.into()
        }
        // Not a URL: posting to it fails the same way.
        Err(_) => format!("{endpoint}/{request_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_across_chunks_and_comments_are_skipped() {
        let mut p = SseParser::new(64);
        assert!(
            p.push(b"event: queued\ndata: {\"a\"")
                .expect("fits")
                .is_empty()
        );
        let got = p
            .push(b":1}\n\n: keep-alive\n\nevent: final\ndata: 2\n\n")
            .expect("fits");
        assert_eq!(
            got,
            [
                ("queued".to_owned(), "{\"a\":1}".to_owned()),
                ("final".to_owned(), "2".to_owned())
            ]
        );
        assert!(p.push(&[b'x'; 100]).is_err(), "bounded");
    }

    #[test]
    fn a_request_is_asked_for_again_at_its_own_escaped_url() {
        assert_eq!(
            resume_url("http://127.0.0.1:8080/v1/prompts", "run 1/7"),
            "http://127.0.0.1:8080/v1/prompts/run%201%2F7"
        );
    }
}
