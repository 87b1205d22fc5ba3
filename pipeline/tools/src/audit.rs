//! `chatcart audit`: reads every topic from the beginning and runs the
//! ledger's auditor ([`ledger::audit`]) over what it read; with
//! `--clickhouse`, also checks the analytics sink's rows ([`stored`]).

pub mod stored;

use std::time::Duration;

use connectors::kafka::read_partitions;
use ledger::audit::{AuditReport, Logs, audit};
use rdkafka::message::Message;
use schemas::Record;
use stages::Topic;

use runtime::app;
use runtime::config::Settings;
use runtime::topics::TopicNames;

/// Reads every topic from the beginning and audits it.
pub async fn run(settings: &Settings, timeout: Duration) -> anyhow::Result<AuditReport> {
    let settings_c = settings.clone();
    let codec = app::codec(settings)?;
    let logs =
        tokio::task::spawn_blocking(move || read_logs(&settings_c, &codec, timeout)).await??;
    Ok(audit(
        &settings.campaigns()?,
        settings.kafka.partitions,
        &logs,
    ))
}

fn read_logs(
    settings: &Settings,
    codec: &schemas::Codec,
    timeout: Duration,
) -> anyhow::Result<Logs> {
    let topics = TopicNames::new(&settings.kafka);
    let mut logs = Logs::default();
    for topic in Topic::EVENTS {
        let partitions: Vec<i32> = (0..topic.partitions(settings.kafka.partitions)).collect();
        // One consumer interleaves partitions but keeps each partition in
        // log order, which is all the per-partition folds need.
        read_partitions(
            &settings.kafka,
            topics.name(topic),
            &partitions,
            timeout,
            |m| {
                let payload = m.payload().unwrap_or_default();
                let record = match topic {
                    Topic::Dlq => {
                        logs.dead_letters += 1;
                        return;
                    }
                    Topic::Prompts => codec.decode_prompt(payload).ok().map(Record::Prompt),
                    _ => codec.decode(payload).ok(),
                };
                match record {
                    None if topic == Topic::Prompts => logs.undecodable_prompts += 1,
                    Some(Record::Prompt(r)) => logs.prompts.push(r),
                    Some(Record::Intent(r)) => logs.intents.push(r),
                    Some(r @ (Record::Decision(_) | Record::Treasury(_)))
                        if topic == Topic::Decisions =>
                    {
                        logs.decisions.push((m.partition(), r));
                    }
                    Some(r @ Record::Treasury(_)) if topic == Topic::Orders => {
                        logs.order_log.push((m.partition(), r));
                    }
                    Some(Record::Treasury(r)) => logs.treasury.push(r),
                    Some(r @ Record::Order(_)) => logs.order_log.push((m.partition(), r)),
                    Some(Record::Reply(r)) => logs.replies.push(r),
                    _ => {}
                }
            },
        )?;
    }
    Ok(logs)
}
