//! Whether the Kafka cluster answers, and if not, why: a client that keeps
//! what librdkafka last reported, since its metadata error alone says only
//! "transport failure" where the cause is a certificate that did not
//! verify.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::{ConnectorError, KafkaConfig};

/// Keeps librdkafka's last error report, or its TLS handshake failure.
#[derive(Default)]
struct LastError(Mutex<Option<String>>);

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A handshake failure is followed by "all brokers are down", which
        // says less: the failure is kept.
        if !last.as_deref().is_some_and(is_tls_failure) || is_tls_failure(reason) {
            *last = Some(reason.to_owned());
        }
    }
}

impl ConsumerContext for LastError {}

/// Whether `reason` says the TLS handshake failed: waiting does not mend
/// a certificate.
fn is_tls_failure(reason: &str) -> bool {
    reason.contains("SSL handshake failed") || reason.contains("certificate verify failed")
}

/// Asks the cluster for its brokers once, waiting at most `within`: `Ok`
/// when one answered; [`ConnectorError::Tls`] when the TLS handshake
/// failed.
pub fn reachable(config: &KafkaConfig, within: Duration) -> Result<(), ConnectorError> {
    let consumer: BaseConsumer<LastError> = config
        .client_config()
        .create_with_context(LastError::default())?;
    match consumer.fetch_metadata(None, within) {
        Ok(_) => Ok(()),
        Err(e) => {
            // librdkafka's error reports wait in the client's queue until
            // it is polled; a few polls hand them to the context.
            for _ in 0..5 {
                let _ = consumer.poll(Duration::from_millis(20));
            }
            let last = consumer
                .context()
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            Err(match last {
                Some(reason) if is_tls_failure(&reason) => ConnectorError::Tls(reason),
                _ => e.into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_are_told_apart() {
        assert!(is_tls_failure(
            "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured"
        ));
        assert!(!is_tls_failure(
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        ));
    }
}
