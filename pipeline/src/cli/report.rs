//! `chatcart report`: a campaign's key figures read back from ClickHouse,
//! as tables and optionally as an HTML page with charts.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tools::report;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ClickHouse HTTP URL (default: clickhouse.url).
    #[arg(long, value_name = "URL")]
    clickhouse_url: Option<String>,
    /// Database holding the analytics views (default: clickhouse.database).
    #[arg(long, value_name = "DB")]
    database: Option<String>,
    /// The campaign to report on (default: the first configured campaign).
    #[arg(long, value_name = "ID")]
    campaign: Option<String>,
    /// Start of the range, UTC: RFC 3339 or `YYYY-MM-DD HH:MM:SS`
    /// (default: the campaign's first record).
    #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
    from: Option<u32>,
    /// End of the range, inclusive, same forms (default: the campaign's last record).
    #[arg(long, value_name = "TIME", value_parser = report::parse_time)]
    to: Option<u32>,
    /// Also write the report with charts to this HTML file.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let mut settings = config.settings()?;
    if let Some(url) = args.clickhouse_url {
        settings.clickhouse.url = url;
    }
    if let Some(database) = args.database {
        settings.clickhouse.database = database;
    }
    if !settings.clickhouse.enabled() {
        anyhow::bail!(
            "no ClickHouse to read: pass --clickhouse-url (e.g. http://localhost:8123) or set clickhouse.url"
        );
    }
    settings.clickhouse.validate()?;
    let request = report::Request {
        campaign: args.campaign,
        default_campaign: settings
            .campaigns
            .first()
            .map(|c| c.id.clone())
            .unwrap_or_default(),
        from: args.from,
        to: args.to,
    };
    let report = report::fetch(&settings.clickhouse, &request).await?;
    let mut text = report::text::render_text(&report);
    if let Some(path) = args.html {
        std::fs::write(&path, report::html::render_html(&report))
            .with_context(|| format!("writing the HTML report to {}", path.display()))?;
        text.push_str(&format!("\nHTML report written to {}\n", path.display()));
    }
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `chatcart report | head` is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        written => written.context("writing the report to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}
