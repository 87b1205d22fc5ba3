//! `chatcart report` as a person uses it: a `chatcart demo` run records a
//! campaign in the real ClickHouse (the budget runs out and a SKU's stock is
//! limited), `chatcart report` prints its key figures and writes the HTML
//! page, and headless Chromium opens that page to show the charts are
//! really drawn: the page's render check measures every series, and a
//! screenshot must hold more than a blank page.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chatcart_tests as t;

const REQUESTS: usize = 1_500;
/// A blank 1200×2400 page screenshots to about 13 KB; the report's text,
/// tables and charts to well over 100 KB.
const MIN_SCREENSHOT_BYTES: u64 = 40_000;

/// Chromium: `CHATCART_TEST_CHROMIUM`, else `/usr/bin/chromium`, else
/// `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(bin) = std::env::var_os("CHATCART_TEST_CHROMIUM") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "CHATCART_TEST_CHROMIUM is {}, which is not a file: point it at a Chromium binary, or unset it and run `bash tests/services.sh start`",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chromium"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin/chromium"))
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Chromium found for the report's render check: run `bash tests/services.sh start` \
                 (it installs Debian's chromium package), or set CHATCART_TEST_CHROMIUM to a Chromium binary"
            )
        })
}

fn succeeded(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs headless Chromium on `page` with `args`, in a profile of its own,
/// and gives up after a minute.
fn run_chromium(bin: &Path, dir: &Path, name: &str, page: &Path, args: &[&str]) -> Output {
    let profile = dir.join(format!("chromium-{name}"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    // The pipes are read on threads so a chatty browser cannot block on them.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {name} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_dir_all(&profile);
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Section `title` of the report's text.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    text.split("\n\n")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("no section `{title}` in:\n{text}"))
}

/// The value of the last cell of the first line starting with `label`
/// (after the indent) in section `title` of the report's text.
fn figure<'a>(text: &'a str, title: &str, label: &str) -> &'a str {
    let section = section(text, title);
    section
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no `{label}` in section `{title}`:\n{section}"))
}

/// The JSON the page's script wrote into `<pre id="render-check">`.
fn render_check(dom: &str) -> serde_json::Value {
    let start = dom
        .find(r#"<pre id="render-check""#)
        .unwrap_or_else(|| panic!("no render check in the dumped DOM:\n{dom}"));
    let body = &dom[start..];
    let open = body.find('>').expect("the pre element's start tag ends") + 1;
    let close = body.find("</pre>").expect("the pre element ends");
    let text = body[open..close]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(
        !text.is_empty(),
        "the render check wrote nothing: did the page's script run?"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("render check is not JSON ({e}): {text}"))
}

#[test]
fn report_prints_the_key_figures_and_its_html_renders_every_chart() {
    let chromium = chromium();
    let clickhouse = t::clickhouse();
    let dir = std::env::temp_dir().join(t::unique_name("chatcart-report"));
    std::fs::create_dir_all(&dir).expect("creating the test's folder");

    let demo = Command::new(t::chatcart_bin())
        .args(["demo", "--requests", &REQUESTS.to_string()])
        .args(["--stock", "egg-tart=40", "--budget-cents", "150000"])
        .args(["--clickhouse-url", &clickhouse])
        .output()
        .expect("running chatcart demo");
    let summary = succeeded("chatcart demo", &demo);
    // The demo prints the exact report command to run next.
    let command = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("report"))
        .unwrap_or_else(|| panic!("no report command in the demo's summary:\n{summary}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[..2], ["chatcart", "report"], "{command}");
    let campaign = args
        .windows(2)
        .find(|w| w[0] == "--campaign")
        .map(|w| w[1])
        .unwrap_or_else(|| panic!("no --campaign in `{command}`"));
    assert!(campaign.starts_with("demo-"), "{campaign}");

    let page = dir.join("report.html");
    let mut report_args: Vec<String> = args[2..]
        .iter()
        .take_while(|a| **a != "--html")
        .map(|a| (*a).to_owned())
        .collect();
    report_args.extend(["--html".to_owned(), page.display().to_string()]);
    let report = Command::new(t::chatcart_bin())
        .arg("report")
        .args(&report_args)
        .output()
        .expect("running chatcart report");
    let text = succeeded("chatcart report", &report);

    assert_eq!(figure(&text, "Report", "campaign"), campaign, "{text}");
    // The demo sends REQUESTS deliveries, a few of them exact duplicates of
    // earlier ones; the report counts distinct requests, as the demo does.
    let requests = distinct_requests(&summary);
    assert!(
        requests > 0 && requests <= REQUESTS,
        "the demo reported {requests} distinct requests of {REQUESTS} deliveries:\n{summary}"
    );
    let requests = count_text(requests);

    let funnel = "Funnel";
    assert_eq!(figure(&text, funnel, "prompts"), requests, "{text}");
    assert_eq!(figure(&text, funnel, "replies"), requests, "{text}");
    assert_eq!(figure(&text, "Budget", "budget "), "¥1500.00", "{text}");
    let ran_out = text
        .lines()
        .find(|l| l.trim_start().starts_with("budget ran out at"))
        .unwrap_or_else(|| panic!("no budget exhaustion line:\n{text}"));
    assert!(
        ran_out.contains("(first request denied for budget)"),
        "the demo's budget should run out: {ran_out}"
    );
    let egg_tart = text
        .lines()
        .find(|l| l.trim_start().starts_with("egg-tart "))
        .unwrap_or_else(|| panic!("no egg-tart stock row:\n{text}"));
    assert_eq!(egg_tart.split_whitespace().nth(1), Some("40"), "{egg_tart}");
    assert!(text.contains("budget_exhausted"), "{text}");
    assert!(
        text.contains(&format!("HTML report written to {}", page.display())),
        "{text}"
    );

    let html = std::fs::read_to_string(&page).expect("reading the HTML report");
    assert!(html.contains(campaign));
    let dumped = run_chromium(&chromium, &dir, "dom", &page, &["--dump-dom"]);
    let dom = succeeded("chromium --dump-dom", &dumped);
    let check = render_check(&dom);
    for (chart, main) in [
        ("throughput", "prompts"),
        ("latency", "p50"),
        ("budget", "remaining"),
        ("outcomes", "replies"),
    ] {
        let c = &check[chart];
        assert!(
            c["width"].as_f64() > Some(0.0) && c["height"].as_f64() > Some(0.0),
            "chart {chart} has no size: {c}"
        );
        let series = c["series"]
            .as_object()
            .unwrap_or_else(|| panic!("chart {chart} has no series: {check}"));
        assert!(series.contains_key(main), "chart {chart}: no {main}: {c}");
        for (name, s) in series {
            let size = s["width"].as_f64().unwrap_or(0.0) + s["height"].as_f64().unwrap_or(0.0);
            assert!(
                s["points"].as_u64() > Some(0) && size > 0.0,
                "{chart}/{name} was not drawn: {s}"
            );
        }
        assert!(
            series[main]["width"].as_f64() > Some(0.0),
            "{chart}/{main} has no width: {c}"
        );
    }
    let budget = &check["budget"]["series"];
    assert!(
        budget.get("exhaustion").is_some(),
        "the burn-down does not mark where the budget ran out: {budget}"
    );

    let shot = dir.join("report.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let taken = run_chromium(
        &chromium,
        &dir,
        "screenshot",
        &page,
        &[&screenshot, "--window-size=1200,2400"],
    );
    succeeded("chromium --screenshot", &taken);
    let bytes = std::fs::metadata(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()))
        .len();
    assert!(
        bytes > MIN_SCREENSHOT_BYTES,
        "the screenshot {} is {bytes} bytes, no more than a blank page",
        shot.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` as the report prints counts (`1,500`).
fn count_text(n: usize) -> String {
    tools::report::format_count(n as u64)
}

/// The distinct requests from the demo's `sent  N deliveries, M requests in …` line.
fn distinct_requests(summary: &str) -> usize {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("sent"))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no `sent … requests` line in the demo's summary:\n{summary}"))
}

/// The first figure after `label` in section `title` (`305` of
/// `admitted (published)   305 (100.0%)`).
fn first_figure<'a>(text: &'a str, title: &str, label: &str) -> &'a str {
    let section = section(text, title);
    section
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{label}` in section `{title}`:\n{section}"))
}

/// A demo through the gateway: the report's front door holds what the
/// demo's clients saw: as many shed, one admission per prompt published,
/// and one promise kept or broken per admitted request.
#[test]
fn report_shows_what_the_front_door_admitted_shed_and_promised() {
    let clickhouse = t::clickhouse();
    let demo = Command::new(t::chatcart_bin())
        .args([
            "demo",
            "--requests",
            "600",
            "--rate",
            "600",
            "--via-gateway",
        ])
        .args(["--clickhouse-url", &clickhouse])
        .output()
        .expect("running chatcart demo");
    let summary = succeeded("chatcart demo --via-gateway", &demo);
    // `front door  offered 600, admitted 470 (… queued first, … resumed), shed 0, refused […], …`
    let line = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("front door"))
        .unwrap_or_else(|| panic!("no front door line in the demo's summary:\n{summary}"));
    let after = |word: &str| -> String {
        line.split(", ")
            .find_map(|part| part.trim().strip_prefix(word))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `{word}` in `{line}`"))
            .to_owned()
    };
    // The demo repeats some deliveries; a repeat is answered as the first
    // was, without a second decision, so admissions are counted from the
    // prompts published and sheds from the clients' 429s.
    let shed = after("shed ");
    assert_ne!(after("admitted "), "0", "{line}");
    let command = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("report"))
        .unwrap_or_else(|| panic!("no report command in the demo's summary:\n{summary}"));
    let args: Vec<&str> = command
        .split_whitespace()
        .skip(2)
        .take_while(|a| *a != "--html")
        .collect();
    let report = Command::new(t::chatcart_bin())
        .arg("report")
        .args(&args)
        .output()
        .expect("running chatcart report");
    let text = succeeded("chatcart report", &report);
    let door = "Front door: requests offered";
    let number = |s: &str| -> usize { s.replace(',', "").parse().expect("a count") };
    let admitted = first_figure(&text, door, "admitted (published)");
    assert_eq!(admitted, first_figure(&text, "Funnel", "prompts"), "{text}");
    assert_eq!(
        first_figure(&text, door, "shed (429, not published)"),
        count_text(number(&shed)),
        "{text}"
    );
    assert_eq!(
        first_figure(&text, door, "offered"),
        count_text(number(admitted) + number(&shed)),
        "{text}"
    );
    // Every admitted request was answered, so each has its promise row.
    assert_eq!(
        first_figure(&text, "Front door: promised", "whole range"),
        admitted,
        "{text}"
    );
}
