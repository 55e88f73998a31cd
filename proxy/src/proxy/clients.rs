//! The pooled upstream clients, one per way of speaking to a backend (the Service port's
//! `appProtocol`): HTTP/1.1 and HTTP/2 (prior knowledge), each over plain TCP or TLS.
//! Connections are kept alive per endpoint.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::ProxyBody;
use crate::routes::UpstreamProtocol;

/// ingress-nginx's `proxy-connect-timeout` default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Plain = Client<HttpConnector, ProxyBody>;
pub(super) type Tls = Client<HttpsConnector<HttpConnector>, ProxyBody>;

pub struct Clients {
    http1: Plain,
    h2c: Plain,
    https: Tls,
    h2_tls: Tls,
}

/// One client, whichever its connector.
pub enum Chosen<'a> {
    Plain(&'a Plain),
    Tls(&'a Tls),
}

/// The TCP side of every upstream connection.
pub(super) fn tcp_connector() -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    tcp.set_nodelay(true);
    // `https://` URIs need the TCP connector to accept them; the TLS layer wraps it.
    tcp.enforce_http(false);
    tcp
}

/// A pooling client builder, HTTP/1.1 or HTTP/2 with prior knowledge.
pub(super) fn client_builder(http2: bool) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .timer(TokioTimer::new())
        .http2_only(http2);
    builder
}

impl Clients {
    pub fn new() -> Self {
        let tcp = tcp_connector();
        let builder = client_builder;
        let tls = |alpn: &[&[u8]]| {
            let mut config = rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new()))
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            HttpsConnector::from((tcp.clone(), config))
        };
        Self {
            http1: builder(false).build(tcp.clone()),
            h2c: builder(true).build(tcp.clone()),
            https: builder(false).build(tls(&[b"http/1.1"])),
            h2_tls: builder(true).build(tls(&[b"h2"])),
        }
    }

    pub fn get(&self, protocol: UpstreamProtocol) -> Chosen<'_> {
        match protocol {
            UpstreamProtocol::Http1 => Chosen::Plain(&self.http1),
            UpstreamProtocol::H2c => Chosen::Plain(&self.h2c),
            UpstreamProtocol::Https => Chosen::Tls(&self.https),
            UpstreamProtocol::H2Tls => Chosen::Tls(&self.h2_tls),
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

/// ingress-nginx's default for HTTPS and GRPCS backends (`proxy-ssl-verify: off`): the
/// connection is encrypted, the backend's certificate is not checked. The signature of the
/// handshake is still verified, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
pub struct AnyServerCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyServerCertificate {
    pub fn new() -> Self {
        Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl Default for AnyServerCertificate {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
