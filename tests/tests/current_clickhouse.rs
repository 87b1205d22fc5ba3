//! The schema on a current ClickHouse: every migration, rendered as
//! `chatcart migrate` renders it for a new server (`LowCardinality`, the
//! deduplication window), runs on the ClickHouse engine embedded in chDB
//! (a current release, installed by tests/services.sh), and every view
//! answers. The tests against the 18.16 server cover the old dialect.

use connectors::clickhouse::migrate::{Dialect, MIGRATIONS, ServerVersion, statements};

#[test]
fn migrations_and_views_run_on_a_current_clickhouse() {
    let python = std::env::var("CHATCART_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_chdb = std::process::Command::new(&python)
        .args(["-c", "import chdb"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_chdb,
        "{python} cannot import chdb: run the suite with `bash tests/run.sh` (tests/services.sh installs it), or `pip install chdb`"
    );
    let dialect = Dialect::of(&ServerVersion::parse("26.1").expect("a version"));
    let rendered: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|m| statements(&dialect.render(m.sql)))
        .collect();
    let dir = tempfile::tempdir().expect("a scratch folder");
    let file = dir.path().join("statements.sql");
    std::fs::write(&file, rendered.join("\n;;\n")).expect("written");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("current-clickhouse/check.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&file)
        .output()
        .expect("running the check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: std::collections::HashMap<&str, &str> =
        stdout.lines().filter_map(|l| l.split_once('\t')).collect();
    let major: u32 = figures["server"]
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("a version");
    assert!(major >= 24, "chDB embeds ClickHouse {}", figures["server"]);
    // One row per second with activity, one per minute, one campaign…
    assert_eq!(figures["funnel_per_second"], "5");
    assert_eq!(figures["latency_per_minute"], "1");
    assert_eq!(figures["budget_status"], "1");
    assert_eq!(figures["stock_by_sku"], "1");
    assert_eq!(figures["top_users"], "3");
    assert_eq!(figures["front_door_per_second"], "1");
    assert_eq!(figures["kept_promises"], "1");
    assert_eq!(figures["promises_per_minute"], "1");
    assert_eq!(
        figures["deduplicated"], "1",
        "a repeated token inserted twice"
    );
}
