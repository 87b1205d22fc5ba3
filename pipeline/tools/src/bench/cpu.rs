//! Where the cores went: CPU time of each process of a benchmark phase (the
//! broker and ClickHouse too, when they run on this machine), per request.
//!
//! On a shared two-core machine a phase's throughput moves by a third from
//! one run to the next, while the CPU time a request costs each process
//! moves by a few per cent: it does not depend on who else had the cores.
//! A CPU-bound phase's throughput is about the cores over its CPU per
//! request, so this says *why* one configuration is slower than another,
//! and whether a change made a process cheaper even when the wall clock
//! cannot tell.
//!
//! Everything is read from Linux's `/proc`: utime + stime of
//! `/proc/<pid>/stat`, and the machine's busy time from `/proc/stat`.
//! Elsewhere nothing is measured and the report says so.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc`'s times (`USER_HZ`): 100 on every
/// architecture Linux runs chatcart on; the kernel fixes it for user space.
const USER_HZ: f64 = 100.0;

/// CPU seconds process `pid` (all its threads) has used so far.
pub fn process_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_ticks(&stat).map(|t| t as f64 / USER_HZ)
}

/// utime + stime of a `/proc/<pid>/stat` line. The command name in
/// parentheses may hold spaces and parentheses itself, so fields are
/// counted from its last `)`.
fn parse_process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid … cmajflt (4–12), utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy CPU seconds of the whole machine so far, summed over its cores:
/// everything but idle and I/O wait, steal included (time another guest
/// took is time this machine's processes could not run).
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_ticks(&stat).map(|t| t as f64 / USER_HZ)
}

fn parse_machine_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user.
    let busy = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy)
}

/// The process listening on TCP `port` of this machine, if there is one and
/// it is visible (another user's process needs root to be seen).
pub fn listening_pid(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Socket inodes of a `/proc/net/tcp` table listening on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let listening =
                u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == LISTEN;
            listening.then(|| f.get(9)?.parse().ok()).flatten()
        })
        .collect()
}

/// The port of `host:port` (or `[v6]:port`) when the host is this machine
/// by name or loopback address; `None` for a remote host, whose process
/// cannot be measured from here.
pub fn local_port(address: &str) -> Option<u16> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    local.then(|| port.parse().ok()).flatten()
}

/// The port of a `http://host:port/…` URL, as [`local_port`].
pub fn local_url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    local_port(authority)
}

/// CPU seconds of a set of named processes, from one reading to the next.
#[derive(Debug)]
pub struct CpuMeter {
    start: Vec<(String, u32, Option<f64>)>,
    machine: Option<f64>,
}

impl CpuMeter {
    /// Reads each `(name, pid)`'s CPU time, and the machine's, now.
    pub fn start(pids: Vec<(String, u32)>) -> Self {
        Self {
            start: pids
                .into_iter()
                .map(|(name, pid)| (name, pid, process_secs(pid)))
                .collect(),
            machine: machine_busy_secs(),
        }
    }

    /// The CPU each process used since [`CpuMeter::start`], per request of
    /// the `requests` handled meanwhile.
    pub fn finish(self, requests: u64) -> CpuUse {
        let per = |secs: f64| secs * 1e6 / requests.max(1) as f64;
        let mut processes = BTreeMap::new();
        for (name, pid, before) in self.start {
            if let (Some(before), Some(after)) = (before, process_secs(pid)) {
                *processes.entry(name).or_insert(0.0) += per(after - before);
            }
        }
        let measured = processes.values().sum();
        let machine = match (self.machine, machine_busy_secs()) {
            (Some(before), Some(after)) => Some(per(after - before)),
            _ => None,
        };
        CpuUse {
            requests,
            processes,
            measured_us: measured,
            machine_us: machine,
        }
    }
}

/// CPU microseconds per request, by process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUse {
    pub requests: u64,
    /// By process name: `broker`, `clickhouse`, `generator` (the bench
    /// process itself), and each stage or relay process.
    pub processes: BTreeMap<String, f64>,
    /// The sum over `processes`.
    pub measured_us: f64,
    /// The whole machine's busy time per request: what `measured_us` leaves
    /// out is other work on the machine.
    pub machine_us: Option<f64>,
}

/// Most readings a [`CpuSampler`] keeps: a week at one every 10 s; it
/// stops reading after that.
const MAX_READINGS: usize = 7 * 24 * 360;

/// Cumulative CPU seconds of named processes, read every so often on a
/// background thread: where a [`CpuMeter`] tells the total, this tells
/// how it changed over a long phase (a broker whose cost grows with its
/// log shows as a rising share).
#[derive(Debug)]
pub struct CpuSampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<CpuReading>>,
    names: Vec<String>,
}

/// One reading: seconds since the sampler started, and each process's CPU
/// seconds so far (`None` once it has gone).
#[derive(Debug, Clone, PartialEq)]
pub struct CpuReading {
    pub at_secs: f64,
    pub cpu_secs: Vec<Option<f64>>,
}

impl CpuSampler {
    /// Starts reading each `(name, pid)` every `every`; the first reading
    /// is taken at once.
    pub fn start(pids: Vec<(String, u32)>, every: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let names = pids.iter().map(|(name, _)| name.clone()).collect();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut readings = Vec::new();
            loop {
                if readings.len() < MAX_READINGS {
                    readings.push(CpuReading {
                        at_secs: started.elapsed().as_secs_f64(),
                        cpu_secs: pids.iter().map(|(_, pid)| process_secs(*pid)).collect(),
                    });
                }
                // Aim at multiples of `every` from the start, so readings
                // do not drift by the time each one takes.
                let next = every
                    .mul_f64((started.elapsed().as_secs_f64() / every.as_secs_f64()).floor() + 1.0);
                match stopped.recv_timeout(next.saturating_sub(started.elapsed())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            readings
        });
        Self {
            stop,
            thread,
            names,
        }
    }

    /// Stops reading and returns the process names, in the order given,
    /// and the readings (one taken just before the stop was noticed is
    /// not guaranteed).
    pub fn finish(self) -> (Vec<String>, Vec<CpuReading>) {
        let _ = self.stop.send(());
        // The thread only reads /proc; it does not panic.
        (self.names, self.thread.join().unwrap_or_default())
    }
}

/// Each process's CPU over `[from, to)` seconds of a sampler's readings,
/// in per cent of one core, from the readings nearest those times. Empty
/// when the readings do not span the interval.
pub fn percent_between(
    names: &[String],
    readings: &[CpuReading],
    from: f64,
    to: f64,
) -> BTreeMap<String, f64> {
    let nearest = |t: f64| {
        readings
            .iter()
            .min_by(|a, b| (a.at_secs - t).abs().total_cmp(&(b.at_secs - t).abs()))
    };
    let mut out = BTreeMap::new();
    let (Some(a), Some(b)) = (nearest(from), nearest(to)) else {
        return out;
    };
    let wall = b.at_secs - a.at_secs;
    if wall <= 0.0 {
        return out;
    }
    for (i, name) in names.iter().enumerate() {
        if let (Some(Some(x)), Some(Some(y))) = (a.cpu_secs.get(i), b.cpu_secs.get(i)) {
            *out.entry(name.clone()).or_insert(0.0) += 100.0 * (y - x) / wall;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_are_counted_after_the_name() {
        let stat =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 5 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_process_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_process_ticks("4242 (short) S 1 2"), None);
        assert_eq!(parse_process_ticks("no name here"), None);
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 2 30 5000 40 0 6 7 0 0\ncpu0 50 1 15 2500 20 0 3 3 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some(100 + 2 + 30 + 6 + 7));
        assert_eq!(parse_machine_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:6C92 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 314159 1 0 100 0 0 10 0\n\
   1: 0100007F:6C92 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 271828 1 0 20 4 30 10 -1\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 161803 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 0x6C92), vec![314_159]);
        assert_eq!(listening_inodes(table, 8080), vec![161_803]);
        assert!(listening_inodes(table, 9092).is_empty());
    }

    #[test]
    fn only_local_addresses_give_a_port() {
        assert_eq!(local_port("127.0.0.1:9092"), Some(9092));
        assert_eq!(local_port("localhost:19092"), Some(19092));
        assert_eq!(local_port("[::1]:9092"), Some(9092));
        assert_eq!(local_port("kafka-1.prod:9092"), None);
        assert_eq!(local_port("10.0.0.7:9092"), None);
        assert_eq!(local_port("127.0.0.1"), None);
        assert_eq!(local_url_port("http://127.0.0.1:8123"), Some(8123));
        assert_eq!(
            local_url_port("http://user:pw@localhost:8123/db"),
            Some(8123)
        );
        assert_eq!(local_url_port("https://ch.example.com:8443"), None);
    }

    #[test]
    fn a_busy_loop_is_measured_in_this_process() {
        let me = std::process::id();
        let meter = CpuMeter::start(vec![("me".into(), me), ("nobody".into(), u32::MAX)]);
        // Spin until this process has used 300 ms of CPU by the kernel's
        // own count (utime + stime of /proc/self/stat, in 10 ms ticks), not
        // for 300 ms of wall time: on a loaded machine the spinning thread
        // may get a fraction of a core.
        let ticks = || -> u64 {
            let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
            let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            // utime and stime are fields 14 and 15, the 12th and 13th
            // after the name.
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
        };
        let (start, deadline) = (ticks(), Instant::now() + Duration::from_secs(30));
        let mut x = 0u64;
        while ticks() < start + 30 && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let used = meter.finish(1_000);
        // 300 ms of CPU over 1,000 requests is 300 µs each; the meter's
        // samples and ticks are coarse, so only a floor is sure.
        let me_us = used.processes["me"];
        assert!(me_us >= 250.0, "{used:?}");
        assert!(!used.processes.contains_key("nobody"));
        assert_eq!(used.measured_us, me_us);
        assert!(used.machine_us.is_some_and(|m| m >= 250.0), "{used:?}");
    }

    #[test]
    fn cpu_between_readings_is_a_share_of_one_core() {
        let names = vec!["broker".to_owned(), "gone".to_owned(), "broker".to_owned()];
        let reading = |at_secs: f64, b: f64, g: Option<f64>| CpuReading {
            at_secs,
            cpu_secs: vec![Some(b), g, Some(0.0)],
        };
        let readings = [
            reading(0.0, 1.0, Some(0.0)),
            reading(10.1, 6.0, None),
            reading(20.0, 21.0, None),
        ];
        // 0–10 s: the broker used 5 s of 10.1 s, the other 'broker' pid
        // nothing, and a process that went has no figure.
        let first = percent_between(&names, &readings, 0.0, 10.0);
        assert_eq!(first.len(), 1);
        assert!(
            (first["broker"] - 100.0 * 5.0 / 10.1).abs() < 1e-9,
            "{first:?}"
        );
        let second = percent_between(&names, &readings, 10.0, 20.0);
        assert!(
            (second["broker"] - 100.0 * 15.0 / 9.9).abs() < 1e-9,
            "{second:?}"
        );
        assert!(percent_between(&names, &readings, 30.0, 40.0).is_empty());
        assert!(percent_between(&names, &[], 0.0, 10.0).is_empty());
    }

    #[test]
    fn the_sampler_reads_on_its_own_thread_until_stopped() {
        let me = ("me".to_owned(), std::process::id());
        let sampler = CpuSampler::start(
            vec![me, ("nobody".into(), u32::MAX)],
            Duration::from_millis(5),
        );
        std::thread::sleep(Duration::from_millis(60));
        let (names, readings) = sampler.finish();
        assert_eq!(names, ["me", "nobody"]);
        assert!(readings.len() >= 3, "{readings:?}");
        assert!(readings.windows(2).all(|w| w[0].at_secs < w[1].at_secs));
        assert!(
            readings
                .iter()
                .all(|r| r.cpu_secs[0].is_some() && r.cpu_secs[1].is_none())
        );
    }

    #[test]
    fn the_listener_of_a_bound_port_is_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_pid(port), None);
    }
}
