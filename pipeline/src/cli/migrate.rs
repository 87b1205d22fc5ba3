//! `chatcart migrate`: creates or updates the analytics tables and views,
//! and says which migrations it applied.

use std::process::ExitCode;

use connectors::clickhouse::migrate::{MIGRATIONS, migrate};

use super::Config;

pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    if !settings.clickhouse.enabled() {
        anyhow::bail!(
            "clickhouse.url is not set (e.g. CHATCART__CLICKHOUSE__URL=http://localhost:8123)"
        );
    }
    let m = migrate(&settings.clickhouse).await?;
    println!(
        "ClickHouse {} at {}, database {}",
        m.server.text,
        settings.clickhouse.shown_url(),
        settings.clickhouse.database
    );
    println!(
        "dialect: LowCardinality {}, insert deduplication token {}",
        if m.dialect.low_cardinality {
            "on"
        } else {
            "off (server before 20.1)"
        },
        if m.dialect.dedup_token {
            "on"
        } else {
            "off (server before 22.2)"
        }
    );
    for mig in MIGRATIONS {
        let state = if m.applied.contains(&mig.version) {
            "applied now"
        } else {
            "already applied"
        };
        println!("  {:04}_{:<16} {state}", mig.version, mig.name);
    }
    Ok(ExitCode::SUCCESS)
}
