//! `chatcart extract`: reads prompts, one per line, and writes what the
//! extractor makes of each as one JSON object per line, in the same order.
//! This is how a person tries the extractor by hand, and how a script can
//! run it over a file of prompts.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use extract::Extractor;
use extract::catalog::Catalog;

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A catalog TOML file (default: intent.catalog, else the built-in catalog).
    #[arg(long, value_name = "PATH")]
    catalog: Option<PathBuf>,
    /// Largest quantity of one item (default: intent.max_quantity).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=10_000))]
    max_quantity: Option<i32>,
}

pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.settings()?;
    let path = args.catalog.or(settings.intent.catalog);
    let catalog = Catalog::load(path.as_deref()).with_context(|| {
        let name = path
            .as_ref()
            .map_or("built-in".into(), |p| p.display().to_string());
        format!("loading the catalog ({name})")
    })?;
    let max_quantity = args.max_quantity.unwrap_or(settings.intent.max_quantity);
    extract_lines(
        &Extractor::new(catalog),
        max_quantity,
        io::stdin().lock(),
        io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Extracts every line of `input` and writes one JSON line per prompt to
/// `output`, flushing after each so it answers as a person types. Lines
/// that are not UTF-8 are read with replacement characters. Returns how
/// many prompts were read.
fn extract_lines(
    extractor: &Extractor,
    max_quantity: i32,
    input: impl BufRead,
    mut output: impl Write,
) -> io::Result<usize> {
    let mut count = 0;
    for line in input.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let extraction = extractor.extract(max_quantity, text);
        serde_json::to_writer(&mut output, &extraction)?;
        output.write_all(b"\n")?;
        output.flush()?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_line_per_prompt() {
        let input = "帮我买40杯奶茶\nhello\n\nlemon tea x4, coupon code SPRING50\r\n";
        let mut out = Vec::new();
        let n = extract_lines(&Extractor::built_in(), 50, input.as_bytes(), &mut out)
            .expect("in-memory IO");
        assert_eq!(n, 4);
        let text = String::from_utf8(out).expect("JSON is UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["outcome"], "extracted");
        assert_eq!(lines[0]["items"][0]["sku"], "milk-tea");
        assert_eq!(lines[0]["items"][0]["quantity"], 40);
        assert_eq!(lines[0]["confidence"], "high");
        assert_eq!(lines[1]["outcome"], "rejected");
        assert_eq!(lines[1]["reason"], "not_a_purchase");
        assert_eq!(lines[2]["reason"], "not_understood");
        assert_eq!(lines[3]["items"][0]["quantity"], 4);
        assert_eq!(lines[3]["coupon_code"], "SPRING50");
    }
}
