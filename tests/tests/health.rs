//! A stage process's operations endpoint (`runtime.health_listen`), asked
//! with `chatcart health --url`, the container healthcheck: 0 with the
//! answer while the process serves it, 1 once it is stopped (SIGSTOP: the
//! port is open but nothing answers) and once it is gone. `/livez` answers
//! while the process waits for a broker that does not answer, and
//! `/readyz` says it is waiting; once the stage holds its partitions it is
//! ready, and `/metrics` counts the records it handled and shows each
//! group's lag. When its broker goes away it is unready (and stays so while
//! the broker is gone) but alive.

use std::process::Command;
use std::time::Duration;

use chatcart_tests::{self as t, ChildProcess};

fn health(url: &str) -> (bool, String) {
    let out = Command::new(t::chatcart_bin())
        .args(["health", "--timeout", "2", "--url", url])
        .output()
        .expect("running chatcart health");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_for_a_running_stage_and_not_for_a_stopped_one() {
    let mut settings = t::settings("health", 2);
    let port = t::free_port();
    settings.runtime.health_listen = format!("127.0.0.1:{port}");
    t::create_topics(&settings).await;
    let dir = t::scratch_dir(&settings);
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut intent = ChildProcess::spawn("intent", &config, &["run", "intent"]);
    intent.holds_partitions().await;
    let url = format!("http://127.0.0.1:{port}/health");
    let (ok, said) = health(&url);
    assert!(ok && said.trim() == "ok", "{said}");
    intent.pause();
    let (ok, said) = health(&url);
    assert!(!ok && said.contains("did not answer"), "{said}");
    intent.resume();
    intent.terminate(Duration::from_secs(30));
    let (ok, said) = health(&url);
    assert!(!ok, "{said}");
}

/// The whole of `/metrics` (`chatcart health` prints only the start of
/// what it gets), and whether it came with 200.
async fn scrape(port: u16) -> (bool, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (false, String::new());
    };
    let request = "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let mut out = String::new();
    let read = async {
        s.write_all(request.as_bytes()).await?;
        s.read_to_string(&mut out).await
    };
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(_)) => (out.starts_with("HTTP/1.1 200"), out),
        _ => (false, out),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_is_alive_while_it_waits_ready_once_it_holds_partitions_and_counts_its_work() {
    // Waiting for a broker that refuses every connection.
    let mut settings = t::settings("ops-wait", 1);
    let port = t::free_port();
    settings.runtime.health_listen = format!("127.0.0.1:{port}");
    let mut waiting = settings.clone();
    waiting.kafka.bootstrap_servers = "127.0.0.1:1".into();
    let dir = t::scratch_dir(&waiting);
    let config = dir.join("waiting.toml");
    t::write_config(&waiting, &config);
    let child = ChildProcess::spawn("waiting", &config, &["run", "intent"]);
    let at = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !health(&at("/livez")).0 {
        assert!(std::time::Instant::now() < deadline, "{}", child.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ready, said) = health(&at("/readyz"));
    assert!(
        !ready && said.contains("waiting for the broker at 127.0.0.1:1"),
        "{said}"
    );
    child.terminate(Duration::from_secs(30));

    // The real broker: ready once it holds partitions, and counting.
    t::create_topics(&settings).await;
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut intent = ChildProcess::spawn("intent", &config, &["run", "intent"]);
    intent.holds_partitions().await;
    let requests = t::prompts(20, 3);
    t::publish(&settings, &requests).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let consumed = "chatcart_records_consumed_total{stage=\"intent\",topic=\"chat.prompts\"} 20";
    loop {
        let (ready, _) = health(&at("/readyz"));
        let (ok, scraped) = scrape(port).await;
        // Its own group drained; the coupon group, which nothing runs,
        // holds what it produced.
        let drained = "chatcart_consumer_lag_records{stage=\"intent\",partition=\"0\"} 0";
        if ready && ok && scraped.contains(consumed) && scraped.contains(drained) {
            let coupon = scraped
                .lines()
                .find(|l| {
                    l.starts_with("chatcart_consumer_lag_records{stage=\"coupon\",partition=\"0\"}")
                })
                .unwrap_or_else(|| panic!("no coupon lag: {scraped}"));
            assert!(!coupon.ends_with(" 0"), "{coupon}");
            assert!(
                scraped.contains(
                    "chatcart_records_produced_total{stage=\"intent\",topic=\"commerce.intents\"} "
                ),
                "{scraped}"
            );
            assert!(
                scraped.contains("chatcart_handling_seconds_count{stage=\"intent\"} 20"),
                "{scraped}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready with 20 records counted: {scraped}\n{}",
            intent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    intent.terminate(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_is_unready_while_its_broker_is_gone_and_alive_all_along() {
    let mut settings = t::settings("health-broker", 1);
    let (broker_port, port) = (t::free_port(), t::free_port());
    settings.kafka.bootstrap_servers = format!("127.0.0.1:{broker_port}");
    settings.runtime.health_listen = format!("127.0.0.1:{port}");
    let dir = t::scratch_dir(&settings);
    let mut broker = t::OwnBroker::start(&dir, broker_port, "memory://tansu/").await;
    t::create_topics(&settings).await;
    let config = dir.join("chatcart.toml");
    t::write_config(&settings, &config);
    let mut intent = ChildProcess::spawn("intent", &config, &["run", "intent"]);
    intent.holds_partitions().await;
    let at = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let until = |want: bool, path: &'static str| {
        let url = at(path);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let (ok, said) = health(&url);
                if ok == want {
                    return said;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{path} never answered {want}: {said}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    until(true, "/readyz").await;

    broker.kill();
    let said = until(false, "/readyz").await;
    assert!(said.contains("intent: consume error"), "{said}");
    // Still running its loop: not a process to restart.
    assert!(health(&at("/livez")).0);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ready, said) = health(&at("/readyz"));
    assert!(!ready, "ready again with the broker gone: {said}");
    assert!(health(&at("/livez")).0);
    intent.terminate(Duration::from_secs(30));
}
