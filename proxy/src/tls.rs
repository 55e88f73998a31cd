//! TLS termination: SNI picks a certificate from the current route table (certificates change
//! live with it); unknown names get `--default-ssl-certificate` or a self-signed certificate
//! made at start. TLS 1.2 and 1.3, ALPN h2 and http/1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::apply::Shared;
use crate::normalize::normalize_host;

/// Resumable sessions kept (about 40k in nginx's 10 MB cache; entries here are larger).
const SESSION_CACHE_ENTRIES: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the self-signed default certificate: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("cannot use the default certificate: {0}")]
    Key(#[source] rustls::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificate for names no Ingress covers when no default Secret is configured.
pub fn self_signed() -> Result<Arc<CertifiedKey>, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec!["switchyard.invalid".to_owned()])
        .map_err(TlsError::Generate)?;
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(vec![cert], key, &provider)
        .map(Arc::new)
        .map_err(TlsError::Key)
}

#[derive(Debug)]
struct SniResolver {
    shared: Arc<Shared>,
    fallback: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.shared.table.load();
        let cert = hello
            .server_name()
            .and_then(|name| table.certs.lookup(&normalize_host(name)).cloned())
            .or_else(|| table.certs.default.clone())
            .unwrap_or_else(|| self.fallback.clone());
        Some(cert)
    }
}

pub fn server_config(
    shared: Arc<Shared>,
    fallback: Arc<CertifiedKey>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { shared, fallback }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Session resumption by ID, like ingress-nginx's `ssl_session_cache shared:SSL:10m`
    // (tickets stay off, as ingress-nginx's `ssl-session-tickets` default).
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    Ok(Arc::new(config))
}
