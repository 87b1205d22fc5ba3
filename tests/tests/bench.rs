//! `chatcart bench` on the services the test script starts, at a small
//! size: it must print the three rows and the ratios, write the same
//! figures as JSON, measure every stage process while a backlog drains,
//! and hold the pipeline at a share of its burst rate.

use std::process::Command;

use chatcart_tests as t;
use serde_json::Value;

#[test]
fn bench_measures_raw_hop_relay_and_pipeline() {
    let mut settings = t::settings("bench", 4);
    // Nothing in a bench run resumes from a committed offset, so Tansu's
    // mid-batch fetch defect (see `t::settings`) cannot bite; with normal
    // batching the run takes a fraction of the time.
    settings.kafka.properties.remove("batch.num.messages");
    let dir = t::scratch_dir(&settings);
    let config = dir.join("bench.toml");
    t::write_config(&settings, &config);
    let json = dir.join("bench.json");
    let out = Command::new(t::chatcart_bin())
        .arg("--config")
        .arg(&config)
        .args([
            "bench",
            "--records",
            "4000",
            "--backlog",
            "8000",
            "--latency-for",
            "3s",
            "--runs",
            "2",
            "--sustained-share",
            "0.1",
            "--sustained-for",
            "12s",
            "--sustained-lead-in",
            "0s",
        ])
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running chatcart bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chatcart bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "raw hop",
        "no-op relay",
        "pipeline",
        "pipeline / relay throughput",
        "relay / raw hop throughput",
        "pipeline / relay p99",
        "drained in",
        "sustained:",
        "answered/s per 10 s",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json).expect("the JSON figures were written"),
    )
    .expect("valid JSON");
    let rows = report["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["raw hop", "no-op relay", "pipeline"]);
    let per_sec: Vec<f64> = rows
        .iter()
        .map(|r| r["per_sec"].as_f64().expect("per_sec"))
        .collect();
    assert!(per_sec.iter().all(|r| *r > 0.0), "{per_sec:?}");
    for row in rows {
        assert_eq!(row["records"].as_u64(), Some(4_000), "{row}");
        let runs: Vec<f64> = row["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r.as_f64().expect("a rate"))
            .collect();
        assert_eq!(runs.len(), 2, "{row}");
        let median = row["per_sec"].as_f64().expect("per_sec");
        assert!((median - (runs[0] + runs[1]) / 2.0).abs() < 1e-6, "{row}");
    }
    let ratio = report["pipeline_over_relay"].as_f64().expect("ratio");
    assert!((ratio - per_sec[2] / per_sec[1]).abs() < 1e-9);
    let ratio = report["relay_over_raw"].as_f64().expect("ratio");
    assert!((ratio - per_sec[1] / per_sec[0]).abs() < 1e-9);
    // Relay and pipeline were measured at the same rate, half the relay's maximum.
    let rate = |i: usize| {
        rows[i]["half_load"]["rate"]
            .as_f64()
            .expect("half-load rate")
    };
    assert!((rate(1) - per_sec[1] / 2.0).abs() < 1e-6);
    assert!((rate(2) - rate(1)).abs() < 1e-9);
    assert!(report["p99_pipeline_over_relay"].as_f64().is_some());

    let drain = &report["drain"];
    assert_eq!(drain["answered"].as_u64(), Some(8_000), "{drain}");
    assert!(drain["secs"].as_f64().expect("secs") > 0.0);
    let rss = drain["rss"].as_array().expect("rss");
    let stages: Vec<&str> = rss
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        stages,
        ["intent", "coupon", "fulfillment", "reply", "analytics"]
    );
    for r in rss {
        assert!(r["peak_kib"].as_u64().expect("peak") > 1_000, "{r}");
        assert!(r["samples"].as_u64().expect("samples") > 0, "{r}");
    }

    // A tenth of the pipeline's burst rate, for 12 s: two windows (10 s
    // and 2 s), one minute, every request answered once.
    let s = &report["sustained"];
    let rate = s["rate"].as_f64().expect("rate");
    assert!((rate - per_sec[2] * 0.1).abs() < 1e-6, "{s}");
    assert_eq!(s["secs"].as_u64(), Some(12), "{s}");
    assert_eq!(s["windows"].as_array().map(Vec::len), Some(2), "{s}");
    assert_eq!(s["unanswered"].as_u64(), Some(0), "{s}");
    assert_eq!(s["duplicate_answers"].as_u64(), Some(0), "{s}");
    let answered = s["answered"].as_u64().expect("answered");
    assert!(answered as f64 >= rate * 12.0 - 1.0, "{s}");
    let minutes = s["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 1, "{s}");
    let cpu = minutes[0]["cpu_percent"]
        .as_object()
        .expect("cpu per process");
    for process in [
        "broker",
        "generator",
        "intent",
        "coupon",
        "fulfillment",
        "reply",
        "analytics",
    ] {
        assert!(cpu.contains_key(process), "no {process} in {s}");
    }
    assert!(minutes[0]["p99_ms"].as_u64().expect("p99") > 0, "{s}");
}

/// Mistakes in the sustained phase's options are reported before anything
/// runs, with what to do instead.
#[test]
fn bench_options_are_checked_before_any_phase_runs() {
    let settings = t::settings("bench-options", 1);
    let dir = t::scratch_dir(&settings);
    let config = dir.join("bench.toml");
    t::write_config(&settings, &config);
    for (args, says) in [
        (
            &["--phases", "sustained"][..],
            "run the pipeline phase too, or give --sustained-rate",
        ),
        (
            &["--sustained-lead-in", "30s"][..],
            "--sustained-lead-in must be whole minutes",
        ),
        (
            &["--sustained-for", "3s"][..],
            "--sustained-for must be at least 10 s",
        ),
        (
            &["--sustained-share", "0"][..],
            "--sustained-share must be above 0",
        ),
    ] {
        let out = Command::new(t::chatcart_bin())
            .arg("--config")
            .arg(&config)
            .arg("bench")
            .args(args)
            .arg("--work-dir")
            .arg(dir.join("work"))
            .output()
            .expect("running chatcart bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: no `{says}` in:\n{stderr}");
        // Every phase announces itself on stderr as it starts.
        assert!(
            !stderr.contains("[raw]"),
            "{args:?} ran a phase before failing:\n{stderr}"
        );
    }
}
