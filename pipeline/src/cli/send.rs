//! `chatcart send`: publishes one prompt as a chat front-end would, and
//! waits for its reply.

use std::process::ExitCode;
use std::time::Duration;

use tools::send::{self, Format};

use super::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The person sending it (the Kafka key).
    #[arg(long)]
    user: String,
    /// A request id; generated when omitted.
    #[arg(long)]
    request_id: Option<String>,
    /// `zh` or `en`; detected from the text when omitted.
    #[arg(long)]
    locale: Option<String>,
    /// How to encode the prompt.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Wait up to this many seconds for the reply and print it (0: don't wait).
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// What the person typed.
    text: String,
}

pub async fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let prompt = send::prompt(args.user, args.text, args.locale, args.request_id);
    let request_id = prompt.request_id.clone();
    let wait = (args.wait > 0).then(|| Duration::from_secs(args.wait));
    let sent = send::send(&config.settings()?, prompt, args.format, wait).await?;
    println!(
        "sent {request_id} to partition {} at offset {}",
        sent.partition, sent.offset
    );
    match (wait, sent.reply) {
        (None, _) => {}
        (Some(_), Some(reply)) => {
            println!(
                "reply ({:?}, {} ms): {}",
                reply.outcome, reply.latency_ms, reply.text
            );
        }
        (Some(w), None) => {
            eprintln!(
                "no reply within {} s: are the stages running (chatcart run all)?",
                w.as_secs()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
