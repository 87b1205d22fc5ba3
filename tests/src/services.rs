//! Where the real services under test are, and the tests' logging.
//!
//! The services come from `CHATCART_TEST_KAFKA` (bootstrap servers) and
//! `CHATCART_TEST_CLICKHOUSE` (HTTP URL); `tests/run.sh` starts real ones
//! and sets both.

/// Bootstrap servers of the broker under test.
pub fn kafka() -> String {
    std::env::var("CHATCART_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("CHATCART_TEST_KAFKA is not set: run the suite with `bash tests/run.sh`, which starts Tansu and ClickHouse")
    })
}

/// HTTP URL of the ClickHouse under test.
pub fn clickhouse() -> String {
    std::env::var("CHATCART_TEST_CLICKHOUSE").unwrap_or_else(|_| {
        panic!("CHATCART_TEST_CLICKHOUSE is not set: run the suite with `bash tests/run.sh`, which starts Tansu and ClickHouse")
    })
}

/// Sends the stages' logs to the test's output (shown for failing tests);
/// `RUST_LOG` picks the level, `warn` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
