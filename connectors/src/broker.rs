//! Whether the Kafka cluster answers, and if not, why: a client that keeps
//! what librdkafka last reported, since its metadata error alone says only
//! "transport failure" where the cause is a certificate that did not
//! verify or a login the broker refused.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::{ConnectorError, KafkaConfig};

/// Keeps librdkafka's last error report, or the TLS or login failure
/// among them.
#[derive(Default)]
struct LastError(Mutex<Option<String>>);

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A handshake or login failure is followed by "all brokers are
        // down", which says less: the failure is kept.
        if !last.as_deref().is_some_and(is_final) || is_final(reason) {
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

/// Whether `reason` says the broker refused the SASL login or the
/// mechanism: waiting does not mend a password either.
fn is_login_failure(reason: &str) -> bool {
    reason.contains("SASL authentication error")
        || (reason.contains("SASL") && reason.contains("mechanism handshake failed"))
}

fn is_final(reason: &str) -> bool {
    is_tls_failure(reason) || is_login_failure(reason)
}

/// Whether a consumer's `error` is a passing loss of the brokers, which
/// librdkafka mends by reconnecting on its own: a reader goes on polling
/// rather than failing its process over a moment without the broker.
pub fn is_transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error,
        KafkaError::MessageConsumption(
            Code::AllBrokersDown | Code::BrokerTransportFailure | Code::OperationTimedOut
        )
    )
}

/// Logs a transient error (see [`is_transient`]) of a reader of `topic`.
pub fn note_transient(topic: &str, error: &KafkaError) {
    tracing::warn!(topic, %error, "lost the broker for a moment; polling on");
}

/// Asks the cluster for its brokers once, waiting at most `within`: `Ok`
/// when one answered; [`ConnectorError::Tls`] when the TLS handshake
/// failed, [`ConnectorError::Login`] when the broker refused the login.
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
                Some(reason) if is_login_failure(&reason) => ConnectorError::Login(reason),
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
        for refused in [
            "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof (after 32ms in state AUTH_REQ)",
            "sasl_plaintext://127.0.0.1:9092/bootstrap: SASL PLAIN mechanism handshake failed: Local: Broker transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)",
        ] {
            assert!(is_login_failure(refused) && !is_tls_failure(refused));
        }
        assert!(is_transient(&KafkaError::MessageConsumption(
            rdkafka::types::RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_transient(&KafkaError::MessageConsumption(
            rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!is_login_failure(
            "sasl_ssl://127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused"
        ));
    }
}
