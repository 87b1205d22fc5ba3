//! A Tansu broker of a test's own, on its own port and folder, so the test
//! can take it away (SIGKILL) and bring it back on the same data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process the test owns.
pub struct OwnBroker {
    dir: PathBuf,
    host: String,
    port: u16,
    storage: String,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts Tansu (`CHATCART_TEST_TANSU_BIN`, else `tansu` on PATH) in
    /// `dir` on `port` with the storage engine `storage` (say
    /// `memory://tansu/`, or `sqlite://tansu.db`, a file in `dir`, which
    /// outlives the process), and waits until it accepts connections.
    pub async fn start(dir: &Path, port: u16, storage: &str) -> Self {
        Self::start_on(dir, "127.0.0.1", port, storage).await
    }

    /// [`OwnBroker::start`] listening on the address `host` (say the host's
    /// end of a [`crate::Netns`] link).
    pub async fn start_on(dir: &Path, host: &str, port: u16, storage: &str) -> Self {
        let mut broker = Self {
            dir: dir.to_owned(),
            host: host.to_owned(),
            port,
            storage: storage.to_owned(),
            child: None,
        };
        broker.restart().await;
        broker
    }

    /// `host:port` for `kafka.bootstrap_servers`.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// SIGKILL: the broker dies with whatever it had not written.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("killing the broker");
            child.wait().expect("the broker exits");
        }
    }

    /// Starts the broker again on the same port and data.
    pub async fn restart(&mut self) {
        self.kill();
        let bin = std::env::var("CHATCART_TEST_TANSU_BIN").unwrap_or_else(|_| "tansu".to_owned());
        let listener = format!("tcp://{}:{}", self.host, self.port);
        let child = Command::new(bin)
            .current_dir(&self.dir)
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn")
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &self.storage])
            .args(["--cluster-id", "chatcart-test", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu (CHATCART_TEST_TANSU_BIN)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "tansu did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
