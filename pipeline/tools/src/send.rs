//! `chatcart send`: publish one prompt, as a front-end would, and optionally
//! wait for its reply.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use connectors::kafka::{end_offsets, enqueue, scan};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use schemas::{Prompt, Record, Reply};

use runtime::app;
use runtime::config::Settings;
use runtime::now_ms;
use runtime::topics::TopicNames;
use stages::Topic;

/// How to encode the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON, as most front-ends write it.
    Json,
    /// Avro single-object encoding.
    Avro,
}

/// Where the prompt landed, and its reply if one was awaited.
#[derive(Debug)]
pub struct Sent {
    pub partition: i32,
    pub offset: i64,
    pub reply: Option<Reply>,
}

/// Publishes `prompt` to `chat.prompts`; with `wait`, reads `chat.replies`
/// until its reply arrives or `wait` passes.
pub async fn send(
    settings: &Settings,
    prompt: Prompt,
    format: Format,
    wait: Option<Duration>,
) -> anyhow::Result<Sent> {
    let topics = TopicNames::new(&settings.kafka);
    let codec = app::codec(settings)?;
    let payload = match format {
        Format::Json => serde_json::to_vec(&prompt)?,
        Format::Avro => codec.encode(&Record::Prompt(prompt.clone()))?,
    };
    let replies = topics.name(Topic::Replies).to_owned();
    // Where the replies end now: the reply cannot be earlier than this.
    let kafka = settings.kafka.clone();
    let (replies_c, partitions) = (replies.clone(), settings.kafka.partitions);
    let starts =
        tokio::task::spawn_blocking(move || end_offsets(&kafka, &replies_c, partitions)).await??;
    let producer = settings.kafka.producer()?;
    let record = FutureRecord::to(topics.name(Topic::Prompts))
        .key(prompt.user_id.as_str())
        .payload(&payload[..]);
    let delivery = enqueue(&producer, record).await?.await;
    let (partition, offset) = match delivery {
        Ok(Ok(d)) => (d.partition, d.offset),
        Ok(Err((e, _))) => return Err(e).context("publishing the prompt"),
        Err(_) => anyhow::bail!("publishing the prompt: producer closed"),
    };
    let Some(wait) = wait else {
        return Ok(Sent {
            partition,
            offset,
            reply: None,
        });
    };
    // The reply is on the person's partition, which the intent stage
    // chose, whatever partition the prompt went to.
    let on = stages::topic::shard_of(prompt.user_id.as_bytes(), partitions);
    let start = starts.get(on as usize).copied().unwrap_or(0);
    let kafka = settings.kafka.clone();
    let request_id = prompt.request_id.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let mut found = None;
        scan(&kafka, &[(replies, on, start)], wait, |m| {
            match codec.decode(m.payload().unwrap_or_default()) {
                Ok(Record::Reply(r)) if r.request_id == request_id => {
                    found = Some(r);
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        })?;
        anyhow::Ok(found)
    })
    .await??;
    Ok(Sent {
        partition,
        offset,
        reply,
    })
}

/// A prompt with fresh ids, sent now.
pub fn prompt(
    user_id: String,
    text: String,
    locale: Option<String>,
    request_id: Option<String>,
) -> Prompt {
    static SENT: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let request_id = request_id.unwrap_or_else(|| {
        let n = SENT.fetch_add(1, Ordering::Relaxed);
        format!("cli-{now}-{}-{n}", std::process::id())
    });
    Prompt {
        reply_partition: None,
        deadline_ms: None,
        session_id: format!("cli-{user_id}"),
        trace_id: request_id.clone(),
        request_id,
        user_id,
        campaign_id: String::new(),
        event_time_ms: now,
        text,
        locale,
    }
}
