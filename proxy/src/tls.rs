//! TLS termination: SNI picks a certificate from the current route table (certificates change
//! live with it); unknown names get `--default-ssl-certificate` or a self-signed certificate
//! made at start. TLS 1.2 and 1.3, ALPN h2 and http/1.1, unless the controller ConfigMap's
//! `ssl-protocols`, `ssl-ciphers`, `ssl-prefer-server-ciphers` or `use-http2` say otherwise.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::apply::Shared;
use crate::compile::tls_settings::{TlsSettings, TlsVersion};
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
    TlsFactory::new(shared, fallback).config(&TlsSettings::default())
}

/// Builds the server configuration for the ConfigMap's TLS settings; every configuration it
/// builds shares one certificate resolver and one session cache, so a settings change neither
/// loses sessions nor certificates.
#[derive(Debug)]
pub struct TlsFactory {
    resolver: Arc<SniResolver>,
    // Session resumption by ID, like ingress-nginx's `ssl_session_cache shared:SSL:10m`
    // (tickets stay off, as ingress-nginx's `ssl-session-tickets` default).
    sessions: Arc<dyn StoresServerSessions>,
}

impl TlsFactory {
    pub fn new(shared: Arc<Shared>, fallback: Arc<CertifiedKey>) -> Self {
        Self {
            resolver: Arc::new(SniResolver { shared, fallback }),
            sessions: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
        }
    }

    pub fn config(&self, settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        // TLS 1.3 suites stay as they are (nginx's `ssl_ciphers` does not govern them); the
        // TLS 1.2 ones in the configured order.
        let all = std::mem::take(&mut provider.cipher_suites);
        let mut suites: Vec<SupportedCipherSuite> = all
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .copied()
            .collect();
        suites.extend(
            settings
                .tls12_suites
                .iter()
                .filter_map(|wanted| all.iter().find(|s| s.suite() == *wanted).copied()),
        );
        provider.cipher_suites = suites;
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = settings
            .versions
            .iter()
            .map(|v| match v {
                TlsVersion::Tls13 => &rustls::version::TLS13,
                TlsVersion::Tls12 => &rustls::version::TLS12,
            })
            .collect();
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = if settings.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.ignore_client_order = settings.prefer_server_ciphers;
        config.session_storage = self.sessions.clone();
        Ok(Arc::new(config))
    }
}
