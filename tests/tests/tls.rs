//! ClickHouse over https through a real TLS terminator (stunnel, started
//! by tests/services.sh with a throwaway CA), logging in as a user with a
//! password: the analytics sink stores every record through it with the
//! certificate verified, and a wrong CA or a wrong password fails at once
//! with a message that says which setting to check, in the command's error
//! and in the sink's `/health`.

use std::process::Command;
use std::time::Duration;

use chatcart_tests::{self as t, ChildProcess, Running};
use runtime::app::StageName;

/// The test's settings, with ClickHouse behind TLS and its login.
fn over_tls(test: &str, partitions: i32) -> runtime::Settings {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the suite with `bash tests/run.sh`, whose tests/services.sh starts the TLS terminator")
        })
    };
    let mut settings = t::settings(test, partitions);
    settings.clickhouse.url = var("CHATCART_TEST_CLICKHOUSE_TLS");
    settings.clickhouse.ca_file = format!("{}/ca.pem", var("CHATCART_TEST_TLS_DIR"));
    settings.clickhouse.user = var("CHATCART_TEST_CLICKHOUSE_TLS_USER");
    settings.clickhouse.password = var("CHATCART_TEST_CLICKHOUSE_TLS_PASSWORD");
    settings
}

fn wrong_ca() -> String {
    format!(
        "{}/wrong-ca.pem",
        std::env::var("CHATCART_TEST_TLS_DIR").expect("CHATCART_TEST_TLS_DIR")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sink_stores_every_record_through_https_with_the_certificate_verified() {
    let settings = over_tls("tls-sink", 2);
    assert!(settings.clickhouse.url.starts_with("https://"));
    t::create_topics(&settings).await;
    let running = Running::start(&settings, &[StageName::All]);
    running.ready().await;
    let requests = t::prompts(300, 7);
    t::publish(&settings, &requests).await;
    t::await_all_replies(&settings, &requests, Duration::from_secs(120)).await;
    let total = t::total_records(&settings).await;
    // Read back through the same https client.
    let (rows, distinct) = t::clickhouse_counts(&settings, total, Duration::from_secs(60)).await;
    assert_eq!(
        (rows, distinct),
        (total, total),
        "every record once, over TLS"
    );
    running.stop().await.expect("drained");
}

fn migrate(settings: &runtime::Settings) -> (bool, String) {
    let dir = t::scratch_dir(settings);
    let config = dir.join("chatcart.toml");
    t::write_config(settings, &config);
    let out = Command::new(t::chatcart_bin())
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .output()
        .expect("running chatcart migrate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_password_fails_at_once_naming_the_setting() {
    let settings = over_tls("tls-wrong", 1);
    let (ok, said) = migrate(&settings);
    assert!(ok, "the right CA and login: {said}");

    let mut bad_ca = settings.clone();
    bad_ca.clickhouse.ca_file = wrong_ca();
    let (ok, said) = migrate(&bad_ca);
    assert!(!ok, "{said}");
    assert!(
        said.contains("certificate") && said.contains("clickhouse.ca_file"),
        "{said}"
    );

    let mut no_ca = settings.clone();
    no_ca.clickhouse.ca_file = String::new();
    let (ok, said) = migrate(&no_ca);
    assert!(
        !ok && said.contains("certificate"),
        "a private CA is not a public one: {said}"
    );

    let mut bad_password = settings.clone();
    bad_password.clickhouse.password = "not-the-password".into();
    let (ok, said) = migrate(&bad_password);
    assert!(!ok, "{said}");
    assert!(said.contains("clickhouse.password"), "{said}");
    assert!(
        !said.contains("not-the-password"),
        "the password is never shown: {said}"
    );

    // The sink, started with the wrong CA, says why on /health.
    let mut sink = bad_ca.clone();
    let port = t::free_port();
    sink.runtime.health_listen = format!("127.0.0.1:{port}");
    t::create_topics(&sink).await;
    let dir = t::scratch_dir(&sink);
    let config = dir.join("sink.toml");
    t::write_config(&sink, &config);
    let child = ChildProcess::spawn("analytics", &config, &["run", "analytics"]);
    let url = format!("http://127.0.0.1:{port}/health");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let said = loop {
        let out = Command::new(t::chatcart_bin())
            .args(["health", "--timeout", "2", "--url", &url])
            .output()
            .expect("running chatcart health");
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() && said.contains("certificate") {
            break said;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink's health never named the certificate: {said}\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(said.contains("clickhouse.ca_file"), "{said}");
    child.terminate(Duration::from_secs(30));
}

/// The test's settings with the broker behind TLS (a second Tansu behind
/// stunnel), verifying its certificate with `ca`.
fn kafka_over_tls(test: &str, ca: &str) -> runtime::Settings {
    let broker = std::env::var("CHATCART_TEST_KAFKA_TLS")
        .ok()
        .filter(|b| !b.is_empty())
        .expect("CHATCART_TEST_KAFKA_TLS is not set: tests/services.sh starts a Tansu behind stunnel for it when the tansu binary is there (run the suite with `bash tests/run.sh`)");
    let mut settings = t::settings(test, 2);
    settings.kafka.bootstrap_servers = broker;
    let p = &mut settings.kafka.properties;
    p.insert("security.protocol".into(), "ssl".into());
    p.insert("ssl.ca.location".into(), ca.to_owned());
    // librdkafka's defaults, spelt out: the certificate and the host name
    // on it are both checked.
    p.insert("enable.ssl.certificate.verification".into(), "true".into());
    p.insert(
        "ssl.endpoint.identification.algorithm".into(),
        "https".into(),
    );
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_end_to_end_over_tls_to_the_broker() {
    let ca = format!(
        "{}/ca.pem",
        std::env::var("CHATCART_TEST_TLS_DIR").expect("CHATCART_TEST_TLS_DIR")
    );
    let settings = kafka_over_tls("tls-kafka", &ca);
    t::create_topics(&settings).await;
    let running = Running::start(
        &settings,
        &[
            StageName::Intent,
            StageName::Coupon,
            StageName::Fulfillment,
            StageName::Reply,
        ],
    );
    running.ready().await;
    let requests = t::prompts(200, 11);
    t::publish(&settings, &requests).await;
    t::await_all_replies(&settings, &requests, Duration::from_secs(120)).await;
    running.stop().await.expect("drained");
    t::clean_audit(&settings).await;
}

#[test]
fn a_broker_certificate_that_does_not_verify_fails_at_once_naming_the_setting() {
    let settings = kafka_over_tls("tls-kafka-wrong", &wrong_ca());
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let started = std::time::Instant::now();
    let out = Command::new(t::chatcart_bin())
        .arg("--config")
        .arg(&config)
        .args(["topics", "create"])
        .output()
        .expect("running chatcart topics create");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    // At once: not after kafka.connect_timeout_secs of retries.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let error = said
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {said}"));
    assert!(
        error.contains("certificate verify failed") && error.contains("ssl.ca.location"),
        "{error}"
    );
}
