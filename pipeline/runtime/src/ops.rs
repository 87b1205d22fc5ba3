//! The operations endpoint on `runtime.health_listen`, for supervisors,
//! load balancers and Prometheus:
//!
//! - `GET /health`: `200 ok` while every part is healthy, else `503` with
//!   why (the container healthcheck, `chatcart health`);
//! - `GET /livez`: `200` while the process runs;
//! - `GET /readyz`: `200` once the broker answered and every stage of the
//!   process holds partitions, and while nothing is restoring or
//!   unhealthy; else `503` with why;
//! - `GET /metrics`: [`Metrics`] in the Prometheus text format, with every
//!   stage's lag read at the scrape ([`LagProbe`]).
//!
//! HEAD works wherever GET does, and query strings are ignored. At most
//! [`CONNECTIONS`] connections are open at once, and one idle for
//! [`IDLE`] is closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::health::Health;
use crate::lag::LagProbe;
use crate::listener::Bounded;
use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::{Ready, Shutdown};

/// Connections the endpoint holds open at once; more wait in the backlog.
pub const CONNECTIONS: usize = 32;
/// How long a connection may sit without a byte either way.
pub const IDLE: Duration = Duration::from_secs(10);

/// What the endpoint reports on.
#[derive(Clone)]
pub struct Ops {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// Counts the stages holding partitions.
    pub ready: Arc<Ready>,
    /// How many stages the process runs.
    pub stages: usize,
    /// Reads the stages' lag at each scrape; none in tests without a
    /// broker.
    pub lag: Option<Arc<LagProbe>>,
}

/// Serves the endpoint on `listen` until `shutdown` fires.
pub async fn serve(listen: String, ops: Ops, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on runtime.health_listen = {listen}: {e}"))?;
    tracing::info!(%listen, "operations endpoint at /health, /livez, /readyz and /metrics");
    axum::serve(Bounded::new(listener, CONNECTIONS, Some(IDLE)), router(ops))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// The endpoint's routes.
pub fn router(ops: Ops) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "try /health, /livez, /readyz or /metrics\n",
            )
        })
        .with_state(Arc::new(ops))
}

async fn health(State(ops): State<Arc<Ops>>) -> Response {
    let (status, body) = ops.health.report();
    let code = if status.starts_with("200") {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body).into_response()
}

async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    let mut why = ops.health.not_ready_because();
    let holding = ops.ready.count();
    if holding < ops.stages {
        why.push_str(&format!(
            "stages: {holding} of {} hold partitions\n",
            ops.stages
        ));
    }
    if why.is_empty() {
        (StatusCode::OK, "ok\n".to_owned()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    if let Some(probe) = &ops.lag {
        let probe = Arc::clone(probe);
        let read =
            tokio::time::timeout(LAG_READ, tokio::task::spawn_blocking(move || probe.read())).await;
        match read {
            Ok(Ok(Ok(lags))) => ops.metrics.set_lag(&lags),
            // The other series still say something: served without lag.
            Ok(Ok(Err(error))) => tracing::debug!(%error, "reading lag for /metrics failed"),
            Ok(Err(_)) | Err(_) => tracing::debug!("reading lag for /metrics timed out"),
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], ops.metrics.encode()).into_response()
}

/// How long a scrape waits for the lag (Prometheus's default scrape
/// timeout is 10 s).
const LAG_READ: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Sends `request` as it is and reads the whole answer.
    async fn ask(addr: &str, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// The endpoint's state for `stages` stages: nothing ready, no lag probe.
    fn ops_of(stages: usize) -> Ops {
        Ops {
            health: Arc::default(),
            metrics: Arc::default(),
            ready: Arc::default(),
            stages,
            lag: None,
        }
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn the_endpoint_answers_each_path_with_the_state() {
        let ops = ops_of(1);
        let (trigger, shutdown) = Shutdown::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let server = tokio::spawn(serve(addr.clone(), ops.clone(), shutdown));
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ops.health.unhealthy("analytics", "down");
        let down = ask(&addr, &get("/health")).await;
        assert!(down.starts_with("HTTP/1.1 503"), "{down}");
        assert!(down.ends_with("analytics: down\n"), "{down}");
        ops.health.healthy("analytics");
        // A query string and HEAD, as any HTTP server takes them.
        assert!(
            ask(&addr, &get("/health?verbose=1"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        let head = ask(
            &addr,
            "HEAD /livez HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(
            head.starts_with("HTTP/1.1 200") && !head.contains("ok\n"),
            "{head}"
        );
        // A request split across packets.
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /li").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"vez HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut split = String::new();
        s.read_to_string(&mut split).await.unwrap();
        assert!(split.starts_with("HTTP/1.1 200"), "{split}");
        // Not ready until the stage holds partitions, and while waiting.
        let not_yet = ask(&addr, &get("/readyz")).await;
        assert!(not_yet.starts_with("HTTP/1.1 503"), "{not_yet}");
        assert!(
            not_yet.contains("stages: 0 of 1 hold partitions"),
            "{not_yet}"
        );
        ops.ready.stages.fetch_add(1, Ordering::AcqRel);
        assert!(
            ask(&addr, &get("/readyz"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        ops.health.not_ready("intent", "restoring partition 3");
        let restoring = ask(&addr, &get("/readyz")).await;
        assert!(
            restoring.contains("intent: restoring partition 3"),
            "{restoring}"
        );
        assert!(ask(&addr, &get("/livez")).await.starts_with("HTTP/1.1 200"));
        // The metrics, as Prometheus reads them.
        ops.metrics.stage("intent").consumed(stages::Topic::Prompts);
        let scraped = ask(&addr, &get("/metrics")).await;
        assert!(
            scraped.contains("application/openmetrics-text"),
            "{scraped}"
        );
        assert!(
            scraped.contains(
                "chatcart_records_consumed_total{stage=\"intent\",topic=\"chat.prompts\"} 1"
            ),
            "{scraped}"
        );
        assert!(ask(&addr, &get("/nope")).await.starts_with("HTTP/1.1 404"));
        trigger.fire();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let ops = ops_of(0);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let idle = Some(Duration::from_millis(200));
            axum::serve(Bounded::new(listener, 1, idle), router(ops)).await
        });
        let mut quiet = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        // It sends nothing; past the idle limit the server hangs up.
        let read = tokio::time::timeout(Duration::from_secs(10), quiet.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
        server.abort();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_one_to_close() {
        let ops = ops_of(0);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(Bounded::new(listener, 2, Some(IDLE)), router(ops)).await
        });
        // Two clients hold the two places, sending nothing.
        let held = [
            tokio::net::TcpStream::connect(addr).await.unwrap(),
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(100)).await;
        let third = tokio::spawn(async move { ask(&addr.to_string(), &get("/livez")).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished(), "a third connection was served");
        drop(held);
        let answer = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("served once a place was free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.abort();
    }
}
