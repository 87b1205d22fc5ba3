//! The `chatcart` binary as operators and front-ends use it, against the
//! real broker: `topics create`, `run all` as its own process, `send`, a
//! SIGTERM drain, and `audit`. The reply is then read the way any Kafka client would,
//! with nothing but the published Avro schema.

// Helpers of a test should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, Schema};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn chatcart(env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatcart"));
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

fn succeeded(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Sends SIGTERM and waits for the exit status.
fn terminate(mut child: Child, within: Duration) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`chatcart run all` did not drain within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    match record {
        Value::Record(fields) => &fields.iter().find(|(n, _)| n == name).unwrap().1,
        other => panic!("not a record: {other:?}"),
    }
}

#[test]
fn send_and_run_all_give_a_reply_any_client_can_read() {
    let kafka = std::env::var("CHATCART_TEST_KAFKA").expect(
        "CHATCART_TEST_KAFKA is not set: run the suite with `bash tests/run.sh`, which starts Tansu and ClickHouse",
    );
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let unique = format!("cli-{}-{millis}", std::process::id());
    let env = [
        ("CHATCART__KAFKA__BOOTSTRAP_SERVERS", kafka.clone()),
        ("CHATCART__KAFKA__TOPIC_PREFIX", format!("{unique}.")),
        ("CHATCART__KAFKA__GROUP_PREFIX", unique.clone()),
        ("CHATCART__KAFKA__PARTITIONS", "3".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];

    let listed = succeeded(
        "topics create",
        chatcart(&env).args(["topics", "create"]).output().unwrap(),
    );
    assert!(
        listed.contains(&format!("{unique}.chat.replies\t3 partitions")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{unique}.campaign.treasury\t1 partitions")),
        "{listed}"
    );

    let mut pipeline = chatcart(&env)
        .args(["run", "all"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request_id = format!("{unique}-r1");
    let sent = succeeded(
        "send",
        chatcart(&env)
            .args([
                "send",
                "--user",
                "carol",
                "--request-id",
                &request_id,
                "--wait",
                "60",
                "来3杯柠檬茶，谢谢",
            ])
            .output()
            .unwrap(),
    );
    assert!(sent.contains("reply (OrderPlaced"), "{sent}");

    let mut stderr = pipeline.stderr.take().unwrap();
    let status = terminate(pipeline, Duration::from_secs(60));
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        status.success(),
        "`chatcart run all` exited with {status} after SIGTERM:\n{log}"
    );
    assert!(
        !log.contains("柠檬茶"),
        "prompt text was logged above debug level:\n{log}"
    );

    // The auditor re-folds the topics and finds every promise kept.
    let audit = succeeded(
        "audit",
        chatcart(&env)
            .args(["audit", "--timeout", "60"])
            .output()
            .unwrap(),
    );
    assert!(
        audit.contains("one reply per request    1 requests, 1 replies"),
        "{audit}"
    );
    assert!(audit.trim_end().ends_with("clean"), "{audit}");

    // Any Kafka client with the published schema can read the reply.
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/avro/reply.avsc"
    ))
    .unwrap();
    let reader = GenericSingleObjectReader::builder()
        .schema(Schema::parse_str(&schema).unwrap())
        .build()
        .unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka)
        .set("group.id", format!("{unique}.any-client"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&format!("{unique}.chat.replies"), p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        assert!(
            Instant::now() < deadline,
            "no reply for {request_id} on chat.replies"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        assert_eq!(
            message.key(),
            Some(&b"carol"[..]),
            "replies are keyed by user"
        );
        let value = reader.read_value(&mut message.payload().unwrap()).unwrap();
        if field(&value, "request_id") == &Value::String(request_id.clone()) {
            break value;
        }
    };
    assert_eq!(
        field(&reply, "outcome"),
        &Value::Enum(0, "order_placed".into())
    );
    assert_eq!(field(&reply, "locale"), &Value::String("zh".into()));
    let Value::String(text) = field(&reply, "text") else {
        panic!("text is a string")
    };
    assert!(text.contains("3 × 柠檬茶"), "{text}");
}

/// A bad `--stock` or a stock for a SKU the catalog lacks is refused with
/// a message that says what to write, before anything starts.
#[test]
fn demo_refuses_a_stock_it_cannot_use() {
    let cases = [
        ("egg-tart", "is not SKU=UNITS"),
        ("egg-tart=-1", "is not a number of units"),
        (
            "pizza=5",
            "stock is set for `pizza`, which is not in the catalog",
        ),
    ];
    for (stock, expected) in cases {
        let out = chatcart(&[])
            .args(["demo", "--requests", "1", "--stock", stock])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--stock {stock} was accepted");
        assert!(stderr.contains(expected), "--stock {stock}: {stderr}");
    }
}

/// The demo through the gateway: every prompt an HTTP request with its
/// event stream, every admitted one answered once, the audit clean.
#[test]
fn demo_through_the_gateway_answers_every_admitted_request() {
    let out = chatcart(&[])
        .args([
            "demo",
            "--requests",
            "300",
            "--rate",
            "300",
            "--via-gateway",
        ])
        .output()
        .unwrap();
    let stdout = succeeded("chatcart demo --via-gateway", out);
    assert!(stdout.contains("front door        offered 300"), "{stdout}");
    assert!(
        stdout.contains("met     every admitted request answered once"),
        "{stdout}"
    );
    assert!(stdout.contains("clean"), "{stdout}");
}
