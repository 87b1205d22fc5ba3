//! Adapters between chatcart and the systems around it: Kafka and ClickHouse.
//!
//! # Layout
//! - [`kafka`]: client settings, topic admin, and reading a partition back
//!   (how stages restore their state from their own output).
//! - [`clickhouse`]: the analytics store's settings, schema migrations, and
//!   the sink's inserts and resume positions.
//! - [`broker`]: whether the Kafka cluster answers, and why not.
//! - [`secret`]: which settings are secrets, and how they are shown.
//!
//! Each config struct rejects unknown keys and has a `validate()` whose
//! errors name the key and what is allowed.

pub mod broker;
pub mod clickhouse;
pub mod kafka;
pub mod secret;

pub use ::clickhouse::Client as ClickHouseClient;
pub use clickhouse::{CampaignRow, ClickHouseConfig, EventRow};
pub use kafka::KafkaConfig;

/// What can go wrong talking to Kafka or ClickHouse, or configuring them.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A configuration value is out of range or malformed.
    #[error("invalid configuration `{key}`: {message}")]
    Config { key: &'static str, message: String },
    /// The Kafka client reported an error.
    /// Not the error's source: its message is shown once, with secret
    /// values kept out.
    #[error("kafka: {}", kafka_message(.0))]
    Kafka(rdkafka::error::KafkaError),
    /// The TLS handshake with the broker failed (librdkafka's reason).
    #[error(
        "kafka: TLS to the broker failed: {0} (check ssl.ca.location in kafka.properties, and that kafka.bootstrap_servers names a host on the broker's certificate)"
    )]
    Tls(String),
    /// The broker refused the SASL login (librdkafka's reason: the
    /// mechanism, and `invalid-proof` or `unknown-user`; never the
    /// password).
    #[error(
        "kafka: the broker refused the login: {0} (check sasl.mechanism, sasl.username and sasl.password in kafka.properties)"
    )]
    Login(String),
    /// A topic could not be created.
    #[error("could not create topic `{topic}`: {message}")]
    Topic { topic: String, message: String },
    /// Reading a partition back did not reach its end in time.
    #[error(
        "reading {topic} back timed out with {partitions} partition(s) unfinished after {read} records; is the broker overloaded or a partition unavailable?"
    )]
    RestoreTimeout {
        topic: String,
        partitions: usize,
        read: u64,
    },
    /// The analytics schema could not be brought up to date.
    #[error("clickhouse schema migration {version}: {message}")]
    Migration { version: u32, message: String },
    /// ClickHouse refused a query or could not be reached.
    /// Not the error's source either: its message shows the whole
    /// chain once, with the hint that fits.
    #[error("clickhouse: {}", clickhouse_message(.0))]
    ClickHouse(::clickhouse::error::Error),
}

impl From<rdkafka::error::KafkaError> for ConnectorError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Self::Kafka(e)
    }
}

impl From<::clickhouse::error::Error> for ConnectorError {
    fn from(e: ::clickhouse::error::Error) -> Self {
        Self::ClickHouse(e)
    }
}

/// A Kafka error with its value redacted if it came from a secret
/// property, and the hint that fits it.
fn kafka_message(error: &rdkafka::error::KafkaError) -> String {
    let shown = secret::show_kafka_error(error);
    if matches!(error, rdkafka::error::KafkaError::ClientConfig(..)) {
        shown
    } else {
        format!("{shown} (check kafka.bootstrap_servers and that the broker is up)")
    }
}

/// A ClickHouse error with its causes (the client's own message stops at
/// "client error (Connect)", the certificate or refusal behind it is in
/// its sources), and a hint for what to check.
pub(crate) fn clickhouse_message(error: &::clickhouse::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers repeat their cause's message; keep each once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let text = parts.join(": ");
    let lower = text.to_lowercase();
    let hint = if lower.contains("certificate") || lower.contains("unknownissuer") {
        "the server's TLS certificate did not verify: check clickhouse.ca_file (the CA that signed it) and that clickhouse.url names the host on the certificate"
    } else if lower.contains("password")
        || lower.contains("unknown user")
        || lower.contains("authentication")
    {
        "check clickhouse.user and clickhouse.password"
    } else {
        "check clickhouse.url and that the server is up"
    };
    format!("{text} ({hint})")
}

impl ConnectorError {
    pub(crate) fn config(key: &'static str, message: impl Into<String>) -> Self {
        Self::Config {
            key,
            message: message.into(),
        }
    }
}
