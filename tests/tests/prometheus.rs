//! The operations endpoints scraped by a real Prometheus server (Debian's
//! `prometheus`, started by `tests/services.sh`; the test adds its
//! processes as targets through a file Prometheus watches). After an
//! end-to-end run the scraped counters agree with the audit, every stage
//! has a lag series per partition and it reaches zero once the pipeline is
//! drained; and every metric the shipped Grafana dashboard and alert rules
//! use is one a chatcart process exposes.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chatcart_tests::{self as t, ChildProcess};
use schemas::{DecisionOutcome, Record};
use serde_json::{Value, json};
use stages::Topic;

/// The Prometheus under test, and the folder of its target files.
fn prometheus() -> (String, std::path::PathBuf) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run the suite with `bash tests/run.sh`, which starts Prometheus"
            )
        })
    };
    (
        var("CHATCART_TEST_PROMETHEUS"),
        var("CHATCART_TEST_PROMETHEUS_TARGETS").into(),
    )
}

/// The instant vector `query` evaluates to, as (labels, value) pairs.
async fn query(url: &str, query: &str) -> Vec<(Value, f64)> {
    let answer: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .expect("asking Prometheus")
        .json()
        .await
        .expect("Prometheus answers JSON");
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    answer["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| {
            let value = s["value"][1].as_str().and_then(|v| v.parse().ok());
            (s["metric"].clone(), value.expect("a number"))
        })
        .collect()
}

/// The single value of `q`, once it equals `want` (Prometheus scrapes every
/// second); fails with the last value after a minute.
async fn await_value(url: &str, q: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(url, q).await;
        let value = got.first().map(|(_, v)| *v);
        if value == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{q} is {value:?} (from {got:?}), not {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every metric family a process's `/metrics` declares, by its `# TYPE`
/// line: (name, type).
async fn families(port: u16) -> BTreeSet<(String, String)> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scraping")
        .text()
        .await
        .expect("a body");
    text.lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// Every `chatcart_…` name in `path`.
fn names_in(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("reading a shipped file");
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("chatcart_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_what_the_audit_counts_and_the_lag_drain_to_zero() {
    let (url, targets) = prometheus();
    let mut settings = t::settings("prometheus", 2);
    t::create_topics(&settings).await;
    let (pipeline_port, gateway_port, gateway_ops) =
        (t::free_port(), t::free_port(), t::free_port());
    settings.runtime.health_listen = format!("127.0.0.1:{pipeline_port}");
    // On, at an endpoint that refuses: its series exist, and a prompt the
    // rules read with low confidence keeps the rules' answer.
    settings.intent.llm.enabled = true;
    settings.intent.llm.base_url = format!("http://127.0.0.1:{}/v1", t::free_port());
    settings.intent.llm.api_key_env = String::new();
    // Checkpoints every few records, so their series show too.
    settings.runtime.checkpoint_min_records = 20;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let test = settings.kafka.group_prefix.clone();
    let target_file = targets.join(format!("{test}.json"));
    let file = json!([{
        "targets": [format!("127.0.0.1:{pipeline_port}"), format!("127.0.0.1:{gateway_ops}")],
        "labels": {"test": test},
    }]);
    std::fs::write(&target_file, file.to_string()).expect("writing the target file");

    let mut pipeline = ChildProcess::spawn("pipeline", &config, &["run", "all"]);
    pipeline.holds_partitions().await;
    let health_listen = format!("127.0.0.1:{gateway_ops}");
    let listen = format!("127.0.0.1:{gateway_port}");
    let mut gateway = ChildProcess::spawn_with_env(
        "gateway",
        &config,
        &["gateway", "--listen", &listen, "--instance", "0"],
        &[("CHATCART__RUNTIME__HEALTH_LISTEN", &health_listen)],
    );
    assert!(
        gateway
            .wait_for_log("gateway ready", Duration::from_secs(60))
            .await,
        "{}",
        gateway.log_text()
    );

    // Through the front door first, while the pipeline is idle: a burst
    // just published would have the gateway shed them until it can tell
    // the wait.
    for i in 0..3 {
        let a = t::post_json(
            &format!("http://127.0.0.1:{gateway_port}/v1/prompts?wait=60"),
            &t::prompt_body(&format!("gw-{i}"), &format!("gw-user-{i}"), "两杯拿铁"),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let prompts = t::prompts(120, 7);
    t::publish(&settings, &prompts).await;
    t::publish_raw(&settings, Topic::Prompts, 0, "bad", b"not avro").await;
    let requests = prompts.len() + 3;
    t::await_replies(&settings, requests, Duration::from_secs(120)).await;
    let (audit, replies) = t::clean_audit(&settings).await;
    assert_eq!(replies.len(), requests);

    let of = |metric: &str| format!("sum({metric}{{test=\"{test}\"}})");
    await_value(&url, &of("chatcart_replies_total"), requests as f64).await;
    let grants: u64 = audit.totals.values().map(|c| c.grants).sum();
    let credit: i64 = audit.totals.values().map(|c| c.credit_granted_cents).sum();
    assert!(grants > 0, "{audit}");
    let granted = format!("sum(chatcart_decisions_total{{test=\"{test}\",outcome=\"granted\"}})");
    await_value(&url, &granted, grants as f64).await;
    await_value(&url, &of("chatcart_granted_cents_total"), credit as f64).await;
    let decisions = t::records(&settings, Topic::Decisions).await;
    let granted_records = decisions
        .iter()
        .filter(|r| matches!(r, Record::Decision(d) if d.outcome == DecisionOutcome::Granted))
        .count();
    assert_eq!(granted_records as u64, grants, "one record per valid grant");
    let dlq = t::read_topic(&settings, Topic::Dlq).await.len();
    assert_eq!(dlq, 1, "the undecodable prompt is the one dead letter");
    await_value(&url, &of("chatcart_dead_letters_total"), dlq as f64).await;
    await_value(
        &url,
        &format!("sum(chatcart_gateway_requests_total{{test=\"{test}\",decision=\"admitted\"}})"),
        3.0,
    )
    .await;

    // A lag series per stage and partition, all at zero once drained.
    let lag = format!("chatcart_consumer_lag_records{{test=\"{test}\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let series = query(&url, &lag).await;
        let seen: HashSet<(String, String)> = series
            .iter()
            .map(|(m, _)| {
                let label = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                (label("stage"), label("partition"))
            })
            .collect();
        let drained = series.iter().all(|(_, v)| *v == 0.0);
        if seen.len() == 4 * 2 && drained {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lag series {seen:?}, drained: {drained}: {series:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every metric the dashboard and the rules use is exposed.
    let mut exposed = families(pipeline_port).await;
    exposed.extend(families(gateway_ops).await);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "docker/grafana-dashboard.json",
        "docker/prometheus-rules.yml",
    ] {
        let used = names_in(&root.join(file));
        assert!(!used.is_empty(), "{file} uses no chatcart metric");
        for name in used {
            let known = exposed.iter().any(|(family, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{family}{s}"))
            });
            assert!(
                known,
                "{file} uses {name}, which no chatcart process exposes: {exposed:?}"
            );
        }
    }

    std::fs::remove_file(&target_file).expect("removing the target file");
    assert!(gateway.terminate(Duration::from_secs(30)).success());
    assert!(pipeline.terminate(Duration::from_secs(30)).success());
}
