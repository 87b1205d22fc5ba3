//! A slow link to ClickHouse: a TCP proxy in front of its HTTP port that
//! holds back the server's answer to the first few inserts into `events`,
//! as a congested or throttling network would. The insert lands at once;
//! its client hears of it only after `hold`, so a client with a shorter
//! timeout gives up on an insert that is already stored and retries it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy; it stops when dropped.
pub struct SlowLink {
    /// `http://127.0.0.1:PORT`, to use as `clickhouse.url`.
    pub url: String,
    held: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl SlowLink {
    /// Proxies to `upstream` (`http://host:port`), holding back the answers
    /// to the first `inserts` inserts into `events` by `hold` each.
    pub async fn start(upstream: &str, hold: Duration, inserts: u64) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the slow link");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let held = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&held);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, hold, inserts, Arc::clone(&counter)));
            }
        });
        Self { url, held, task }
    }

    /// How many answers were held back so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes; the answer to a request that
/// inserts into `events` waits `hold` first, while `held` is below `inserts`.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    hold: Duration,
    inserts: u64,
    held: Arc<AtomicU64>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let slow = Arc::new(AtomicBool::new(false));
    let marked = Arc::clone(&slow);
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if inserts_events(&buf[..n])
                && held
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                        (h < inserts).then_some(h + 1)
                    })
                    .is_ok()
            {
                marked.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if slow.swap(false, Ordering::SeqCst) {
                tokio::time::sleep(hold).await;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Whether `chunk` starts an HTTP request whose query inserts into
/// `events` (the query is in the URL, form-encoded).
fn inserts_events(chunk: &[u8]) -> bool {
    let line_end = chunk
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(chunk.len());
    let line = &chunk[..line_end];
    if !line.starts_with(b"POST ") {
        return false;
    }
    let mut decoded = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < line.len() => {
                let hex = std::str::from_utf8(&line[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        decoded.push(b);
                        i += 2;
                    }
                    Err(_) => decoded.push(b'%'),
                }
            }
            b => decoded.push(b),
        }
        i += 1;
    }
    // The client quotes names (`events`) or not.
    decoded.retain(|b| !matches!(b, b'`' | b'"'));
    String::from_utf8_lossy(&decoded).contains("INSERT INTO events(")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inserts_into_events_are_slowed() {
        assert!(inserts_events(
            b"POST /?database=x&query=INSERT+INTO+%60events%60%28%60topic%60%2C%60offset%60%29+FORMAT+RowBinary HTTP/1.1\r\nhost: x\r\n"
        ));
        assert!(inserts_events(
            b"POST /?query=INSERT+INTO+events%28topic%29+FORMAT+RowBinary HTTP/1.1\r\n"
        ));
        assert!(!inserts_events(
            b"POST /?query=SELECT+max%28offset%29+FROM+events HTTP/1.1\r\n"
        ));
        assert!(!inserts_events(
            b"POST /?query=INSERT+INTO+campaigns%28id%29+FORMAT+RowBinary HTTP/1.1\r\n"
        ));
        assert!(!inserts_events(b"00 INSERT INTO events( in a body"));
    }
}
