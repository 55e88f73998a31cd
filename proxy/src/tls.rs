//! TLS termination: SNI picks a certificate from the current route table (certificates change
//! live with it); unknown names get `--default-ssl-certificate` or a self-signed certificate
//! made at start. TLS 1.2 and 1.3, ALPN h2 and http/1.1.
//!
//! The ClientHello is looked at before the configuration is chosen: a host with client
//! certificate authentication gets its own configuration (which asks for a certificate), every
//! other host the shared one; with `--enable-ssl-passthrough`, a passthrough host's connection
//! is handed over untouched.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::apply::Shared;
use crate::client_auth::{ClientSession, HostClientAuth};
use crate::normalize::normalize_host;
use crate::passthrough::{self, Prefixed};
use crate::routes::Upstream;

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

/// Sessions kept per host with client certificate authentication.
const CLIENT_AUTH_SESSION_ENTRIES: usize = 1_000;

fn build_config(
    resolver: Arc<SniResolver>,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
    sessions: usize,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Session resumption by ID, like ingress-nginx's `ssl_session_cache shared:SSL:10m`
    // (tickets stay off, as ingress-nginx's `ssl-session-tickets` default). Each client
    // authentication has a cache of its own, so no session crosses from one host to another.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(sessions);
    Ok(Arc::new(config))
}

/// What came of a connection to the TLS listener.
pub enum Accepted {
    /// Terminated: the stream, and the client authentication its host asked for.
    Tls(
        Box<TlsStream<Prefixed<TcpStream>>>,
        Option<Arc<ClientSession>>,
    ),
    /// An `ssl-passthrough` host: the bytes read so far go first to this backend.
    Passthrough(TcpStream, Vec<u8>, Arc<Upstream>),
}

/// Chooses each connection's TLS configuration from its ClientHello.
pub struct Handshaker {
    shared: Arc<Shared>,
    resolver: Arc<SniResolver>,
    default: Arc<ServerConfig>,
    passthrough: bool,
}

impl Handshaker {
    pub fn new(
        shared: Arc<Shared>,
        fallback: Arc<CertifiedKey>,
        passthrough: bool,
    ) -> Result<Self, TlsError> {
        let resolver = Arc::new(SniResolver {
            shared: shared.clone(),
            fallback,
        });
        let default = build_config(resolver.clone(), None, SESSION_CACHE_ENTRIES)?;
        Ok(Self {
            shared,
            resolver,
            default,
            passthrough,
        })
    }

    /// The handshake (the caller bounds it in time), or the passthrough hand-over.
    pub async fn accept(&self, mut stream: TcpStream) -> std::io::Result<Accepted> {
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
                .server_config(|verifier| {
                    build_config(
                        self.resolver.clone(),
                        Some(verifier),
                        CLIENT_AUTH_SESSION_ENTRIES,
                    )
                    .ok()
                })
                .ok_or_else(|| std::io::Error::other("no TLS configuration for client auth"))?,
            None => self.default.clone(),
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
