//! A record that cannot be decoded goes to `chatcart.dlq` with headers that
//! say where it came from and why, and the stage keeps going.

use std::time::Duration;

use chatcart_tests::{self as t, Running};
use runtime::Topic;
use runtime::app::StageName;
use schemas::{Codec, Record};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_prompts_go_to_the_dead_letter_topic() {
    let mut settings = t::settings("dlq", 2);
    settings.clickhouse.url.clear();
    t::create_topics(&settings).await;
    let intent = Running::start(&settings, &[StageName::Intent]);
    intent.ready().await;

    let mut valid = Codec::new()
        .encode(&Record::Prompt(tools::send::prompt(
            "bob".into(),
            "2 lattes".into(),
            None,
            Some("ok-1".into()),
        )))
        .unwrap();
    let malformed: [&[u8]; 4] = [
        b"\x07 not any encoding",
        b"{\"request_id\": \"r1\", \"user_id\": ", // truncated JSON
        &[0xC3, 0x01, 1, 2, 3],                    // truncated single-object header
        &[0x00, 0, 0, 0, 99, 2, 3],                // Confluent id nobody registered
    ];
    for bytes in malformed {
        t::publish_raw(&settings, Topic::Prompts, 1, "bob", bytes).await;
    }
    t::publish_raw(&settings, Topic::Prompts, 1, "bob", &valid).await;
    valid.clear();

    // The stage kept going: the valid prompt after the bad ones has its intent.
    let mut intents = Vec::new();
    for _ in 0..120 {
        intents = t::records(&settings, Topic::Intents).await;
        if !intents.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(intents.len(), 1, "the valid prompt was not processed");
    assert_eq!(intents[0].request_id(), "ok-1");

    let dead = t::read_topic(&settings, Topic::Dlq).await;
    assert_eq!(dead.len(), malformed.len());
    let source = runtime::TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    for (i, (record, original)) in dead.iter().zip(malformed).enumerate() {
        assert_eq!(record.payload, original, "payload kept unchanged");
        assert_eq!(record.partition, 1);
        assert_eq!(record.headers["chatcart.source.topic"], source);
        assert_eq!(record.headers["chatcart.source.partition"], "1");
        assert_eq!(record.headers["chatcart.source.offset"], i.to_string());
        assert_eq!(record.headers["chatcart.stage"], "intent");
        assert!(!record.headers["chatcart.error"].is_empty());
    }
    intent.stop().await.expect("drained");
}
