//! A real HTTP server on a loopback port that answers the LLM adapter with
//! canned OpenAI-shaped responses and records every request, so tests (here
//! and in the intent stage) assert on what reached it. Built only for this
//! crate's tests and with the `test-server` feature, which only test builds
//! enable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{CatalogDescription, Llm, LlmConfig};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The server's answer to one request.
pub struct Canned {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Send `Content-Length`; without it the body ends when the connection
    /// closes.
    pub with_length: bool,
}

pub fn ok(content: &str) -> Canned {
    Canned {
        status: 200,
        body: completion(content),
        delay: Duration::ZERO,
        with_length: true,
    }
}

pub fn status(status: u16) -> Canned {
    Canned {
        status,
        body: br#"{"error":{"message":"nope"}}"#.to_vec(),
        delay: Duration::ZERO,
        with_length: true,
    }
}

pub fn completion(content: &str) -> Vec<u8> {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    })
    .to_string()
    .into_bytes()
}

type Handler = Arc<dyn Fn(&Received) -> Canned + Send + Sync>;

pub struct Server {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    pub async fn start(handler: impl Fn(&Received) -> Canned + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&handler), Arc::clone(&log)));
            }
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            received,
        }
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("server log").len()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("server log").clone()
    }

    /// Waits until the server has received `n` requests.
    pub async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "server got {}, not {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    let request = Received { headers, body };
    log.lock().expect("server log").push(request.clone());
    let reply = handler(&request);
    tokio::time::sleep(reply.delay).await;
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nConnection: close\r\n",
        reply.status
    );
    if reply.with_length {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    // The client may have given up (timeout); that is fine.
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

pub fn catalog() -> CatalogDescription {
    CatalogDescription {
        skus: vec![
            ("milk-tea".into(), vec!["奶茶".into(), "milk tea".into()]),
            ("latte".into(), vec!["拿铁".into(), "latte".into()]),
        ],
        options: vec![("size".into(), vec!["medium".into(), "large".into()])],
    }
}

pub fn config(server: &Server) -> LlmConfig {
    LlmConfig {
        enabled: true,
        base_url: server.base_url.clone(),
        model: "test-model".into(),
        api_key_env: String::new(),
        ..LlmConfig::default()
    }
}

pub fn build(config: &LlmConfig) -> Llm {
    Llm::with_env(config, &catalog(), |_| None).expect("adapter builds")
}
