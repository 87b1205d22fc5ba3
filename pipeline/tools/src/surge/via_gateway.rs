//! Sending a surge through `chatcart gateway` (`--via-gateway URL`): each
//! request is an HTTP POST read as an event stream, on the same open-loop
//! schedule as a surge straight to Kafka. What each person heard first and
//! when, and whether the final answer kept the promise, go to the
//! [`FrontDoor`] tally; final answers to the surge's [`Tally`].
//!
//! At most `max_open` requests are open at once (each holds a connection);
//! when they are all taken the sender waits, and the requests it sends late
//! still count from when they were due.
//!
//! Like a chat front-end, the sender follows a stream that ends before its
//! `final` event (the gateway's `pending`, or a connection cut after the
//! first event) by asking again at the request's URL within the request's
//! timeout ([`follow`]); the front-door tally counts the requests that
//! needed it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use schemas::{Record, Reply};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::front_door::{FrontDoor, Heard};
use super::tally::{SeenAnswer, Tally};
use super::traffic::{Delivery, Kind};
use crate::gateway_client::{Answered, follow, request, resume_url};

/// Where and how to reach the gateway.
#[derive(Debug, Clone)]
pub struct ViaGateway {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Requests open at once.
    pub max_open: usize,
    /// The longest one request is waited for.
    pub timeout: Duration,
    /// The pipeline's capacity (answers/s), for the goodput goal.
    pub capacity: Option<f64>,
    /// What a request told nothing was promised (the gateway's
    /// `queued_after_ms`).
    pub implicit_promise_ms: u64,
}

/// The requests in flight and the tallies they report to.
pub struct Sender {
    client: reqwest::Client,
    endpoint: String,
    open: Arc<Semaphore>,
    tasks: JoinSet<()>,
    timeout: Duration,
    pub front: Arc<Mutex<FrontDoor>>,
}

impl Sender {
    pub fn new(via: &ViaGateway) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(via.max_open)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            endpoint: format!("{}/v1/prompts", via.url.trim_end_matches('/')),
            open: Arc::new(Semaphore::new(via.max_open)),
            tasks: JoinSet::new(),
            timeout: via.timeout,
            front: Arc::new(Mutex::new(FrontDoor::new(via.implicit_promise_ms))),
        })
    }

    /// Sends `delivery`, due at `due`, once a request slot is free; its
    /// answer is tallied in `tally` by a task of its own.
    pub async fn send(
        &mut self,
        delivery: Delivery,
        due: Instant,
        tally: Arc<Mutex<Tally>>,
    ) -> anyhow::Result<()> {
        let permit = Arc::clone(&self.open)
            .acquire_owned()
            .await
            .context("the request slots were closed")?;
        // Finished requests are reaped as we go, so the set stays bounded.
        while self.tasks.try_join_next().is_some() {}
        let p = &delivery.prompt;
        let body = json!({
            "request_id": p.request_id,
            "user_id": p.user_id,
            "session_id": p.session_id,
            "text": p.text,
            "locale": p.locale,
            "event_time_ms": p.event_time_ms,
        })
        .to_string()
        .into_bytes();
        let (client, url, front, timeout) = (
            self.client.clone(),
            self.endpoint.clone(),
            Arc::clone(&self.front),
            self.timeout,
        );
        let resume_at = resume_url(&url, &p.request_id);
        self.tasks.spawn(async move {
            let sent = Instant::now();
            let mut answered = request(&client, &url, Some(body), timeout).await;
            let resumes = follow(&client, &resume_at, &mut answered, sent + timeout).await;
            drop(permit);
            let (heard, reply) = heard(answered, due, sent, resumes);
            front
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(heard);
            // A repeated delivery follows its original's answer: the same
            // answer again is not a second one from the pipeline.
            if let (Some(reply), false) = (reply, delivery.kind == Kind::Duplicate) {
                let record = Record::Reply(reply);
                if let Some(answer) = SeenAnswer::of(&record) {
                    tally.lock().unwrap_or_else(PoisonError::into_inner).answer(
                        delivery.seq,
                        &answer,
                        runtime::now_ms(),
                    );
                }
            }
        });
        Ok(())
    }

    /// Waits for every request still open, at most `within`.
    pub async fn finish(mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {}
        self.tasks.abort_all();
    }
}

/// What one request heard, and its final reply if it got one.
fn heard(
    answered: Result<Answered, reqwest::Error>,
    due: Instant,
    sent: Instant,
    resumes: u32,
) -> (Heard, Option<Reply>) {
    let since = |from: Instant, at: Instant| at.saturating_duration_since(from).as_millis() as u64;
    match answered {
        Ok(Answered::Stream(events)) => {
            let Some(first) = events.first() else {
                return (Heard::Lost, None);
            };
            // A promise counts from when it was made (a late `queued`
            // event promises from its own time).
            let promised_ms = events.iter().find(|e| e.name == "queued").and_then(|e| {
                Some(since(sent, e.at) + e.data["estimated_wait_secs"].as_u64()? * 1_000)
            });
            let last = events.iter().find(|e| e.name == "final");
            let reply = last.and_then(|e| serde_json::from_value::<Reply>(e.data.clone()).ok());
            let heard = Heard::Admitted {
                first_ms: since(due, first.at),
                promised_ms,
                final_ms: last.map(|e| since(sent, e.at)),
                expired: reply
                    .as_ref()
                    .is_some_and(|r| r.outcome == schemas::ReplyOutcome::Expired),
                resumes,
            };
            (heard, reply)
        }
        Ok(Answered::Body { status, at, .. }) => (
            Heard::Refused {
                status,
                ms: since(due, at),
            },
            None,
        ),
        Err(_) => (Heard::Lost, None),
    }
}
