//! The pipeline owns its partitioning: one person's prompts published by
//! front-ends with different partitioners (librdkafka's default, CRC32 of
//! the key, from this process; kafka-python's default, murmur2, from a
//! Python process sharing no code with librdkafka; and kafka-python with no
//! key at all, spread over the partitions) still meet on one partition from
//! `commerce.intents` on, so nobody gets more credited orders than the
//! per-person limit, every request gets one reply, and the audit is clean.
//! With intents left on their prompts' partitions the people whose prompts
//! arrived on two partitions got two credited orders.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use chatcart_tests::{self as t, Running};
use runtime::Settings;
use runtime::topics::TopicNames;
use schemas::Prompt;
use stages::Topic;

/// Publishes `prompts` as JSON with kafka-python, keyed by user or not.
fn publish_with_kafka_python(settings: &Settings, prompts: &[Prompt], keyed: bool) {
    let script = r#"
import json, sys
from kafka import KafkaProducer
bootstrap, topic, keyed = sys.argv[1], sys.argv[2], sys.argv[3] == "keyed"
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
for line in sys.stdin:
    prompt = json.loads(line)
    key = prompt["user_id"].encode() if keyed else None
    producer.send(topic, key=key, value=line.strip().encode()).get(timeout=30)
producer.flush(30)
"#;
    let python = std::env::var("CHATCART_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let topic = TopicNames::new(&settings.kafka)
        .name(Topic::Prompts)
        .to_owned();
    let mut child = Command::new(python)
        .args(["-c", script, &settings.kafka.bootstrap_servers, &topic])
        .arg(if keyed { "keyed" } else { "keyless" })
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python3 (tests/services.sh installs kafka-python)");
    let mut stdin = child.stdin.take().expect("stdin");
    for p in prompts {
        serde_json::to_writer(&mut stdin, p).expect("JSON");
        writeln!(stdin).expect("writing to python");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "kafka-python could not publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_persons_prompts_meet_whatever_partitioner_sent_them() {
    let settings = t::settings("partitioning", 4);
    t::create_topics(&settings).await;
    let stages = Running::start(&settings, &t::STAGES);
    stages.ready().await;

    // Each of 40 people asks three times, once through each front-end.
    let people: Vec<String> = (0..40).map(|i| format!("p-{i}")).collect();
    let ask = |front: &str| -> Vec<Prompt> {
        people
            .iter()
            .map(|u| t::prompt(format!("{front}-{u}"), u, "帮我买2杯奶茶"))
            .collect()
    };
    let (by_librdkafka, by_murmur2, keyless) = (ask("rd"), ask("kp"), ask("nokey"));
    t::publish(&settings, &by_librdkafka).await;
    let s = settings.clone();
    let (m, k) = (by_murmur2.clone(), keyless.clone());
    tokio::task::spawn_blocking(move || {
        publish_with_kafka_python(&s, &m, true);
        publish_with_kafka_python(&s, &k, false);
    })
    .await
    .expect("publishing with kafka-python");

    let requests = people.len() * 3;
    t::await_replies(&settings, requests, Duration::from_secs(120)).await;
    let (_, replies) = t::clean_audit(&settings).await;
    assert_eq!(replies.len(), requests, "one reply per request");
    let mut credited: HashMap<&str, u32> = HashMap::new();
    for r in &replies {
        if r.credit_cents > 0 {
            *credited.entry(r.user_id.as_str()).or_default() += 1;
        }
    }
    let over: Vec<_> = credited.iter().filter(|(_, n)| **n > 1).collect();
    assert!(over.is_empty(), "credited more than once: {over:?}");
    assert_eq!(
        credited.len(),
        people.len(),
        "everyone's first order is credited"
    );
    stages.stop().await.expect("stages drain");
}
