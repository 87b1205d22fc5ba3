//! chatcart against TLS endpoints on this machine: stunnel, started by
//! tests/services.sh with a throwaway CA, in front of ClickHouse and of
//! two more Tansu brokers, one of which requires a SCRAM login.
//!
//! - ClickHouse over https, as a user with a password: the analytics sink
//!   stores every record through it with the certificate verified, and a
//!   wrong CA or password fails at once naming the setting to check, in
//!   the command's error and in the sink's `/health`.
//! - Kafka over TLS: the stages run end to end; a wrong CA fails at once
//!   naming `ssl.ca.location`.
//! - Kafka over SASL_SSL with SCRAM-SHA-512 end to end and SCRAM-SHA-256
//!   for a login; a wrong password, an unknown user or the user's other
//!   mechanism fails at once naming `sasl.password`, and never shows it.

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

/// An environment variable tests/services.sh sets.
fn service(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set: tests/services.sh starts the brokers behind stunnel for it when the tansu binary is there (run the suite with `bash tests/run.sh`)"))
}

/// The test's settings with the broker behind TLS (a second Tansu behind
/// stunnel), verifying its certificate with `ca`.
fn kafka_over_tls(test: &str, ca: &str) -> runtime::Settings {
    let mut settings = t::settings(test, 2);
    settings.kafka.bootstrap_servers = service("CHATCART_TEST_KAFKA_TLS");
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

/// The test's settings with the broker behind TLS and a SCRAM login (a
/// third Tansu, with `--authentication`), as `user` with `password`.
fn kafka_over_sasl_ssl(
    test: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> runtime::Settings {
    let ca = format!("{}/ca.pem", service("CHATCART_TEST_TLS_DIR"));
    let mut settings = kafka_over_tls(test, &ca);
    settings.kafka.bootstrap_servers = service("CHATCART_TEST_KAFKA_SASL");
    let p = &mut settings.kafka.properties;
    p.insert("security.protocol".into(), "sasl_ssl".into());
    p.insert("sasl.mechanism".into(), mechanism.into());
    p.insert("sasl.username".into(), user.into());
    p.insert("sasl.password".into(), password.into());
    settings
}

/// `chatcart topics create` with `settings`: whether it succeeded, what it
/// said, and how long it took.
fn create_topics_by_hand(settings: &runtime::Settings) -> (bool, String, Duration) {
    let dir = t::scratch_dir(settings);
    let config = dir.join("chatcart.toml");
    t::write_config(settings, &config);
    let bin = t::chatcart_bin();
    let started = std::time::Instant::now();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["topics", "create"])
        .output()
        .expect("running chatcart topics create");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// The `error:` line of what a command said.
fn error_line(said: &str) -> &str {
    said.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {said}"))
}

/// Runs the four stages with `settings` and checks that `count` requests
/// are each answered.
async fn every_request_answered(settings: &runtime::Settings, count: usize) {
    t::create_topics(settings).await;
    let running = Running::start(settings, &t::STAGES);
    running.ready().await;
    let requests = t::prompts(count, 11);
    t::publish(settings, &requests).await;
    t::await_all_replies(settings, &requests, Duration::from_secs(120)).await;
    running.stop().await.expect("drained");
    t::clean_audit(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_end_to_end_over_tls_to_the_broker() {
    let ca = format!(
        "{}/ca.pem",
        std::env::var("CHATCART_TEST_TLS_DIR").expect("CHATCART_TEST_TLS_DIR")
    );
    let settings = kafka_over_tls("tls-kafka", &ca);
    every_request_answered(&settings, 200).await;
}

#[test]
fn a_broker_certificate_that_does_not_verify_fails_at_once_naming_the_setting() {
    let settings = kafka_over_tls("tls-kafka-wrong", &wrong_ca());
    let (ok, said, took) = create_topics_by_hand(&settings);
    assert!(!ok, "{said}");
    // At once: not after kafka.connect_timeout_secs of retries.
    assert!(took < Duration::from_secs(20), "{took:?}");
    let error = error_line(&said);
    assert!(
        error.contains("certificate verify failed") && error.contains("ssl.ca.location"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_end_to_end_with_a_scram_login_over_tls() {
    let settings = kafka_over_sasl_ssl(
        "sasl-kafka",
        "SCRAM-SHA-512",
        &service("CHATCART_TEST_SCRAM_512_USER"),
        &service("CHATCART_TEST_SCRAM_512_PASSWORD"),
    );
    every_request_answered(&settings, 100).await;
}

#[test]
fn scram_sha_256_logs_in_and_a_refused_login_fails_at_once_without_the_password() {
    let user256 = service("CHATCART_TEST_SCRAM_256_USER");
    let password256 = service("CHATCART_TEST_SCRAM_256_PASSWORD");
    let good = kafka_over_sasl_ssl("sasl-256", "SCRAM-SHA-256", &user256, &password256);
    let (ok, said, _) = create_topics_by_hand(&good);
    assert!(ok, "SCRAM-SHA-256: {said}");

    let wrong_password = "Not-The-Password-7f3a";
    let user512 = service("CHATCART_TEST_SCRAM_512_USER");
    for (case, settings, broker_says) in [
        (
            "a wrong password",
            kafka_over_sasl_ssl("sasl-wrong", "SCRAM-SHA-512", &user512, wrong_password),
            "invalid-proof",
        ),
        (
            "an unknown user",
            kafka_over_sasl_ssl("sasl-unknown", "SCRAM-SHA-512", "nobody", wrong_password),
            "unknown-user",
        ),
        (
            // Tansu keeps one mechanism per user.
            "the user's other mechanism",
            kafka_over_sasl_ssl("sasl-other", "SCRAM-SHA-256", &user512, wrong_password),
            "unknown-user",
        ),
    ] {
        let (ok, said, took) = create_topics_by_hand(&settings);
        assert!(!ok, "{case}: {said}");
        assert!(took < Duration::from_secs(20), "{case}: at once, {took:?}");
        let error = error_line(&said);
        assert!(
            error.contains(broker_says) && error.contains("sasl.password"),
            "{case}: {error}"
        );
        assert!(
            !said.contains(wrong_password),
            "{case}: the password is never shown: {said}"
        );
    }
}
