//! `chatcart` as a child process, for tests that SIGKILL or drain a stage:
//! the workspace's binary, a configuration file that loads back as the
//! test's settings, and the benchmark's process supervisor
//! ([`tools::procs::Process`]) with a test's way of failing.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use runtime::Settings;
use tools::procs::Process;

pub use tools::procs::rss_kib;

/// The `chatcart` binary of this workspace, for tests that run stages as
/// separate processes (so they can be SIGKILLed).
///
/// `CHATCART_TEST_BIN` names a binary to use as is. Otherwise it is built
/// once per test process with `cargo build -p chatcart --tests --bin
/// chatcart`, into the target directory and profile this test executable
/// was built in (`<target>/<profile>/deps/<test>` → `<target>/<profile>/
/// chatcart`), so a test never runs a stale binary left over from an
/// earlier build (`cargo test -p chatcart-tests` alone does not rebuild it).
/// `--tests` resolves features as the workspace's test build does, so after
/// `cargo nextest run --workspace` (or `cargo test --workspace`) has built
/// everything this is a no-op of well under a second; after a build of
/// this crate alone, the first call compiles chatcart's tests once.
pub fn chatcart_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CHATCART_TEST_BIN") {
            return bin.into();
        }
        let exe = std::env::current_exe().expect("path of the test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lies in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("the profile directory lies in the target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let started = Instant::now();
        let out = std::process::Command::new(&cargo)
            .args([
                "build", "--quiet", "-p", "chatcart", "--tests", "--bin", "chatcart",
            ])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--profile", &profile])
            .output()
            .expect("running cargo to build the chatcart binary");
        assert!(
            out.status.success(),
            "cargo build -p chatcart --tests --bin chatcart failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join(format!("chatcart{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        eprintln!(
            "chatcart binary: {} (checked with {} build in {} ms)",
            bin.display(),
            Path::new(&cargo).display(),
            started.elapsed().as_millis()
        );
        bin
    })
    .clone()
}

/// Writes `settings` as a configuration file for `chatcart --config`, and
/// checks that loading it gives back exactly `settings`, so child processes
/// run with the same settings (campaigns included) as the test's in-process
/// stages and auditor. Panics if a `CHATCART__…` variable in the
/// environment would change them.
pub fn write_config(settings: &Settings, path: &Path) {
    let text = toml::to_string(settings).expect("the settings serialise as TOML");
    std::fs::write(path, &text).expect("writing the configuration file");
    let loaded = Settings::load(Some(path))
        .unwrap_or_else(|e| panic!("{} does not load: {e}\n{text}", path.display()));
    assert_eq!(
        &loaded,
        settings,
        "{} does not load as the test's settings (is a CHATCART__ variable set?)",
        path.display()
    );
}

/// `chatcart <args…> --config <config>` running as a child process, its
/// output (the logs) going to `<name>.log` beside the configuration.
/// Dropping it kills it.
pub struct ChildProcess(Process);

impl ChildProcess {
    /// Starts `chatcart <args>` with `config`. The child's log filter is
    /// `CHATCART_TEST_CHILD_LOG` when set, else `RUST_LOG` when set, else
    /// `info`.
    pub fn spawn(name: &str, config: &Path, args: &[&str]) -> Self {
        Self::spawn_with_env(name, config, args, &[])
    }

    /// [`ChildProcess::spawn`] inside the network namespace `netns`.
    pub fn spawn_in(netns: &crate::Netns, name: &str, config: &Path, args: &[&str]) -> Self {
        let dir = config.parent().expect("the configuration's directory");
        Self::spawn_exe(&netns.wrap(dir, &chatcart_bin()), name, config, args, &[])
    }

    /// [`ChildProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env(name: &str, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_exe(&chatcart_bin(), name, config, args, env)
    }

    fn spawn_exe(
        exe: &Path,
        name: &str,
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = config.parent().expect("the configuration's directory");
        let log = dir.join(format!("{name}.log"));
        // The supervisor appends; a new child of the same name starts a
        // new log, so waiting for a line never finds the last one's.
        std::fs::File::create(&log).expect("creating the child's log file");
        let filter = std::env::var("CHATCART_TEST_CHILD_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .unwrap_or_else(|_| "info".to_owned());
        let mut env = env.to_vec();
        env.push(("RUST_LOG", &filter));
        let process = Process::spawn_with_env(name, exe, config, args, &log, &env)
            .unwrap_or_else(|e| panic!("starting chatcart {args:?}: {e:#}"));
        Self(process)
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.0.log()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.pid()
    }

    /// How long ago it was started.
    pub fn age(&self) -> Duration {
        self.0.age()
    }

    /// Whether it has exited (asking again gives the same status).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.exited()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Waits until its log contains `needle`; false on timeout or exit.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            if self.exited().is_some() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits until the process holds partitions (within a minute), and
    /// fails the test with its log otherwise.
    pub async fn holds_partitions(&mut self) {
        assert!(
            self.wait_for_log("partitions assigned", Duration::from_secs(60))
                .await,
            "{}",
            self.log_text()
        );
    }

    /// SIGSTOP: the process holds its partitions and does nothing, as a
    /// stage that is stuck would.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`ChildProcess::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let sent = std::process::Command::new("kill")
            .args([which, &self.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill {which} {} failed", self.id());
    }

    /// SIGKILL: no drain, no commit, no leaving the consumer group.
    pub fn kill9(self) -> ExitStatus {
        self.0.kill().expect("killing a child")
    }

    /// SIGTERM, then waits up to `within` for it to drain and exit; fails
    /// the test if it does not.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        let (name, log) = (self.name().to_owned(), self.log().to_owned());
        let status = self.0.stop(within).expect("stopping a child");
        // The supervisor SIGKILLs what does not drain in time.
        assert!(
            status.signal() != Some(9),
            "{name} did not drain within {within:?} of SIGTERM:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        status
    }
}
