//! The benchmark run: on one broker, with one partition count and one set
//! of client settings, measure a raw hop, a no-op relay through the
//! pipeline's topic chain, and the pipeline itself; then how the pipeline's
//! processes hold up while a large backlog drains, and whether they hold
//! a share of their burst rate for minutes.
//!
//! Every phase uses topics and consumer groups of its own (a prefix per
//! phase), so no phase reads another's records. The relay and the
//! pipeline run as separate processes of this executable, as an operator
//! would run them, so their memory is each process's own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::cpu::{CpuMeter, CpuSampler, listening_pid, local_port, local_url_port};
use super::options::{BenchOptions, Phase};
use super::raw::{Hop, raw_hop};
use super::results::{BenchReport, Drain, HalfLoad, Row};
use super::sustained::{Sustained, WINDOW_SECS};
use crate::procs::{Process, RssSampler};
use crate::surge::drive::LiveSurge;
use crate::surge::{Mix, Profile, Surge, SurgeReport};
use extract::catalog::Catalog;
use runtime::app;
use runtime::config::Settings;
use runtime::now_ms;
use stages::Topic;

/// The four hops of the pipeline's chain, as the relay runs them.
const CHAIN: [(Topic, Topic); 4] = [
    (Topic::Prompts, Topic::Intents),
    (Topic::Intents, Topic::Decisions),
    (Topic::Decisions, Topic::Orders),
    (Topic::Orders, Topic::Replies),
];

/// The pipeline's processes, one per stage.
const STAGES: [&str; 5] = ["intent", "coupon", "fulfillment", "reply", "analytics"];

/// "As fast as the sender can": the throughput phases' nominal rate.
const FLAT_OUT: f64 = 1_000_000.0;

/// Runs every phase against the broker (and ClickHouse) `settings` names.
pub async fn run(settings: &Settings, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(
        settings.clickhouse.enabled(),
        "the pipeline phase includes the analytics sink: set clickhouse.url (e.g. CHATCART__CLICKHOUSE__URL=http://localhost:8123)"
    );
    anyhow::ensure!(options.records > 0, "--records must be at least 1");
    let runs = |phase: Phase| options.phases.contains(&phase);
    anyhow::ensure!(!options.phases.is_empty(), "--phases names no phase");
    if runs(Phase::Sustained) {
        options.sustained.check(runs(Phase::Pipeline))?;
    }
    std::fs::create_dir_all(&options.work_dir)
        .with_context(|| format!("creating {}", options.work_dir.display()))?;
    let exe = std::env::current_exe().context("finding the chatcart executable")?;
    let base = format!("bench-{}", now_ms() / 1000);
    let bench = Bench {
        settings,
        options,
        exe: &exe,
        base: &base,
    };

    let raw = if runs(Phase::Raw) {
        eprintln!("[raw] one hop: {} records", options.records);
        Some(bench.raw().await?)
    } else {
        None
    };
    let relay = if runs(Phase::Relay) {
        eprintln!("[relay] four no-op relay processes");
        Some(bench.chain("relay", None).await?)
    } else {
        None
    };
    let pipeline = if runs(Phase::Pipeline) {
        eprintln!("[pipeline] five stage processes");
        let half = relay
            .as_ref()
            .and_then(|r| r.half_load.as_ref())
            .map(|h| h.rate);
        Some(bench.chain("pipeline", half).await?)
    } else {
        None
    };
    let drain = if runs(Phase::Backlog) && options.backlog > 0 {
        eprintln!(
            "[backlog] {} prompts queued before the pipeline starts",
            options.backlog
        );
        Some(bench.drain().await?)
    } else {
        None
    };
    let sustained = if runs(Phase::Sustained) {
        let burst = pipeline.as_ref().map(|p| p.per_sec);
        let rate = options.sustained.rate(burst)?;
        eprintln!(
            "[sustained] the pipeline at {rate:.0}/s for {} s after a {} s lead-in",
            options.sustained.duration.as_secs(),
            options.sustained.lead_in.as_secs()
        );
        Some(bench.sustained(rate, burst).await?)
    } else {
        None
    };

    let ratio = |a: &Option<Row>, b: &Option<Row>| match (a, b) {
        (Some(a), Some(b)) => Some(a.per_sec / b.per_sec.max(1e-9)),
        _ => None,
    };
    let p99 = match (
        pipeline.as_ref().and_then(|p| p.half_load.as_ref()),
        relay.as_ref().and_then(|r| r.half_load.as_ref()),
    ) {
        (Some(p), Some(r)) => Some(p.p99_ms as f64 / (r.p99_ms.max(1)) as f64),
        _ => None,
    };
    let cpu = match (&relay, &pipeline) {
        (Some(r), Some(p)) if p.cpu.measured_us > 0.0 => {
            Some(r.cpu.measured_us / p.cpu.measured_us)
        }
        _ => None,
    };
    Ok(BenchReport {
        date_unix: now_ms() / 1000,
        bootstrap_servers: settings.kafka.bootstrap_servers.clone(),
        partitions: settings.kafka.partitions,
        pipeline_over_relay: ratio(&pipeline, &relay),
        relay_over_raw: ratio(&relay, &raw),
        p99_pipeline_over_relay: p99,
        cpu_relay_over_pipeline: cpu,
        rows: [raw, relay, pipeline].into_iter().flatten().collect(),
        drain,
        sustained,
    })
}

/// What every phase shares.
struct Bench<'a> {
    settings: &'a Settings,
    options: &'a BenchOptions,
    exe: &'a Path,
    base: &'a str,
}

impl Bench<'_> {
    /// Settings of one phase: its own topics and groups, created now.
    async fn phase(&self, phase: &str) -> anyhow::Result<(Settings, PathBuf)> {
        let mut settings = self.settings.clone();
        settings.kafka.topic_prefix = format!("{}-{phase}.", self.base);
        settings.kafka.group_prefix = format!("{}-{phase}", self.base);
        // Each phase's records in ClickHouse stay apart by their topic names;
        // a campaign per phase keeps the views' figures apart too.
        if let Some(c) = settings.campaigns.first_mut() {
            c.id = format!("{}-{phase}", self.base);
        }
        settings.validate()?;
        app::create_topics(&settings).await?;
        let config = self.options.work_dir.join(format!("{phase}.toml"));
        // The file holds the settings as they are, passwords included, for
        // the phase's processes to read: its owner alone may read it.
        write_private(&config, toml::to_string(&settings)?.as_bytes())
            .with_context(|| format!("writing {}", config.display()))?;
        Ok((settings, config))
    }

    fn surge(&self, run: &str, profile: Profile) -> Surge {
        Surge {
            profile,
            // Exact duplicates are the pipeline's to drop; the relay would
            // pass them on, so both get none and see the same records.
            mix: Mix {
                duplicate_share: 0.0,
                ..Mix::default()
            },
            seed: 7,
            run: format!("{}-{run}", self.base),
            drain_timeout: self.options.drain_timeout,
            progress: self.options.progress,
            via_gateway: None,
        }
    }

    /// Produce and consume back, nothing in between.
    async fn raw(&self) -> anyhow::Result<Row> {
        // `raw_hop` makes its topic itself, so it is surely empty.
        let topic = format!("{}-raw.{}", self.base, Topic::Prompts.base_name());
        let settings = self.settings;
        let payload = sample_payload(settings)?;
        let mut runs = Vec::new();
        let meter = CpuMeter::start(self.measured(&[]));
        for run in 0..self.options.runs {
            let topic = format!("{topic}.{run}");
            let hop: Hop = raw_hop(settings, &topic, self.options.records, &payload).await?;
            runs.push(hop.hop_per_sec);
        }
        Ok(Row {
            name: "raw hop",
            per_sec: median(&runs),
            runs,
            records: self.options.records,
            half_load: None,
            cpu: meter.finish(self.options.records * self.options.runs as u64),
        })
    }

    /// The processes of `phase` ("relay" or "pipeline").
    fn spawn(&self, phase: &str, config: &Path) -> anyhow::Result<Vec<Process>> {
        let log = |name: &str| self.options.work_dir.join(format!("{phase}-{name}.log"));
        if phase == "relay" {
            CHAIN
                .iter()
                .map(|(from, to)| {
                    let name = format!("relay-{}", from.base_name());
                    Process::spawn(
                        &name,
                        self.exe,
                        config,
                        &["relay", "--from", from.base_name(), "--to", to.base_name()],
                        &log(&name),
                    )
                })
                .collect()
        } else {
            STAGES
                .iter()
                .map(|stage| Process::spawn(stage, self.exe, config, &["run", stage], &log(stage)))
                .collect()
        }
    }

    /// Starts `phase`'s processes, warms them up, measures throughput flat
    /// out, then latency at `half_load` requests/s (default: half of the
    /// throughput just measured).
    async fn chain(&self, phase: &'static str, half_load: Option<f64>) -> anyhow::Result<Row> {
        let (settings, config) = self.phase(phase).await?;
        let processes = self.spawn(phase, &config)?;
        let measured = async {
            self.warm_up(&settings, phase).await?;
            let mut runs = Vec::new();
            let meter = CpuMeter::start(self.measured(&processes));
            let mut answered = 0;
            for run in 0..self.options.runs {
                let flat = self.flat_out(&settings, &format!("{phase}-{run}")).await?;
                runs.push(flat.answered as f64 / flat.elapsed_secs.max(1e-9));
                answered += flat.answered;
            }
            let cpu = meter.finish(answered);
            let own_half = median(&runs) / 2.0;
            let half = self
                .at_rate(&settings, phase, half_load.unwrap_or(own_half))
                .await?;
            anyhow::Ok((runs, Some(half), cpu))
        }
        .await;
        stop_all(processes)?;
        let (runs, half_load, cpu) = measured?;
        Ok(Row {
            name: if phase == "relay" {
                "no-op relay"
            } else {
                "pipeline"
            },
            per_sec: median(&runs),
            runs,
            records: self.options.records,
            half_load,
            cpu,
        })
    }

    /// The processes whose CPU a phase counts: `processes`, this one (the
    /// generator and reader of answers), and the broker and ClickHouse
    /// when they listen on this machine.
    fn measured(&self, processes: &[Process]) -> Vec<(String, u32)> {
        let mut pids = vec![("generator".to_owned(), std::process::id())];
        let broker = self
            .settings
            .kafka
            .bootstrap_servers
            .split(',')
            .find_map(local_port)
            .and_then(listening_pid);
        pids.extend(broker.map(|pid| ("broker".to_owned(), pid)));
        let clickhouse = local_url_port(&self.settings.clickhouse.url).and_then(listening_pid);
        pids.extend(clickhouse.map(|pid| ("clickhouse".to_owned(), pid)));
        pids.extend(processes.iter().map(|p| (p.name().to_owned(), p.pid())));
        pids
    }

    /// A few requests through every process, so group joins and restores
    /// are not measured.
    async fn warm_up(&self, settings: &Settings, phase: &str) -> anyhow::Result<()> {
        let mut surge = self.surge(
            &format!("{phase}-warmup"),
            Profile::constant(200.0, Duration::from_secs(1))?,
        );
        surge.progress = false;
        surge.drain_timeout = Duration::from_secs(120);
        let report = crate::surge::run(settings, surge).await?;
        anyhow::ensure!(
            report.unanswered == 0,
            "{phase}: {} of {} warm-up requests were not answered within 120 s; see the logs in {}",
            report.unanswered,
            report.requests,
            self.options.work_dir.display()
        );
        Ok(())
    }

    async fn flat_out(&self, settings: &Settings, phase: &str) -> anyhow::Result<SurgeReport> {
        let records = self.options.records as f64;
        let profile = Profile::constant(
            FLAT_OUT,
            Duration::from_secs_f64((records + 0.5) / FLAT_OUT),
        )?;
        let report =
            crate::surge::run(settings, self.surge(&format!("{phase}-flat"), profile)).await?;
        complete(phase, &report)?;
        Ok(report)
    }

    async fn at_rate(
        &self,
        settings: &Settings,
        phase: &str,
        rate: f64,
    ) -> anyhow::Result<HalfLoad> {
        let profile = Profile::constant(rate, self.options.latency_for)?;
        let report =
            crate::surge::run(settings, self.surge(&format!("{phase}-half"), profile)).await?;
        Ok(HalfLoad {
            rate,
            p50_ms: report.latency_ms.p50,
            p99_ms: report.latency_ms.p99,
            max_ms: report.latency_ms.max,
            answered: report.answered,
            requests: report.requests,
        })
    }

    /// Queues the backlog with no stage running, then starts the
    /// pipeline's processes and times the drain, sampling their memory.
    async fn drain(&self) -> anyhow::Result<Drain> {
        let (settings, config) = self.phase("backlog").await?;
        let backlog = self.options.backlog as f64;
        let profile = Profile::constant(
            FLAT_OUT,
            Duration::from_secs_f64((backlog + 0.5) / FLAT_OUT),
        )?;
        let mut surge = self.surge("backlog", profile);
        surge.drain_timeout = self
            .options
            .drain_timeout
            .max(Duration::from_secs(60 + self.options.backlog / 1_000));
        let mut running = LiveSurge::start(&settings, surge).await?;
        running.send().await?;
        let started_ms = now_ms() - running.start_ms();
        let processes = self.spawn("pipeline", &config)?;
        let sampler = RssSampler::start(
            processes
                .iter()
                .map(|p| (p.name().to_owned(), p.pid()))
                .collect(),
            Duration::from_millis(250),
        );
        let started = Instant::now();
        let report = running.finish().await;
        let wall = started.elapsed().as_secs_f64();
        let rss = sampler.finish();
        stop_all(processes)?;
        let report = report?;
        complete("backlog", &report)?;
        let secs = (report.elapsed_secs - started_ms as f64 / 1e3).clamp(0.0, wall);
        Ok(Drain {
            backlog: self.options.backlog,
            secs,
            per_sec: report.answered as f64 / secs.max(1e-9),
            answered: report.answered,
            rss,
        })
    }

    /// The pipeline's processes held at `rate` for the lead-in and the
    /// measured time, with every process's CPU read every window.
    async fn sustained(&self, rate: f64, burst: Option<f64>) -> anyhow::Result<Sustained> {
        let options = &self.options.sustained;
        let (settings, config) = self.phase("sustained").await?;
        let processes = self.spawn("pipeline", &config)?;
        let measured = async {
            self.warm_up(&settings, "sustained").await?;
            let profile = Profile::constant(rate, options.lead_in + options.duration)?;
            let sampler =
                CpuSampler::start(self.measured(&processes), Duration::from_secs(WINDOW_SECS));
            let report = crate::surge::run(&settings, self.surge("sustained", profile)).await;
            let (names, readings) = sampler.finish();
            anyhow::Ok(Sustained::of(
                &report?,
                rate,
                burst,
                options.lead_in.as_secs(),
                options.duration.as_secs(),
                (&names, &readings),
                options.goals,
            ))
        }
        .await;
        stop_all(processes)?;
        measured
    }
}

/// The middle value (the mean of the middle two for an even count).
/// Writes `bytes` to `path`, readable and writable by its owner only,
/// whatever the umask (a file left from an earlier run is narrowed too).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A phase's figures count only if every request was answered once.
fn complete(phase: &str, report: &SurgeReport) -> anyhow::Result<()> {
    anyhow::ensure!(
        report.complete(),
        "{phase}: {} unanswered, {} duplicate answers, {} not acknowledged of {} requests",
        report.unanswered,
        report.duplicate_answers,
        report.failed_sends,
        report.requests
    );
    Ok(())
}

/// Stops every process (a drain each), reporting the first that failed.
fn stop_all(processes: Vec<Process>) -> anyhow::Result<()> {
    let mut first = Ok(());
    for p in processes {
        let name = p.name().to_owned();
        let stopped = p.stop(Duration::from_secs(30));
        match stopped {
            Ok(status) if status.success() => {}
            Ok(status) => {
                if first.is_ok() {
                    first = Err(anyhow::anyhow!("{name} exited with {status}"));
                }
            }
            Err(e) => {
                if first.is_ok() {
                    first = Err(e.context(format!("stopping {name}")));
                }
            }
        }
    }
    first
}

/// A typical prompt as the pipeline's codec writes it: the raw hop moves
/// records of the same size.
fn sample_payload(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    let catalog = Catalog::load(settings.intent.catalog.as_deref())?;
    let mut traffic = crate::surge::traffic::Traffic::new(&catalog, Mix::default(), "raw", 1)?;
    let prompt = traffic.next(now_ms()).prompt;
    Ok(app::codec(settings)?.encode(&schemas::Record::Prompt(prompt))?)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::{median, write_private};

    /// The phase files hold passwords: nobody but their owner may read
    /// them, even where a file of that name was left readable before.
    #[test]
    fn settings_files_are_for_their_owner_only() {
        let dir = std::env::temp_dir().join(format!("chatcart-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pipeline.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"password = \"s3cret\"").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(std::fs::read(&path).unwrap(), b"password = \"s3cret\"");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
