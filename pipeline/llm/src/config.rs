//! The `[intent.llm]` settings of the LLM fallback and their checks.
//!
//! Everything here is operator configuration, never prompt text: a prompt
//! cannot change any of these values.

use serde::{Deserialize, Serialize};

/// The LLM fallback for prompts the rules read with low confidence. Off by
/// default; see `chatcart.example.toml` for what each key does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Whether low-confidence prompts are sent to the endpoint at all.
    pub enabled: bool,
    /// Base URL of an OpenAI-compatible API; `/chat/completions` is
    /// appended.
    pub base_url: String,
    /// Model name sent with every request.
    pub model: String,
    /// Name of the environment variable holding the API key (sent as
    /// `Authorization: Bearer …`). Empty for endpoints without a key. The key
    /// itself is never part of the configuration, so it cannot end up in a
    /// file or a log of the settings.
    pub api_key_env: String,
    /// A request not answered in full within this many milliseconds fails.
    pub timeout_ms: u64,
    /// Requests in flight at once; further prompts go without the LLM.
    pub max_concurrency: usize,
    /// Answers kept, keyed by normalised prompt text; 0 keeps none.
    pub cache_entries: usize,
    /// Consecutive failures after which the endpoint is left alone ...
    pub breaker_failures: u32,
    /// ... for this many milliseconds, before one trial request.
    pub breaker_open_ms: u64,
    /// Prompts longer than this many characters are never sent.
    pub max_prompt_chars: usize,
}

/// The environment variable the API key is read from unless configured.
pub const DEFAULT_API_KEY_ENV: &str = "CHATCART_LLM_API_KEY";

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key_env: DEFAULT_API_KEY_ENV.into(),
            timeout_ms: 2_000,
            max_concurrency: 8,
            cache_entries: 10_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            max_prompt_chars: 500,
        }
    }
}

/// An `[intent.llm]` value that is not allowed; the message names the key
/// and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmConfigError {
    #[error(
        "intent.llm.base_url: must be an http(s) URL with a host and no query, e.g. \"https://api.openai.com/v1\" (got `{0}`)"
    )]
    BaseUrl(String),
    #[error(
        "intent.llm.model: must be a model name of 1 to 200 printable characters, e.g. \"gpt-4o-mini\""
    )]
    Model,
    #[error(
        "intent.llm.api_key_env: must be an environment variable name (letters, digits and `_`, not starting with a digit), or empty for an endpoint without a key (got `{0}`)"
    )]
    ApiKeyEnv(String),
    #[error("intent.llm.{key}: must be between {min} and {max} (got {value})")]
    OutOfRange {
        key: &'static str,
        min: u64,
        max: u64,
        value: u64,
    },
}

impl LlmConfig {
    /// Checks every value, whether or not the fallback is enabled, so that
    /// turning it on later cannot reveal an old mistake.
    pub fn validate(&self) -> Result<(), LlmConfigError> {
        if !valid_base_url(&self.base_url) {
            return Err(LlmConfigError::BaseUrl(self.base_url.clone()));
        }
        let model_len = self.model.chars().count();
        if !(1..=200).contains(&model_len) || self.model.chars().any(char::is_control) {
            return Err(LlmConfigError::Model);
        }
        if !valid_env_name(&self.api_key_env) {
            return Err(LlmConfigError::ApiKeyEnv(self.api_key_env.clone()));
        }
        range("timeout_ms", self.timeout_ms, 1, 120_000)?;
        range("max_concurrency", self.max_concurrency as u64, 1, 10_000)?;
        range("cache_entries", self.cache_entries as u64, 0, 10_000_000)?;
        range(
            "breaker_failures",
            u64::from(self.breaker_failures),
            1,
            1_000,
        )?;
        range("breaker_open_ms", self.breaker_open_ms, 1, 3_600_000)?;
        // Prompts themselves are at most 4096 bytes, so a larger limit
        // would mean nothing.
        range("max_prompt_chars", self.max_prompt_chars as u64, 1, 4_096)?;
        Ok(())
    }
}

fn range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), LlmConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LlmConfigError::OutOfRange {
            key,
            min,
            max,
            value,
        })
    }
}

fn valid_base_url(text: &str) -> bool {
    match reqwest::Url::parse(text) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
                && url.query().is_none()
                && url.fragment().is_none()
                // Credentials belong in the API key variable, not in a
                // URL that is printed with the settings.
                && url.username().is_empty()
                && url.password().is_none()
        }
        Err(_) => false,
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        None => true,
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_off() {
        let config = LlmConfig::default();
        assert!(!config.enabled);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(LlmConfig, &str)> = vec![
            (
                LlmConfig {
                    base_url: "ftp://x".into(),
                    ..LlmConfig::default()
                },
                "intent.llm.base_url: must be an http(s) URL",
            ),
            (
                LlmConfig {
                    base_url: "https://user:pw@x/v1".into(),
                    ..LlmConfig::default()
                },
                "intent.llm.base_url",
            ),
            (
                LlmConfig {
                    model: String::new(),
                    ..LlmConfig::default()
                },
                "intent.llm.model",
            ),
            (
                LlmConfig {
                    api_key_env: "1KEY".into(),
                    ..LlmConfig::default()
                },
                "intent.llm.api_key_env",
            ),
            (
                LlmConfig {
                    timeout_ms: 0,
                    ..LlmConfig::default()
                },
                "intent.llm.timeout_ms: must be between 1 and 120000 (got 0)",
            ),
            (
                LlmConfig {
                    max_concurrency: 0,
                    ..LlmConfig::default()
                },
                "intent.llm.max_concurrency",
            ),
            (
                LlmConfig {
                    breaker_failures: 0,
                    ..LlmConfig::default()
                },
                "intent.llm.breaker_failures",
            ),
            (
                LlmConfig {
                    max_prompt_chars: 5_000,
                    ..LlmConfig::default()
                },
                "intent.llm.max_prompt_chars",
            ),
        ];
        for (config, expected) in cases {
            let err = config.validate().expect_err("invalid value").to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn empty_key_variable_means_no_key() {
        let config = LlmConfig {
            api_key_env: String::new(),
            base_url: "http://127.0.0.1:8080/v1".into(),
            ..LlmConfig::default()
        };
        config
            .validate()
            .expect("an endpoint without a key is allowed");
    }
}
