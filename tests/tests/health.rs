//! `chatcart health --url`, the container healthcheck: 0 with the answer
//! while a stage process serves `runtime.health_listen`, 1 once it is
//! stopped (SIGSTOP: the port is open but nothing answers) and once it is
//! gone.

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
    assert!(
        intent
            .wait_for_log("partitions assigned", Duration::from_secs(60))
            .await,
        "{}",
        intent.log_text()
    );
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
