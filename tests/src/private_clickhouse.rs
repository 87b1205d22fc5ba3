//! A ClickHouse server of one test's own, for tests that stop and start it.

use crate::namespace::unique_name;

/// A ClickHouse server of one test's own (started by tests/services.sh in a
/// scratch folder), for tests that stop and start it. Stopped on drop.
pub struct PrivateClickHouse {
    dir: std::path::PathBuf,
    pub url: String,
}

fn services_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("services.sh")
}

impl PrivateClickHouse {
    /// Starts a new server in a scratch folder.
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(name));
        std::fs::create_dir_all(&dir).expect("creating the server's folder");
        let mut server = Self {
            dir,
            url: String::new(),
        };
        server.url = server.up();
        server
    }

    fn up(&self) -> String {
        let out = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-start")
            .arg(&self.dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("running tests/services.sh");
        assert!(
            out.status.success(),
            "tests/services.sh clickhouse-start failed"
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server (SIGTERM, then SIGKILL if it lingers).
    pub fn stop(&self) {
        let status = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-stop")
            .arg(&self.dir)
            .status()
            .expect("running tests/services.sh");
        assert!(status.success(), "tests/services.sh clickhouse-stop failed");
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        let url = self.up();
        assert_eq!(url, self.url, "ClickHouse came back on another address");
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(services_script())
            .arg("clickhouse-stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
