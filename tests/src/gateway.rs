//! `chatcart gateway` under test: in this process (on a port of its own)
//! or as a child process (to SIGKILL it), and an HTTP client that reads
//! its answers, JSON bodies and event streams alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use runtime::Settings;
use runtime::shutdown::Trigger;
use serde_json::Value;
use tokio::task::JoinHandle;
use tools::gateway_client::{Answered, request};

/// A gateway running in this process. Dropped without [`stop`] (a test
/// that failed), it is still told to stop: its tasks that read Kafka run
/// on blocking threads, which the test's runtime would otherwise wait for
/// without end.
///
/// [`stop`]: GatewayUnderTest::stop
pub struct GatewayUnderTest {
    pub addr: SocketAddr,
    trigger: Trigger,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for GatewayUnderTest {
    fn drop(&mut self) {
        self.trigger.fire();
    }
}

impl GatewayUnderTest {
    /// Starts instance `instance` of the gateway for `settings` on a free
    /// loopback port, and waits until it answers.
    pub async fn start(settings: &Settings, instance: i32) -> Self {
        let mut settings = settings.clone();
        settings.gateway.instance = instance;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let (trigger, shutdown) = runtime::Shutdown::new();
        let codec = runtime::app::codec(&settings).expect("the codec");
        let task = tokio::spawn(::gateway::serve(listener, settings, codec, shutdown));
        wait_until_serving(addr).await;
        Self {
            addr,
            trigger,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it as SIGTERM would.
    pub async fn stop(mut self) {
        self.trigger.fire();
        let task = self.task.take().expect("stopped once");
        let stopped = tokio::time::timeout(Duration::from_secs(30), task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "the gateway did not stop cleanly: {stopped:?}"
        );
    }
}

/// Waits until something answers HTTP on `addr` (a `404` for an unknown
/// request is an answer).
pub async fn wait_until_serving(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://{addr}/v1/prompts/none-such");
    while Instant::now() < deadline {
        if reqwest::get(&url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway at {addr} did not answer within 60 s");
}

/// A free loopback port (bound and released: another process could take
/// it in between, which on a test machine does not happen in practice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An answer read whole: the status, `Retry-After`, and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

/// One event of a stream, and how long after the request it came.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub name: String,
    pub data: Value,
    pub after: Duration,
}

/// `POST url` with `body` (or `GET url` when `body` is `None`), read to
/// its end (at most `timeout`): the events of a stream, or a JSON answer
/// as `Err`.
pub async fn stream(
    url: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<StreamEvent>, Answer> {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let answered = request(&client, url, body.map(<[u8]>::to_vec), timeout)
        .await
        .expect("the gateway answers");
    match answered {
        Answered::Stream(events) => Ok(events
            .into_iter()
            .map(|e| StreamEvent {
                name: e.name,
                data: e.data,
                after: e.at.saturating_duration_since(started),
            })
            .collect()),
        Answered::Body {
            status,
            retry_after,
            body,
            ..
        } => Err(Answer {
            status,
            retry_after,
            body,
        }),
    }
}

/// `POST url` with `body`, read as one JSON answer (use `?wait=`).
pub async fn post_json(url: &str, body: &[u8]) -> Answer {
    stream(url, Some(body), Duration::from_secs(120))
        .await
        .expect_err("a JSON answer, not a stream")
}

/// `GET url`, read as one JSON answer.
pub async fn get_json(url: &str) -> Answer {
    stream(url, None, Duration::from_secs(120))
        .await
        .expect_err("a JSON answer, not a stream")
}

/// A prompt's JSON body.
pub fn prompt_body(request_id: &str, user_id: &str, text: &str) -> Vec<u8> {
    serde_json::json!({"request_id": request_id, "user_id": user_id, "text": text})
        .to_string()
        .into_bytes()
}
