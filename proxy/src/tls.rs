//! TLS termination: SNI picks a certificate from the current route table (certificates change
//! live with it); unknown names get `--default-ssl-certificate` or a self-signed certificate
//! made at start. TLS 1.2 and 1.3, ALPN h2 and http/1.1, unless the controller ConfigMap's
//! `ssl-protocols`, `ssl-ciphers`, `ssl-prefer-server-ciphers` or `use-http2` say otherwise.
//!
//! The ClientHello is looked at before the configuration is chosen: a host with client
//! certificate authentication gets its own configuration (which asks for a certificate), every
//! other host the shared one; with `--enable-ssl-passthrough`, a passthrough host's connection
//! is handed over untouched.

use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::apply::Shared;
use crate::client_auth::{ClientSession, HostClientAuth};
use crate::compile::tls_settings::{TlsSettings, TlsVersion};
use crate::normalize::normalize_host;
use crate::passthrough;
use crate::proxy_protocol::Prefixed;
use crate::routes::Upstream;

/// Resumable sessions kept (about 40k in nginx's 10 MB cache; entries here are larger).
const SESSION_CACHE_ENTRIES: usize = 20_000;
/// Sessions kept per host with client certificate authentication.
const CLIENT_AUTH_SESSION_ENTRIES: usize = 1_000;

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

    /// The shared configuration for `settings`.
    pub fn config(&self, settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
        self.build(settings, None, self.sessions.clone())
    }

    /// A configuration that asks for a client certificate, with a session cache of its own so
    /// that no session crosses from one host to another.
    pub fn client_auth_config(
        &self,
        settings: &TlsSettings,
        verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let sessions = rustls::server::ServerSessionMemoryCache::new(CLIENT_AUTH_SESSION_ENTRIES);
        self.build(settings, Some(verifier), sessions)
    }

    fn build(
        &self,
        settings: &TlsSettings,
        client_auth: Option<Arc<dyn ClientCertVerifier>>,
        sessions: Arc<dyn StoresServerSessions>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
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
        let builder = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .map_err(TlsError::Config)?;
        let builder = match client_auth {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = if settings.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.ignore_client_order = settings.prefer_server_ciphers;
        config.session_storage = sessions;
        Ok(Arc::new(config))
    }
}

/// What came of a connection to the TLS listener.
pub enum Accepted<S> {
    /// Terminated: the stream, and the client authentication its host asked for.
    Tls(Box<TlsStream<Prefixed<S>>>, Option<Arc<ClientSession>>),
    /// An `ssl-passthrough` host: the bytes read so far go first to this backend.
    Passthrough(S, Vec<u8>, Arc<Upstream>),
}

/// Chooses each connection's TLS configuration from its ClientHello.
pub struct Handshaker {
    shared: Arc<Shared>,
    factory: TlsFactory,
    passthrough: bool,
}

impl Handshaker {
    pub fn new(shared: Arc<Shared>, fallback: Arc<CertifiedKey>, passthrough: bool) -> Self {
        Self {
            factory: TlsFactory::new(shared.clone(), fallback),
            shared,
            passthrough,
        }
    }

    /// Builds the configurations for the ConfigMap's TLS settings.
    pub fn factory(&self) -> &TlsFactory {
        &self.factory
    }

    /// The handshake (the caller bounds it in time), or the passthrough hand-over. `default` is
    /// the configuration for `settings` (the serving thread keeps it).
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        default: &Arc<ServerConfig>,
        settings: &TlsSettings,
    ) -> std::io::Result<Accepted<S>> {
        // Without passthrough or a client-auth host, no host needs another configuration: the
        // plain handshake, as cheap as it gets.
        if !self.passthrough && !self.shared.table.load().any_client_auth {
            let acceptor = tokio_rustls::TlsAcceptor::from(default.clone());
            let tls = acceptor.accept(Prefixed::new(Vec::new(), stream)).await?;
            return Ok(Accepted::Tls(Box::new(tls), None));
        }
        let mut hello = Vec::new();
        if self.passthrough {
            let (read, sni) = passthrough::read_client_hello(&mut stream).await?;
            let target = sni.and_then(|name| {
                let table = self.shared.table.load();
                table.passthrough.get(&*normalize_host(&name)).cloned()
            });
            if let Some(upstream) = target {
                return Ok(Accepted::Passthrough(stream, read, upstream));
            }
            hello = read;
        }
        let acceptor = rustls::server::Acceptor::default();
        let start = LazyConfigAcceptor::new(acceptor, Prefixed::new(hello, stream)).await?;
        let auth = {
            let table = self.shared.table.load();
            let hello = start.client_hello();
            let name = hello.server_name().map(normalize_host);
            match &table.host_routes(name.as_deref().unwrap_or("")).client_auth {
                Some(HostClientAuth::Ready(auth)) if auth.asks_for_certificate() => {
                    Some(auth.clone())
                }
                _ => None,
            }
        };
        let config = match &auth {
            Some(auth) => auth
                .server_config(settings, |verifier| {
                    self.factory.client_auth_config(settings, verifier).ok()
                })
                .ok_or_else(|| std::io::Error::other("no TLS configuration for client auth"))?,
            None => default.clone(),
        };
        let tls = start.into_stream(config).await?;
        let session = auth.map(|auth| {
            let now = rustls::pki_types::UnixTime::now();
            let peer = auth.check(tls.get_ref().1.peer_certificates(), now);
            Arc::new(ClientSession { auth, peer })
        });
        Ok(Accepted::Tls(Box::new(tls), session))
    }
}
