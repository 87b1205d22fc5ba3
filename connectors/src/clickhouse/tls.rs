//! The HTTPS client for an `https://` `clickhouse.url`: rustls, trusting
//! the CA certificates in `clickhouse.ca_file` (a private CA) or, without
//! one, the public web PKI roots. Certificates are always verified.

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::ConnectorError;

/// The CA certificates in the PEM file `path`; an error names the file and
/// what is wrong with it.
pub fn read_ca(path: &str) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            ConnectorError::config(
                "clickhouse.ca_file",
                format!("cannot read PEM certificates from {path}: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(ConnectorError::config(
            "clickhouse.ca_file",
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(certs)
}

/// A client for an `https://` URL, trusting `ca_file` when it is set.
pub fn https_client(ca_file: &str) -> Result<Client, ConnectorError> {
    with_roots(roots_of(ca_file)?)
}

/// A client for an `https://` URL that trusts no certificate, for a CA
/// file that went missing after the settings were checked: every request
/// fails verifying the server, which says where to look.
pub fn https_client_trusting_nothing() -> Client {
    with_roots(rustls::RootCertStore::empty()).unwrap_or_default()
}

fn roots_of(ca_file: &str) -> Result<rustls::RootCertStore, ConnectorError> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in read_ca(ca_file)? {
            roots.add(cert).map_err(|e| {
                ConnectorError::config(
                    "clickhouse.ca_file",
                    format!("{ca_file} holds a certificate rustls cannot use: {e}"),
                )
            })?;
        }
    }
    Ok(roots)
}

fn with_roots(roots: rustls::RootCertStore) -> Result<Client, ConnectorError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConnectorError::config("clickhouse.url", format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let hyper = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(https);
    Ok(Client::with_http_client(hyper))
}
