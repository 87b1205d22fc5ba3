//! A no-op relay hop: the baseline the pipeline's stages are measured
//! against. It runs the same plumbing as a stage (a consumer group with the
//! stages' client settings and rebalance handling, outputs to the same
//! partition, input offsets stored only once the output is acknowledged,
//! in order, a bounded number in flight, a drain on shutdown) and does no
//! work: nothing is decoded, every record is passed on byte for byte.
//!
//! Four relays, one per hop of `chat.prompts → commerce.intents →
//! commerce.decisions → commerce.orders → chat.replies`, are what the
//! pipeline would cost if its stages were free. `chatcart relay --from
//! <topic> --to <topic>` runs one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connectors::kafka::enqueue;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use runtime::config::Settings;
use runtime::rebalance::{Ready, Rebalances};
use runtime::runner::{Acks, close, leave, store_offset, track};
use runtime::shutdown::Shutdown;
use runtime::topics::TopicNames;
use stages::Topic;
use stages::progress::{Progress, Ticket};

/// The consumer-group name of the relay reading `from` (the group is
/// `<group_prefix>.<name>`); a `&'static str` because [`Rebalances`] keeps
/// one.
pub const fn relay_name(from: Topic) -> &'static str {
    match from {
        Topic::Prompts => "relay-chat.prompts",
        Topic::Intents => "relay-commerce.intents",
        Topic::Decisions => "relay-commerce.decisions",
        Topic::Orders => "relay-commerce.orders",
        Topic::Replies => "relay-chat.replies",
        Topic::Treasury => "relay-campaign.treasury",
        Topic::Dlq => "relay-chatcart.dlq",
        Topic::Checkpoints => "relay-chatcart.checkpoints",
        Topic::GatewayReplies => "relay-chat.gateway.replies",
        Topic::GatewayDecisions => "relay-chat.gateway.decisions",
    }
}

/// A topic named by its base name (`chat.prompts`), as `--from` and `--to`
/// take it; the error lists the names there are.
pub fn parse_topic(name: &str) -> Result<Topic, String> {
    Topic::ALL
        .into_iter()
        .find(|t| t.base_name() == name.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = Topic::ALL.iter().map(|t| t.base_name()).collect();
            format!(
                "`{name}` is not a chatcart topic; use one of: {} (without kafka.topic_prefix)",
                names.join(", ")
            )
        })
}

/// Relays every record of `from` to the same partition of `to`, key,
/// payload and headers unchanged, until `shutdown` fires; then drains:
/// waits for the outputs in flight, stores and commits their offsets,
/// flushes, and leaves the group. `ready` counts the relay once it holds
/// partitions.
pub async fn relay(
    settings: &Settings,
    from: Topic,
    to: Topic,
    mut shutdown: Shutdown,
    ready: Arc<Ready>,
) -> anyhow::Result<()> {
    let name = relay_name(from);
    let kafka = &settings.kafka;
    let topics = TopicNames::new(kafka);
    let (input, output) = (topics.name(from), topics.name(to));
    check_hop(settings, from, to).await?;
    let producer: FutureProducer = kafka.producer()?;
    let consumer: StreamConsumer<Rebalances> = kafka
        .consumer_config(name)
        .create_with_context(Rebalances::new(name, ready, Some(producer.clone())))
        .context("creating the relay's consumer")?;
    consumer
        .subscribe(&[input])
        .with_context(|| format!("subscribing to {input}"))?;
    tracing::info!(relay = name, input, output, "relay running");

    let max_in_flight = settings.runtime.max_in_flight.max(1);
    let mut acks: Acks = FuturesUnordered::new();
    let mut progress = Progress::default();
    let mut relayed = 0u64;
    loop {
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            Some((ticket, delivered)) = acks.next(), if !acks.is_empty() => {
                settle(&consumer, input, &mut progress, ticket, delivered)?;
            }
            received = consumer.recv(), if progress.in_flight() < max_in_flight => match received {
                Ok(message) => {
                    note_revoked(&consumer, &mut progress);
                    let (partition, offset) = (message.partition(), message.offset());
                    if !consumer.context().is_assigned(partition) {
                        // Fetched before a revoke; the partition's new owner relays it.
                        continue;
                    }
                    let mut record = FutureRecord::<[u8], [u8]>::to(output).partition(partition);
                    if let Some(key) = message.key() {
                        record = record.key(key);
                    }
                    if let Some(payload) = message.payload() {
                        record = record.payload(payload);
                    }
                    if let Some(headers) = message.headers() {
                        record = record.headers(headers.detach());
                    }
                    let delivery = enqueue(&producer, record)
                        .await
                        .with_context(|| format!("relaying {input}[{partition}]@{offset}"))?;
                    let ticket = progress.begin(partition, Some((from, offset)));
                    track(&mut progress, &mut acks, ticket, vec![delivery]);
                    relayed += 1;
                }
                Err(e) => {
                    tracing::warn!(relay = name, error = %e, "consume error; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    tracing::info!(relay = name, in_flight = progress.in_flight(), "draining");
    let timeout = Duration::from_secs(settings.runtime.shutdown_timeout_secs);
    let drained = tokio::time::timeout(timeout, async {
        while let Some((ticket, delivered)) = acks.next().await {
            settle(&consumer, input, &mut progress, ticket, delivered)?;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => anyhow::bail!(
            "{name}: outputs not acknowledged within {}s of shutdown (runtime.shutdown_timeout_secs); their inputs will be relayed again",
            timeout.as_secs()
        ),
    }
    leave(name, &consumer, &producer, timeout)?;
    close(name, consumer).await;
    tracing::info!(relay = name, relayed, "relay stopped");
    Ok(())
}

/// Refuses hops that cannot work: a loop, partitions that do not line up
/// (the treasury has one), or topics that do not exist.
async fn check_hop(settings: &Settings, from: Topic, to: Topic) -> anyhow::Result<()> {
    if from == to {
        anyhow::bail!(
            "--from and --to are both {}: a relay onto its own input would loop forever",
            from.base_name()
        );
    }
    let n = settings.kafka.partitions;
    if from.partitions(n) != to.partitions(n) {
        anyhow::bail!(
            "{} has {} partitions and {} has {}: a relay keeps each record's partition, so both need the same count",
            from.base_name(),
            from.partitions(n),
            to.base_name(),
            to.partitions(n)
        );
    }
    runtime::app::check_topics_of(settings, &[from, to]).await
}

/// Forgets the records of every partition revoked since the last look:
/// their new owner relays them again.
fn note_revoked(consumer: &StreamConsumer<Rebalances>, progress: &mut Progress) {
    for partition in consumer.context().take_revoked() {
        progress.abandon(partition);
    }
}

/// Records a relayed record's acknowledgement and stores the offsets then
/// done. A failed delivery stops the relay: storing later offsets would
/// skip it.
fn settle(
    consumer: &StreamConsumer<Rebalances>,
    input: &str,
    progress: &mut Progress,
    ticket: Ticket,
    delivered: Result<(), KafkaError>,
) -> anyhow::Result<()> {
    note_revoked(consumer, progress);
    if let Err(lost) = progress.acknowledged(ticket, delivered.is_ok()) {
        // Every relayed record is an input with an offset.
        let at = lost.input.map(|(_, offset)| format!("@{offset}"));
        let error = delivered.err().unwrap_or(KafkaError::Canceled);
        return Err(anyhow::Error::new(error).context(format!(
            "the output of {input}[{}]{} was not delivered; stopping so it is relayed again after a restart",
            lost.partition,
            at.unwrap_or_default()
        )));
    }
    for done in progress.storable_in(ticket.partition()) {
        store_offset(consumer, input, done.partition, done.offset);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_from_their_base_names() {
        for t in Topic::ALL {
            assert_eq!(parse_topic(t.base_name()), Ok(t));
            assert!(relay_name(t).ends_with(t.base_name()));
        }
        let err = parse_topic("prompts").expect_err("not a base name");
        assert!(err.contains("`prompts`"), "{err}");
        assert!(
            err.contains("chat.prompts, commerce.intents, commerce.decisions"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn loops_and_mismatched_partitions_are_refused() {
        let settings = Settings::default();
        let err = check_hop(&settings, Topic::Orders, Topic::Orders)
            .await
            .expect_err("a loop");
        assert!(err.to_string().contains("loop"), "{err}");
        let err = check_hop(&settings, Topic::Prompts, Topic::Treasury)
            .await
            .expect_err("12 partitions onto 1");
        assert!(err.to_string().contains("same count"), "{err}");
    }
}
