//! What the binary writes besides its output: logs without colour codes
//! when stderr is no terminal, JSON logs for shippers, an invalid RUST_LOG
//! refused, and a reader that stops reading (`| head`) ending it quietly.
//! No service is needed: the demo runs on its own mock cluster.

// Helpers of a test should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;

mod common;

use common::clean_chatcart as chatcart;

#[test]
fn logs_are_plain_text_or_json_lines_when_stderr_is_no_terminal() {
    for format in ["text", "json"] {
        let out = chatcart()
            .args([
                "--log-format",
                format,
                "demo",
                "--requests",
                "20",
                "--rate",
                "200",
            ])
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() > 3, "{format}: too few log lines: {stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: colour codes in {stderr}"
        );
        if format == "json" {
            for line in lines {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
            }
        }
    }
}

#[test]
fn an_invalid_rust_log_is_refused() {
    let out = chatcart()
        .args(["config", "check"])
        .env("RUST_LOG", "info,chatcart=loud")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RUST_LOG") && stderr.contains("loud"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_stops_reading_ends_the_command_quietly() {
    let mut child = chatcart()
        .arg("extract")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for _ in 0..50_000 {
            if writeln!(stdin, "帮我买2杯奶茶").is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("extracted"), "{first}");
    // The reader goes away, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}

#[test]
fn printing_to_a_closed_pipe_is_no_panic() {
    // The demo prints only once its mock cluster runs, long after the
    // reader of its output has gone.
    let mut child = chatcart()
        .args(["demo", "--requests", "5", "--rate", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_line_logged_while_a_record_is_handled_carries_its_trace() {
    let out = chatcart()
        .args([
            "--log-format",
            "json",
            "demo",
            "--requests",
            "20",
            "--rate",
            "200",
        ])
        .env(
            "RUST_LOG",
            "info,chatcart_stages::intent=debug,chatcart_runtime::runner=debug",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut traced = 0;
    for line in stderr.lines().filter(|l| l.contains("\"prompt\"")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["fields"]["message"] != "prompt" {
            continue;
        }
        let span = &v["span"];
        assert_eq!(span["name"], "record", "{line}");
        assert_eq!(span["stage"], "intent", "{line}");
        // The demo's prompts set no trace id: the request's id is the trace.
        assert_eq!(span["trace_id"], v["fields"]["request_id"], "{line}");
        traced += 1;
    }
    assert_eq!(traced, 20, "one traced line per prompt: {stderr}");
}
