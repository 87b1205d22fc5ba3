//! chatcart's configuration: built-in defaults, then an optional TOML file
//! (`--config`), then environment variables such as
//! `CHATCART__KAFKA__BOOTSTRAP_SERVERS` (prefix `CHATCART`, `__` between
//! levels). Unknown keys and invalid values are errors that name the key.
//! `chatcart.example.toml` documents every key.
//!
//! Values from the environment are taken as the strings they are: a
//! password `007` stays `007`, and only a key whose type is a number or a
//! flag reads one from its string. librdkafka properties come from the
//! environment with `_` for `.` (`CHATCART__KAFKA__PROPERTIES__SASL_PASSWORD`),
//! and the campaigns, a list, from `campaigns_file`
//! (`CHATCART__CAMPAIGNS_FILE`). Secrets are shown only as `<redacted>`
//! ([`Settings::redacted`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use connectors::{ClickHouseConfig, ConnectorError, KafkaConfig};
use serde::{Deserialize, Serialize};

use ledger::campaign::{CampaignConfig, CampaignError, Campaigns};
use llm::{LlmConfig, LlmConfigError};

mod gateway;

pub use gateway::GatewayConfig;

/// Everything a chatcart process can be configured with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    /// The campaigns credit is granted for; prompts naming none belong to
    /// the first.
    pub campaigns: Vec<CampaignConfig>,
    /// A TOML file of `[[campaigns]]` tables that replaces `campaigns`, so
    /// the campaigns can be set where only environment variables can be
    /// (`CHATCART__CAMPAIGNS_FILE`). Read once, when the settings load.
    pub campaigns_file: Option<PathBuf>,
    pub coupon: CouponConfig,
    pub fulfillment: FulfillmentConfig,
    pub intent: IntentConfig,
    pub runtime: RuntimeConfig,
    pub codec: CodecConfig,
    pub gateway: GatewayConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            campaigns: vec![CampaignConfig::default()],
            campaigns_file: None,
            coupon: CouponConfig::default(),
            fulfillment: FulfillmentConfig::default(),
            intent: IntentConfig::default(),
            runtime: RuntimeConfig::default(),
            codec: CodecConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

impl Settings {
    /// The validated campaigns.
    pub fn campaigns(&self) -> Result<Campaigns, CampaignError> {
        Campaigns::new(&self.campaigns)
    }
}

/// The coupon stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CouponConfig {
    /// This long before a campaign ends, idle partitions return unused
    /// allowance to the treasury so busier ones can use it.
    pub return_before_end_secs: u64,
}

impl Default for CouponConfig {
    fn default() -> Self {
        Self {
            return_before_end_secs: 300,
        }
    }
}

/// The fulfillment stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FulfillmentConfig {
    /// Grants still arriving this long after their campaign ended (a
    /// backlog) are ordered; later ones fail `campaign_closed` and their
    /// credit is released.
    pub close_after_end_secs: u64,
    /// This long before a campaign ends, idle partitions return unused
    /// stock to the treasury so busier ones can sell it.
    pub return_before_end_secs: u64,
}

impl Default for FulfillmentConfig {
    fn default() -> Self {
        Self {
            close_after_end_secs: 3_600,
            return_before_end_secs: 300,
        }
    }
}

/// The intent stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntentConfig {
    /// A catalog TOML file; the built-in catalog when unset.
    pub catalog: Option<PathBuf>,
    /// Largest quantity of one item a prompt may order.
    pub max_quantity: i32,
    /// The LLM fallback for prompts the rules read with low confidence
    /// (`[intent.llm]`); off by default.
    pub llm: LlmConfig,
}

impl Default for IntentConfig {
    fn default() -> Self {
        Self {
            catalog: None,
            max_quantity: 50,
            llm: LlmConfig::default(),
        }
    }
}

/// How stages run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Input records whose outputs may await acknowledgement at once, per stage.
    pub max_in_flight: usize,
    /// How long restoring one partition's state may take before the stage fails.
    pub restore_timeout_secs: u64,
    /// How long a drain (SIGINT/SIGTERM) may take before the process gives up.
    pub shutdown_timeout_secs: u64,
    /// A partition's state is checkpointed once this many records were
    /// written after its last checkpoint (more, for large states: see
    /// `runtime::checkpoint`). 0 turns checkpoints off.
    pub checkpoint_min_records: u64,
    /// Largest piece of a checkpoint image in one record, in bytes.
    pub checkpoint_chunk_bytes: usize,
    /// `HOST:PORT` of the operations endpoint (`/health`, `/livez`,
    /// `/readyz`, `/metrics`: [`crate::ops`]); empty: off.
    pub health_listen: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 5_000,
            restore_timeout_secs: 120,
            shutdown_timeout_secs: 30,
            checkpoint_min_records: 100_000,
            checkpoint_chunk_bytes: 256 * 1024,
            health_listen: String::new(),
        }
    }
}

/// How prompts from front-ends are decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecConfig {
    /// Confluent schema id → path of the Avro schema (`.avsc`) front-ends
    /// write prompts with, for prompts in Confluent wire format.
    pub confluent_schemas: BTreeMap<String, PathBuf>,
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not the error's source, so the message is shown once.
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    #[error(transparent)]
    Invalid(#[from] ConnectorError),
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error("invalid configuration: {0}")]
    Llm(#[from] LlmConfigError),
    #[error("invalid configuration `{key}`: {message}")]
    Value { key: &'static str, message: String },
}

/// The campaigns of a `campaigns_file`.
fn read_campaigns(path: &Path) -> Result<Vec<CampaignConfig>, ConfigError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        campaigns: Vec<CampaignConfig>,
    }
    // Read as the main file is, so the two agree on what TOML means.
    let file: File = config::Config::builder()
        .add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| {
            invalid(
                "campaigns_file",
                format!(
                    "{} must be a TOML file of [[campaigns]] tables: {e}",
                    path.display()
                ),
            )
        })?;
    if file.campaigns.is_empty() {
        return Err(invalid(
            "campaigns_file",
            format!("{} lists no campaign", path.display()),
        ));
    }
    Ok(file.campaigns)
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        Self::Load(e)
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Defaults, then `file` if given, then `CHATCART__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars().collect())
    }

    /// As [`Settings::load`], with `env` standing for the environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: std::collections::HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::Config::try_from(&Settings::default())?);
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("CHATCART")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env.into_iter().collect())),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.kafka.normalize();
        if let Some(path) = settings.campaigns_file.take() {
            settings.campaigns = read_campaigns(&path)?;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// A copy to show: passwords, secret Kafka properties and credentials
    /// in URLs replaced by `<redacted>`.
    pub fn redacted(&self) -> Self {
        Self {
            kafka: self.kafka.redacted(),
            clickhouse: self.clickhouse.redacted(),
            ..self.clone()
        }
    }

    /// Checks every value; the first error names its key and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        self.campaigns()?;
        if self.coupon.return_before_end_secs > 30 * 86_400 {
            return Err(invalid(
                "coupon.return_before_end_secs",
                "must be at most 2592000 (30 days)",
            ));
        }
        for (key, secs) in [
            (
                "fulfillment.close_after_end_secs",
                self.fulfillment.close_after_end_secs,
            ),
            (
                "fulfillment.return_before_end_secs",
                self.fulfillment.return_before_end_secs,
            ),
        ] {
            if secs > 30 * 86_400 {
                return Err(invalid(key, "must be at most 2592000 (30 days)"));
            }
        }
        if !(1..=10_000).contains(&self.intent.max_quantity) {
            return Err(invalid(
                "intent.max_quantity",
                "must be between 1 and 10000",
            ));
        }
        self.intent.llm.validate()?;
        self.gateway.validate(self.kafka.partitions)?;
        if !(1..=1_000_000).contains(&self.runtime.max_in_flight) {
            return Err(invalid(
                "runtime.max_in_flight",
                "must be between 1 and 1000000",
            ));
        }
        if !(1024..=900 * 1024).contains(&self.runtime.checkpoint_chunk_bytes) {
            return Err(invalid(
                "runtime.checkpoint_chunk_bytes",
                "must be between 1024 and 921600 (below the broker's message size limit)",
            ));
        }
        let listen = &self.runtime.health_listen;
        // An IP with a port (IPv6 in brackets), or a host name with one.
        let host_port = listen.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
        });
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() && !host_port {
            return Err(invalid(
                "runtime.health_listen",
                "must be HOST:PORT, e.g. 127.0.0.1:9464 or localhost:9464, or empty to turn the endpoint off",
            ));
        }
        if self.runtime.restore_timeout_secs == 0 || self.runtime.shutdown_timeout_secs == 0 {
            return Err(invalid(
                "runtime",
                "restore_timeout_secs and shutdown_timeout_secs must be more than zero",
            ));
        }
        if let Some(id) = self
            .codec
            .confluent_schemas
            .keys()
            .find(|id| id.parse::<u32>().is_err())
        {
            return Err(invalid(
                "codec.confluent_schemas",
                format!("key `{id}` is not a schema id (a whole number from 0 to 4294967295)"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
        assert_eq!(Settings::load(None).unwrap().kafka.partitions, 12);
    }

    #[test]
    fn file_overrides_defaults() {
        let f = file(
            "[kafka]\npartitions = 4\n[[campaigns]]\nid = \"a\"\nbudget_cents = 500\ncredit = { fixed_cents = 100 }\n[[campaigns]]\nid = \"b\"\nbudget_cents = 9\ncredit = { free_up_to_cents = 3 }\nends_at = \"2027-01-01T00:00:00Z\"\n",
        );
        let s = Settings::load(Some(f.path())).unwrap();
        assert_eq!(s.kafka.partitions, 4);
        assert_eq!(
            s.campaigns.len(),
            2,
            "the file's campaigns replace the default"
        );
        assert_eq!(s.campaigns[0].budget_cents, 500);
        assert_eq!(s.campaigns[0].per_user_limit, 1);
        let campaigns = s.campaigns().unwrap();
        assert_eq!(campaigns.default_id(), "a");
        assert_eq!(campaigns.get("b").unwrap().ends_ms, 1_798_761_600_000);
    }

    #[test]
    fn unknown_key_is_named() {
        let f = file("[kafka]\npartitons = 4\n");
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains("partitons"), "{err}");
    }

    #[test]
    fn invalid_value_is_named() {
        let f = file("[kafka]\npartitions = 0\n");
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains("kafka.partitions"), "{err}");
        let f = file("[clickhouse]\nurl = \"http://x\"\ndatabase = \"a;drop\"\n");
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains("clickhouse.database"), "{err}");
    }

    #[test]
    fn the_operations_endpoint_takes_an_ip_or_a_host_name_with_a_port() {
        for ok in [
            "127.0.0.1:9464",
            "[::1]:9464",
            "localhost:9464",
            "0.0.0.0:0",
            "",
        ] {
            let f = file(&format!("[runtime]\nhealth_listen = \"{ok}\"\n"));
            assert!(Settings::load(Some(f.path())).is_ok(), "{ok}");
        }
        for bad in [
            "9464",
            "localhost",
            ":9464",
            "localhost:http",
            "a b:1",
            "x:70000",
        ] {
            let f = file(&format!("[runtime]\nhealth_listen = \"{bad}\"\n"));
            let err = Settings::load(Some(f.path())).unwrap_err().to_string();
            assert!(err.contains("runtime.health_listen"), "{bad}: {err}");
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let f = file(
            "[[campaigns]]\nid = \"a\"\nbudget_cents = \"lots\"\ncredit = { fixed_cents = 1 }\n",
        );
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains("budget_cents"), "{err}");
    }

    #[test]
    fn invalid_campaign_is_named() {
        let f = file(
            "[[campaigns]]\nid = \"a\"\nbudget_cents = 5\ncredit = { fixed_cents = 1 }\nstarts_at = \"soon\"\n",
        );
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            err.contains("campaign 0") && err.contains("starts_at `soon`"),
            "{err}"
        );
    }

    #[test]
    fn llm_section_is_read_and_checked() {
        let f = file(
            "[intent.llm]\nenabled = true\nbase_url = \"http://127.0.0.1:8000/v1\"\nmodel = \"local\"\napi_key_env = \"\"\n",
        );
        let s = Settings::load(Some(f.path())).unwrap();
        assert!(s.intent.llm.enabled);
        assert_eq!(s.intent.llm.model, "local");
        assert_eq!(s.intent.llm.timeout_ms, 2_000, "unset keys keep defaults");
        let f = file("[intent.llm]\nbase_url = \"api.example.com\"\n");
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            err.contains("intent.llm.base_url: must be an http(s) URL"),
            "{err}"
        );
        let f = file("[intent.llm]\ntimeout = 5\n");
        let err = Settings::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chatcart.example.toml");
        Settings::load(Some(&path)).unwrap();
    }

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_strings_arrive_byte_for_byte_and_numbers_still_parse() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("CHATCART__CLICKHOUSE__PASSWORD", "007"),
                ("CHATCART__CLICKHOUSE__USER", "1.50"),
                ("CHATCART__INTENT__CATALOG", "1e5"),
                ("CHATCART__KAFKA__PARTITIONS", "6"),
                ("CHATCART__CLICKHOUSE__VALIDATION", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.clickhouse.password, "007");
        assert_eq!(s.clickhouse.user, "1.50");
        assert_eq!(s.intent.catalog, Some(PathBuf::from("1e5")));
        assert_eq!(s.kafka.partitions, 6);
        assert!(s.clickhouse.validation);
        let err = Settings::load_with_env(None, env(&[("CHATCART__KAFKA__PARTITIONS", "six")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("partitions"), "{err}");
    }

    #[test]
    fn kafka_properties_come_from_the_environment_with_underscores_for_dots() {
        let f =
            file("[kafka.properties]\n\"sasl.password\" = \"from-file\"\n\"linger.ms\" = \"7\"\n");
        let s = Settings::load_with_env(
            Some(f.path()),
            env(&[
                ("CHATCART__KAFKA__PROPERTIES__SASL_PASSWORD", "from_env"),
                ("CHATCART__KAFKA__PROPERTIES__SASL_USERNAME", "chatcart"),
            ]),
        )
        .unwrap();
        let p = &s.kafka.properties;
        assert_eq!(p["sasl.password"], "from_env", "the environment wins");
        assert_eq!(p["sasl.username"], "chatcart");
        assert_eq!(p["linger.ms"], "7");
        assert!(p.keys().all(|k| !k.contains('_')), "{p:?}");
        // A misspelt secret property is refused at load, named, without
        // its value.
        let err = Settings::load_with_env(
            None,
            env(&[("CHATCART__KAFKA__PROPERTIES__SASL_PASWORD", "TopSecretPw")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sasl.pasword"), "{err}");
        assert!(!err.contains("TopSecretPw"), "{err}");
        assert!(!err.contains("bootstrap_servers"), "no broker hint: {err}");
    }

    #[test]
    fn campaigns_come_from_a_campaigns_file() {
        let campaigns = file(
            "[[campaigns]]\nid = \"spring\"\nbudget_cents = 300000000000\ncredit = { free_up_to_cents = 2000 }\n\n[[campaigns]]\nid = \"summer\"\nbudget_cents = 5000\ncredit = { free_up_to_cents = 500 }\n",
        );
        let path = campaigns.path().to_str().unwrap().to_owned();
        let s = Settings::load_with_env(None, env(&[("CHATCART__CAMPAIGNS_FILE", &path)])).unwrap();
        let ids: Vec<&str> = s.campaigns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["spring", "summer"]);
        assert_eq!(s.campaigns[0].budget_cents, 300_000_000_000);
        assert_eq!(s.campaigns_file, None, "read once, when loading");
        for (text, expected) in [
            ("", "missing configuration field \"campaigns\""),
            ("campaigns = []\n", "lists no campaign"),
            (
                "[[campaigns]]\nid = \"x\"\nbudget = 1\ncredit = { free_up_to_cents = 1 }\n",
                "budget",
            ),
        ] {
            let bad = file(text);
            let path = bad.path().to_str().unwrap().to_owned();
            let err = Settings::load_with_env(None, env(&[("CHATCART__CAMPAIGNS_FILE", &path)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("campaigns_file") && err.contains(expected),
                "{err}"
            );
        }
        let err = Settings::load_with_env(
            None,
            env(&[("CHATCART__CAMPAIGNS_FILE", "/nonexistent.toml")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent.toml"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_wherever_settings_are_shown() {
        let s = Settings::load_with_env(
            None,
            env(&[
                (
                    "CHATCART__CLICKHOUSE__URL",
                    "http://chatcart:UrlPw1@127.0.0.1:8123",
                ),
                ("CHATCART__CLICKHOUSE__PASSWORD", "ChPw2"),
                ("CHATCART__KAFKA__PROPERTIES__SASL_PASSWORD", "KafkaPw3"),
                ("CHATCART__KAFKA__PROPERTIES__SASL_USERNAME", "UserPw4"),
                ("CHATCART__KAFKA__PROPERTIES__LINGER_MS", "9"),
            ]),
        )
        .unwrap();
        let shown = [
            format!("{s:?}"),
            format!("{:?}", s.redacted()),
            serde_json::to_string(&s.redacted()).unwrap(),
        ];
        for text in &shown {
            for secret in ["UrlPw1", "ChPw2", "KafkaPw3", "UserPw4"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("linger.ms") && text.contains('9'), "{text}");
        }
        assert_eq!(
            s.clickhouse.password, "ChPw2",
            "the settings themselves keep it"
        );
    }
}
