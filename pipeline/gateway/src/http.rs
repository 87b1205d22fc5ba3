//! The HTTP routes: `POST /v1/prompts` and `GET /v1/prompts/{request_id}`,
//! each answering with a server-sent-event stream or, with `?wait=SECS`,
//! one JSON answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use crate::admission::Admission;
use crate::requests::{Claim, Handle, Queued};
use crate::wire::{self, EventKind, Refusal};
use crate::{Decision, Gateway};

/// The routes, over `gateway`.
pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route("/v1/prompts", post(post_prompt))
        .route("/v1/prompts/{request_id}", get(get_prompt))
        .with_state(gateway)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let retry = self
            .extra
            .iter()
            .find(|(k, _)| *k == "retry_after_secs")
            .and_then(|(_, v)| v.as_u64());
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = retry {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// `?wait=SECS`: answer once, in JSON, instead of streaming.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    wait: Option<u64>,
}

async fn post_prompt(
    State(gw): State<Arc<Gateway>>,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let permit = gw.open_request()?;
    let bytes = read_body(&gw, &headers, body).await?;
    let now_ms = runtime::now_ms();
    let mut prompt = wire::parse_prompt(&gw.codec, &bytes, &gw.campaign_ids, now_ms)?;
    let lang = wire::language(&prompt);
    let id = prompt.request_id.clone();
    let handle = match gw.requests.claim(&id, &prompt.user_id, Instant::now()) {
        Claim::Known(handle) => {
            return Ok(answer(&gw, &id, handle, query.wait, permit, None).await);
        }
        Claim::Deciding => return Err(deciding(&id)),
        Claim::OtherUser => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "request_id_taken",
                Some("request_id"),
                "another person's request has this request_id; give every request its own",
            ));
        }
        Claim::Busy(first) => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "request_in_flight",
                Some("user_id"),
                "this person already has a request in flight; wait for its answer (at `url`)",
            )
            .with("request_id", json!(first))
            .with("url", json!(wire::url_of(&first))));
        }
        Claim::Full => {
            return Err(unavailable(
                "the gateway follows as many requests as it may (gateway.max_tracked_requests); try again shortly",
            ));
        }
        Claim::New(handle) => handle,
    };
    let partition = stages::topic::shard_of(prompt.user_id.as_bytes(), gw.partitions);
    let (position, wait, margin) = match gw.admit(partition) {
        Admission::Admit {
            position,
            wait,
            margin,
        } => {
            // From here a repeat follows this request; before, it might
            // still have been shed.
            gw.requests.admit(&id);
            (position, wait, margin)
        }
        Admission::Shed {
            position,
            why,
            retry_after,
        } => {
            gw.requests.abandon(&id);
            gw.counters.shed(why);
            gw.record(&prompt, now_ms, Decision::Shed { position, why });
            return Err(wire::busy(why, retry_after, gw.config.max_wait(), lang));
        }
    };
    let used_up = gw.used_up(&prompt.campaign_id);
    let queued = (wait > gw.config.queued_after() || used_up).then_some(Queued {
        position,
        wait,
        margin,
        told_after: Duration::ZERO,
        used_up,
        lang,
    });
    if let Some(q) = queued {
        gw.requests.set_queued(&id, q);
    }
    // The deadline is the promise plus slack: past it the pipeline ends the
    // request as expired instead of answering later than promised.
    let deadline = now_ms + (wait + gw.config.deadline_slack()).as_millis() as i64;
    prompt.deadline_ms = Some(prompt.deadline_ms.map_or(deadline, |d| d.min(deadline)));
    prompt.reply_partition = Some(gw.config.instance);
    if let Err(e) = gw.publish(&prompt, partition).await {
        gw.requests.abandon(&id);
        tracing::warn!(request_id = %id, error = %e, "publishing a prompt failed");
        return Err(unavailable(
            "could not publish the prompt to Kafka; try again (with the same request_id)",
        ));
    }
    gw.counters.admitted(queued.is_some());
    gw.record(
        &prompt,
        now_ms,
        Decision::Admitted {
            position,
            wait,
            used_up,
        },
    );
    let late = queued.is_none().then(|| Late {
        gw: Arc::clone(&gw),
        admitted_at: Instant::now(),
        partition,
        lang,
        used_up,
    });
    let handle = Handle { queued, ..handle };
    Ok(answer(&gw, &id, handle, query.wait, permit, late).await)
}

async fn get_prompt(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, Refusal> {
    let permit = gw.open_request()?;
    let Some(handle) = gw.requests.get(&id) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            Some("request_id"),
            "this gateway instance does not know the request: it was answered more than gateway.keep_answers_secs ago or sent to another instance; post it again with the same request_id (no second order is made)",
        ));
    };
    if !handle.admitted {
        return Err(deciding(&id));
    }
    Ok(answer(&gw, &id, handle, query.wait, permit, None).await)
}

/// The refusal for a request asked about while its first POST is still
/// being admitted or shed: there is nothing to follow yet.
fn deciding(id: &str) -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        "request_being_admitted",
        Some("request_id"),
        "this request is being admitted right now; ask for it again at `url` in a moment (nothing is published twice)",
    )
    .with("request_id", json!(id))
    .with("url", json!(wire::url_of(id)))
}

/// Reads the body within the size and time limits.
async fn read_body(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let max = gw.config.max_body_bytes;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            Some("body"),
            format!("the body is over {max} bytes (gateway.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    match tokio::time::timeout(gw.config.body_timeout(), axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        // The one way reading a body fails here once its length was
        // accepted is going over the limit while it streams in.
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            Some("body"),
            "the body did not arrive within gateway.body_timeout_secs",
        )),
    }
}

pub(crate) fn unavailable(message: &str) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        None,
        message,
    )
}

/// A request admitted without a `queued` event: if its answer is not there
/// shortly before `gateway.queued_after_ms`, it is told its place then, so
/// everyone hears something within that time even when the estimate was
/// too low.
struct Late {
    gw: Arc<Gateway>,
    admitted_at: Instant,
    partition: i32,
    lang: &'static str,
    used_up: bool,
}

impl Late {
    /// How long the answer is waited for before the notice: a quarter
    /// second short of `queued_after_ms`, for the network and the client.
    fn after(&self) -> Duration {
        self.gw
            .config
            .queued_after()
            .saturating_sub(Duration::from_millis(250))
    }

    /// The `queued` event for `id` now, recorded for a resume.
    fn notice(&self, id: &str) -> Value {
        let (position, wait, margin) = match self.gw.estimate(self.partition) {
            Admission::Admit {
                position,
                wait,
                margin,
            } => (position, wait, margin),
            Admission::Shed { why, .. } => (
                0,
                why.wait().unwrap_or(self.gw.config.max_wait()),
                Duration::ZERO,
            ),
        };
        let q = Queued {
            position,
            wait,
            margin,
            told_after: self.admitted_at.elapsed(),
            used_up: self.used_up,
            lang: self.lang,
        };
        self.gw.requests.set_queued(id, q);
        wire::queued(id, position, wait, self.lang, self.used_up)
    }
}

/// Answers with a stream, or with `?wait=` one JSON body. A repeated or
/// resumed request gets what the first was told, then the answer.
async fn answer(
    gw: &Gateway,
    id: &str,
    handle: Handle,
    wait: Option<u64>,
    permit: OwnedSemaphorePermit,
    late: Option<Late>,
) -> Response {
    let limit = gw.config.max_stream();
    let url = wire::url_of(id);
    if let Some(secs) = wait {
        let within = Duration::from_secs(secs).min(limit);
        let mut rx = handle.answer;
        let answered = tokio::time::timeout(within, rx.wait_for(Option::is_some)).await;
        drop(permit);
        return match answered {
            Ok(Ok(reply)) => match reply.as_ref() {
                Some(r) => (StatusCode::OK, Json(wire::final_answer(r))).into_response(),
                None => (StatusCode::ACCEPTED, Json(wire::pending(id, &url))).into_response(),
            },
            _ => {
                let mut r = (StatusCode::ACCEPTED, Json(wire::pending(id, &url))).into_response();
                if let Ok(v) = HeaderValue::from_str(&url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
        };
    }
    let first = handle
        .queued
        .map(|q| wire::queued(id, q.position, q.wait, q.lang, q.used_up));
    let stream = events(first, late, handle, limit, id.to_owned(), url, permit);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The events of one stream: at most one `queued`, then `final` (or
/// `pending` when the stream's time is up). The permit is held until the
/// stream ends.
fn events(
    first: Option<Value>,
    late: Option<Late>,
    handle: Handle,
    limit: Duration,
    id: String,
    url: String,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    enum Step {
        First,
        Last,
        Done,
    }
    let state = (Step::First, first, late, handle.answer, Some(permit));
    futures::stream::unfold(state, move |(step, first, late, mut rx, permit)| {
        let (id, url) = (id.clone(), url.clone());
        async move {
            match step {
                Step::First => {
                    if let Some(q) = first {
                        let event = sse(EventKind::Queued, &q);
                        return Some((Ok(event), (Step::Last, None, None, rx, permit)));
                    }
                    if let Some(late) = late {
                        let soon = tokio::time::timeout(late.after(), rx.wait_for(Option::is_some));
                        if soon.await.is_err() {
                            let event = sse(EventKind::Queued, &late.notice(&id));
                            return Some((Ok(event), (Step::Last, None, None, rx, permit)));
                        }
                    }
                    let event = last(&mut rx, limit, &id, &url).await;
                    Some((Ok(event), (Step::Done, None, None, rx, None)))
                }
                Step::Last => {
                    let event = last(&mut rx, limit, &id, &url).await;
                    Some((Ok(event), (Step::Done, None, None, rx, None)))
                }
                Step::Done => None,
            }
        }
    })
}

async fn last(
    rx: &mut tokio::sync::watch::Receiver<crate::requests::Answer>,
    limit: Duration,
    id: &str,
    url: &str,
) -> Event {
    match tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await {
        Ok(Ok(reply)) => match reply.as_ref() {
            Some(r) => sse(EventKind::Final, &wire::final_answer(r)),
            None => sse(EventKind::Pending, &wire::pending(id, url)),
        },
        _ => sse(EventKind::Pending, &wire::pending(id, url)),
    }
}

fn sse(kind: EventKind, data: &Value) -> Event {
    Event::default().event(kind.name()).data(data.to_string())
}
