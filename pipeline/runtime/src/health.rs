//! Whether each long-running part of the process can do its work, and an
//! optional HTTP endpoint that tells a supervisor or load balancer.
//!
//! A part reports itself unhealthy with a reason (the analytics sink while
//! ClickHouse refuses its inserts) and healthy again when it recovers. With
//! `runtime.health_listen` set, `GET /health` answers `200` with `ok` when
//! every part is healthy and `503` with one `part: reason` line per
//! unhealthy part otherwise. Reasons never contain prompt text.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::Shutdown;

/// The health of every part of the process.
#[derive(Debug, Default)]
pub struct Health {
    /// Unhealthy parts and why; bounded by the number of parts.
    unhealthy: Mutex<BTreeMap<&'static str, String>>,
}

impl Health {
    /// Marks `part` unhealthy; logged when it changes from healthy.
    pub fn unhealthy(&self, part: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        let mut map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(part) {
            tracing::warn!(part, %reason, "unhealthy");
        }
        map.insert(part, reason);
    }

    /// Marks `part` healthy; logged when it was not.
    pub fn healthy(&self, part: &'static str) {
        let mut map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.remove(part).is_some() {
            tracing::info!(part, "healthy again");
        }
    }

    /// Whether `part` is healthy now.
    pub fn is_healthy(&self, part: &str) -> bool {
        !self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(part)
    }

    /// The status line and body `GET /health` answers with.
    pub fn report(&self) -> (&'static str, String) {
        let map = self
            .unhealthy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.is_empty() {
            return ("200 OK", "ok\n".to_owned());
        }
        let body = map
            .iter()
            .map(|(part, reason)| format!("{part}: {reason}\n"))
            .collect();
        ("503 Service Unavailable", body)
    }
}

/// Answers `GET /health` on `listen` until `shutdown` fires. Any other path
/// gets `404`. One short request per connection; a slow client is dropped
/// after a second.
pub async fn serve(
    listen: String,
    health: std::sync::Arc<Health>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on runtime.health_listen = {listen}: {e}"))?;
    tracing::info!(%listen, "health endpoint at /health");
    loop {
        let (mut socket, _) = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "health connection not accepted");
                    continue;
                }
            },
        };
        let health = std::sync::Arc::clone(&health);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(Duration::from_secs(1), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /health ") {
                health.report()
            } else {
                ("404 Not Found", "try GET /health\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_unhealthy_until_it_says_otherwise() {
        let h = Health::default();
        assert_eq!(h.report().0, "200 OK");
        h.unhealthy("analytics", "ClickHouse unavailable: connection refused");
        h.unhealthy("analytics", "ClickHouse unavailable: timeout");
        let (status, body) = h.report();
        assert_eq!(status, "503 Service Unavailable");
        assert_eq!(body, "analytics: ClickHouse unavailable: timeout\n");
        assert!(!h.is_healthy("analytics"));
        h.healthy("analytics");
        assert_eq!(h.report().0, "200 OK");
    }

    #[tokio::test]
    async fn the_endpoint_answers_with_the_state() {
        let health = std::sync::Arc::new(Health::default());
        health.unhealthy("analytics", "down");
        let (trigger, shutdown) = Shutdown::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let server = tokio::spawn(serve(
            addr.clone(),
            std::sync::Arc::clone(&health),
            shutdown,
        ));
        let get = |path: &'static str| {
            let addr = addr.clone();
            async move {
                for _ in 0..50 {
                    if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                        s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
                            .await
                            .unwrap();
                        let mut out = String::new();
                        s.read_to_string(&mut out).await.unwrap();
                        return out;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("health endpoint never listened");
            }
        };
        let down = get("/health").await;
        assert!(down.starts_with("HTTP/1.1 503"), "{down}");
        assert!(down.ends_with("analytics: down\n"), "{down}");
        health.healthy("analytics");
        assert!(get("/health").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.starts_with("HTTP/1.1 404"));
        trigger.fire();
        server.await.unwrap().unwrap();
    }
}
