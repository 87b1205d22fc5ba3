//! chatcart processes started as children: `chatcart run intent` and the
//! like, so each stage has its own process (as in production) and its own
//! resident memory to measure, stopped the way an orchestrator stops them
//! (SIGTERM, a drain, SIGKILL only if it hangs), or killed outright. The
//! benchmark runs its stages with it, and the integration tests their
//! crash and restart scenarios.
//!
//! Children are killed when their [`Process`] is dropped, also when the
//! benchmark unwinds from a panic. If the benchmark itself is SIGKILLed they
//! outlive it; Ctrl-C reaches them anyway, as it goes to the whole
//! foreground process group.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How many lines of a child's log an error about it quotes.
const LOG_TAIL_LINES: usize = 20;

/// A chatcart child process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl Process {
    /// Starts `exe args…` with `--config config`, its standard output and
    /// error appended to `log`. The environment is inherited, so `RUST_LOG`
    /// sets the child's log level as it does the parent's.
    pub fn spawn(
        name: &str,
        exe: &Path,
        config: &Path,
        args: &[&str],
        log: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(name, exe, config, args, log, &[])
    }

    /// [`Process::spawn`] with the variables `env` set too (fault hooks,
    /// a log filter).
    pub fn spawn_with_env(
        name: &str,
        exe: &Path,
        config: &Path,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let open =
            || -> std::io::Result<File> { OpenOptions::new().create(true).append(true).open(log) };
        let stdout = open().with_context(|| format!("opening {name}'s log {}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .with_context(|| format!("opening {name}'s log {}", log.display()))?;
        let mut command = Command::new(exe);
        // The configuration file already holds what the variables said, and
        // the phase's own topic prefix, which a variable must not override.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHATCART__") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .envs(env.iter().copied())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {name}: {} {}; is the path to the chatcart binary right?",
                    exe.display(),
                    args.join(" ")
                )
            })?;
        tracing::debug!(name, pid = child.id(), ?args, "process started");
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            started: Instant::now(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file its standard output and error go to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How long ago it was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now (`VmRSS` of `/proc/<pid>/status`), in KiB;
    /// `None` once it has exited, or where there is no `/proc`.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Has it exited on its own? (For noticing a crashed stage during a
    /// run; the status is kept, so asking again gives it again.)
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `grace` for it to drain and exit, then
    /// SIGKILL. Returns how it exited (killed by a signal, without a code,
    /// if it did not drain in time). An error if it had already exited
    /// before being asked to, quoting the end of its log.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited() {
            anyhow::bail!(
                "{} had already exited ({status}) before it was stopped; the end of its log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running `kill -TERM` (is procps or util-linux installed?)")?;
        if !sent.success() {
            // It exited between the check and the signal.
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            anyhow::bail!("kill -TERM {pid} ({}) failed: {sent}", self.name);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(
            name = self.name,
            grace_secs = grace.as_secs_f64(),
            "no exit after SIGTERM; killing"
        );
        self.child
            .kill()
            .with_context(|| format!("killing {}", self.name))?;
        self.child
            .wait()
            .with_context(|| format!("waiting for {} to exit", self.name))
    }

    /// SIGKILL now, with no drain, no commit and no leaving the consumer
    /// group (a crash, as far as the pipeline can tell); returns how it
    /// exited.
    pub fn kill(mut self) -> anyhow::Result<ExitStatus> {
        // `Child::kill` sends SIGKILL on Unix; an error means it had
        // already exited, and `wait` gives that status.
        let _ = self.child.kill();
        self.child
            .wait()
            .with_context(|| format!("waiting for {} to exit", self.name))
    }

    /// The last lines of its log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        last_lines(&text, LOG_TAIL_LINES).to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident set size of process `pid` in KiB, if it is running.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB. (A zombie has no such
/// line.)
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end_matches('\n');
    match text.rmatch_indices('\n').nth(n.saturating_sub(1)) {
        Some((at, _)) if n > 0 => &text[at + 1..],
        _ if n == 0 => "",
        _ => text,
    }
}

/// Resident memory of one process over a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RssStats {
    pub name: String,
    pub peak_kib: u64,
    pub median_kib: u64,
    /// Samples taken while it was running (0: it never was; the sizes are
    /// then 0 too).
    pub samples: usize,
}

impl RssStats {
    /// Stats of `samples` (KiB); the median of an even number is the upper
    /// of the middle two.
    fn of(name: String, mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self {
            name,
            peak_kib: samples.last().copied().unwrap_or(0),
            median_kib: samples.get(samples.len() / 2).copied().unwrap_or(0),
            samples: samples.len(),
        }
    }
}

/// Samples the resident memory of a set of processes every `every` on a
/// background thread, until [`RssSampler::finish`].
#[derive(Debug)]
pub struct RssSampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<RssStats>>,
}

impl RssSampler {
    /// Starts sampling `(name, pid)`s; the first sample is taken at once.
    pub fn start(pids: Vec<(String, u32)>, every: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut samples: Vec<Vec<u64>> = vec![Vec::new(); pids.len()];
            loop {
                for ((_, pid), taken) in pids.iter().zip(&mut samples) {
                    taken.extend(rss_kib(*pid));
                }
                // A message or a dropped sender both mean stop; the wait
                // doubles as the pause between samples.
                match stopped.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            pids.into_iter()
                .zip(samples)
                .map(|((name, _), taken)| RssStats::of(name, taken))
                .collect()
        });
        Self { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns each process's
    /// stats, in the order they were given.
    pub fn finish(self) -> Vec<RssStats> {
        let _ = self.stop.send(());
        // The thread only reads /proc and sorts; it does not panic.
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tchatcart\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  912344 kB\nVmHWM:\t   48212 kB\nVmRSS:\t   41236 kB\nRssAnon:\t   30000 kB\n";

    #[test]
    fn vm_rss_is_read_from_a_status_text() {
        assert_eq!(parse_vm_rss(STATUS), Some(41_236));
        // A zombie's status has no VmRSS line.
        assert_eq!(parse_vm_rss("Name:\tchatcart\nState:\tZ (zombie)\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t garbage kB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let rss = rss_kib(std::process::id()).expect("/proc/self/status on Linux");
        assert!(rss > 100, "{rss} KiB");
    }

    #[test]
    fn stats_give_peak_median_and_count() {
        let s = RssStats::of("a".into(), vec![30, 10, 50, 20, 40]);
        assert_eq!((s.peak_kib, s.median_kib, s.samples), (50, 30, 5));
        let s = RssStats::of("b".into(), vec![10, 40, 20, 30]);
        assert_eq!((s.peak_kib, s.median_kib, s.samples), (40, 30, 4));
        let s = RssStats::of("gone".into(), vec![]);
        assert_eq!((s.peak_kib, s.median_kib, s.samples), (0, 0, 0));
    }

    #[test]
    fn last_lines_of_a_log() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(last_lines("a\nb\nc", 1), "c");
        assert_eq!(last_lines("a\nb\nc", 0), "");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn a_sampler_samples_until_finished() {
        let me = ("me".to_owned(), std::process::id());
        // No process has pid u32::MAX (the kernel's limit is far lower).
        let nobody = ("nobody".to_owned(), u32::MAX);
        let sampler = RssSampler::start(vec![me, nobody], Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(60));
        let stats = sampler.finish();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].name, "me");
        assert!(stats[0].samples >= 2, "{stats:?}");
        assert!(stats[0].peak_kib >= stats[0].median_kib && stats[0].median_kib > 0);
        assert_eq!(stats[1].samples, 0);
    }

    /// A script standing in for chatcart: it takes `--config FILE` and
    /// arguments, and behaves as `body` says.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writing a script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("making it executable");
        path
    }

    fn spawn(name: &str, exe: &Path, dir: &Path, args: &[&str]) -> Process {
        spawn_with_env(name, exe, dir, args, &[])
    }

    /// [`Process::spawn_with_env`], retried while another test thread's
    /// fork still holds the freshly written script open ("text file busy").
    fn spawn_with_env(
        name: &str,
        exe: &Path,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Process {
        let log = dir.join(format!("{name}.log"));
        for _ in 0..50 {
            match Process::spawn_with_env(name, exe, Path::new("bench.toml"), args, &log, env) {
                Ok(p) => return p,
                Err(e)
                    if e.root_cause()
                        .downcast_ref::<std::io::Error>()
                        .and_then(std::io::Error::raw_os_error)
                        == Some(26) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e:#}"),
            }
        }
        panic!("{} stayed busy", exe.display());
    }

    fn wait_exit(p: &mut Process) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = p.exited() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} did not exit", p.name());
    }

    #[test]
    fn processes_drain_on_sigterm_are_killed_when_stuck_and_report_crashes() {
        use std::os::unix::process::ExitStatusExt as _;
        let dir = std::env::temp_dir().join(format!("chatcart-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let draining = script(
            &dir,
            "draining.sh",
            "echo \"args: $*\"; trap 'echo drained; exit 0' TERM; while :; do sleep 0.02; done",
        );
        let stuck = script(
            &dir,
            "stuck.sh",
            "trap '' TERM; echo up; while :; do sleep 0.02; done",
        );
        let crashing = script(&dir, "crashing.sh", "echo boom >&2; exit 3");

        let mut p = spawn("drains", &draining, &dir, &["run", "intent"]);
        assert_eq!(p.name(), "drains");
        assert!(p.exited().is_none());
        std::thread::sleep(Duration::from_millis(100));
        assert!(p.rss_kib().is_some_and(|kib| kib > 0));
        let status = p.stop(Duration::from_secs(10)).expect("stopped");
        assert!(status.success(), "{status}");
        let log = std::fs::read_to_string(dir.join("drains.log")).expect("log");
        assert!(
            log.contains("args: --config bench.toml run intent"),
            "{log}"
        );
        assert!(log.contains("drained"), "{log}");

        let p = spawn("stuck", &stuck, &dir, &[]);
        std::thread::sleep(Duration::from_millis(100));
        let status = p.stop(Duration::from_millis(300)).expect("killed");
        assert_eq!(status.signal(), Some(9), "{status}");

        let mut p = spawn("crashes", &crashing, &dir, &[]);
        assert_eq!(wait_exit(&mut p).code(), Some(3));
        assert_eq!(p.exited().and_then(|s| s.code()), Some(3));
        assert!(p.rss_kib().is_none());
        let err = p.stop(Duration::from_secs(1)).expect_err("it had crashed");
        let err = format!("{err:#}");
        assert!(err.contains("crashes had already exited"), "{err}");
        assert!(err.contains("boom"), "{err}");

        let p = spawn("dropped", &stuck, &dir, &[]);
        let pid = p.pid();
        drop(p);
        assert!(
            rss_kib(pid).is_none(),
            "pid {pid} still runs after the drop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn processes_get_their_variables_and_can_be_killed_outright() {
        use std::os::unix::process::ExitStatusExt as _;
        let dir = std::env::temp_dir().join(format!("chatcart-procs-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let exe = script(
            &dir,
            "env.sh",
            "echo \"x=$CHATCART_PROCS_X\"; trap 'echo drained; exit 0' TERM; while :; do sleep 0.02; done",
        );
        let p = spawn_with_env("env", &exe, &dir, &[], &[("CHATCART_PROCS_X", "42")]);
        assert_eq!(p.log(), dir.join("env.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = || std::fs::read_to_string(dir.join("env.log")).unwrap_or_default();
        while !log().contains("x=42") {
            assert!(
                Instant::now() < deadline,
                "no variable in the log: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(p.age() > Duration::ZERO);
        let status = p.kill().expect("killed");
        assert_eq!(status.signal(), Some(9), "{status}");
        assert!(
            !log().contains("drained"),
            "a kill is not a drain: {}",
            log()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
