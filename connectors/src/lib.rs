//! Adapters between chatcart and the systems around it: Kafka and ClickHouse.
//!
//! # Layout
//! - [`kafka`]: client settings, topic admin, and reading a partition back
//!   (how stages restore their state from their own output).
//! - [`clickhouse`]: the analytics store's settings, schema migrations, and
//!   the sink's inserts and resume positions.
//! - [`secret`]: which settings are secrets, and how they are shown.
//!
//! Each config struct rejects unknown keys and has a `validate()` whose
//! errors name the key and what is allowed.

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
    /// Not the error's source: its message is shown once, through
    /// [`kafka_message`], which keeps secret values out.
    #[error("kafka: {}", kafka_message(.0))]
    Kafka(rdkafka::error::KafkaError),
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
    /// Not the error's source either, so its message is shown once.
    #[error("clickhouse: {0} (check clickhouse.url and that the server is up)")]
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

impl ConnectorError {
    pub(crate) fn config(key: &'static str, message: impl Into<String>) -> Self {
        Self::Config {
            key,
            message: message.into(),
        }
    }
}
