//! What counts as a secret in chatcart's settings, and how one is shown:
//! as [`REDACTED`]. Passwords, SASL settings and keys never reach a log, an
//! error message or a file others can read.

use rdkafka::error::KafkaError;

/// What a secret is shown as.
pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property holds a secret: its name mentions a
/// password, a secret or a key, or it is a SASL setting (usernames
/// included: together with a leaked password they are the login).
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "sasl.", "key"]
        .iter()
        .any(|word| name.contains(word))
}

/// `url` with the password of its user info, if any, replaced:
/// `http://chatcart:pw@host:8123` → `http://chatcart:<redacted>@host:8123`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    let user = user_info
        .split_once(':')
        .map_or(user_info, |(user, _)| user);
    format!("{}{user}:{REDACTED}{}", &url[..scheme_end], &rest[at..])
}

/// A Kafka client error as it may be shown. librdkafka's error for a bad
/// property carries its value; for a secret property the value is left
/// out (and replaced wherever the description quotes it).
pub fn show_kafka_error(error: &KafkaError) -> String {
    match error {
        KafkaError::ClientConfig(_, description, key, value) => {
            if is_secret_property(key) {
                let description = if value.is_empty() {
                    description.clone()
                } else {
                    description.replace(value.as_str(), REDACTED)
                };
                format!(
                    "client configuration: {description} (property `{key}` in kafka.properties)"
                )
            } else {
                format!(
                    "client configuration: {description} (property `{key}` = `{value}` in kafka.properties)"
                )
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_properties_are_recognised_by_name() {
        for name in [
            "sasl.password",
            "sasl.username",
            "SASL.JAAS.CONFIG",
            "ssl.key.password",
            "ssl.key.location",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_secret_property(name), "{name}");
        }
        for name in [
            "bootstrap.servers",
            "linger.ms",
            "security.protocol",
            "ssl.ca.location",
        ] {
            assert!(!is_secret_property(name), "{name}");
        }
    }

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            redact_url("http://chatcart:s3cretPW@127.0.0.1:8123/?x=1"),
            "http://chatcart:<redacted>@127.0.0.1:8123/?x=1"
        );
        assert_eq!(
            redact_url("https://token@ch.example.com"),
            "https://token:<redacted>@ch.example.com"
        );
        assert_eq!(redact_url("http://localhost:8123"), "http://localhost:8123");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn a_bad_secret_property_is_named_without_its_value() {
        // librdkafka's own error for a misspelt property: it carries the
        // value, which is not shown.
        let error = rdkafka::ClientConfig::new()
            .set("sasl.pasword", "TopSecretPw")
            .create_native_config()
            .err()
            .expect("an unknown property is refused");
        assert!(error.to_string().contains("TopSecretPw"), "{error}");
        let shown = show_kafka_error(&error);
        assert!(!shown.contains("TopSecretPw"), "{shown}");
        assert!(shown.contains("sasl.pasword"), "{shown}");
        // A value that is no secret stays, to help.
        let error = rdkafka::ClientConfig::new()
            .set("linger.ms", "soon")
            .create_native_config()
            .err()
            .expect("an invalid value is refused");
        assert!(show_kafka_error(&error).contains("soon"));
    }
}
