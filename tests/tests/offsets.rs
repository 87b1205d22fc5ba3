//! The runner's promise that an input offset is committed only once its
//! outputs are acknowledged rests on how librdkafka commits. These tests pin
//! that behaviour down against the real broker: after consuming a whole
//! batch but storing the offset of only its first record, a drain (commit,
//! unsubscribe, close) must commit just past that first record.

use std::time::Duration;

use chatcart_tests as t;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use runtime::Topic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_commits_only_stored_offsets() {
    let mut settings = t::settings("offsets", 1);
    settings.clickhouse.url.clear();
    t::create_topics(&settings).await;
    for i in 0..20 {
        t::publish_raw(
            &settings,
            Topic::Prompts,
            0,
            "k",
            format!("record {i}").as_bytes(),
        )
        .await;
    }
    let topic = runtime::TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    let consumer: StreamConsumer = settings.kafka.consumer_config("offsets").create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.offset(), 0);
    consumer.store_offset(&topic, 0, first.offset()).unwrap();
    // Let the consumer fetch more than it was given.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first);
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    consumer.unsubscribe();
    drop(consumer);

    let check: StreamConsumer = settings.kafka.consumer_config("offsets").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = check
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let offset = committed.elements()[0].offset();
    assert_eq!(
        offset,
        rdkafka::Offset::Offset(1),
        "committed past what was stored"
    );
}
