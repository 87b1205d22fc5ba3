//! Producing a stage's outputs: encoded, keyed by user, on the input's
//! partition (0 for the one-partition treasury) unless the output names its
//! own (a gateway's reply partition); and dead letters, a refused
//! record unchanged with headers saying where it came from and why.

use connectors::kafka::enqueue;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use stages::{Emit, Topic};

use super::Context;

/// Encodes and queues a stage's outputs to partition `partition` (0 for the
/// one-partition treasury).
pub(super) async fn produce(
    producer: &FutureProducer,
    ctx: &Context,
    partition: i32,
    emits: &[Emit],
) -> anyhow::Result<Vec<DeliveryFuture>> {
    let mut deliveries = Vec::with_capacity(emits.len());
    for emit in emits {
        let bytes = ctx.codec.encode(&emit.record)?;
        let target = match emit.partition {
            Some(chosen) => chosen,
            None if emit.topic == Topic::Treasury => 0,
            None => partition,
        };
        let record = FutureRecord::to(ctx.topics.name(emit.topic))
            .partition(target)
            .key(emit.record.user_id())
            .payload(&bytes[..]);
        deliveries.push(enqueue(producer, record).await?);
    }
    Ok(deliveries)
}

/// A record for the dead-letter topic: where it came from and what to keep.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> DeadLetter<'a> {
    /// A consumed record, unchanged.
    pub fn of(message: &'a impl Message) -> Self {
        Self {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload().unwrap_or_default(),
        }
    }
}

/// Queues `letter` to the dead-letter topic (same partition) with headers
/// saying where it came from, which stage refused it and why.
pub async fn dead_letter(
    producer: &FutureProducer,
    ctx: &Context,
    stage: &str,
    letter: &DeadLetter<'_>,
    error: &str,
) -> anyhow::Result<DeliveryFuture> {
    let (partition_s, offset_s) = (letter.partition.to_string(), letter.offset.to_string());
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "chatcart.source.topic",
            value: Some(letter.topic),
        })
        .insert(Header {
            key: "chatcart.source.partition",
            value: Some(&partition_s),
        })
        .insert(Header {
            key: "chatcart.source.offset",
            value: Some(&offset_s),
        })
        .insert(Header {
            key: "chatcart.stage",
            value: Some(stage),
        })
        .insert(Header {
            key: "chatcart.error",
            value: Some(error),
        });
    let mut record = FutureRecord::to(ctx.topics.name(Topic::Dlq))
        .partition(letter.partition)
        .payload(letter.payload)
        .headers(headers);
    if let Some(key) = letter.key {
        record = record.key(key);
    }
    Ok(enqueue(producer, record).await?)
}
