//! Secrets never printed: a misspelt secret Kafka property, credentials in
//! the ClickHouse URL and passwords in the settings are refused or shown
//! without their values, in every place the binary reports them. Nothing
//! here needs a running service: each command fails or finishes before
//! contacting one.

// Helpers of a test should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::process::Output;

mod common;

fn chatcart(args: &[&str], env: &[(&str, &str)]) -> Output {
    common::clean_chatcart()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_misspelt_secret_property_is_refused_by_name_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chatcart.toml");
    std::fs::write(
        &file,
        "[kafka.properties]\n\"sasl.pasword\" = \"TopSecretPw\"\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    for args in [
        vec!["--config", config, "send", "--user", "alice", "one latte"],
        vec!["--config", config, "topics", "create"],
        vec!["--config", config, "config", "check"],
    ] {
        let out = chatcart(&args, &[]);
        let text = all_output(&out);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(
            !text.contains("TopSecretPw"),
            "{args:?} printed the secret: {text}"
        );
        assert!(text.contains("sasl.pasword"), "{args:?}: {text}");
        assert_eq!(
            text.matches("sasl.pasword").count(),
            2,
            "once, with its key: {text}"
        );
        assert!(
            !text.contains("bootstrap_servers"),
            "no broker hint: {text}"
        );
    }
    // From the environment, spelt with underscores.
    let out = chatcart(
        &["config", "check"],
        &[("CHATCART__KAFKA__PROPERTIES__SASL_PASWORD", "TopSecretPw")],
    );
    let text = all_output(&out);
    assert!(
        !out.status.success() && !text.contains("TopSecretPw"),
        "{text}"
    );
}

#[test]
fn credentials_in_the_clickhouse_url_are_not_echoed() {
    let url = "http://chatcart:s3cretPW@127.0.0.1:1";
    for (args, env) in [
        (vec!["report", "--clickhouse-url", url], vec![]),
        (vec!["migrate"], vec![("CHATCART__CLICKHOUSE__URL", url)]),
        (
            vec!["config", "check"],
            vec![("CHATCART__CLICKHOUSE__URL", url)],
        ),
    ] {
        let out = chatcart(&args, &env);
        let text = all_output(&out);
        assert!(
            !text.contains("s3cretPW"),
            "{args:?} printed the password: {text}"
        );
    }
    let out = chatcart(&["report", "--clickhouse-url", url], &[]);
    let text = all_output(&out);
    assert!(
        !out.status.success() && text.contains("chatcart:<redacted>@127.0.0.1:1"),
        "the report says where it tried, without the password: {text}"
    );
}

#[test]
fn config_check_shows_the_effective_settings_with_secrets_redacted() {
    let out = chatcart(
        &["config", "check"],
        &[
            ("CHATCART__CLICKHOUSE__PASSWORD", "007"),
            (
                "CHATCART__KAFKA__PROPERTIES__SASL_USERNAME",
                "chatcart-user",
            ),
            ("CHATCART__KAFKA__PROPERTIES__SASL_PASSWORD", "KafkaPw3"),
            ("CHATCART__KAFKA__PROPERTIES__LINGER_MS", "9"),
            ("CHATCART__KAFKA__PARTITIONS", "6"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", all_output(&out));
    for secret in ["007", "chatcart-user", "KafkaPw3"] {
        assert!(!stdout.contains(secret), "{secret} shown:\n{stdout}");
    }
    assert!(
        stdout.contains("\"sasl.password\" = \"<redacted>\""),
        "{stdout}"
    );
    assert!(stdout.contains("password = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("\"linger.ms\" = \"9\""), "{stdout}");
    assert!(stdout.contains("partitions = 6"), "{stdout}");
}
