//! Starting against a broker that does not answer: the command says where
//! it is trying while it waits, gives up after `kafka.connect_timeout_secs`
//! with one error that names the address and the setting, and a stage told
//! to stop (SIGTERM) while waiting stops at once; `chatcart report` against
//! a ClickHouse that does not answer says each cause once. Port 1 on the
//! loopback refuses every connection, so no service is needed.

// Helpers of a test should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// `chatcart` pointed at a broker address that refuses every connection.
fn chatcart() -> Command {
    let mut cmd = common::clean_chatcart();
    cmd.env("CHATCART__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1");
    cmd
}

#[test]
fn an_unreachable_broker_is_named_waited_for_and_given_up_on_once() {
    let started = Instant::now();
    let out = chatcart()
        .args(["topics", "create"])
        .env("CHATCART__KAFKA__CONNECT_TIMEOUT_SECS", "5")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    assert!(
        stderr.contains("waiting for the Kafka broker") && stderr.contains("servers=127.0.0.1:1"),
        "nothing said while waiting: {stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let error = errors[0];
    assert!(
        error.contains("127.0.0.1:1") && error.contains("kafka.connect_timeout_secs"),
        "{error}"
    );
    assert_eq!(error.matches("Meta data fetch error").count(), 1, "{error}");
}

#[test]
fn a_stage_told_to_stop_while_waiting_for_the_broker_stops() {
    let mut child = chatcart()
        .args(["run", "intent"])
        .env("CHATCART__KAFKA__CONNECT_TIMEOUT_SECS", "120")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3_000));
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let told = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            told.elapsed() < Duration::from_secs(10),
            "still waiting for the broker 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn the_demo_checks_its_flags_and_clickhouse_before_starting_anything() {
    for (flags, expected) in [
        (vec!["--rate", "0"], "--rate"),
        (vec!["--rate=-5"], "--rate"),
        (vec!["--rate", "NaN"], "--rate"),
        (vec!["--partitions", "0"], "--partitions"),
        (vec!["--timeout", "0"], "--timeout"),
        (vec!["--budget-cents=-1"], "--budget-cents"),
        (
            vec!["--clickhouse-url", "localhost:8123"],
            "--clickhouse-url",
        ),
        (vec!["--config", "/nonexistent.toml"], "--config"),
    ] {
        let started = Instant::now();
        let out = chatcart().arg("demo").args(&flags).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{flags:?} took {:?}",
            started.elapsed()
        );
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("broker"),
            "{flags:?}: something started before the check: {stderr}"
        );
    }
    // A ClickHouse that does not answer is named as such, within --timeout.
    let started = Instant::now();
    let out = chatcart()
        .args([
            "demo",
            "--clickhouse-url",
            "http://127.0.0.1:1",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("ClickHouse at http://127.0.0.1:1 failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("consumer group"), "{stderr}");
}

#[test]
fn an_unreachable_clickhouse_is_reported_with_each_cause_once() {
    let out = chatcart()
        .args(["report", "--clickhouse-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ClickHouse at http://127.0.0.1:1"),
        "{stderr}"
    );
    // The clickhouse client's error repeats its cause's message and chains
    // it too; printed as a chain, each cause came twice.
    for cause in ["client error (Connect)", "onnection refused"] {
        assert_eq!(stderr.matches(cause).count(), 1, "{cause}: {stderr}");
    }
}
